"""The executor with an engine that groups steps into units (as a stack engine does):
the contracted graph, per-step results of a multi-step unit, skip-descendants per step."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pytest

from planner.engines import Unit
from planner.engines.base import Report, StepFailed, step_key
from planner.executor import (
    BLOCKED,
    DONE,
    FAILED,
    SKIPPED,
    PlanOrderError,
    StepEvent,
    StepStatus,
    execute,
    phase_graph,
    unit_graph,
)
from planner.journal import Journal, JournalEvent, read_journal
from planner.phases import Step
from planner.plan import Action, Block, Change, Reason, ResourceType, Rule

C, D = Action.CREATE, Action.DELETE


def change(address: str, *actions: Action, deps: tuple[str, ...] = ()) -> Change:
    return Change(address=address, type=ResourceType(address.split(".", 1)[0]),
                  actions=tuple(actions or (C,)), reason=Reason.CREATE_BECAUSE_MISSING,
                  depends_on=deps)


class GroupingEngine:
    """Puts every step whose address is in one of `groups` in that group's unit (others
    alone); `run` reports each step of the unit, failing those named in `fail`."""

    name = "grouping"

    def __init__(self, groups: Mapping[str, Sequence[str]],
                 fail: Mapping[Step, StepFailed] | None = None,
                 silent: Sequence[Step] = ()):
        self.groups = groups
        self.fail = dict(fail or {})
        self.silent = set(silent)
        self.runs: list[tuple[str, tuple[Step, ...]]] = []
        self.lock = threading.Lock()

    def units(self, steps: Sequence[Step], changes: Mapping[str, Change]) -> list[Unit]:
        grouped: dict[str, list[Step]] = {}
        alone: list[Unit] = []
        for s in steps:
            key = next((k for k, addrs in self.groups.items() if s[0] in addrs), None)
            if key is None:
                alone.append(Unit(step_key(s), (s,)))
            else:
                grouped.setdefault(key, []).append(s)
        return [Unit(k, tuple(v)) for k, v in grouped.items()] + alone

    def run(self, unit: Unit, changes: Mapping[str, Change], report: Report) -> None:
        with self.lock:
            self.runs.append((unit.key, unit.steps))
        for s in unit.steps:
            if s in self.silent:
                continue
            report(s, self.fail[s] if s in self.fail else {"id": f"id-{s[0]}"})


QUICK = [
    change("volume.a"), change("volume.b"), change("instance.i"),
    change("attachment.i.a", deps=("instance.i", "volume.a")),
    change("attachment.i.b", deps=("instance.i", "volume.b")),
    change("mount.i.a", deps=("attachment.i.a",)),
    change("mount.i.b", deps=("attachment.i.b",)),
]


def test_units_run_in_the_contracted_order_and_report_per_step() -> None:
    engine = GroupingEngine({"storage": ("volume.a", "volume.b"),
                             "compute": ("instance.i", "attachment.i.a", "attachment.i.b")})
    result = execute(QUICK, engine)
    assert result.ok
    keys = [k for k, _ in engine.runs]
    assert keys.index("storage") < keys.index("compute")
    assert keys.index("compute") < keys.index("create mount.i.a")
    assert all(s.status == DONE for s in result.steps)
    assert result.step("volume.b", C).facts == {"id": "id-volume.b"}


def test_a_grouping_that_makes_a_cycle_is_refused_before_anything_runs() -> None:
    # volume.a and mount.i.a in one unit: the unit waits for attachment.i.a, which waits
    # for it (volume.a)
    engine = GroupingEngine({"bad": ("volume.a", "mount.i.a")})
    events: list[StepEvent] = []
    with pytest.raises(PlanOrderError, match=r"cannot be ordered.*cycle.*'bad'"):
        execute(QUICK, engine, on_event=events.append)
    assert engine.runs == [] and events == []


def test_units_that_are_not_a_partition_are_refused() -> None:
    g = phase_graph(QUICK)
    one = (("volume.a", C),)
    with pytest.raises(PlanOrderError, match="in two units"):
        unit_graph(g, [Unit("x", one), Unit("y", one)])
    with pytest.raises(PlanOrderError, match=r"leave out steps: create volume\.b"):
        unit_graph(g, [Unit("x", one)])
    with pytest.raises(PlanOrderError, match="holds a step the plan has not"):
        unit_graph(g, [Unit("x", (("volume.zz", C),))])


def test_per_step_results_of_a_multi_step_unit_reach_journal_and_progress(
        tmp_path: Path) -> None:
    engine = GroupingEngine({"storage": ("volume.a", "volume.b")},
                            fail={("volume.b", C): StepFailed("quota", facts={"x": "1"})})
    events: list[StepEvent] = []
    path = tmp_path / "j.jsonl"
    with Journal(str(path), "p1") as journal:
        result = execute(QUICK, engine, journal=journal, on_event=events.append)
    lines = read_journal(str(path))
    by = {(e["address"], e["event"]): e for e in lines}
    assert by[("volume.a", "finished")]["facts"] == {"id": "id-volume.a"}
    assert by[("volume.b", "failed")]["message"] == "quota"
    assert by[("volume.b", "failed")]["facts"] == {"x": "1"}
    got = {(e.address, e.event) for e in events}
    assert {("volume.a", JournalEvent.STARTED), ("volume.a", JournalEvent.FINISHED),
            ("volume.b", JournalEvent.STARTED), ("volume.b", JournalEvent.FAILED)} <= got
    assert result.step("volume.a", C).status == DONE
    assert result.step("volume.b", C).status == FAILED


def test_a_failure_in_a_unit_skips_only_its_descendants() -> None:
    engine = GroupingEngine({"storage": ("volume.a", "volume.b")},
                            fail={("volume.b", C): StepFailed("quota")})
    result = execute(QUICK, engine)
    assert result.step("volume.a", C).status == DONE
    for addr in ("attachment.i.b", "mount.i.b"):
        assert result.step(addr, C).status == SKIPPED
        assert result.step(addr, C).message == "skipped (upstream failed: volume.b)"
    for addr in ("instance.i", "attachment.i.a", "mount.i.a"):
        assert result.step(addr, C).status == DONE, addr
    ran = {s for _, steps in engine.runs for s in steps}
    assert ("attachment.i.b", C) not in ran and ("attachment.i.a", C) in ran


def test_a_failure_skips_its_descendants_inside_the_same_unit() -> None:
    # one unit holds instance.i and attachment.i.a: the attachment waits for the instance
    engine = GroupingEngine({"compute": ("instance.i", "attachment.i.a", "attachment.i.b")},
                            fail={("instance.i", C): StepFailed("capacity")},
                            silent=[("attachment.i.a", C), ("attachment.i.b", C)])
    result = execute(QUICK, engine)
    assert result.step("instance.i", C).status == FAILED
    for addr in ("attachment.i.a", "attachment.i.b", "mount.i.a"):
        assert result.step(addr, C).status == SKIPPED, addr
    assert result.step("volume.a", C).status == DONE


def test_a_step_the_engine_never_reports_failed() -> None:
    engine = GroupingEngine({"storage": ("volume.a", "volume.b")},
                            silent=[("volume.a", C)])
    result = execute(QUICK, engine)
    assert result.step("volume.a", C).status == FAILED
    assert "did not report it" in result.step("volume.a", C).message
    assert result.step("attachment.i.a", C).status == SKIPPED
    assert result.step("volume.b", C).status == DONE


def test_an_exception_out_of_run_fails_every_unreported_step() -> None:
    class Boom(GroupingEngine):
        def run(self, unit: Unit, changes: Mapping[str, Change], report: Report) -> None:
            report(unit.steps[0], {"id": "first"})
            raise RuntimeError("stack crashed")

    result = execute(QUICK, Boom({"storage": ("volume.a", "volume.b")}))
    assert result.step("volume.a", C).status == DONE
    assert result.step("volume.b", C).status == FAILED
    assert result.step("volume.b", C).message == "RuntimeError: stack crashed"


class Guard:
    """Refuses the steps named, records what it saw."""

    def __init__(self, refuse: Mapping[Step, StepFailed],
                 facts: Callable[[Step], dict[str, str]] = lambda s: {}):
        self.refuse = refuse
        self.facts = facts
        self.seen: list[tuple[Step, frozenset[Step], tuple[Step, ...]]] = []

    def before(self, change: Change, action: Action, *, done: frozenset[Step],
               unit: Sequence[Step], planned: frozenset[Step]) -> dict[str, str]:
        step = (change.address, action)
        self.seen.append((step, done, tuple(unit)))
        if step in self.refuse:
            raise self.refuse[step]
        return self.facts(step)


def test_guards_run_before_the_unit_and_a_refused_step_is_not_handed_to_the_engine() -> None:
    teardown = [change(c.address, D, deps=c.depends_on) for c in QUICK]
    blocked = blocked_err("attachment.i.a")
    guard = Guard({("attachment.i.a", D): blocked},
                  facts=lambda s: {"training": "not running"} if s[0] == "instance.i" else {})
    engine = GroupingEngine({"compute": ("instance.i", "attachment.i.a", "attachment.i.b")})
    result = execute(teardown, engine, guards=guard)
    ran = {s for _, steps in engine.runs for s in steps}
    assert ("attachment.i.a", D) not in ran
    assert result.step("attachment.i.a", D).status == BLOCKED
    assert result.refused == {"attachment.i.a"}
    # what waits for the refused detach (the terminate, in the same unit, and volume.a)
    # is blocked too and never reaches the engine
    assert ("instance.i", D) not in ran
    assert result.step("instance.i", D).status == BLOCKED
    assert result.step("volume.a", D).status == BLOCKED
    assert result.step("volume.b", D).status == DONE
    # every step of the unit was guarded knowing the unit; the mounts were done before
    compute = [seen for seen in guard.seen if seen[0] == ("attachment.i.b", D)]
    assert compute and ("mount.i.b", D) in compute[0][1]
    assert ("instance.i", D) in compute[0][2]


def test_guard_facts_reach_the_journal_with_the_engines(tmp_path: Path) -> None:
    guard = Guard({}, facts=lambda s: {"checkpoints": "synced"})
    path = tmp_path / "j.jsonl"
    with Journal(str(path), "p1") as journal:
        execute([change("instance.i", D)], GroupingEngine({}), guards=guard, journal=journal)
    fin = [e for e in read_journal(str(path)) if e["event"] == "finished"]
    assert fin[0]["facts"] == {"checkpoints": "synced", "id": "id-instance.i"}


def test_status_and_event_vocabularies_are_string_enums_of_the_wire_form() -> None:
    assert [s.value for s in StepStatus] == ["done", "failed", "skipped", "not-started",
                                             "blocked"]
    assert [e.value for e in JournalEvent] == ["started", "finished", "failed", "skipped",
                                               "interrupted"]
    assert StepStatus.NOT_STARTED == "not-started"


def blocked_err(address: str) -> StepFailed:
    from planner.engines import StepBlocked

    return StepBlocked(address, (Block(Rule.TRAINING_RUNNING, "a job runs"),))
