"""Run one stack program under Pulumi's mocks in this process and print, as JSON, every
RegisterResource request the program made (`python tests/pulumi_mockrun.py MODULE`, the
inputs' JSON on stdin). tests/test_pulumi_stacks.py runs it in a subprocess per program,
so the SDK's global runtime settings and event loop never leak between tests."""

from __future__ import annotations

import importlib
import json
import sys
from typing import Any

import pulumi
from pulumi.runtime.mocks import MockMonitor
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await


class Mocks(pulumi.runtime.Mocks):
    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
        live_id = args.resource_id or f"{args.name}-id"     # an import keeps its live id
        return live_id, dict(args.inputs)

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, list]:
        return {}, []


class Recorder(MockMonitor):
    """A MockMonitor that keeps every RegisterResource request it is sent."""

    def __init__(self, mocks: pulumi.runtime.Mocks):
        super().__init__(mocks)
        self.requests: list[Any] = []

    def RegisterResource(self, request: Any) -> Any:
        self.requests.append(request)
        return super().RegisterResource(request)


def record(request: Any, monitor: Recorder) -> dict[str, Any]:
    from pulumi.runtime import rpc

    inputs = _sync_await(_deserialize(rpc, request.object))
    return {
        "type": request.type, "name": request.name, "custom": request.custom,
        "protect": request.protect, "retainOnDelete": request.retainOnDelete,
        "importId": request.importId, "deleteBeforeReplace": request.deleteBeforeReplace,
        "dependencies": sorted(request.dependencies),
        "ignoreChanges": list(request.ignoreChanges),
        "replaceOnChanges": list(request.replaceOnChanges),
        "provider": request.provider, "inputs": inputs,
    }


async def _deserialize(rpc: Any, obj: Any) -> Any:
    return rpc.deserialize_properties(obj)


def main() -> int:
    module = importlib.import_module(sys.argv[1])
    inputs = json.load(sys.stdin)
    monitor = Recorder(Mocks())
    pulumi.runtime.set_mocks(Mocks(), project="trainctl-test", stack="llm",
                             preview=False, monitor=monitor)
    _sync_await(run_pulumi_func(lambda: module.program(inputs)))
    out = [record(r, monitor) for r in monitor.requests]
    outputs = {urn: reg.state for urn, reg in monitor.resources.items()}
    json.dump({"requests": out, "states": outputs}, sys.stdout, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
