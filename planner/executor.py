"""Carry a plan out: a DAG of phases run on a bounded thread pool.

Each non-no-op change becomes one or two phase nodes, `(address, action)`: a `delete`
phase when its actions contain "delete", and a `create` or `update` phase. For a
structural dependency u -> v (v depends on u): forward(u) before forward(v) and
delete(v) before delete(u). A replace runs its two phases in the order of its actions.

A phase starts as soon as every phase it depends on is done. Blocked changes never reach
the engine, nor does anything downstream of them (the plan marks it `depends-on-blocked`);
a failed phase makes everything downstream "skipped". A phase the engine's re-check
blocks just before acting blocks everything downstream of it too.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

import networkx as nx

from planner.engines.base import Engine, StepBlocked, StepFailed
from planner.errors import TrainctlError
from planner.journal import Journal
from planner.phases import PlanOrderError, Step, phase_graph, phases_of, step_order
from planner.plan import Action, Change, Plan
from planner.rules import depends_on_block, propagate_blocks

__all__ = ["PlanOrderError", "execute", "phase_graph", "phases_of", "step_order"]

DONE = "done"
FAILED = "failed"
SKIPPED = "skipped"
NOT_STARTED = "not-started"
BLOCKED = "blocked"
STATUSES = (DONE, FAILED, SKIPPED, NOT_STARTED, BLOCKED)


@dataclass(frozen=True)
class StepEvent:
    """What on_event receives. `event` is a journal event name."""

    address: str
    action: Action
    event: str                      # started | finished | failed | skipped | interrupted
    message: str = ""
    elapsed: float | None = None
    facts: Mapping[str, str] = field(default_factory=dict)


@dataclass
class StepResult:
    address: str
    action: Action
    status: str = NOT_STARTED
    message: str = ""
    elapsed: float | None = None
    facts: dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.action.value} {self.address}"


KIND_DONE = {"create": "created", "update": "updated", "replace": "replaced",
             "delete": "deleted"}


@dataclass
class ExecutionResult:
    steps: list[StepResult]
    interrupted: bool = False
    kinds: dict[str, str] = field(default_factory=dict)    # address -> Change.kind
    refused: set[str] = field(default_factory=set)         # blocked by apply's re-check

    def by_status(self, status: str) -> list[StepResult]:
        return [s for s in self.steps if s.status == status]

    def step(self, address: str, action: Action | str) -> StepResult:
        for s in self.steps:
            if s.address == address and s.action == action:
                return s
        raise KeyError((address, action))

    def change_status(self, address: str) -> str:
        """One status per change: blocked, failed, not started, skipped or done."""
        mine = {s.status for s in self.steps if s.address == address}
        for status in (BLOCKED, FAILED, NOT_STARTED, SKIPPED):
            if status in mine:
                return status
        return DONE

    @property
    def counts(self) -> dict[str, int]:
        """Steps per status; `blocked` counts blocked changes (one per change)."""
        counts = dict.fromkeys(STATUSES, 0)
        blocked: set[str] = set()
        for s in self.steps:
            if s.status == BLOCKED:
                blocked.add(s.address)
            else:
                counts[s.status] += 1
        counts[BLOCKED] = len(blocked)
        return counts

    @property
    def change_counts(self) -> dict[str, int]:
        """Changes per status (a replace's two steps count once), as the plan counts."""
        counts = dict.fromkeys(STATUSES, 0)
        for addr in dict.fromkeys(s.address for s in self.steps):
            counts[self.change_status(addr)] += 1
        return counts

    def done_by_kind(self) -> dict[str, int]:
        out = dict.fromkeys(KIND_DONE, 0)
        for addr in dict.fromkeys(s.address for s in self.steps):
            kind = self.kinds.get(addr)
            if kind in out and self.change_status(addr) == DONE:
                out[kind] += 1
        return out

    @property
    def ok(self) -> bool:
        return not self.interrupted and not self.by_status(FAILED) and not self.refused

    def summary_line(self) -> str:
        """In the plan's terms: `Apply: 3 created, ... 2 blocked; 0 failed, 0 skipped.`"""
        c = self.change_counts
        done = self.done_by_kind()
        line = ("Apply: " + ", ".join(f"{n} {KIND_DONE[k]}" for k, n in done.items())
                + f", {c[BLOCKED]} blocked; {c[FAILED]} failed, {c[SKIPPED]} skipped.")
        if self.refused:
            line += f" {len(self.refused)} blocked by the re-check at apply time."
        if c[NOT_STARTED]:
            line += f" {c[NOT_STARTED]} not started (interrupted)."
        return line


# Tests only (issue 12, crashes): `ADDRESS:ACTION:EVENT` makes apply SIGKILL itself at
# that journal event, a real kill -9 at a named point.
_CRASH_AT = os.environ.get("TRAINCTL_TEST_SIGKILL_AT", "")


def _sigkill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _error_message(e: BaseException) -> str:
    if isinstance(e, TrainctlError | StepFailed):
        return str(e) or type(e).__name__
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


def execute(plan: Plan | Iterable[Change], engine: Engine, *, parallelism: int = 10,
            journal: Journal | None = None, on_event: Callable[[StepEvent], None] | None = None,
            stop: threading.Event | None = None) -> ExecutionResult:
    """Run every non-blocked, non-no-op change of `plan` through `engine`.

    Never raises for a failed step: the failure is recorded, its descendants are skipped
    and independent work goes on. Once `stop` is set no new step starts; running steps
    finish and the rest are recorded "not started (interrupted)".
    """
    if parallelism < 1:
        raise ValueError("parallelism must be at least 1")
    # what waits for a blocked change is blocked too (the diff did it already; a plan
    # built by hand gets the same treatment)
    changes = propagate_blocks(plan.changes if isinstance(plan, Plan) else tuple(plan))
    g = phase_graph(changes)
    order = step_order(g)
    position = {n: i for i, n in enumerate(order)}
    results: dict[Step, StepResult] = {n: StepResult(n[0], n[1]) for n in order}
    stop = stop or threading.Event()
    emit_lock = threading.Lock()

    def emit(step: Step, event: str, message: str = "", elapsed: float | None = None,
             facts: Mapping[str, str] | None = None) -> None:
        crash = f"{step[0]}:{step[1].value}:{event}" == _CRASH_AT
        if crash and event == "finished":     # the step acted; the journal never says so
            _sigkill_self()
        if journal is not None:
            journal.event(step[0], step[1].value, event, message, facts)
        if crash:                             # started: journalled, nothing done yet
            _sigkill_self()
        if on_event is not None:
            with emit_lock:
                on_event(StepEvent(step[0], step[1], event, message, elapsed, dict(facts or {})))

    def skip_descendants(step: Step, why: str) -> None:
        for d in sorted(nx.descendants(g, step), key=position.__getitem__):
            r = results[d]
            if r.status == NOT_STARTED and not g.nodes[d]["blocked"]:
                r.status = SKIPPED
                r.message = f"skipped (upstream {why}: {step[0]})"
                emit(d, "skipped", r.message)

    refused: set[str] = set()

    def block_descendants(step: Step) -> None:
        """The re-check just before acting blocked `step`: what waits for it is blocked
        too (depends-on-blocked), as the plan would have shown it."""
        for d in sorted(nx.descendants(g, step), key=position.__getitem__):
            r = results[d]
            if r.status == NOT_STARTED:
                r.status = BLOCKED
                r.message = depends_on_block(d[0], [step[0]]).message
                emit(d, "skipped", f"blocked: {r.message}")

    # Blocked phases: recorded, never run (everything downstream is blocked as well).
    for n in order:
        if g.nodes[n]["blocked"]:
            r = results[n]
            r.status = BLOCKED
            r.message = "; ".join(b.message for b in g.nodes[n]["change"].blocked_by)
            emit(n, "skipped", f"blocked: {r.message}")

    def run(step: Step) -> tuple[str, str, float, dict[str, str]]:
        change: Change = g.nodes[step]["change"]
        emit(step, "started")
        t0 = time.monotonic()
        try:
            facts = engine.apply(change, step[1]) or {}
            facts = {str(k): str(v) for k, v in dict(facts).items()}
        except Exception as e:  # a step never crashes the executor
            elapsed = time.monotonic() - t0
            msg = _error_message(e)
            partial = dict(e.facts) if isinstance(e, StepFailed) else {}
            if isinstance(e, StepBlocked):
                emit(step, "skipped", f"blocked: {msg}", elapsed, partial)
                return BLOCKED, msg, elapsed, partial
            emit(step, "failed", msg, elapsed, partial)
            return FAILED, msg, elapsed, partial
        elapsed = time.monotonic() - t0
        emit(step, "finished", "", elapsed, facts)
        return DONE, "", elapsed, facts

    remaining_deps = {n: g.in_degree(n) for n in order}
    running: dict[Future[tuple[str, str, float, dict[str, str]]], Step] = {}

    submitted: set[Step] = set()

    def ready() -> list[Step]:
        return [n for n in order
                if results[n].status == NOT_STARTED and remaining_deps[n] == 0
                and n not in submitted]

    with ThreadPoolExecutor(max_workers=parallelism, thread_name_prefix="trainctl-step") as pool:
        while True:
            if not stop.is_set():
                for n in ready():
                    if len(running) >= parallelism:
                        break
                    submitted.add(n)
                    running[pool.submit(run, n)] = n
            if not running:
                break
            finished, _ = wait(list(running), timeout=0.5, return_when=FIRST_COMPLETED)
            for fut in finished:
                n = running.pop(fut)
                r = results[n]
                try:
                    r.status, r.message, r.elapsed, r.facts = fut.result()
                except Exception as e:  # only if emit itself failed
                    r.status, r.message = FAILED, _error_message(e)
                if r.status == DONE:
                    for s in g.successors(n):
                        remaining_deps[s] -= 1
                elif r.status == BLOCKED:
                    refused.add(n[0])
                    block_descendants(n)
                else:
                    skip_descendants(n, "failed")

    interrupted = False
    for n in order:
        r = results[n]
        if r.status == NOT_STARTED:
            interrupted = True
            r.message = "not started (interrupted)"
            emit(n, "interrupted", r.message)
    return ExecutionResult([results[n] for n in order], interrupted=interrupted,
                           kinds={c.address: c.kind for c in changes}, refused=refused)
