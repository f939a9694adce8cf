"""The Pulumi engine up to the CLI boundary: the no-CLI refusal (exit 1 before any
change), the registry, the units a plan's steps are grouped into, and a stack pass's
preview -> check -> up sequence on the Automation API's Stack object (replaying event
logs in the SDK's JSON form; the CLI itself is never imitated: tests/test_pulumi_cli.py
runs it where it is installed)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli

from planner.engines import ENGINES, EngineContext, EngineUnavailable, build_engine
from planner.engines.pulumi import units as grouping
from planner.engines.pulumi.engine import PulumiEngine, unavailable_reason
from planner.phases import phase_graph, step_order
from planner.plan import Action
from tests.pulumi_fixtures import VOL_A, change, plan_of

NO_PULUMI_PATH = os.path.dirname(sys.executable) + os.pathsep + "/usr/bin:/bin"
SPEC = """\
version: 1
project: pitest
region: us-east-1
defaults:
  availability_zone: us-east-1a
  min_age_minutes: 0
volumes:
  data: {size_gib: 10}
instances:
  trainer:
    instance_type: t3.micro
    ami: ami-0123456789abcdef0
    mounts:
      - {volume: data, device: /dev/sdf, path: /data}
"""
WRITES = ("Create", "Run", "Attach", "Detach", "Delete", "Terminate", "Put", "Modify",
          "Add", "Tag", "Start", "Stop", "Send", "Upload", "Copy")


# --- without the CLI ------------------------------------------------------------------

def test_the_registry_names_the_pulumi_engine_lazily():
    assert ENGINES["pulumi"] == "planner.engines.pulumi.engine:PulumiEngine"
    r = run_cli("--help")
    assert r.returncode == 0
    code = ("import sys, planner.engines, planner.engines.pulumi, planner.cli; "
            "print(any(m == 'pulumi' or m.startswith('pulumi.') for m in sys.modules))")
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ})
    assert out.stdout.strip() == "False", out.stderr


def test_unavailable_without_the_cli_names_the_install_and_direct():
    reason = unavailable_reason(lambda _name: None)
    assert reason is not None
    assert "no `pulumi` CLI on PATH" in reason
    assert "https://www.pulumi.com/docs/iac/download-install/" in reason
    assert "--engine direct" in reason


def test_available_with_a_cli_on_path_and_the_sdk():
    pytest.importorskip("pulumi")
    assert unavailable_reason(lambda _name: "/opt/pulumi/bin/pulumi") is None


def test_the_factory_raises_engine_unavailable_before_touching_anything(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")

    class Untouchable:
        def __getattr__(self, name: str) -> Any:
            raise AssertionError(f"the factory used {name} before the CLI check")

    ctx = EngineContext(spec=Untouchable(), aws=Untouchable(), ssm=Untouchable(),
                        plan=Untouchable(), overrides=Untouchable())
    with pytest.raises(EngineUnavailable) as e:
        build_engine("pulumi", ctx)
    assert "--engine direct" in str(e.value)


def _apply_without_cli(tmp_path: Path, endpoint: str, *args: str):
    d = tmp_path / "proj"
    d.mkdir(exist_ok=True)
    (d / "trainctl.yaml").write_text(SPEC)
    record = tmp_path / "calls.txt"
    r = run_cli("--endpoint-url", endpoint, *args, cwd=d, input="",
                env={"PATH": NO_PULUMI_PATH, "TRAINCTL_RECORD_AWS_CALLS": str(record)})
    calls = record.read_text().split() if record.exists() else []
    return r, calls, d


def _live(endpoint: str) -> tuple[int, int]:
    from planner.aws.session import connect

    ec2 = connect("us-east-1", endpoint).ec2
    vols = ec2.describe_volumes()["Volumes"]
    insts = [i for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]]
    return len(vols), len(insts)


@pytest.mark.slow
def test_apply_engine_pulumi_without_the_cli_exits_1_before_any_change(tmp_path,
                                                                        moto_endpoint):
    before = _live(moto_endpoint)
    r, calls, d = _apply_without_cli(tmp_path, moto_endpoint, "apply", "--auto-approve",
                                     "--engine", "pulumi")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    assert "pulumi" in r.stderr and "--engine direct" in r.stderr
    assert "download-install" in r.stderr
    assert [c for c in calls if c.split(":")[-1].startswith(WRITES)] == []
    assert _live(moto_endpoint) == before
    assert not (d / ".trainctl" / "pulumi").exists()


@pytest.mark.slow
def test_apply_of_a_saved_plan_with_engine_pulumi_without_the_cli_changes_nothing(
        tmp_path, moto_endpoint):
    d = tmp_path / "proj"
    d.mkdir()
    (d / "trainctl.yaml").write_text(SPEC)
    r = run_cli("--endpoint-url", moto_endpoint, "plan", "-o", "plan.json", cwd=d)
    assert r.returncode == 0, r.stderr
    before = _live(moto_endpoint)
    r, calls, _ = _apply_without_cli(tmp_path, moto_endpoint, "apply", "plan.json",
                                     "--auto-approve", "--engine", "pulumi")
    assert r.returncode == 1 and "--engine direct" in r.stderr, r.stderr
    assert [c for c in calls if c.split(":")[-1].startswith(WRITES)] == []
    assert _live(moto_endpoint) == before


# --- units ----------------------------------------------------------------------------

def _steps(plan):
    changes = {c.address: c for c in plan.changes}
    return step_order(phase_graph(plan.changes)), changes


INST = {"ami": "ami-0123456789abcdef0", "instance_type": "t3.micro",
        "availability_zone": "us-east-1a"}


def ordered_plan():
    """A teardown (detach old), the storage pass (delete old, create data), a prewarm,
    the build (attach data), mounts around them: each stack pass its own unit."""
    return plan_of(
        change("instance.trainer", ["no-op"], "no_change", id="i-1", before=INST,
               after=INST),
        change("mount.trainer.old", ["delete"], "delete_because_not_in_spec",
               before={"path": "/old"}, depends_on=("attachment.trainer.old",)),
        change("attachment.trainer.old", ["delete"], "delete_because_not_in_spec",
               before={"device": "/dev/sdg"},
               depends_on=("instance.trainer", "volume.old")),
        change("volume.old", ["delete"], "delete_because_not_in_spec", id="vol-1",
               before=VOL_A),
        change("volume.data", ["create"], "create_because_missing", after=VOL_A),
        change("prewarm.data", ["create"], "prewarm_because_dataset_changed",
               after={"dataset": "d"}, depends_on=("volume.data",)),
        change("attachment.trainer.data", ["create"], "attach_because_not_attached",
               after={"device": "/dev/sdf"},
               depends_on=("instance.trainer", "volume.data", "prewarm.data")),
        change("mount.trainer.data", ["create"], "mount_because_not_mounted",
               after={"path": "/data"}, depends_on=("attachment.trainer.data",)),
    )


def test_units_one_per_stack_pass_and_one_per_data_plane_step():
    steps, changes = _steps(ordered_plan())
    units = PulumiEngine(_ctx(ordered_plan()), data_plane=None, stacks=object()).units(
        steps, changes)
    by_key = {u.key: set(u.steps) for u in units}
    assert by_key[grouping.TEARDOWN] == {("attachment.trainer.old", Action.DELETE)}
    assert by_key[grouping.STORAGE] == {("volume.old", Action.DELETE),
                                        ("volume.data", Action.CREATE)}
    assert by_key[grouping.BUILD] == {("attachment.trainer.data", Action.CREATE)}
    assert by_key["create prewarm.data"] == {("prewarm.data", Action.CREATE)}
    assert by_key["delete mount.trainer.old"] == {("mount.trainer.old", Action.DELETE)}
    assert by_key["create mount.trainer.data"] == {("mount.trainer.data", Action.CREATE)}
    # a partition of the steps
    assert sorted(s for u in units for s in u.steps) == sorted(steps)
    # and the executor accepts it: the contracted graph orders the passes
    from planner.executor import unit_graph

    g = unit_graph(phase_graph(ordered_plan().changes), units)
    import networkx as nx

    order = list(nx.topological_sort(g))
    assert order.index("delete mount.trainer.old") < order.index(grouping.TEARDOWN) \
        < order.index(grouping.STORAGE) < order.index("create prewarm.data") \
        < order.index(grouping.BUILD) < order.index("create mount.trainer.data")


def test_a_create_before_delete_instance_replace_merges_the_stack_passes():
    plan = plan_of(
        change("instance.trainer", ["create", "delete"], "replace_because_cannot_update",
               id="i-1", before=INST, after={**INST, "ami": "ami-0fedcba9876543210"},
               replace_paths=("ami",)),
        change("attachment.trainer.data", ["delete", "create"],
               "replace_because_dependency_replaced", before={"device": "/dev/sdf"},
               after={"device": "/dev/sdf"}, depends_on=("instance.trainer", "volume.data")),
        change("volume.data", ["no-op"], "no_change", id="vol-1", before=VOL_A, after=VOL_A),
    )
    steps, changes = _steps(plan)
    groups = grouping.group(steps, changes)
    assert set(groups) == {grouping.STACKS}
    from planner.engines.base import Unit
    from planner.executor import unit_graph

    unit_graph(phase_graph(plan.changes), [Unit(k, tuple(v)) for k, v in groups.items()])


def test_an_unordered_build_and_storage_pass_are_merged():
    # a new instance and an unrelated new volume: nothing orders the storage pass (the
    # project role) before the build, so they run as one unit in that order
    plan = plan_of(
        change("instance.trainer", ["create"], "create_because_missing", after=INST),
        change("volume.spare", ["create"], "create_because_missing", after=VOL_A))
    steps, changes = _steps(plan)
    assert set(grouping.group(steps, changes)) == {grouping.STACKS}
    passes = grouping.passes_of(steps, changes)
    assert set(passes) == {grouping.STORAGE, grouping.BUILD}


def test_scope_keeps_only_what_a_pass_carries_out():
    plan = ordered_plan()
    scoped = grouping.scope(plan, [("volume.old", Action.DELETE)])
    assert [c.address for c in scoped.changes] == ["volume.old"]
    assert [c.address for c in grouping.keep_only(plan).changes if c.deletes] == []


def test_narrow_marks_what_the_executor_did_not_hand_over_as_blocked():
    plan = ordered_plan()
    narrowed = grouping.narrow(plan, {"volume.old"})
    assert narrowed.change("volume.old").blocked
    assert grouping.NOT_RUN in narrowed.change("volume.old").blocked_by[-1].message
    assert not narrowed.change("volume.data").blocked


# --- a stack pass on the Automation API's Stack ------------------------------------------

def _ctx(plan, **kw):
    return EngineContext(spec=None, aws=None, ssm=None, plan=plan, overrides=None, **kw)


class ReplayStack:
    """`pulumi.automation.Stack`'s preview/up/outputs, replaying event logs given as the
    CLI writes them (SDK JSON form). Records the calls."""

    def __init__(self, preview_log, up_log, deployment=None):
        self.preview_log, self.up_log = preview_log, up_log
        self.deployment = deployment or {"resources": []}
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def export_stack(self):
        from pulumi.automation import Deployment

        return Deployment(version=3, deployment=self.deployment)

    def preview(self, **kw):
        from pulumi.automation import EngineEvent

        self.calls.append(("preview", kw))
        Path(kw["plan"]).write_text(json.dumps({"resourcePlans": {}}))
        for doc in self.preview_log:
            kw["on_event"](EngineEvent.from_json(doc))

    def up(self, **kw):
        from pulumi.automation import EngineEvent

        self.calls.append(("up", kw))
        assert os.path.exists(kw["plan"])          # the preview's saved update plan
        for doc in self.up_log:
            kw["on_event"](EngineEvent.from_json(doc))
        if any("resOpFailedEvent" in d for d in self.up_log):
            raise RuntimeError("update failed")



def _stacks(tmp_path, stack):
    pytest.importorskip("pulumi")
    from planner.engines.pulumi.engine import AutomationStacks

    plan = ordered_plan()

    class Stacks(AutomationStacks):
        def stack(self, program, stack_inputs=None):
            return stack

    return Stacks(_ctx(plan, state_dir=str(tmp_path))), plan


def test_a_refused_preview_never_reaches_up(tmp_path):
    from planner.engines.pulumi.engine import PassFailed
    from tests.pulumi_fixtures import step, summary

    stack = ReplayStack([step("delete", "volume.data"), summary(delete=1)], [])
    stacks, plan = _stacks(tmp_path, stack)
    with pytest.raises(PassFailed) as e:
        stacks.run_pass("storage", None, grouping.scope(plan, [("volume.old", Action.DELETE)]))
    assert "volume.data" in str(e.value) and "nothing was changed" in str(e.value)
    assert [c for c, _ in stack.calls] == ["preview"]


def test_up_runs_on_the_previews_saved_plan_and_reports_per_address(tmp_path):
    from tests.pulumi_fixtures import step, summary

    stack = ReplayStack(
        [step("delete", "volume.old"), step("create", "volume.data"),
         summary(delete=1, create=1)],
        [step("delete", "volume.old", kind="resOutputsEvent"),
         step("create", "volume.data", kind="resOutputsEvent")])
    stacks, plan = _stacks(tmp_path, stack)
    steps = [("volume.old", Action.DELETE), ("volume.data", Action.CREATE)]
    log = stacks.run_pass("storage", None, grouping.scope(plan, steps))
    (_, preview), (_, up) = stack.calls
    assert up["plan"] == preview["plan"]
    assert log.done == {"volume.old", "volume.data"} and log.error is None


def test_a_failed_resource_in_up_is_named_with_its_diagnostic(tmp_path):
    from tests.pulumi_fixtures import step, summary

    failed = step("create", "volume.data", kind="resOpFailedEvent")
    failed["resOpFailedEvent"] |= {"status": 1, "steps": 1}
    diag = {"sequence": 7, "timestamp": 1, "diagnosticEvent": {
        "message": "creating EBS Volume: InsufficientVolumeCapacity\n", "color": "never",
        "severity": "error", "urn": failed["resOpFailedEvent"]["metadata"]["urn"]}}
    stack = ReplayStack([step("create", "volume.data"), summary(create=1)], [diag, failed])
    stacks, plan = _stacks(tmp_path, stack)
    log = stacks.run_pass("storage", None,
                          grouping.scope(plan, [("volume.data", Action.CREATE)]),
                          tolerate_failure=True)
    assert log.failed == {"volume.data": "creating EBS Volume: InsufficientVolumeCapacity"}
    assert log.error


def test_a_locked_stack_is_explained_before_any_preview(tmp_path):
    from planner.engines.pulumi.engine import PassFailed
    from tests.test_pulumi_recovery import dead_pid, lay_lock

    stack = ReplayStack([], [])
    stacks, plan = _stacks(tmp_path, stack)
    lay_lock(tmp_path / "pulumi", "trainctl-storage", plan.project, dead_pid())
    with pytest.raises(PassFailed) as e:
        stacks.run_pass("storage", None, plan)
    assert "is locked" in str(e.value) and "pulumi cancel" in str(e.value)
    assert stack.calls == []


CASES = Path(__file__).parent / "cases"
CASE_PLANS = sorted(p.parent.name for p in CASES.glob("*/plan.json"))


@pytest.mark.parametrize("case", CASE_PLANS)
def test_units_of_every_case_are_a_partition_the_executor_accepts(case):
    """Every plan the cases hold: the stack units and the data plane's steps cover each
    step once, stack steps only in stack units, and the contracted graph has no cycle
    with the build after the teardown and the storage pass."""
    from planner.engines.base import Unit
    from planner.executor import unit_graph
    from planner.plan import plan_from_json

    plan = plan_from_json(json.loads((CASES / case / "plan.json").read_text()))
    steps, changes = _steps(plan)
    groups = grouping.group(steps, changes)
    units = [Unit(k, tuple(v)) for k, v in groups.items()]
    assert sorted(s for u in units for s in u.steps) == sorted(steps)
    g = unit_graph(phase_graph(plan.changes), units)
    import networkx as nx

    for key, unit_steps in groups.items():
        stack_steps = [s for s in unit_steps if grouping.stack_unit(changes[s[0]], s[1])]
        if key in (*grouping.STACK_UNITS, grouping.STACKS):
            continue
        assert stack_steps == [], (key, stack_steps)
    for a, b in grouping.REQUIRED_ORDER:
        if a in groups and b in groups:
            assert nx.has_path(g, a, b)


class RecordingStacks:
    """What the engine asks of the stacks, recorded; each pass answers from `fail`."""

    def __init__(self, fail: str | None = None):
        from planner.engines.pulumi.schema import Deployed

        self.passes: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = []
        self.fail = fail
        self._deployed = Deployed()
        self._prepared: set[str] = set()
        self.troubles: dict[str, str] = {}
        self.inputs: list[Any] = []

    def deployed(self):
        return self._deployed

    def trouble(self, program):
        return self.troubles.get(program, "")

    def prepared(self, program):
        return program in self._prepared

    def mark_prepared(self, program):
        self._prepared.add(program)

    def ids(self, program):
        return {}

    def volume_ids(self):
        return {"volume.scratch": "vol-0123"}

    def run_pass(self, program, stack_inputs, checked, tolerate_failure=False):
        from planner.engines.pulumi.engine import PassFailed, PassLog

        self.passes.append((program, stack_inputs.addresses(),
                            tuple(c.address for c in checked.changes)))
        self.inputs.append(stack_inputs)
        if self.fail == program:
            raise PassFailed(f"the {program} preview was refused")
        log = PassLog()
        log.done = set(stack_inputs.addresses())
        ops = {"create": "create", "update": "update", "delete": "delete",
               "replace": "replace", "no-op": "same"}
        log.planned_ops = {c.address: {ops[c.kind]} for c in checked.changes}
        return log


class RecordingDataPlane:
    def __init__(self):
        self.calls: list[tuple[str, Action]] = []

    def apply(self, change, action):
        self.calls.append((change.address, action))
        return {"done": "yes"}


def _engine_on_case(case: str, stacks, account="123456789012"):
    from types import SimpleNamespace

    from planner.plan import plan_from_json

    plan = plan_from_json(json.loads((CASES / case / "plan.json").read_text()))
    ctx = _ctx(plan)
    ctx = EngineContext(spec=None, aws=SimpleNamespace(account=account, iam=None),
                        ssm=None, plan=plan, overrides=None)
    engine = PulumiEngine(ctx, data_plane=RecordingDataPlane(), stacks=stacks)
    engine._iam_live = lambda: False          # type: ignore[method-assign]
    return engine, plan


def _run_all(engine, plan):
    import networkx as nx

    from planner.executor import unit_graph

    steps, changes = _steps(plan)
    g = unit_graph(phase_graph(plan.changes), engine.units(steps, changes))
    reports: dict[Any, Any] = {}
    for key in nx.topological_sort(g):          # as the executor orders them
        engine.run(g.nodes[key]["unit"], changes, lambda s, o: reports.setdefault(s, o))
    return reports


def test_run_goes_storage_then_build_and_reports_every_step():
    stacks = RecordingStacks()
    engine, plan = _engine_on_case("create-from-nothing", stacks)
    reports = _run_all(engine, plan)
    assert [p[0] for p in stacks.passes] == ["storage", "compute"]
    storage, compute = stacks.passes
    assert storage[2] == ("volume.scratch",)          # the storage pass may only do this
    assert set(compute[2]) == {"instance.trainer", "attachment.trainer.scratch"}
    assert "volume.scratch" in storage[1]
    assert {"instance.trainer", "attachment.trainer.scratch"} <= set(compute[1])
    assert engine.data_plane.calls == [("mount.trainer.scratch", Action.CREATE)]
    from planner.engines.base import StepFailed

    assert not any(isinstance(o, StepFailed) for o in reports.values())
    assert set(reports) == set(_steps(plan)[0])


def test_a_refused_storage_pass_fails_its_steps_and_the_build_never_runs():
    from planner.engines.base import StepFailed

    stacks = RecordingStacks(fail="storage")
    engine, plan = _engine_on_case("create-from-nothing", stacks)
    steps, changes = _steps(plan)
    units = {u.key: u for u in engine.units(steps, changes)}
    reports: dict[Any, Any] = {}
    first = units.get(grouping.STORAGE) or units[grouping.STACKS]
    engine.run(first, changes, lambda s, o: reports.setdefault(s, o))
    assert [p[0] for p in stacks.passes] == ["storage"]
    assert reports and all(isinstance(o, StepFailed) for o in reports.values())
    assert "refused" in str(next(iter(reports.values())))


def test_a_step_the_preview_does_not_carry_out_is_never_reported_done():
    from planner.engines.base import StepFailed
    from planner.engines.pulumi.engine import PassLog, step_outcome

    log = PassLog()
    log.planned_ops = {"volume.old": {"same"}, "volume.data": {"create"},
                       "volume.grown": {"update"}, "volume.swap": {"replace"}}
    out = step_outcome(("volume.old", Action.DELETE), log, {})
    assert isinstance(out, StepFailed)
    assert "does not delete volume.old (it shows same)" in str(out)
    missing = step_outcome(("volume.gone", Action.DELETE), log, {})
    assert isinstance(missing, StepFailed) and "shows nothing" in str(missing)
    assert step_outcome(("volume.data", Action.CREATE), log, {"volume.data": "vol-9"}) == \
        {"id": "vol-9"}
    assert step_outcome(("volume.grown", Action.UPDATE), log, {}) == {}
    assert step_outcome(("volume.swap", Action.DELETE), log, {}) == {}
    assert step_outcome(("volume.swap", Action.CREATE), log, {}) == {}
    assert isinstance(step_outcome(("volume.grown", Action.DELETE), log, {}), StepFailed)


def test_after_a_failed_up_only_what_its_events_show_done_is_done():
    from planner.engines.base import StepFailed
    from planner.engines.pulumi.engine import PassLog, step_outcome

    log = PassLog()
    log.planned_ops = {"volume.a": {"create"}, "volume.b": {"create"}, "volume.c": {"create"}}
    log.done, log.failed, log.error = {"volume.a"}, {"volume.b": "quota"}, "update failed"
    assert step_outcome(("volume.a", Action.CREATE), log, {}) == {}
    assert "quota" in str(step_outcome(("volume.b", Action.CREATE), log, {}))
    unknown = step_outcome(("volume.c", Action.CREATE), log, {})
    assert isinstance(unknown, StepFailed) and "outcome is unknown" in str(unknown)


def test_pending_operations_in_the_stacks_export_stop_the_pass_before_preview(tmp_path):
    from planner.engines.pulumi.engine import PassFailed

    urn = "urn:pulumi:llm-finetune::trainctl-storage::aws:ebs/volume:Volume::volume.data"
    stack = ReplayStack([], [], deployment={"resources": [], "pending_operations": [
        {"resource": {"urn": urn, "type": "aws:ebs/volume:Volume"}, "type": "creating"}]})
    stacks, plan = _stacks(tmp_path, stack)
    with pytest.raises(PassFailed) as e:
        stacks.run_pass("storage", None, plan)
    assert "has 1 pending operation from" in str(e.value) and "creating volume.data" in str(e.value)
    assert stack.calls == []


def test_ids_come_from_the_stacks_state():
    pytest.importorskip("pulumi")
    from planner.engines.pulumi.engine import AutomationStacks

    urn = "urn:pulumi:p::trainctl-storage::aws:ebs/volume:Volume::volume.data"
    stack = ReplayStack([], [], deployment={"resources": [
        {"urn": urn, "type": "aws:ebs/volume:Volume", "id": "vol-0abc",
         "inputs": {"availabilityZone": "us-east-1a", "size": 10}}]})

    class Stacks(AutomationStacks):
        def stack(self, program, stack_inputs=None):
            return stack

    stacks = Stacks(_ctx(ordered_plan(), state_dir="/nonexistent"))
    assert stacks.ids("storage") == {"volume.data": "vol-0abc"}
    assert stacks.volume_ids() == {"volume.data": "vol-0abc"}
    assert "volume.data" in stacks.deployed().addresses


def test_a_duplicates_delete_is_the_direct_engines_not_a_stack_pass():
    plan = plan_of(
        change("volume.data", ["no-op"], "no_change", id="vol-1", before=VOL_A, after=VOL_A),
        change("volume.data@vol-2", ["delete"], "delete_because_duplicate", id="vol-2",
               before=VOL_A))
    steps, changes = _steps(plan)
    groups = grouping.group(steps, changes)
    assert groups == {"delete volume.data@vol-2": [("volume.data@vol-2", Action.DELETE)]}
    engine = PulumiEngine(_ctx(plan), data_plane=RecordingDataPlane(), stacks=None)
    [unit] = engine.units(steps, changes)
    reports: dict[Any, Any] = {}
    engine.run(unit, changes, lambda s, o: reports.setdefault(s, o))
    assert engine.data_plane.calls == [("volume.data@vol-2", Action.DELETE)]
    assert reports == {("volume.data@vol-2", Action.DELETE): {"done": "yes"}}


@pytest.mark.parametrize("case", ["create-from-nothing", "destroy-deletes-managed-resources",
                                  "temporary-prewarm-instance-cleanup",
                                  "replace-attachment-device"])
def test_the_executor_runs_the_engines_units_to_the_end(case):
    """The executor takes the engine's units and reports (the stacks recorded, the data
    plane recorded): every carried step done, each stack pass once, in order."""
    from planner.executor import execute

    stacks = RecordingStacks()
    engine, plan = _engine_on_case(case, stacks)
    engine.preflight()
    result = execute(plan, engine, parallelism=4)
    assert result.ok, [(s.label, s.status, s.message) for s in result.steps]
    carried = [c for c in plan.changes if not c.is_noop and not c.blocked]
    assert {s.address for s in result.steps if s.status == "done"} >= \
        {c.address for c in carried}
    programs = [p[0] for p in stacks.passes]
    if "storage" in programs and "compute" in programs:
        deletes = any(c.deletes and c.type.value in ("instance", "attachment")
                      for c in carried)
        builds = any(not c.deletes or len(c.actions) == 2 for c in carried
                     if c.type.value in ("instance", "attachment"))
        if builds:
            assert programs[-1] == "compute"
        if deletes and builds:
            assert programs[0] == "compute"


def test_a_plan_the_stacks_cannot_be_declared_from_is_refused_before_any_change():
    """Live resources outside the stacks that the plan replaces without their live
    inputs: refused by the factory's preflight, before the data plane unmounts anything."""
    from planner.engines.pulumi.engine import PulumiRefused

    stacks = RecordingStacks()
    engine, _plan = _engine_on_case("replace-volume-and-instance-together", stacks)
    with pytest.raises(PulumiRefused) as e:
        engine.preflight()
    assert "nothing was changed" in str(e.value) and "--engine direct" in str(e.value)
    assert stacks.passes == [] and engine.data_plane.calls == []


