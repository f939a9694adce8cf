"""The diff is an explicit, ordered list of named passes over a frozen context and one
work set (planner.diff.PASSES): the order is stated, every pass is a documented
function, and no pass can change the context."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import subprocess
import sys
from pathlib import Path

import pytest
from diffworld import NOW, lvol, make_spec, scratch_world, vol
from diffworld import live as live_state

import planner.diff as diffpkg
from planner.diff import PASSES, DiffContext, WorkSet, build_context, diff, run_passes
from planner.graph import build_graph
from planner.plan import PlanOptions
from planner.rules import Overrides

EXPECTED_ORDER = (
    "volumes", "instances", "orphan_volumes", "orphan_instances", "temporary_cleanups",
    "duplicate_deletes", "resource_rules",
    "datasets", "attachments", "mounts", "prewarms", "syncs",
    "orphan_attachments_and_mounts", "keep_with_blocked_instances", "resource_rules_again",
    "full_graph", "targets", "resource_rules_for_targets", "block_on_duplicates", "order",
    "cost", "empty_dataset_warnings", "duplicate_warnings", "stage_warnings",
    "deleted_outside_warnings",
    "unknown_live_warnings",
    "digests", "expiries", "data_locations",
)
PACKAGE = Path(diffpkg.__file__).parent


def context_of(spec, state, **options) -> DiffContext:  # type: ignore[no-untyped-def]
    return build_context(spec, build_graph(spec), state, now=NOW,
                         options=PlanOptions(**options), overrides=Overrides(),
                         known_volumes=None, removed_spend_usd=0.0)


def test_passes_are_an_explicit_ordered_tuple_of_named_documented_functions() -> None:
    assert isinstance(PASSES, tuple)
    assert tuple(p.__name__ for p in PASSES) == EXPECTED_ORDER
    assert len(set(PASSES)) == len(PASSES), "a pass runs once"
    for p in PASSES:
        assert inspect.isfunction(p) and p.__name__ != "<lambda>", p
        assert p.__module__.startswith("planner.diff."), p.__module__
        assert list(inspect.signature(p).parameters) == ["ctx", "work"], p.__name__
        doc = inspect.getdoc(p)
        assert doc and doc.splitlines()[0].strip(), f"{p.__name__} has no docstring"


def test_the_context_is_frozen_and_its_indexes_read_only() -> None:
    spec, state = scratch_world()
    ctx = context_of(spec, state)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ctx.spec = make_spec()  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        ctx.volumes = {}  # type: ignore[misc]
    with pytest.raises(TypeError):
        ctx.volumes["volume.other"] = state.volumes[0]  # type: ignore[index]
    with pytest.raises(TypeError):
        ctx.known_volumes["volume.other"] = "vol-9"  # type: ignore[index]
    with pytest.raises(AttributeError):
        ctx.adopting.add("volume.other")  # type: ignore[attr-defined]
    assert isinstance(ctx.temporaries, tuple)


def test_a_pass_that_writes_the_context_fails() -> None:
    spec, state = scratch_world()
    ctx = context_of(spec, state)

    def rogue(ctx: DiffContext, work: WorkSet) -> None:
        """Tries to drop a live volume from the index."""
        ctx.volumes.pop("volume.scratch")  # type: ignore[attr-defined]

    with pytest.raises(AttributeError):
        run_passes(ctx, (*PASSES[:3], rogue))
    assert "volume.scratch" in ctx.volumes


def test_running_every_pass_leaves_the_context_as_it_was() -> None:
    spec = make_spec([vol("scratch", 200)])
    state = live_state(volumes=(
        lvol("vol-1", "volume.scratch", 200),
        lvol("vol-2", "volume.scratch", 200, created=NOW),     # a duplicate
        lvol("vol-3", "volume.gone", 50),                       # an orphan
    ))
    ctx = context_of(spec, state)
    before = (dict(ctx.volumes), dict(ctx.groups), dict(ctx.dups), ctx.adopting,
              set(ctx.graph.nodes), set(ctx.graph.edges))
    work = run_passes(ctx)
    after = (dict(ctx.volumes), dict(ctx.groups), dict(ctx.dups), ctx.adopting,
             set(ctx.graph.nodes), set(ctx.graph.edges))
    assert before == after
    assert {"volume.scratch", "volume.gone"} <= set(work.changes)
    assert work.graph is not ctx.graph


def test_diff_is_the_passes_run_in_order() -> None:
    spec, state = scratch_world()
    spec = make_spec([*spec.volumes.values(), vol("extra", 10)], list(spec.instances.values()))
    plan = diff(spec, build_graph(spec), state, now=NOW)
    work = run_passes(context_of(spec, state))
    assert plan.changes == work.ordered
    assert plan.live_digest == work.live_digest and plan.spec_digest == work.spec_digest
    assert [c.address for c in plan.changes if not c.is_noop] == ["volume.extra"]


def test_a_pass_left_out_changes_the_plan() -> None:
    """The order matters: without the orphan pass nothing deletes what left the spec."""
    spec = make_spec([])
    state = live_state(volumes=(lvol("vol-3", "volume.gone", 50),))
    ctx = context_of(spec, state)
    full = run_passes(ctx)
    assert [c.address for c in full.ordered] == ["volume.gone"]
    without = run_passes(ctx, tuple(p for p in PASSES if p.__name__ != "orphan_volumes"))
    assert without.ordered == ()


FORBIDDEN = ("boto3", "botocore", "planner.loader", "planner.engines", "planner.aws",
             "os", "time", "planner.ssm", "planner.lock")


def test_the_diff_package_is_pure() -> None:
    """No boto3, no loader, no engine, no environment, no clock in planner/diff/."""
    for path in sorted(PACKAGE.glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for n in names:
                assert not any(n == f or n.startswith(f + ".") for f in FORBIDDEN), (
                    f"{path.name} imports {n}")
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("now", "utcnow", "today")
                    and isinstance(node.func.value, ast.Name)
                    and node.func.value.id in ("datetime", "date")):
                raise AssertionError(f"{path.name}:{node.lineno} reads the clock")
        assert len(path.read_text().splitlines()) <= 400, f"{path.name} is over 400 lines"


def test_importing_the_diff_loads_no_loader_engine_or_boto3() -> None:
    code = ("import sys, planner.diff; bad = [m for m in sys.modules if m.split('.')[0] in "
            "('boto3', 'botocore') or m.startswith(('planner.loader', 'planner.engines', "
            "'planner.aws', 'planner.ssm', 'yaml'))]; print(bad); assert not bad, bad")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
