"""The two stacks of one trainctl project through the Automation API (needs the CLI).

`AutomationStacks.run_pass` is one stack pass: a crash's leftovers refused, `preview`
saving its update plan, `check_preview` against the pass's own changes, then `up --plan`
on that saved plan; `up`'s engine events give the per-address results (`PassLog`).
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Mapping
from typing import Any

from planner.engines.base import StepFailed
from planner.engines.pulumi.backend import WorkspaceSettings, workspace_settings
from planner.engines.pulumi.preview import (
    PreviewWarning,
    describe_refusals,
    preview_steps,
    review_preview,
)
from planner.engines.pulumi.recovery import StackTrouble, explain, find_trouble, pending_of
from planner.phases import Step
from planner.plan import Action, Plan

PROGRAM_MODULES = {"storage": "stacks.storage", "compute": "stacks.compute"}


class PassFailed(Exception):
    """A stack pass did not run or did not complete; nothing after it in the unit runs."""


def _address(urn: str) -> str:
    return urn.rsplit("::", 1)[-1]


class EventLog:
    """What `up`'s engine events say per address: done, failed (with the diagnostic)."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.done: set[str] = set()
        self.failed: dict[str, str] = {}
        self._errors: dict[str, list[str]] = {}
        self._lock = threading.Lock()

    def __call__(self, event: Any) -> None:
        with self._lock:
            self.events.append(event)
            if event.res_outputs_event is not None:
                self.done.add(_address(event.res_outputs_event.metadata.urn))
            if event.res_op_failed_event is not None:
                addr = _address(event.res_op_failed_event.metadata.urn)
                self.failed[addr] = "; ".join(self._errors.get(addr, [])) or "failed"
            diag = event.diagnostic_event
            if diag is not None and diag.urn and diag.severity == "error":
                self._errors.setdefault(_address(diag.urn), []).append(diag.message.strip())


class PassLog(EventLog):
    """One pass's `up` events, its preview's ops and warnings, `up`'s error if it failed."""

    def __init__(self) -> None:
        super().__init__()
        self.error: str | None = None
        self.warnings: tuple[PreviewWarning, ...] = ()
        self.planned_ops: dict[str, set[str]] = {}     # address -> the preview's ops


# the preview ops that carry out a step of each action
CARRIES = {Action.CREATE: {"create", "create-replacement", "replace"},
           Action.UPDATE: {"update"},
           Action.DELETE: {"delete", "delete-replaced", "replace"}}


def step_outcome(step: Step, log: PassLog, ids: Mapping[str, str]) -> Any:
    """Facts for a step the pass carried out, else StepFailed: failed in `up`, `up` cut
    short before it, or no op of the checked preview carries it out (the journal never
    says done for what Pulumi did not do)."""
    address, action = step
    if address in log.failed:
        return StepFailed(f"pulumi up: {address}: {log.failed[address]}")
    if log.error is not None and address not in log.done:
        return StepFailed(f"pulumi up did not complete ({log.error}); {address}: its "
                          "outcome is unknown, plan again to see")
    if not log.planned_ops.get(address, set()) & CARRIES[action]:
        shown = ", ".join(sorted(log.planned_ops.get(address, ()))) or "nothing"
        return StepFailed(f"the Pulumi preview does not {action.value} {address} (it "
                          f"shows {shown}); nothing was done for it")
    return {"id": ids[address]} if address in ids else {}


