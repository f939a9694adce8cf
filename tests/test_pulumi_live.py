"""Moving a project from `--engine direct` to `--engine pulumi`: the engine declares the
live resources no stack holds yet from the live state the plan was diffed against
(`EngineContext.live`, the apply's fresh read), with `import_` of their live ids, and
the apply workflow hands that very LiveState to the engine."""

from __future__ import annotations

import io
from pathlib import Path
from types import MappingProxyType, SimpleNamespace
from typing import Any

import pytest
from diffworld import AMI, AZ, inst, make_spec, plan_of, scratch_world, vol

import planner.engines
import planner.workflow.planning
from planner.engines import ENGINES, EngineContext
from planner.engines.pulumi.engine import PulumiEngine, PulumiRefused
from planner.engines.pulumi.schema import Deployed
from planner.engines.pulumi.state import live_props
from planner.executor import unit_graph
from planner.options import Options
from planner.phases import phase_graph, step_order
from planner.plan import Plan
from planner.spec import Mount
from planner.workflow import ApplyRequest, PlainConsole, apply_plan

SCRATCH = Mount("scratch", "/dev/sdg", "/scratch")


class StateStacks:
    """The two stacks as Pulumi keeps them: after a pass a stack holds exactly what the
    pass declared (an import keeps its live id, a new resource gets one). Records every
    pass's inputs."""

    def __init__(self) -> None:
        self.held: dict[str, dict[str, tuple[Any, str]]] = {"storage": {}, "compute": {}}
        self.passes: list[tuple[str, Any]] = []
        self._prepared: set[str] = set()

    def deployed(self) -> Deployed:
        everything = {a: v for held in self.held.values() for a, v in held.items()}
        return Deployed(frozenset(everything),
                        MappingProxyType({a: p for a, (p, _) in everything.items()}),
                        MappingProxyType({a: i for a, (_, i) in everything.items()}))

    def trouble(self, program: str) -> str:
        return ""

    def prepared(self, program: str) -> bool:
        return program in self._prepared

    def mark_prepared(self, program: str) -> None:
        self._prepared.add(program)

    def ids(self, program: str) -> dict[str, str]:
        return {a: i for a, (_, i) in self.held[program].items()}

    def volume_ids(self) -> dict[str, str]:
        return {a: i for a, (_, i) in self.held["storage"].items()
                if a.startswith("volume.")}

    def run_pass(self, program: str, stack_inputs: Any, checked: Plan,
                 tolerate_failure: bool = False) -> Any:
        from planner.engines.pulumi.engine import PassLog

        self.passes.append((program, stack_inputs))
        before = self.held[program]
        self.held[program] = {
            r.address: (r.props, r.options.import_id
                        or (before[r.address][1] if r.address in before
                            else f"new-{r.address}"))
            for r in stack_inputs.resources}
        log = PassLog()
        log.done = set(stack_inputs.addresses()) | (set(before) - set(self.held[program]))
        log.planned_ops = {a: {_op(before, r)} for a in log.done
                           for r in [stack_inputs.get(a)]}
        return log


def _op(before: dict[str, tuple[Any, str]], r: Any) -> str:
    """The preview op Pulumi shows for resource R (None: not declared) over BEFORE."""
    if r is None:
        return "delete"
    if r.address not in before:
        return "import" if r.options.import_id else "create"
    return "same" if before[r.address][0] == r.props else "update"


class NoDataPlane:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def apply(self, change: Any, action: Any) -> dict[str, str]:
        self.calls.append((change.address, action))
        return {}


def engine_for(plan: Plan, live: Any, stacks: Any = None) -> PulumiEngine:
    ctx = EngineContext(spec=None, aws=SimpleNamespace(account="123456789012", iam=None),
                        ssm=None, plan=plan, overrides=None, live=live)
    engine = PulumiEngine(ctx, NoDataPlane(), stacks=stacks or StateStacks())
    engine._iam_live = lambda: True           # type: ignore[method-assign]
    return engine


def run_all(engine: PulumiEngine) -> None:
    import networkx as nx

    plan = engine.plan
    graph = phase_graph(plan.changes)
    steps = step_order(graph)
    changes = {c.address: c for c in plan.changes}
    g = unit_graph(graph, engine.units(steps, changes))
    for key in nx.topological_sort(g):
        engine.run(g.nodes[key]["unit"], changes, lambda s, o: None)


