"""The engine's units over the phase graph: the guard protocol the executor calls, the
adapter that gives an `apply`-only engine one unit per step, and the phase graph
contracted by unit (planner.executor runs it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import networkx as nx

from planner.engines.base import Engine, StepEngine, Unit
from planner.phases import PlanOrderError, Step
from planner.plan import Action, Change


class StepGuard(Protocol):
    """What the executor asks before each step of a unit (planner.guards.Guards)."""

    def before(self, change: Change, action: Action, *, done: frozenset[Step],
               unit: Sequence[Step], planned: frozenset[Step]) -> Mapping[str, str]:
        """Facts for the journal; raises StepBlocked or StepFailed to refuse the step.
        `done`: the steps done before this unit; `unit`: the steps of this unit, in
        order; `planned`: every step of the plan."""
        ...


class _ApplyEngine(StepEngine):
    """An engine with only `apply(change, action)`: one unit per step."""

    def __init__(self, inner: Any):
        self.inner = inner
        self.name = str(getattr(inner, "name", "engine"))

    def apply(self, change: Change, action: Action) -> Mapping[str, str]:
        facts: Mapping[str, str] = self.inner.apply(change, action)
        return facts


def unit_engine(engine: Any) -> Engine:
    if callable(getattr(engine, "units", None)) and callable(getattr(engine, "run", None)):
        return engine  # type: ignore[no-any-return]
    return _ApplyEngine(engine)


def unit_graph(g: nx.DiGraph, units: Sequence[Unit]) -> nx.DiGraph:
    """The phase graph `g` contracted by `units` (networkx quotient graph): node = unit
    key, attribute `unit`. PlanOrderError when the units are not a partition of the
    steps or when the grouping makes a cycle."""
    seen: dict[Step, str] = {}
    by_key: dict[str, Unit] = {}
    for u in units:
        if u.key in by_key:
            raise PlanOrderError(f"the engine made two units named {u.key!r}")
        by_key[u.key] = u
        for s in u.steps:
            if s not in g:
                raise PlanOrderError(f"unit {u.key!r} holds a step the plan has not: "
                                     f"{s[1].value} {s[0]}")
            if s in seen:
                raise PlanOrderError(f"{s[1].value} {s[0]} is in two units: "
                                     f"{seen[s]!r} and {u.key!r}")
            seen[s] = u.key
    missing = [n for n in g if n not in seen]
    if missing:
        names = ", ".join(f"{a.value} {addr}" for addr, a in missing)
        raise PlanOrderError(f"the engine's units leave out steps: {names}")
    blocks = [frozenset(u.steps) for u in units if u.steps]
    q: nx.DiGraph = nx.quotient_graph(g, blocks, relabel=False)
    out: nx.DiGraph = nx.DiGraph()
    for block in q.nodes:
        key = seen[next(iter(block))]
        out.add_node(key, unit=by_key[key])
    out.add_edges_from((seen[next(iter(a))], seen[next(iter(b))])
                       for a, b in q.edges if a != b)
    try:
        cycle = nx.find_cycle(out)
    except nx.NetworkXNoCycle:
        return out
    names = " -> ".join(repr(a) for a, _ in cycle) + f" -> {cycle[0][0]!r}"
    raise PlanOrderError(f"the engine's units cannot be ordered (a grouping that makes a "
                         f"cycle): {names}; every step of a unit runs together, so no unit "
                         f"may both wait for and be waited for by another")