def test_a_stack_left_locked_refuses_the_apply_before_any_change():
    from planner.engines.pulumi.engine import PulumiRefused

    stacks = RecordingStacks()
    stacks.troubles["compute"] = "the Pulumi stack organization/trainctl-compute/x is locked"
    engine, _plan = _engine_on_case("create-from-nothing", stacks)
    with pytest.raises(PulumiRefused) as e:
        engine.preflight()
    assert "is locked" in str(e.value)
    assert stacks.passes == [] and engine.data_plane.calls == []


def test_a_teardown_not_done_keeps_its_resource_declared_in_the_build():
    """An attachment replaced delete-then-create whose detach did not run: the build pass
    declares it as it is now (no second delete, no replacement over it); once the
    teardown is done, the build declares what the plan makes."""
    stacks = RecordingStacks()
    engine, plan = _engine_on_case("replace-attachment-device", stacks)
    steps, changes = _steps(plan)
    units = {u.key: u for u in engine.units(steps, changes)}
    build = units[grouping.BUILD]
    assert engine._not_run(build, changes) == {"attachment.trainer.scratch"}
    engine.run(units[grouping.TEARDOWN], changes, lambda s, o: None)
    assert engine._not_run(build, changes) == set()
    engine.run(build, changes, lambda s, o: None)
    assert [p[0] for p in stacks.passes][-1] == "compute"
    assert "attachment.trainer.scratch" in stacks.passes[-1][1]