def declared(stacks: StateStacks, program: str, address: str, n: int = -1) -> Any:
    """ADDRESS in the Nth pass of PROGRAM that declares it."""
    got = [s.get(address) for p, s in stacks.passes if p == program and s.get(address)]
    assert got, f"{address} never declared in {program}: {stacks.passes}"
    return got[n]


# --- the engine's inputs, from the live state the plan was diffed against ----------------


def test_a_converged_direct_project_is_declared_from_the_live_state_with_imports():
    """The first pulumi apply of a direct project that adds a volume to the trainer:
    every live resource the passes declare is imported with its live id and its live
    props, as they are; only the new ones are created."""
    _spec, state = scratch_world()
    grown = make_spec([vol("scratch", 200), vol("data", 50)],
                      [inst(mounts=(SCRATCH, Mount("data", "/dev/sdh", "/data")))])
    plan = plan_of(grown, state)
    engine = engine_for(plan, state)
    engine.preflight()
    run_all(engine)
    props = live_props(state, plan.project)
    stacks = engine.stacks
    assert isinstance(stacks, StateStacks)
    scratch = declared(stacks, "storage", "volume.scratch")
    assert scratch.options.import_id == "vol-1"
    assert dict(scratch.props) == props["vol-1"]
    assert scratch.props["size_gib"] == 200 and scratch.props["availability_zone"] == AZ
    assert "trainctl:mounted" not in scratch.props["tags"]     # the data plane's
    assert declared(stacks, "storage", "volume.data").options.import_id is None
    trainer = declared(stacks, "compute", "instance.trainer")
    assert trainer.options.import_id == "i-1"
    assert {k: trainer.props[k] for k in props["i-1"]} == props["i-1"]
    assert trainer.props["ami"] == AMI and trainer.props["instance_type"] == "g5.2xlarge"
    attached = declared(stacks, "compute", "attachment.trainer.scratch")
    assert attached.options.import_id == "/dev/sdg:vol-1:i-1"
    assert declared(stacks, "compute", "attachment.trainer.data").options.import_id is None
    # the ids the stacks hold afterwards are the live ones: nothing was recreated
    assert stacks.ids("storage")["volume.scratch"] == "vol-1"
    assert stacks.ids("compute")["instance.trainer"] == "i-1"


def test_without_the_live_state_the_resources_made_by_direct_are_left_undeclared():
    _spec, state = scratch_world()
    grown = make_spec([vol("scratch", 200), vol("data", 50)],
                      [inst(mounts=(SCRATCH, Mount("data", "/dev/sdh", "/data")))])
    engine = engine_for(plan_of(grown, state), None)
    inputs = engine._inputs(engine.plan)
    assert "volume.scratch" in inputs.unmanaged and "instance.trainer" in inputs.unmanaged
    with_live = engine_for(engine.plan, state)._inputs(engine.plan)
    assert with_live.unmanaged == ()


def test_a_changed_resource_made_by_direct_is_imported_first_then_changed():
    """A grown volume and a replaced instance (another type), both made by direct: a
    first pass imports each as it is live, the next one changes it."""
    _spec, state = scratch_world()
    changed = make_spec([vol("scratch", 300)],
                        [inst(mounts=(SCRATCH,), instance_type="g5.4xlarge")])
    plan = plan_of(changed, state)
    with pytest.raises(PulumiRefused):           # the plan alone does not describe them
        engine_for(plan, None).preflight()
    engine = engine_for(plan, state)
    engine.preflight()
    run_all(engine)
    stacks = engine.stacks
    assert isinstance(stacks, StateStacks)
    props = live_props(state, plan.project)
    first = declared(stacks, "storage", "volume.scratch", 0)
    assert first.options.import_id == "vol-1" and dict(first.props) == props["vol-1"]
    last = declared(stacks, "storage", "volume.scratch")
    assert last.options.import_id is None and last.props["size_gib"] == 300
    assert last.props["availability_zone"] == AZ and last.props["type"] == "gp3"
    assert stacks.ids("storage")["volume.scratch"] == "vol-1"      # updated in place
    imported = declared(stacks, "compute", "instance.trainer", 0)
    assert imported.options.import_id == "i-1"
    assert imported.props["instance_type"] == "g5.2xlarge"
    built = declared(stacks, "compute", "instance.trainer")
    assert built.options.import_id is None and built.props["instance_type"] == "g5.4xlarge"
    assert built.props["ami"] == AMI
    assert stacks.ids("compute")["instance.trainer"] == "new-instance.trainer"
    computes = [s.addresses() for p, s in stacks.passes if p == "compute"]
    assert computes == [("instance.trainer", "attachment.trainer.scratch"),   # imported
                        (),                                                  # torn down
                        ("instance.trainer", "attachment.trainer.scratch")]  # built


