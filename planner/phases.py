"""The phase DAG of a plan: pure, shared by the diff (which blocks what depends on a
blocked change) and the executor (which runs it).

Each non-no-op change becomes one or two phase nodes, `(address, action)`: a `delete`
phase when its actions contain "delete", and a `create` or `update` phase. For a
structural dependency u -> v (v depends on u): forward(u) before forward(v) and
delete(v) before delete(u). A replace runs its two phases in the order of its actions.
"""

from __future__ import annotations

from collections.abc import Iterable

import networkx as nx

from planner.errors import TrainctlError
from planner.plan import Action, Change

Step = tuple[str, Action]          # (address, CREATE | UPDATE | DELETE)


class PlanOrderError(TrainctlError):
    """The plan's phases cannot be ordered (a dependency cycle between phases)."""


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
