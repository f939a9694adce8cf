"""Carry a plan out: the phase DAG, contracted by the engine's units, on a thread pool.

Each non-no-op change becomes one or two phase nodes (steps), `(address, action)`: a
`delete` phase when its actions contain "delete", and a `create` or `update` phase. For
a structural dependency u -> v (v depends on u): forward(u) before forward(v) and
delete(v) before delete(u). A replace runs its two phases in the order of its actions.

The engine partitions the steps into units (planner.engines.base); the phase graph is
contracted by unit (planner.units; a grouping that makes a cycle is refused before
anything runs). A unit starts once every unit it depends on has ended. Before the
engine runs a unit, the guards (planner.guards) check each of its steps; a step they
refuse is not run. The journal, the progress events and the outcome stay per step:
blocked changes never reach the engine, nor does anything downstream of them (the plan
marks it `depends-on-blocked`); a failed step makes everything downstream "skipped" (in its unit
too); a step the re-check blocks just before acting blocks everything downstream of it.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

import networkx as nx

from planner.engines.base import Engine, Outcome, StepBlocked, StepFailed, Unit
from planner.errors import TrainctlError
from planner.execresult import (
    BLOCKED,
    DONE,
    FAILED,
    KIND_DONE,
    NOT_STARTED,
    SKIPPED,
    STATUSES,
    ExecutionResult,
    StepEvent,
    StepResult,
    StepStatus,
)
from planner.journal import Journal, JournalEvent
from planner.phases import PlanOrderError, Step, phase_graph, phases_of, step_order
from planner.plan import Change, Plan
from planner.rules import depends_on_block, propagate_blocks
from planner.units import StepGuard, unit_engine, unit_graph

__all__ = ["BLOCKED", "DONE", "FAILED", "KIND_DONE", "NOT_STARTED", "SKIPPED", "STATUSES",
           "ExecutionResult", "PlanOrderError", "StepEvent", "StepGuard", "StepResult",
           "StepStatus", "execute", "phase_graph",
           "phase_graph_of", "phases_of", "step_order", "unit_graph"]


# Tests only (issue 12, crashes): `ADDRESS:ACTION:EVENT` makes apply SIGKILL itself at
# that journal event, a real kill -9 at a named point.
_CRASH_AT = os.environ.get("TRAINCTL_TEST_SIGKILL_AT", "")


def _sigkill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _error_message(e: BaseException) -> str:
    if isinstance(e, TrainctlError | StepFailed):
        return str(e) or type(e).__name__
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


Settled = tuple[Step, StepStatus, str, float | None, dict[str, str]]


class _Run:
    """One execution: the graphs, the per-step results, the events."""

    def __init__(self, changes: tuple[Change, ...], engine: Engine, guards: StepGuard | None,
                 journal: Journal | None, on_event: Callable[[StepEvent], None] | None,
                 graph: nx.DiGraph | None = None):
        self.changes = changes
        self.by_addr = {c.address: c for c in changes}
        self.g = graph if graph is not None else phase_graph(changes)
        self.order = step_order(self.g)
        self.position = {n: i for i, n in enumerate(self.order)}
        self.planned = frozenset(self.order)
        self.engine, self.guards = engine, guards
        self.ug = unit_graph(self.g, engine.units(list(self.order), self.by_addr))
        self.unit_of = {s: k for k in self.ug for s in self.ug.nodes[k]["unit"].steps}
        self.results: dict[Step, StepResult] = {n: StepResult(n[0], n[1]) for n in self.order}
        self.refused: set[str] = set()
        self.ran: set[Step] = set()              # steps handed to a unit's run
        self.journal, self.on_event = journal, on_event
        self._emit_lock = threading.Lock()

    # --- events ------------------------------------------------------------------------

    def emit(self, step: Step, event: JournalEvent, message: str = "",
             elapsed: float | None = None, facts: Mapping[str, str] | None = None) -> None:
        crash = f"{step[0]}:{step[1].value}:{event.value}" == _CRASH_AT
        if crash and event is JournalEvent.FINISHED:  # it acted; the journal never says so
            _sigkill_self()
        if self.journal is not None:
            self.journal.event(step[0], step[1].value, event, message, facts)
        if crash:                             # started: journalled, nothing done yet
            _sigkill_self()
        if self.on_event is not None:
            with self._emit_lock:
                self.on_event(StepEvent(step[0], step[1], event, message, elapsed,
                                        dict(facts or {})))

    def _descendants(self, step: Step) -> list[Step]:
        return sorted(nx.descendants(self.g, step), key=self.position.__getitem__)

    def skip_descendants(self, step: Step, why: str) -> None:
        for d in self._descendants(step):
            r = self.results[d]
            if r.status == NOT_STARTED and not self.g.nodes[d]["blocked"]:
                r.status = SKIPPED
                r.message = f"skipped (upstream {why}: {step[0]})"
                self.emit(d, JournalEvent.SKIPPED, r.message)

    def block_descendants(self, step: Step) -> None:
        """The re-check just before acting blocked `step`: what waits for it is blocked
        too (depends-on-blocked), as the plan would have shown it."""
        for d in self._descendants(step):
            r = self.results[d]
            if r.status == NOT_STARTED:
                r.status = BLOCKED
                r.message = depends_on_block(d[0], [step[0]]).message
                self.emit(d, JournalEvent.SKIPPED, f"blocked: {r.message}")

    def record_blocked(self) -> None:
        """Blocked phases: recorded, never run (everything downstream is blocked too)."""
        for n in self.order:
            if self.g.nodes[n]["blocked"]:
                r = self.results[n]
                r.status = BLOCKED
                r.message = "; ".join(b.message for b in self.g.nodes[n]["change"].blocked_by)
                self.emit(n, JournalEvent.SKIPPED, f"blocked: {r.message}")

    # --- one unit (on a worker thread) ----------------------------------------------------

    def runnable(self, key: str) -> list[Step]:
        unit: Unit = self.ug.nodes[key]["unit"]
        return sorted((s for s in unit.steps if self.results[s].status == NOT_STARTED),
                      key=self.position.__getitem__)

    def run_unit(self, key: str, steps: list[Step], done: frozenset[Step]) -> list[Settled]:
        """Guards for every step, then the engine on what they let through."""
        settled: list[Settled] = []
        started: dict[Step, float] = {}
        guard_facts: dict[Step, dict[str, str]] = {}
        refused: set[Step] = set()
        for step in steps:
            if any(nx.has_path(self.g, r, step) for r in refused):
                continue                         # downstream of a refusal in this unit
            self.emit(step, JournalEvent.STARTED)
            started[step] = time.monotonic()
            try:
                guard_facts[step] = self._guard(step, done, steps)
            except Exception as e:  # a guard never crashes the executor
                refused.add(step)
                settled.append(self._failure(step, e, started[step], {}))
        go = [s for s in steps if s in guard_facts]
        if go:
            settled += self._run_engine(key, go, started, guard_facts)
        return settled

    def _guard(self, step: Step, done: frozenset[Step], unit: list[Step]) -> dict[str, str]:
        if self.guards is None:
            return {}
        facts = self.guards.before(self.by_addr[step[0]], step[1], done=done, unit=unit,
                                   planned=self.planned)
        return {str(k): str(v) for k, v in dict(facts or {}).items()}

    def _failure(self, step: Step, e: BaseException, t0: float,
                 facts: Mapping[str, str]) -> Settled:
        elapsed = time.monotonic() - t0
        msg = _error_message(e)
        partial = {**facts, **(e.facts if isinstance(e, StepFailed) else {})}
        if isinstance(e, StepBlocked):
            self.emit(step, JournalEvent.SKIPPED, f"blocked: {msg}", elapsed, partial)
            return step, BLOCKED, msg, elapsed, partial
        self.emit(step, JournalEvent.FAILED, msg, elapsed, partial)
        return step, FAILED, msg, elapsed, partial

    def _run_engine(self, key: str, go: list[Step], started: Mapping[Step, float],
                    guard_facts: Mapping[Step, dict[str, str]]) -> list[Settled]:
        settled: dict[Step, Settled] = {}
        lock = threading.Lock()
        unit = Unit(key, tuple(go))

        def report(step: Step, outcome: Outcome) -> None:
            with lock:
                if step not in started or step in settled:
                    return                       # not this unit's, or reported twice
                if isinstance(outcome, StepFailed):
                    settled[step] = self._failure(step, outcome, started[step],
                                                  guard_facts[step])
                    return
                elapsed = time.monotonic() - started[step]
                facts = {**guard_facts[step],
                         **{str(k): str(v) for k, v in dict(outcome or {}).items()}}
                self.emit(step, JournalEvent.FINISHED, "", elapsed, facts)
                settled[step] = (step, DONE, "", elapsed, facts)

        try:
            self.engine.run(unit, self.by_addr, report)
        except Exception as e:  # an engine never crashes the executor
            for step in go:
                if step not in settled:
                    settled[step] = self._failure(step, e, started[step], guard_facts[step])
        return [settled[s] for s in go if s in settled]

    # --- the loop (main thread) -----------------------------------------------------------

    def settle(self, key: str, outcomes: list[Settled]) -> None:
        """Record a unit's outcomes; skip or block what waits for a failure or a refusal;
        a step the engine never reported failed (or was skipped behind a failure)."""
        for step, status, message, elapsed, facts in outcomes:
            r = self.results[step]
            r.status, r.message, r.elapsed, r.facts = status, message, elapsed, facts
        for step, status, *_ in outcomes:
            if status == BLOCKED:
                self.refused.add(step[0])
                self.block_descendants(step)
            elif status == FAILED:
                self.skip_descendants(step, "failed")
        reported = {o[0] for o in outcomes}
        for step in self.ug.nodes[key]["unit"].steps:
            r = self.results[step]
            if r.status == NOT_STARTED and step not in reported and step in self.ran:
                r.status, r.message = FAILED, f"the {self.engine.name} engine did not report it"
                self.emit(step, JournalEvent.FAILED, r.message)
                self.skip_descendants(step, "failed")

    def loop(self, parallelism: int, stop: threading.Event) -> None:
        waiting = {k: self.ug.in_degree(k) for k in self.ug}
        first = {k: min(self.position[s] for s in self.ug.nodes[k]["unit"].steps)
                 for k in self.ug}
        pending = sorted(self.ug, key=first.__getitem__)
        running: dict[Future[list[Settled]], str] = {}
        with ThreadPoolExecutor(max_workers=parallelism,
                                thread_name_prefix="trainctl-step") as pool:
            while True:
                if not stop.is_set():
                    for key in [k for k in pending if waiting[k] == 0]:
                        if len(running) >= parallelism:
                            break
                        pending.remove(key)
                        steps = self.runnable(key)
                        if not steps:            # nothing left to run in it
                            self._ended(key, waiting)
                            continue
                        self.ran.update(steps)
                        done = frozenset(s for s, r in self.results.items() if r.status == DONE)
                        running[pool.submit(self.run_unit, key, steps, done)] = key
                    if any(waiting[k] == 0 for k in pending) and len(running) < parallelism:
                        continue                 # a unit ended empty: more may be ready
                if not running:
                    break
                finished, _ = wait(list(running), timeout=0.5, return_when=FIRST_COMPLETED)
                for fut in finished:
                    key = running.pop(fut)
                    try:
                        outcomes = fut.result()
                    except Exception as e:  # only if emit itself failed
                        outcomes = [(s, FAILED, _error_message(e), None, {})
                                    for s in self.runnable(key)]
                    self.settle(key, outcomes)
                    self._ended(key, waiting)

    def _ended(self, key: str, waiting: dict[str, int]) -> None:
        for k in self.ug.successors(key):
            waiting[k] -= 1

    def finish(self) -> ExecutionResult:
        interrupted = False
        for n in self.order:
            r = self.results[n]
            if r.status == NOT_STARTED:
                interrupted = True
                r.message = "not started (interrupted)"
                self.emit(n, JournalEvent.INTERRUPTED, r.message)
        return ExecutionResult([self.results[n] for n in self.order], interrupted=interrupted,
                               kinds={c.address: c.kind for c in self.changes},
                               refused=self.refused)


def _blocks_propagated(plan: Plan | Iterable[Change]) -> tuple[Change, ...]:
    """What waits for a blocked change is blocked too (the diff did it already; a plan
    built by hand gets the same treatment)."""
    return tuple(propagate_blocks(plan.changes if isinstance(plan, Plan) else tuple(plan)))


def phase_graph_of(plan: Plan | Iterable[Change]) -> nx.DiGraph:
    """The phase graph `execute` runs for `plan`."""
    return phase_graph(_blocks_propagated(plan))


def execute(plan: Plan | Iterable[Change], engine: Engine | Any, *,
            guards: StepGuard | None = None, parallelism: int = 10,
            journal: Journal | None = None, on_event: Callable[[StepEvent], None] | None = None,
            stop: threading.Event | None = None,
            graph: nx.DiGraph | None = None) -> ExecutionResult:
    """Run every non-blocked, non-no-op change of `plan` through `engine`'s units, each
    step checked by `guards` first (planner.guards.Guards; None: no guards, tests only).
    `graph`: `phase_graph_of(plan)` when the caller built it already (apply shows its
    steps as progress first), so it is built once.

    `engine` may also be an object with only `apply(change, action)` (one unit per
    step). Raises PlanOrderError, before anything runs, when the steps or the engine's
    units cannot be ordered. Never raises for a failed step: the failure is recorded,
    its descendants are skipped and independent work goes on. Once `stop` is set no new
    unit starts; running units finish and the rest are "not started (interrupted)".
    """
    if parallelism < 1:
        raise ValueError("parallelism must be at least 1")
    changes = _blocks_propagated(plan)
    run = _Run(changes, unit_engine(engine), guards, journal, on_event, graph)
    run.record_blocked()
    run.loop(parallelism, stop or threading.Event())
    return run.finish()
