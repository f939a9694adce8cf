"""The executor with a fake engine: order, parallelism, failures, blocked changes, stop."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pytest

from planner.engines.base import StepFailed
from planner.executor import (
    DONE,
    FAILED,
    NOT_STARTED,
    SKIPPED,
    PlanOrderError,
    StepEvent,
    execute,
    phase_graph,
)
from planner.journal import Journal, read_journal
from planner.plan import Action, Block, Change, Reason, ResourceType, Rule

C, U, D, N = Action.CREATE, Action.UPDATE, Action.DELETE, Action.NOOP


def change(address: str, *actions: Action, deps: tuple[str, ...] = (),
           blocked: str | None = None) -> Change:
    rtype = ResourceType(address.split(".", 1)[0])
    blocks = (Block(Rule.PERSISTENT, blocked),) if blocked else ()
    return Change(address=address, type=rtype, actions=tuple(actions or (C,)),
                  reason=Reason.REPLACE_BECAUSE_CANNOT_UPDATE if len(actions) == 2
                  else Reason.CREATE_BECAUSE_MISSING, depends_on=deps, blocked_by=blocks)


class FakeEngine:
    """Records start/finish per phase; counts how many phases run at once."""

    name = "fake"

    def __init__(self, *, fail: dict[tuple[str, Action], Exception] | None = None,
                 delay: float = 0.01, on_start: object = None):
        self.fail = fail or {}
        self.delay = delay
        self.on_start = on_start
        self.lock = threading.Lock()
        self.log: list[tuple[str, str, Action]] = []
        self.running = 0
        self.max_running = 0

    def apply(self, change: Change, action: Action) -> dict[str, str]:
        with self.lock:
            self.log.append(("start", change.address, action))
            self.running += 1
            self.max_running = max(self.max_running, self.running)
        if callable(self.on_start):
            self.on_start(change, action)
        time.sleep(self.delay)
        with self.lock:
            self.running -= 1
            self.log.append(("finish", change.address, action))
        err = self.fail.get((change.address, action))
        if err is not None:
            raise err
        return {"id": f"id-{change.address}"}

    def index(self, kind: str, address: str, action: Action) -> int:
        return self.log.index((kind, address, action))

    def started(self) -> set[tuple[str, Action]]:
        return {(a, act) for kind, a, act in self.log if kind == "start"}


def assert_before(engine: FakeEngine, first: tuple[str, Action], then: tuple[str, Action]) -> None:
    assert engine.index("finish", *first) < engine.index("start", *then), (first, then)


QUICKSTART = [
    change("volume.data"),
    change("volume.scratch"),
    change("instance.trainer"),
    change("attachment.trainer.data", deps=("instance.trainer", "volume.data")),
    change("attachment.trainer.scratch", deps=("instance.trainer", "volume.scratch")),
    change("mount.trainer.data", deps=("attachment.trainer.data",)),
    change("mount.trainer.scratch", deps=("attachment.trainer.scratch",)),
    change("sync.trainer.imagenet", deps=("mount.trainer.data",)),
]


def test_dependents_start_only_after_their_dependencies_finish() -> None:
    engine = FakeEngine()
    result = execute(QUICKSTART, engine, parallelism=10)
    assert result.ok and result.counts[DONE] == len(QUICKSTART)
    for c in QUICKSTART:
        for dep in c.depends_on:
            assert_before(engine, (dep, C), (c.address, C))
    assert result.step("volume.data", C).facts == {"id": "id-volume.data"}
    assert all(s.elapsed is not None and s.elapsed >= 0 for s in result.steps)


def test_dependency_order_holds_through_noop_changes() -> None:
    changes = [
        change("volume.v", U),
        change("attachment.i.v", N, deps=("volume.v", "instance.i")),
        change("mount.i.v", U, deps=("attachment.i.v",)),
    ]
    engine = FakeEngine()
    result = execute(changes, engine)
    assert [s.address for s in result.steps] == ["volume.v", "mount.i.v"]
    assert_before(engine, ("volume.v", U), ("mount.i.v", U))


def test_deletes_run_in_reverse_dependency_order() -> None:
    changes = [
        change("volume.data", D),
        change("instance.trainer", D),
        change("attachment.trainer.data", D, deps=("instance.trainer", "volume.data")),
        change("mount.trainer.data", D, deps=("attachment.trainer.data",)),
    ]
    engine = FakeEngine()
    assert execute(changes, engine).ok
    assert_before(engine, ("mount.trainer.data", D), ("attachment.trainer.data", D))
    assert_before(engine, ("attachment.trainer.data", D), ("volume.data", D))
    assert_before(engine, ("attachment.trainer.data", D), ("instance.trainer", D))


def test_replace_runs_its_phases_in_the_order_of_its_actions() -> None:
    changes = [
        change("instance.trainer", D, C),
        change("volume.data", C, D),
        change("attachment.trainer.data", D, C, deps=("instance.trainer", "volume.data")),
    ]
    engine = FakeEngine()
    result = execute(changes, engine)
    assert result.ok and result.counts[DONE] == 6
    assert_before(engine, ("attachment.trainer.data", D), ("instance.trainer", D))
    assert_before(engine, ("instance.trainer", D), ("instance.trainer", C))
    assert_before(engine, ("instance.trainer", C), ("attachment.trainer.data", C))
    assert_before(engine, ("volume.data", C), ("volume.data", D))
    assert_before(engine, ("volume.data", C), ("attachment.trainer.data", C))
    assert_before(engine, ("attachment.trainer.data", D), ("volume.data", D))


def test_a_cycle_between_phases_is_an_error_not_a_hang() -> None:
    changes = [
        change("instance.i", D, C),
        change("attachment.i.v", C, D, deps=("instance.i",)),
    ]
    with pytest.raises(PlanOrderError, match="cycle"):
        phase_graph(changes)


@pytest.mark.parametrize("n", [1, 3])
def test_parallelism_bound_is_respected(n: int) -> None:
    changes = [change(f"volume.v{i:02d}") for i in range(20)]
    engine = FakeEngine(delay=0.02)
    assert execute(changes, engine, parallelism=n).ok
    assert engine.max_running <= n
    assert len(engine.started()) == 20


def test_independent_steps_run_at_the_same_time() -> None:
    # The first step waits until a second one is running: only possible in parallel.
    second_running = threading.Event()

    def on_start(change: Change, action: Action) -> None:
        if change.address == "volume.v00":
            assert second_running.wait(10), "no second step ran while the first was running"
        else:
            second_running.set()

    changes = [change(f"volume.v{i:02d}") for i in range(20)]
    engine = FakeEngine(delay=0.01, on_start=on_start)
    result = execute(changes, engine, parallelism=10)
    assert result.ok, [s.message for s in result.steps if s.status != DONE]
    assert 1 < engine.max_running <= 10


def test_a_dependent_starts_as_soon_as_its_own_dependency_is_done() -> None:
    # slow.x and fast.y are independent; the dependent of fast.y must not wait for slow.x.
    fast_dependent_started = threading.Event()

    def on_start(change: Change, action: Action) -> None:
        if change.address == "volume.slow":
            assert fast_dependent_started.wait(10), "scheduling waited for the whole generation"
        if change.address == "attachment.i.fast":
            fast_dependent_started.set()

    changes = [
        change("volume.slow"),
        change("volume.fast"),
        change("attachment.i.fast", deps=("volume.fast",)),
        change("attachment.i.slow", deps=("volume.slow",)),
    ]
    result = execute(changes, FakeEngine(on_start=on_start), parallelism=4)
    assert result.ok


def test_a_failed_step_skips_exactly_its_descendants() -> None:
    changes = [
        *QUICKSTART,
        change("volume.other"),
        change("instance.other"),
        change("attachment.other.other", deps=("instance.other", "volume.other")),
    ]
    engine = FakeEngine(fail={("volume.data", C): StepFailed("InvalidSnapshot.NotFound")})
    result = execute(changes, engine, parallelism=3)
    assert not result.ok
    assert result.step("volume.data", C).status == FAILED
    assert result.step("volume.data", C).message == "InvalidSnapshot.NotFound"
    skipped = {s.address for s in result.by_status(SKIPPED)}
    assert skipped == {"attachment.trainer.data", "mount.trainer.data", "sync.trainer.imagenet"}
    for s in result.by_status(SKIPPED):
        assert s.message == "skipped (upstream failed: volume.data)"
    assert not {a for a, _ in engine.started()} & skipped
    done = {s.address for s in result.by_status(DONE)}
    assert done == {c.address for c in changes} - skipped - {"volume.data"}
    assert result.counts == {"done": 7, "failed": 1, "skipped": 3, "not-started": 0,
                             "blocked": 0}
    assert result.summary_line() == (
        "Apply: 7 created, 0 updated, 0 replaced, 0 deleted, 0 blocked; 1 failed, 3 skipped.")


def test_any_exception_is_a_failed_step_not_a_crash() -> None:
    changes = [change("volume.a"), change("volume.b")]
    engine = FakeEngine(fail={("volume.a", C): KeyError("VolumeId")})
    result = execute(changes, engine)
    assert result.step("volume.a", C).status == FAILED
    assert result.step("volume.a", C).message == "KeyError: 'VolumeId'"
    assert result.step("volume.b", C).status == DONE


def test_step_failed_facts_are_kept() -> None:
    err = StepFailed("mount failed", facts={"id": "vol-123"})
    result = execute([change("volume.a")], FakeEngine(fail={("volume.a", C): err}))
    assert result.step("volume.a", C).facts == {"id": "vol-123"}


def test_blocked_changes_never_reach_the_engine_and_skip_their_dependents() -> None:
    changes = [
        change("volume.keep", D, C, blocked="volume.keep is persistent"),
        change("instance.i"),
        change("attachment.i.keep", deps=("instance.i", "volume.keep")),
        change("volume.old", D, blocked="volume.old is persistent"),
        change("volume.new"),
    ]
    engine = FakeEngine()
    result = execute(changes, engine)
    started = {a for a, _ in engine.started()}
    assert started == {"instance.i", "volume.new"}
    assert result.step("attachment.i.keep", C).status == "blocked"
    assert result.step("attachment.i.keep", C).message == (
        "attachment.i.keep waits for volume.keep, which is blocked; it runs once that "
        "rule is lifted")
    assert result.step("volume.old", D).status == "blocked"
    assert result.step("volume.old", D).message == "volume.old is persistent"
    assert result.counts["blocked"] == 3      # changes, not phases
    assert result.ok                          # blocked is not an error
    assert result.summary_line() == (
        "Apply: 2 created, 0 updated, 0 replaced, 0 deleted, 3 blocked; 0 failed, 0 skipped.")


def test_a_step_the_recheck_blocks_blocks_what_waits_for_it() -> None:
    from planner.engines.base import StepBlocked

    changes = [
        change("instance.i", D, C),
        change("volume.v"),
        change("attachment.i.v", deps=("instance.i", "volume.v")),
        change("mount.i.v", deps=("attachment.i.v",)),
        change("volume.w"),
    ]
    err = StepBlocked("instance.i", (Block(Rule.PROTECTED, "instance.i is protected"),))
    engine = FakeEngine(fail={("instance.i", D): err})
    result = execute(changes, engine)
    assert {a for a, _ in engine.started()} == {"instance.i", "volume.v", "volume.w"}
    for addr, act in (("instance.i", D), ("instance.i", C), ("attachment.i.v", C),
                      ("mount.i.v", C)):
        assert result.step(addr, act).status == "blocked", addr
    assert "waits for instance.i," in result.step("mount.i.v", C).message
    assert result.refused == {"instance.i"}
    assert not result.ok                      # the plan said it would run: exit 1
    assert result.summary_line() == (
        "Apply: 2 created, 0 updated, 0 replaced, 0 deleted, 3 blocked; 0 failed, 0 skipped."
        " 1 blocked by the re-check at apply time.")


def test_stop_event_lets_running_steps_finish_and_starts_nothing_new() -> None:
    stop = threading.Event()

    def on_start(change: Change, action: Action) -> None:
        stop.set()

    changes = [change(f"volume.v{i}") for i in range(5)] + [
        change("attachment.i.v0", deps=("volume.v0",))]
    engine = FakeEngine(on_start=on_start, delay=0.05)
    result = execute(changes, engine, parallelism=1, stop=stop)
    assert result.interrupted and not result.ok
    assert len(engine.started()) == 1
    done = result.by_status(DONE)
    assert [s.address for s in done] == [engine.log[0][1]]
    rest = result.by_status(NOT_STARTED)
    assert len(rest) == 5
    assert all(s.message == "not started (interrupted)" for s in rest)
    assert "1 created" in result.summary_line() and "5 not started" in result.summary_line()


def test_on_event_sees_every_event() -> None:
    events: list[StepEvent] = []
    changes = [change("volume.a"), change("attachment.i.a", deps=("volume.a",)),
               change("volume.b", D, blocked="persistent")]
    execute(changes, FakeEngine(fail={("volume.a", C): StepFailed("no")}),
            on_event=events.append)
    got = [(e.address, e.event) for e in events]
    assert ("volume.b", "skipped") in got
    assert got.index(("volume.a", "started")) < got.index(("volume.a", "failed"))
    assert ("attachment.i.a", "skipped") in got
    assert next(e for e in events if e.event == "failed").elapsed is not None


def test_journal_records_every_step_event(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import planner.journal as journal_mod

    synced: list[int] = []
    real_fsync = journal_mod.os.fsync
    monkeypatch.setattr(journal_mod.os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    path = tmp_path / "journal" / "p1.jsonl"
    changes = [change("volume.a"), change("attachment.i.a", deps=("volume.a",)),
               change("volume.b"), change("volume.c", D, blocked="volume.c is persistent")]
    with Journal(str(path), "p1") as journal:
        execute(changes, FakeEngine(fail={("volume.a", C): StepFailed("no such snapshot")}),
                journal=journal)
    lines = read_journal(str(path))
    assert len(synced) == len(lines) == len(path.read_text().splitlines())
    assert all(line["plan_id"] == "p1" for line in lines)
    assert set(lines[0]) == {"ts", "plan_id", "address", "phase", "event", "message", "facts"}
    by = {(line["address"], line["event"]): line for line in lines}
    assert by[("volume.a", "failed")]["message"] == "no such snapshot"
    assert by[("volume.a", "failed")]["phase"] == "create"
    assert by[("attachment.i.a", "skipped")]["message"] == (
        "skipped (upstream failed: volume.a)")
    assert by[("volume.b", "finished")]["facts"] == {"id": "id-volume.b"}
    assert by[("volume.c", "skipped")]["message"].startswith("blocked: ")
    assert ("volume.c", "started") not in by


def test_progress_plain_lines_on_a_non_terminal() -> None:
    import io

    from planner.executor import phase_graph, step_order
    from planner.progress import ApplyProgress

    out = io.StringIO()
    changes = [change("volume.a"), change("attachment.i.a", deps=("volume.a",)),
               change("volume.b", D, blocked="volume.b is persistent")]
    with ApplyProgress(step_order(phase_graph(changes)), color=False, stream=out) as progress:
        execute(changes, FakeEngine(fail={("volume.a", C): StepFailed("no snapshot")}),
                on_event=progress)
    lines = out.getvalue().splitlines()
    assert "delete volume.b: blocked: volume.b is persistent" in lines
    assert "create volume.a: running" in lines
    assert any(x.startswith("create volume.a: failed (") and x.endswith("s): no snapshot")
               for x in lines)
    assert "create attachment.i.a: skipped (upstream failed: volume.a)" in lines


def test_progress_live_display_on_a_terminal() -> None:
    import io

    from rich.console import Console

    from planner.executor import phase_graph, step_order
    from planner.progress import ApplyProgress

    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120, color_system=None)
    changes = [change("volume.a"), change("volume.b")]
    with ApplyProgress(step_order(phase_graph(changes)), console=console) as progress:
        assert progress.live
        execute(changes, FakeEngine(), on_event=progress)
    text = out.getvalue()
    assert "create volume.a" in text and "create volume.b" in text and "done" in text
    assert re.search(r"done +create volume.a +\d+\.\ds", text)   # elapsed seconds
