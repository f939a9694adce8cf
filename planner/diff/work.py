"""The one mutable thing of a diff: the work set the passes add changes, blocks and
results to, in the order planner.diff.PASSES runs them."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import networkx as nx

from planner.diff.base import CREATE, UPDATE
from planner.diff.context import DiffContext
from planner.payloads import VolumePayload
from planner.plan import Block, Change, CostSummary, DataLocation, Expiry, PlanWarning


@dataclass
class WorkSet:
    changes: dict[str, Change] = field(default_factory=dict)   # address -> change
    graph: nx.DiGraph | None = None        # the spec's graph + leftovers' edges (full_graph)
    keep: set[str] | None = None           # what --target keeps (None: everything)
    ordered: tuple[Change, ...] = ()       # the plan's changes, ordered, blocks propagated
    cost: CostSummary | None = None
    warnings: list[PlanWarning] = field(default_factory=list)
    spec_digest: str = ""
    live_digest: str = ""
    expiries: tuple[Expiry, ...] = ()
    data_locations: tuple[DataLocation, ...] = ()

    def add(self, change: Change) -> None:
        self.changes[change.address] = change

    def set_blocks(self, addr: str, blocks: tuple[Block, ...]) -> None:
        """Replace the blocks of the change at ADDR (kept as it is when they are equal)."""
        c = self.changes[addr]
        if blocks != c.blocked_by:
            self.changes[addr] = replace(c, blocked_by=blocks)

    def add_blocks(self, addr: str, blocks: tuple[Block, ...]) -> None:
        c = self.changes[addr]
        self.changes[addr] = replace(c, blocked_by=c.blocked_by + blocks)

    def fresh(self, addr: str) -> bool:
        """Created, or replaced (not blocked), in this plan: nothing live carries over."""
        c = self.changes.get(addr)
        return c is not None and CREATE in c.actions and not c.blocked

    def grew(self, addr: str) -> bool:
        c = self.changes.get(addr)
        return (c is not None and c.actions == (UPDATE,) and not c.blocked
                and isinstance(c.after, VolumePayload) and c.after.has("size_gib"))

    def live_id(self, ctx: DiffContext, addr: str) -> str | None:
        """The id of the live resource at `addr` that survives this plan, if any."""
        res = ctx.volumes.get(addr) if addr.startswith("volume.") else ctx.instances.get(addr)
        return None if res is None or self.fresh(addr) else res.id