# --- the apply workflow hands the engine the live state its plan was diffed against -------


SPEC = """\
version: 1
project: pulive
region: us-east-1
defaults:
  availability_zone: us-east-1a
  min_age_minutes: 0
volumes:
  data: {size_gib: SIZE}
  scratch: {size_gib: 20}
"""
BUILT: list[PulumiEngine] = []


def recorded_pulumi(ctx: EngineContext) -> PulumiEngine:
    """The Pulumi engine on StateStacks (no CLI here), the registry's way."""
    engine = PulumiEngine(ctx, NoDataPlane(), stacks=StateStacks())
    engine._iam_live = lambda: False          # type: ignore[method-assign]
    engine.preflight()
    BUILT.append(engine)
    return engine


@pytest.fixture
def project(tmp_path: Path, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
            ) -> tuple[Options, list[Any], list[Any]]:
    """Options for a spec made with --engine direct; the fresh plans' live states and the
    engine contexts the workflow builds, recorded."""
    monkeypatch.setenv("TRAINCTL_LOCK_DIR", str(tmp_path / "locks"))
    monkeypatch.chdir(tmp_path)
    spec = tmp_path / "trainctl.yaml"
    spec.write_text(SPEC.replace("SIZE", "10"))
    opts = Options(file=str(spec), region=None, endpoint_url=moto_endpoint, no_color=True)
    apply_plan(ApplyRequest(opts, auto_approve=True), console())
    spec.write_text(SPEC.replace("SIZE", "15"))
    lives: list[Any] = []
    contexts: list[Any] = []
    make_plan, build_engine = planner.workflow.planning.make_plan, planner.engines.build_engine

    def planning(*args: Any, **kw: Any) -> Any:
        outcome = make_plan(*args, **kw)
        lives.append(outcome.live)
        return outcome

    def building(name: str, ctx: EngineContext) -> Any:
        contexts.append(ctx)
        return build_engine(name, ctx)

    monkeypatch.setattr(planner.workflow.planning, "make_plan", planning)
    monkeypatch.setattr(planner.engines, "build_engine", building)
    monkeypatch.setitem(ENGINES, "pulumi-recorded", f"{__name__}:recorded_pulumi")
    BUILT.clear()
    return opts, lives, contexts


def console() -> PlainConsole:
    return PlainConsole(io.StringIO(), io.StringIO())


def _check_handed_over(lives: list[Any], contexts: list[Any]) -> None:
    assert len(lives) == 1 and len(contexts) == 1
    assert contexts[0].live is lives[0]            # the very state the plan was diffed against
    assert {v.address for v in lives[0].volumes} == {"volume.data", "volume.scratch"}
    engine = BUILT[-1]
    stacks = engine.stacks
    assert isinstance(stacks, StateStacks)
    ids = {v.address: v.id for v in lives[0].volumes}
    first = declared(stacks, "storage", "volume.data", 0)
    assert first.options.import_id == ids["volume.data"] and first.props["size_gib"] == 10
    assert declared(stacks, "storage", "volume.scratch", 0).options.import_id == \
        ids["volume.scratch"]
    last = declared(stacks, "storage", "volume.data")
    assert last.options.import_id is None and last.props["size_gib"] == 15


def test_apply_hands_the_fresh_live_state_to_the_engine(project: Any) -> None:
    opts, lives, contexts = project
    outcome = apply_plan(ApplyRequest(opts, auto_approve=True, engine="pulumi-recorded"),
                         console())
    assert outcome.result is not None
    _check_handed_over(lives, contexts)


def test_apply_of_a_saved_plan_hands_the_fresh_live_state_to_the_engine(
        project: Any) -> None:
    """A saved plan's changes are the fresh plan's: so is the live state handed over,
    read again under the lock, never the one the file was made from."""
    from planner.workflow import make_plan
    from planner.workflow.planning import PlanRequest
    from planner.workflow.saved import save_plan

    opts, lives, contexts = project
    path = save_plan(make_plan(PlanRequest(opts)).plan, str(Path(opts.file).parent / "p"))
    lives.clear()
    outcome = apply_plan(ApplyRequest(opts, planfile=path, engine="pulumi-recorded"),
                         console())
    assert outcome.result is not None
    _check_handed_over(lives, contexts)
