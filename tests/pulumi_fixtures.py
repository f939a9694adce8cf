"""Shared by the Pulumi engine's tests: plans built from plan-file JSON (the stable
format) and preview event logs in the SDK's JSON form, read with EngineEvent.from_json."""

from __future__ import annotations

import json
import os
from typing import Any

from planner.plan import plan_from_json

DATA = os.path.join(os.path.dirname(__file__), "data", "pulumi")
STACK_URN = "urn:pulumi:llm-finetune::trainctl-storage::"
PROVIDER = STACK_URN + "pulumi:providers:aws::aws::04da6b54-80e4-46f7-96ec-b56ff0331ba9"
VOLUME_TYPE = "aws:ebs/volume:Volume"


def change(address: str, actions: list[str], reason: str, *, id: str | None = None,
           before: dict[str, Any] | None = None, after: dict[str, Any] | None = None,
           replace_paths: tuple[str, ...] = (), blocked: str | None = None,
           depends_on: tuple[str, ...] = ()) -> dict[str, Any]:
    kind = address.split(".", 1)[0]
    return {"address": address, "type": kind, "actions": actions, "reason": reason,
            "id": id, "before": before, "after": after, "replace_paths": list(replace_paths),
            "depends_on": list(depends_on),
            "blocked_by": [{"rule": blocked, "message": f"{address} is {blocked}"}]
            if blocked else []}


def plan_of(*changes: dict[str, Any], project: str = "llm-finetune",
            destroy: bool = False):
    doc = {"format_version": "1", "project": project, "region": "us-east-1",
           "created_at": "2026-11-22T21:00:00Z",
           "spec_digest": "sha256:" + "1" * 64, "live_digest": "sha256:" + "2" * 64,
           "options": {"destroy": destroy, "targets": []},
           "changes": list(changes), "warnings": [], "data_locations": [], "expiries": []}
    return plan_from_json(doc)


VOL_A = {"size_gib": 100, "type": "gp3", "availability_zone": "us-east-1a"}


def storage_plan():
    """The plan preview_clean.jsonl carries out exactly."""
    return plan_of(
        change("volume.scratch", ["create"], "create_because_missing",
               after={"size_gib": 200, "type": "gp3", "availability_zone": "us-east-1a"}),
        change("volume.imagenet-cache", ["update"], "update_because_drift",
               id="vol-0aaaaaaaaaaaaaaa1", before={**VOL_A, "size_gib": 500},
               after={**VOL_A, "size_gib": 800}),
        change("volume.checkpoints", ["delete", "create"], "replace_because_cannot_update",
               id="vol-0bbbbbbbbbbbbbbb2", before=VOL_A,
               after={**VOL_A, "availability_zone": "us-east-1b"},
               replace_paths=("availability_zone",)),
        change("volume.old-scratch", ["delete"], "delete_because_not_in_spec",
               id="vol-0ddddddddddddddd4", before=VOL_A),
        change("volume.datasets", ["no-op"], "no_change", id="vol-0eeeeeeeeeeeeeee5",
               before=VOL_A, after=VOL_A),
        change("volume.old-cache", ["delete"], "delete_because_not_in_spec",
               id="vol-0fffffffffffffff6", before=VOL_A, blocked="persistent"),
        change("volume.frozen", ["update"], "update_because_drift",
               id="vol-0999999999999999a", before=VOL_A, after={**VOL_A, "size_gib": 200},
               blocked="modify-pending"),
    )


def read_log(name: str) -> list[dict[str, Any]]:
    with open(os.path.join(DATA, name)) as f:
        return [json.loads(line) for line in f if line.strip()]


def events_of(docs: list[dict[str, Any]]):
    from pulumi.automation import EngineEvent

    return [EngineEvent.from_json(d) for d in docs]


def step(op: str, address: str, *, kind: str = "resourcePreEvent",
         type: str = VOLUME_TYPE, seq: int = 100) -> dict[str, Any]:
    """One resource event in the SDK's JSON form, as the CLI writes it."""
    urn = f"{STACK_URN}{type}::{address}"
    return {"sequence": seq, "timestamp": 1796250010,
            kind: {"metadata": {"op": op, "urn": urn, "type": type,
                                "provider": "" if type.startswith("pulumi:") else PROVIDER},
                   "planning": True}}


def summary(**counts: int) -> dict[str, Any]:
    return {"sequence": 999, "timestamp": 1796250020,
            "summaryEvent": {"maybeCorrupt": False, "durationSeconds": 1,
                             "resourceChanges": {k.rstrip("_").replace("_", "-"): v
                                                 for k, v in counts.items()},
                             "PolicyPacks": {}}}
