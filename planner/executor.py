"""Carry a plan out: a DAG of phases run on a bounded thread pool.

Each non-no-op change becomes one or two phase nodes, `(address, action)`: a `delete`
phase when its actions contain "delete", and a `create` or `update` phase. For a
structural dependency u -> v (v depends on u): forward(u) before forward(v) and
delete(v) before delete(u). A replace runs its two phases in the order of its actions.

A phase starts as soon as every phase it depends on is done. Blocked changes never reach
the engine; they and failed phases make every phase downstream of them "skipped".
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

import networkx as nx

from planner.engines.base import Engine, StepFailed
from planner.errors import TrainctlError
from planner.journal import Journal
from planner.plan import Action, Change, Plan

DONE = "done"
FAILED = "failed"
SKIPPED = "skipped"
NOT_STARTED = "not-started"
BLOCKED = "blocked"
STATUSES = (DONE, FAILED, SKIPPED, NOT_STARTED, BLOCKED)

Step = tuple[str, Action]          # (address, CREATE | UPDATE | DELETE)


class PlanOrderError(TrainctlError):
    """The plan's phases cannot be ordered (a dependency cycle between phases)."""


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


@dataclass
class ExecutionResult:
    steps: list[StepResult]
    interrupted: bool = False

    def by_status(self, status: str) -> list[StepResult]:
        return [s for s in self.steps if s.status == status]

    def step(self, address: str, action: Action | str) -> StepResult:
        for s in self.steps:
            if s.address == address and s.action == action:
                return s
        raise KeyError((address, action))

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
    def ok(self) -> bool:
        return not self.interrupted and not self.by_status(FAILED)

    def summary_line(self) -> str:
        c = self.counts
        line = (f"Apply: {c[DONE]} done, {c[FAILED]} failed, {c[SKIPPED]} skipped, "
                f"{c[BLOCKED]} blocked.")
        if c[NOT_STARTED]:
            line += f" {c[NOT_STARTED]} not started (interrupted)."
        return line


def phases_of(change: Change) -> list[Action]:
    """The engine calls a change needs, in order (empty for a no-op)."""
    return [a for a in change.actions if a != Action.NOOP]


def _forward(change: Change) -> Action | None:
    for a in change.actions:
        if a in (Action.CREATE, Action.UPDATE):
            return a
    return None


def phase_graph(changes: Iterable[Change]) -> nx.DiGraph:
    """The phase DAG of every non-no-op change (blocked ones included, marked `blocked`).

    Node attributes: `change` (the Change), `blocked` (bool). Dependencies through no-op
    changes count: u -> w (no-op) -> v orders u's phases before v's.
    """
    changes = list(changes)
    by_addr = {c.address: c for c in changes}
    structural: nx.DiGraph = nx.DiGraph()
    structural.add_nodes_from(by_addr)
    for c in changes:
        for dep in c.depends_on:
            if dep in by_addr and dep != c.address:
                structural.add_edge(dep, c.address)

    g: nx.DiGraph = nx.DiGraph()
    active = [c for c in changes if phases_of(c)]
    for c in active:
        phases = phases_of(c)
        for a in phases:
            g.add_node((c.address, a), change=c, blocked=c.blocked)
        if len(phases) == 2:
            g.add_edge((c.address, phases[0]), (c.address, phases[1]))
    active_addrs = {c.address for c in active}
    for v in active:
        try:
            ancestors = nx.ancestors(structural, v.address)
        except nx.NetworkXError:
            ancestors = set()
        for u_addr in ancestors & active_addrs:
            u = by_addr[u_addr]
            fu, fv = _forward(u), _forward(v)
            if fu is not None and fv is not None:
                g.add_edge((u.address, fu), (v.address, fv))
            if u.deletes and v.deletes:
                g.add_edge((v.address, Action.DELETE), (u.address, Action.DELETE))
            if fu is None and u.deletes and fv is not None:
                # a pure delete that v needs gone first (a temporary instance's cleanup
                # frees the volume v attaches): delete(u) before forward(v)
                g.add_edge((u.address, Action.DELETE), (v.address, fv))
    try:
        cycle = nx.find_cycle(g)
    except nx.NetworkXNoCycle:
        return g
    names = " -> ".join(f"{a.value} {addr}" for (addr, a), _ in cycle)
    raise PlanOrderError(f"cannot order the plan's steps: cycle {names}")


def step_order(g: nx.DiGraph) -> list[Step]:
    """A deterministic topological order of the phase DAG (for display and the result)."""
    return list(nx.lexicographical_topological_sort(g, key=lambda n: f"{n[0]} {n[1].value}"))


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
    changes = plan.changes if isinstance(plan, Plan) else tuple(plan)
    g = phase_graph(changes)
    order = step_order(g)
    position = {n: i for i, n in enumerate(order)}
    results: dict[Step, StepResult] = {n: StepResult(n[0], n[1]) for n in order}
    stop = stop or threading.Event()
    emit_lock = threading.Lock()

    def emit(step: Step, event: str, message: str = "", elapsed: float | None = None,
             facts: Mapping[str, str] | None = None) -> None:
        if journal is not None:
            journal.event(step[0], step[1].value, event, message, facts)
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

    # Blocked phases: recorded, never run; everything downstream is skipped.
    for n in order:
        if g.nodes[n]["blocked"]:
            r = results[n]
            r.status = BLOCKED
            r.message = "; ".join(b.message for b in g.nodes[n]["change"].blocked_by)
            emit(n, "skipped", f"blocked: {r.message}")
    for n in order:
        if g.nodes[n]["blocked"]:
            skip_descendants(n, "blocked")

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
                else:
                    skip_descendants(n, "failed")

    interrupted = False
    for n in order:
        r = results[n]
        if r.status == NOT_STARTED:
            interrupted = True
            r.message = "not started (interrupted)"
            emit(n, "interrupted", r.message)
    return ExecutionResult([results[n] for n in order], interrupted=interrupted)