class AutomationStacks:
    """The two stacks of one trainctl project, through the Automation API (needs the CLI:
    only built by PulumiEngine.from_context, after the CLI check)."""

    def __init__(self, ctx: Any):
        self.ctx = ctx
        self.plan: Plan = ctx.plan
        self._deployments: dict[str, Mapping[str, Any]] = {}
        self._prepared: set[str] = set()
        self._lock = threading.Lock()
        self._pass_lock = threading.Lock()     # one stack pass at a time (inline programs)

    def settings(self, program: str) -> WorkspaceSettings:
        spec = self.ctx.spec
        return workspace_settings(program, self.plan.project, str(self.ctx.state_dir),
                                  getattr(spec, "state", None), self.plan.region,
                                  os.environ, self.ctx.endpoint_url)

    def stack(self, program: str, stack_inputs: Any = None) -> Any:
        import importlib

        from pulumi import automation as auto

        from planner.engines.pulumi.backend import workspace_options

        settings = self.settings(program)
        os.makedirs(settings.work_dir, exist_ok=True)
        if settings.backend_dir is not None:
            os.makedirs(settings.backend_dir, exist_ok=True)
        module = importlib.import_module(PROGRAM_MODULES[program])
        doc = stack_inputs.to_json() if stack_inputs is not None else None

        def run_program() -> None:
            if doc is None:
                raise RuntimeError("no inputs: this workspace only reads the stack")
            module.program(doc)

        return auto.create_or_select_stack(
            stack_name=settings.stack, project_name=settings.project_name,
            program=run_program, opts=workspace_options(settings))

    def deployment(self, program: str) -> Mapping[str, Any]:
        """The stack's state (`stack export`): the truth after a crash, which outputs are
        not (a finished `up` writes them)."""
        with self._lock:
            if program not in self._deployments:
                exported = self.stack(program).export_stack()
                self._deployments[program] = dict(getattr(exported, "deployment", None)
                                                  or {})
            return self._deployments[program]

    def deployed(self) -> Any:
        from planner.engines.pulumi.state import from_deployment

        return from_deployment(self.deployment("storage"), self.deployment("compute"))

    def ids(self, program: str) -> dict[str, str]:
        from planner.engines.pulumi.state import from_deployment

        return dict(from_deployment(self.deployment(program)).ids)

    def volume_ids(self) -> dict[str, str]:
        return {k: v for k, v in self.ids("storage").items() if k.startswith("volume.")}

    def prepared(self, program: str) -> bool:
        return program in self._prepared

    def mark_prepared(self, program: str) -> None:
        self._prepared.add(program)

    def run_pass(self, program: str, stack_inputs: Any, checked: Plan, *,
                 tolerate_failure: bool = False) -> PassLog:
        """preview (saving the update plan), check it against `checked`, then up --plan.
        Raises PassFailed before `up` when the stack is locked, has pending operations,
        or the preview is refused; `up` failing is in the log (`error`)."""
        with self._pass_lock:
            return self._run_pass(program, stack_inputs, checked,
                                  tolerate_failure=tolerate_failure)

    def trouble(self, program: str) -> str:
        """What a crash left on the stack (a lock, pending operations), explained; ''."""
        settings = self.settings(program)
        trouble = find_trouble(settings)
        if trouble.found:
            return explain(trouble, settings.backend_url)
        pending = pending_of(self.deployment(program))     # any backend, S3 included
        if pending:
            return explain(StackTrouble(settings.qualified_stack, (), tuple(pending)),
                           settings.backend_url)
        return ""

    def _run_pass(self, program: str, stack_inputs: Any, checked: Plan, *,
                  tolerate_failure: bool) -> PassLog:
        settings = self.settings(program)
        problem = self.trouble(program)
        if problem:
            raise PassFailed(problem)
        stack = self.stack(program, stack_inputs)
        with tempfile.TemporaryDirectory(prefix="trainctl-pulumi-") as tmp:
            saved = os.path.join(tmp, "update-plan.json")
            seen: list[Any] = []
            try:
                stack.preview(on_event=seen.append, plan=saved, color="never")
            except Exception as e:
                raise PassFailed(f"pulumi preview of {settings.qualified_stack}: {e}") from e
            review = review_preview(checked, seen)
            if review.refusals:
                raise PassFailed(describe_refusals(review.refusals))
            log = PassLog()
            log.warnings = review.warnings
            for ps in preview_steps(seen)[0]:
                log.planned_ops.setdefault(ps.address, set()).add(ps.op)
            try:
                stack.up(on_event=log, plan=saved, color="never")
            except Exception as e:
                if not tolerate_failure:
                    raise PassFailed(f"pulumi up of {settings.qualified_stack}: {e}") from e
                log.error = str(e).strip().splitlines()[-1] if str(e).strip() else repr(e)
        with self._lock:
            self._deployments.pop(program, None)
        return log
