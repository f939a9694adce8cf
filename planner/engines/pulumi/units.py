"""How the Pulumi engine groups a plan's steps into units, and the plans each stack pass
is checked against (pure: no pulumi, no AWS).

Units, in the order the phase graph runs them:
- the data plane's steps (dataset uploads, mounts and unmounts, syncs, prewarms), one
  unit per step, run by the direct data plane (a prewarm's temporary instance is never
  in Pulumi state), and so is the delete of a duplicate (no stack holds it);
- `pulumi compute teardown`: the compute stack without what this plan deletes or
  replaces (every DELETE step of an instance or an attachment);
- `pulumi storage`: the storage stack as the plan leaves it (every volume step);
- `pulumi compute`: the compute stack as the plan leaves it (every CREATE/UPDATE step of
  an instance or an attachment).
When that grouping would make a cycle (a create-before-delete replace of an instance
runs its create before its delete, which puts the build before the teardown), or leaves
the build unordered after the teardown or the storage pass (two passes on one stack at
once, or an instance launched before its volumes and role), the three stack units and
the prewarms become one unit, `pulumi stacks`, whose run keeps that order inside.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace

import networkx as nx

from planner.phases import Step, phase_graph
from planner.plan import DUPLICATE_MARK, Action, Block, Change, Plan, ResourceType, Rule

TEARDOWN, STORAGE, BUILD, STACKS = ("pulumi compute teardown", "pulumi storage",
                                    "pulumi compute", "pulumi stacks")
STACK_UNITS = (TEARDOWN, STORAGE, BUILD)
COMPUTE_TYPES = (ResourceType.INSTANCE, ResourceType.ATTACHMENT)
NOT_RUN = "not run in this pass (skipped, blocked or refused before it)"


def step_key(step: Step) -> str:
    return f"{step[1].value} {step[0]}"


def stack_unit(change: Change, action: Action) -> str | None:
    """The stack unit a step belongs to, or None for the data plane's (and for the delete
    of a duplicate, `volume.V@vol-...`, which no stack holds: the direct engine's)."""
    if DUPLICATE_MARK in change.address:
        return None
    if change.type == ResourceType.VOLUME:
        return STORAGE
    if change.type in COMPUTE_TYPES:
        return TEARDOWN if action == Action.DELETE else BUILD
    return None


# a stack unit that must come before another whenever both exist: the build needs the
# teardown's detaches and the storage pass's volumes and project role
REQUIRED_ORDER = ((TEARDOWN, BUILD), (STORAGE, BUILD))


def group(steps: Sequence[Step], changes: Mapping[str, Change]) -> dict[str, list[Step]]:
    """Unit key -> its steps (in the given order); see the module's docstring."""
    units: dict[str, list[Step]] = {}
    for step in steps:
        key = stack_unit(changes[step[0]], step[1]) or step_key(step)
        units.setdefault(key, []).append(step)
    if not _well_ordered(units, changes):
        merged: list[Step] = []
        for key in list(units):
            steps_of = units[key]
            if key in STACK_UNITS or changes[steps_of[0][0]].type == ResourceType.PREWARM:
                merged += units.pop(key)
        units[STACKS] = merged
    return units


def contract(units: Mapping[str, list[Step]], changes: Mapping[str, Change]) -> nx.DiGraph:
    """The phase graph contracted by `units` (steps in no unit keep their node)."""
    where: dict[Step, str] = {s: key for key, steps in units.items() for s in steps}
    g = phase_graph(changes.values())
    out: nx.DiGraph = nx.DiGraph()
    out.add_nodes_from(units)
    for a, b in g.edges:
        ua, ub = where.get(a, a), where.get(b, b)
        if ua != ub:
            out.add_edge(ua, ub)
    return out


def _well_ordered(units: Mapping[str, list[Step]], changes: Mapping[str, Change]) -> bool:
    """No cycle, and every REQUIRED_ORDER pair present is ordered by the graph (else two
    passes on one stack could run at once, or the build before what it needs)."""
    g = contract(units, changes)
    if not nx.is_directed_acyclic_graph(g):
        return False
    return all(nx.has_path(g, a, b) for a, b in REQUIRED_ORDER if a in units and b in units)


def passes_of(steps: Iterable[Step], changes: Mapping[str, Change]) -> dict[str, list[Step]]:
    """A stack unit's steps by pass (TEARDOWN, STORAGE, prewarm steps, BUILD)."""
    out: dict[str, list[Step]] = {}
    for step in steps:
        key = stack_unit(changes[step[0]], step[1]) or "data"
        out.setdefault(key, []).append(step)
    return out


def scope(plan: Plan, steps: Iterable[Step]) -> Plan:
    """The plan one pass is checked against: only the changes this pass carries out
    (so a pass may delete or replace only what its own steps delete or replace)."""
    mine = {address for address, _action in steps}
    return replace(plan, changes=tuple(c for c in plan.changes if c.address in mine))


def keep_only(plan: Plan) -> Plan:
    """The plan a prepare pass (protect dropped, imports) is checked against: nothing
    deleted or replaced, whatever the plan says."""
    return replace(plan, changes=tuple(c for c in plan.changes if not c.deletes))


def narrow(plan: Plan, dropped: Iterable[str]) -> Plan:
    """`plan` with the changes the executor did not hand over (skipped, blocked or refused
    by a guard) marked blocked: the stacks declare them as they are now."""
    out = set(dropped)
    return replace(plan, changes=tuple(
        replace(c, blocked_by=(*c.blocked_by, Block(Rule.DEPENDS_ON_BLOCKED, NOT_RUN)))
        if c.address in out and not c.blocked else c for c in plan.changes))
