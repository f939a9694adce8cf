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

import shutil
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from planner.engines.base import StepFailed, Unit
from planner.engines.pulumi import units as grouping
from planner.engines.pulumi.automation import (
    PROGRAM_MODULES,
    AutomationStacks,
    PassFailed,
    PassLog,
    step_outcome,
)
from planner.engines.pulumi.preview import PreviewWarning
from planner.engines.pulumi.provider import default_tags, provider_args
from planner.errors import TrainctlError
from planner.phases import Step
from planner.plan import Change, Plan, ResourceType

INSTALL_HINT = ("the pulumi engine needs the `pulumi` CLI on PATH and the pulumi-aws "
                "plugin: install it (https://www.pulumi.com/docs/iac/download-install/, "
                "e.g. `curl -fsSL https://get.pulumi.com | sh`, then `pulumi plugin install "
                "resource aws`) and `pip install 'trainctl[pulumi]'`; or apply with "
                "--engine direct")


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


class PulumiRefused(TrainctlError):
    """The Pulumi engine will not start this apply (before any change)."""


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

        engine = cls(ctx, DirectEngine.from_context(ctx))
        engine.preflight()
        return engine

    def preflight(self) -> None:
        """Before any change (the data plane's unmounts included): a stack left locked or
        with pending operations, or a plan the stacks cannot be declared from, refuses
        the apply (PulumiRefused, exit 1)."""
        for program in PROGRAM_MODULES:
            problem = self.stacks.trouble(program)
            if problem:
                raise PulumiRefused(problem)
        try:
            self._inputs(self.plan)
        except PassFailed as e:
            raise PulumiRefused(f"{e}; nothing was changed") from None

    def __init__(self, ctx: Any, data_plane: Any, stacks: Any = None):
        self.ctx = ctx
        self.plan: Plan = ctx.plan
        self.data_plane = data_plane
        self.stacks = stacks or AutomationStacks(ctx)
        self._units: dict[str, tuple[Step, ...]] = {}
        self._storage_steps = False
        self._role_live: bool | None = None
        self._done: set[Step] = set()                 # steps reported done
        self._done_lock = threading.Lock()
        self.warnings: list[PreviewWarning] = []

    # -- the protocol ----------------------------------------------------------------
    def units(self, steps: Sequence[Step], changes: Mapping[str, Change]) -> list[Unit]:
        groups = grouping.group(steps, changes)
        self._units = {key: tuple(s) for key, s in groups.items()}
        self._storage_steps = any(changes[a].type == ResourceType.VOLUME for a, _ in steps)
        return [Unit(key, tuple(s)) for key, s in groups.items()]

    def run(self, unit: Unit, changes: Mapping[str, Change], outer: Any) -> None:
        def report(step: Step, outcome: Any) -> None:
            if not isinstance(outcome, StepFailed):
                with self._done_lock:
                    self._done.add(step)
            outer(step, outcome)

        if unit.key not in (*grouping.STACK_UNITS, grouping.STACKS):
            for step in unit.steps:
                self._data_step(step, changes, report)
            return
        plan = grouping.narrow(self.plan, self._not_run(unit, changes))
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

    def _not_run(self, unit: Unit, changes: Mapping[str, Change]) -> set[str]:
        """The changes a pass must declare as they are now: steps of this unit the
        executor did not hand over (skipped, blocked, refused by a guard), and, for the
        build, compute changes whose teardown step (an earlier unit) is not done."""
        mine = {a for a, _ in unit.steps}
        out = {a for a, _ in self._units.get(unit.key, ())} - mine
        if any(grouping.stack_unit(changes[a], act) == grouping.BUILD for a, act in unit.steps):
            with self._done_lock:
                done = set(self._done)
            out |= {a for steps in self._units.values() for a, act in steps
                    if grouping.stack_unit(changes[a], act) == grouping.TEARDOWN
                    and (a, act) not in done and (a, act) not in unit.steps}
        return out

    # -- the passes -------------------------------------------------------------------
    def _data_step(self, step: Step, changes: Mapping[str, Change], report: Any) -> None:
        try:
            facts = self.data_plane.apply(changes[step[0]], step[1])
        except StepFailed as e:
            report(step, e)
        else:
            report(step, dict(facts or {}))

    def _inputs(self, plan: Plan) -> Any:
        """Both stacks' inputs; what no stack holds yet (made by --engine direct) is
        imported as the live state the plan was diffed against shows it (`ctx.live`)."""
        from planner.engines.pulumi.inputs import InputsError, inputs_for

        try:
            return inputs_for(plan, self.stacks.deployed(), account=self._account(),
                              iam_live=self._iam_live(),
                              live=getattr(self.ctx, "live", None))
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
        from planner.iamnames import project_role_name

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


