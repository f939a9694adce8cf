"""`PulumiEngine`: the storage and compute stacks through the Automation API.

Every stack pass runs `preview` (saving its update plan), `check_preview` against the
part of trainctl's plan this pass carries out, then `up --plan` constrained by that
saved plan, so `up` can do nothing the checked preview did not show. The executor calls
`run` under trainctl's apply lock, after the guards (training check, checkpoint sync,
unmount) of every destructive step of the unit. Per-address results come from the
engine events of `up` and go back through `report` (journal, progress).

The data plane (uploads, mounts, syncs, prewarms) is the direct engine's, shared: a
prewarm's temporary instance is never in Pulumi state. An allowed delete of a protected
resource runs as two passes: a prepare pass drops `protect`, then the pass removes it.

Without the `pulumi` CLI the factory raises EngineUnavailable before any change.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from planner.engines.base import StepFailed, Unit
from planner.engines.pulumi import units as grouping
from planner.engines.pulumi.backend import WorkspaceSettings, workspace_settings
from planner.engines.pulumi.preview import (
    PreviewWarning,
    describe_refusals,
    preview_steps,
    review_preview,
)
from planner.engines.pulumi.provider import default_tags, provider_args
from planner.engines.pulumi.recovery import StackTrouble, explain, find_trouble, pending_of
from planner.phases import Step
from planner.plan import Action, Change, Plan, ResourceType

INSTALL_HINT = ("the pulumi engine needs the `pulumi` CLI on PATH and the pulumi-aws "
                "plugin: install it (https://www.pulumi.com/docs/iac/download-install/, "
                "e.g. `curl -fsSL https://get.pulumi.com | sh`, then `pulumi plugin install "
                "resource aws`) and `pip install 'trainctl[pulumi]'`; or apply with "
                "--engine direct")
PROGRAM_MODULES = {"storage": "stacks.storage", "compute": "stacks.compute"}


def unavailable_reason(which: Callable[[str], str | None] = shutil.which) -> str | None:
    """Why the engine cannot run here (None: it can): the CLI, then the Python SDK."""
    if which("pulumi") is None:
        return f"no `pulumi` CLI on PATH; {INSTALL_HINT}"
    try:
        import pulumi.automation  # noqa: F401
        import pulumi_aws  # noqa: F401
    except ImportError as e:
        return f"the pulumi Python packages are missing ({e}); {INSTALL_HINT}"
    return None


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


class PulumiEngine:
    """The registry's `pulumi` engine (planner.engines.ENGINES)."""

    name = "pulumi"

    @classmethod
    def check_available(cls) -> None:
        """EngineUnavailable (what to install, --engine direct) when it cannot run here."""
        from planner.engines import EngineUnavailable

        reason = unavailable_reason()
        if reason is not None:
            raise EngineUnavailable(reason)

    @classmethod
    def from_context(cls, ctx: Any) -> PulumiEngine:
        cls.check_available()
        from planner.engines.direct import DirectEngine

        return cls(ctx, DirectEngine.from_context(ctx))

    def __init__(self, ctx: Any, data_plane: Any, stacks: Any = None):
        self.ctx = ctx
        self.plan: Plan = ctx.plan
        self.data_plane = data_plane
        self.stacks = stacks or AutomationStacks(ctx)
        self._units: dict[str, tuple[Step, ...]] = {}
        self._storage_steps = False
        self._role_live: bool | None = None
        self.warnings: list[PreviewWarning] = []

    # -- the protocol ----------------------------------------------------------------
    def units(self, steps: Sequence[Step], changes: Mapping[str, Change]) -> list[Unit]:
        groups = grouping.group(steps, changes)
        self._units = {key: tuple(s) for key, s in groups.items()}
        self._storage_steps = any(changes[a].type == ResourceType.VOLUME for a, _ in steps)
        return [Unit(key, tuple(s)) for key, s in groups.items()]

    def run(self, unit: Unit, changes: Mapping[str, Change], report: Any) -> None:
        if unit.key not in (*grouping.STACK_UNITS, grouping.STACKS):
            for step in unit.steps:
                self._data_step(step, changes, report)
            return
        dropped = {a for a, _ in self._units.get(unit.key, ())} - {a for a, _ in unit.steps}
        plan = grouping.narrow(self.plan, dropped)
        passes = grouping.passes_of(unit.steps, changes)
        pending = list(unit.steps)
        try:
            for key in (grouping.TEARDOWN, grouping.STORAGE, "data", grouping.BUILD):
                steps = passes.get(key, [])
                if not steps:
                    continue
                if key == "data":
                    for step in steps:
                        self._data_step(step, changes, report)
                        pending.remove(step)
                    continue
                self._stack_pass(key, plan, steps, report)
                for step in steps:
                    pending.remove(step)
        except PassFailed as e:
            for step in pending:
                report(step, StepFailed(str(e)))

    # -- the passes -------------------------------------------------------------------
    def _data_step(self, step: Step, changes: Mapping[str, Change], report: Any) -> None:
        try:
            facts = self.data_plane.apply(changes[step[0]], step[1])
        except StepFailed as e:
            report(step, e)
        else:
            report(step, dict(facts or {}))

    def _inputs(self, plan: Plan) -> Any:
        from planner.engines.pulumi.inputs import InputsError, inputs_for

        try:
            return inputs_for(plan, self.stacks.deployed(), account=self._account(),
                              iam_live=self._iam_live())
        except InputsError as e:
            raise PassFailed(str(e)) from e

    def _account(self) -> str | None:
        account = getattr(self.ctx.aws, "account", None)
        return str(account) if account else None

    def _iam_live(self) -> bool:
        """The project role is there already (made by --engine direct): imported."""
        if self._role_live is None:
            self._role_live = self._read_role()
        return self._role_live

    def _read_role(self) -> bool:
        from planner.engines.direct_iam import project_role_name

        try:
            self.ctx.aws.iam.get_role(RoleName=project_role_name(self.plan.project))
        except Exception as e:
            if "NoSuchEntity" in str(getattr(e, "response", {}) or e):
                return False
            raise PassFailed(f"cannot tell whether the project role exists: {e}") from e
        return True

    def _say(self, message: str) -> None:
        """A preview warning: to `options["say"]` when the caller gives one, else stderr."""
        say = (self.ctx.options or {}).get("say")
        if callable(say):
            say(message)
        else:
            import sys

            print(message, file=sys.stderr)

    def _stack_pass(self, key: str, plan: Plan, steps: list[Step], report: Any) -> None:
        from planner.engines.pulumi.inputs import with_volume_ids

        inputs = self._inputs(plan)
        program = "storage" if key == grouping.STORAGE else "compute"
        prepare = inputs.storage_prepare if program == "storage" else inputs.compute_prepare
        if prepare is not None and not self.stacks.prepared(program):
            # first pass: protect dropped where the plan deletes a protected resource,
            # live resources imported; nothing may be deleted or replaced in it
            self._warn(self.stacks.run_pass(program, self._provided(prepare),
                                            grouping.keep_only(plan)))
            self.stacks.mark_prepared(program)
            inputs = self._inputs(plan)
        if key == grouping.BUILD and not self._storage_steps \
                and not self.stacks.prepared("storage-ensured"):
            # no storage step in this apply: the project role an instance needs comes
            # from the storage stack all the same (creates only)
            missing = set(inputs.storage.addresses()) - set(self.stacks.deployed().addresses)
            if missing:
                self._warn(self.stacks.run_pass("storage", self._provided(inputs.storage),
                                                grouping.keep_only(plan)))
            self.stacks.mark_prepared("storage-ensured")
        final = {grouping.TEARDOWN: inputs.compute_teardown, grouping.STORAGE: inputs.storage,
                 grouping.BUILD: inputs.compute}[key]
        if key == grouping.BUILD:
            final = with_volume_ids(final, self.stacks.volume_ids())
        log = self.stacks.run_pass(program, self._provided(final),
                                   grouping.scope(plan, steps), tolerate_failure=True)
        self._warn(log)
        ids = self.stacks.ids(program)
        for step in steps:
            report(step, step_outcome(step, log, ids))
        if log.error is not None:
            raise PassFailed(f"the {key} pass failed: {log.error}")

    def _warn(self, log: PassLog) -> None:
        for w in log.warnings:
            self.warnings.append(w)
            self._say(f"warning: {w.message}")

    def _provided(self, stack_inputs: Any) -> Any:
        """The inputs with this apply's provider (the emulator's endpoints when set)."""
        spec_tags = dict(getattr(getattr(self.ctx.spec, "defaults", None), "tags", {}) or {})
        endpoint = self.ctx.endpoint_url
        from planner.aws.session import is_loopback

        args = provider_args(self.plan.region, default_tags(self.plan.project, spec_tags),
                             endpoint, emulator=bool(endpoint) and is_loopback(endpoint))
        return stack_inputs.with_provider(args)


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

    def _run_pass(self, program: str, stack_inputs: Any, checked: Plan, *,
                  tolerate_failure: bool) -> PassLog:
        settings = self.settings(program)
        trouble = find_trouble(settings)
        if trouble.found:
            raise PassFailed(explain(trouble, settings.backend_url))
        pending = pending_of(self.deployment(program))     # any backend, S3 included
        if pending:
            raise PassFailed(explain(StackTrouble(settings.qualified_stack, (),
                                                  tuple(pending)), settings.backend_url))
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