def test_an_allowed_delete_of_a_protected_volume_runs_as_two_passes():
    """--allow-delete of a persistent volume the storage stack holds protected: a first
    pass drops protect (checked: nothing may be deleted in it), then the pass deletes."""
    from types import MappingProxyType

    from planner.engines.pulumi.schema import Deployed

    stacks = RecordingStacks()
    engine, plan = _engine_on_case("persistent-orphan-allow-delete", stacks)
    tags = {"trainctl:persistent": "true", "trainctl:project": plan.project,
            "trainctl:address": "volume.old-cache", "Name": f"{plan.project}/old-cache"}
    stacks._deployed = Deployed(
        frozenset({"volume.old-cache"}),
        MappingProxyType({"volume.old-cache": MappingProxyType(
            {"availability_zone": "us-east-1a", "size_gib": 100, "type": "gp3",
             "tags": tags})}),
        MappingProxyType({"volume.old-cache": "vol-old"}))
    _run_all(engine, plan)
    assert [p[0] for p in stacks.passes] == ["storage", "storage"]
    (_, prepared, prepare_scope), (_, final, final_scope) = stacks.passes
    assert "volume.old-cache" in prepared and "volume.old-cache" not in final
    assert "volume.old-cache" not in prepare_scope      # no delete allowed in the first
    assert final_scope == ("volume.old-cache",)
    options = stacks.inputs[0].get("volume.old-cache").options
    assert options.protect is False and options.retain_on_delete is False
