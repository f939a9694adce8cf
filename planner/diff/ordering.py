"""The order of the plan: the full graph (the spec's, plus what only live resources
need), --target, and the changes sorted with their dependencies and blocks propagated."""

from __future__ import annotations

import difflib
from dataclasses import replace

import networkx as nx

from planner import rules
from planner.diff.base import ATTACHMENT, INSTANCE, MOUNT
from planner.diff.context import DiffContext
from planner.diff.work import WorkSet
from planner.errors import TrainctlError
from planner.graph import parse_address, with_dependencies
from planner.live import LiveVolume
from planner.plan import Change, Reason
from planner.rules import ATTACHED_STATES


def inferred_dependencies(addr: str) -> list[str]:
    """Structural dependencies of an address that is not in the spec's graph."""
    rtype, names = parse_address(addr)
    if rtype is ATTACHMENT:
        return [f"instance.{names[0]}", f"volume.{names[1]}"]
    if rtype is MOUNT:
        return [f"attachment.{names[0]}.{names[1]}"]
    return []


def leftover_edges(ctx: DiffContext, work: WorkSet, g: nx.DiGraph) -> None:
    """A temporary instance's cleanup runs before its volumes are deleted or attached
    elsewhere; a duplicate volume is deleted after the instance it is attached to
    (when that instance goes too): its delete "depends" on the volume, as attachments
    do."""
    for addr, held in ctx.cleanups.items():    # detach before the volume goes, and
        for v_addr in held:                      # before anything else attaches it
            g.add_edge(v_addr, addr)
            for after in list(ctx.graph.successors(v_addr)) if v_addr in ctx.graph else ():
                g.add_edge(addr, after)
    going = {c.id: a for a, c in work.changes.items()
             if c.type is INSTANCE and c.deletes and c.id}
    for addr, dup in ctx.dups.items():
        if isinstance(dup.resource, LiveVolume):
            for a in dup.resource.attachments:
                if a.instance_id in going and a.state in ATTACHED_STATES:
                    g.add_edge(addr, going[a.instance_id])


def full_graph(ctx: DiffContext, work: WorkSet) -> None:
    """work.graph: the spec's graph plus every change's address, inferred edges for
    those not in the spec, and the leftovers' edges (temporary cleanups, duplicates)."""
    g: nx.DiGraph = ctx.graph.copy()
    for addr in work.changes:
        if addr not in ctx.graph:
            g.add_node(addr)
            for dep in inferred_dependencies(addr):
                g.add_edge(dep, addr)
    leftover_edges(ctx, work, g)
    work.graph = g


def _unknown_targets(unknown: list[str], valid: list[str]) -> TrainctlError:
    lines = []
    for t in unknown:
        close = difflib.get_close_matches(t, valid, n=5, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else (
            f"; valid addresses: {', '.join(valid[:20])}" + (" ..." if len(valid) > 20 else ""))
        lines.append(f"--target {t}: no such address{hint}")
    return TrainctlError("\n".join(lines))


def targets(ctx: DiffContext, work: WorkSet) -> None:
    """work.keep: what --target keeps (an unknown address is an error with hints)."""
    g, wanted = work.graph, ctx.options.targets
    assert g is not None, "full_graph runs before targets"
    if not wanted:
        return
    valid = sorted(set(g.nodes) | set(work.changes))
    unknown = [t for t in wanted if t not in valid]
    if unknown:
        raise _unknown_targets(unknown, valid)
    if ctx.destroy:                   # Terraform's destroy -target: it and its dependents,
        work.keep = set(wanted).union(  # never what it depends on
            *(nx.descendants(g, t) for t in wanted if t in g))
        return
    keep = with_dependencies(g, wanted)
    for t in wanted:                  # deletes below a target must run before it
        keep |= {d for d in nx.descendants(g, t)
                 if d in work.changes and work.changes[d].deletes}
    work.keep = keep


def order(ctx: DiffContext, work: WorkSet) -> None:
    """work.ordered: the kept changes with their dependencies, deletes of what left the
    spec last, else by graph generation and address; blocks propagated to dependents."""
    g, keep = work.graph, work.keep
    assert g is not None, "full_graph runs before order"
    present = {a for a in work.changes if keep is None or a in keep}
    gen = {n: i for i, layer in enumerate(nx.topological_generations(g)) for n in layer}
    out: list[Change] = []
    for addr in present:
        deps = sorted(p for p in g.predecessors(addr) if p in present)
        out.append(replace(work.changes[addr], depends_on=tuple(deps)))
    work.ordered = rules.propagate_blocks(tuple(sorted(out, key=lambda c: (
        c.reason is Reason.DELETE_BECAUSE_NOT_IN_SPEC, gen.get(c.address, 0), c.address))))
