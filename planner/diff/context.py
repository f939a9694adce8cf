"""The diff's frozen input: spec, graph, live state, clock reading, options, and the
indexes built once from them (planner.diff.index). Passes read it and never change it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import networkx as nx

from planner import leftovers
from planner.graph import parse_address
from planner.live import TAG_PROJECT, LiveInstance, LiveState, LiveVolume
from planner.plan import PlanOptions, ResourceType
from planner.rules import Overrides
from planner.spec import Spec


@dataclass(frozen=True)
class DiffContext:
    spec: Spec
    graph: nx.DiGraph
    live: LiveState
    now: datetime
    options: PlanOptions
    overrides: Overrides
    known_volumes: Mapping[str, str]            # address -> id the cost ledger last saw
    removed_spend_usd: float | None              # what the ledger's removed resources cost
    volumes: Mapping[str, LiveVolume]            # address -> the live volume kept there
    instances: Mapping[str, LiveInstance]        # address -> the live instance kept there
    adopting: frozenset[str]                     # imported, not yet tagged as ours
    groups: Mapping[str, tuple[Any, ...]]        # address -> all its live resources (dups)
    dups: Mapping[str, leftovers.Duplicate]      # `volume.V@ID` -> the duplicate
    temporaries: tuple[LiveInstance, ...]        # temporary prewarm instances still live
    cleanups: Mapping[str, tuple[str, ...]]      # `prewarm.D@i-...` -> volumes it holds

    @property
    def project(self) -> str:
        return self.spec.project

    @property
    def destroy(self) -> bool:
        return self.options.destroy

    def ours(self, tags: Mapping[str, str]) -> bool:
        return tags.get(TAG_PROJECT) == self.project

    @property
    def instances_by_id(self) -> dict[str, str]:
        """Live instance id -> address, for instances already ours (not being adopted)."""
        return {i.id: a for a, i in self.instances.items() if a not in self.adopting}

    def live_resource(self, addr: str) -> LiveVolume | LiveInstance | None:
        """The live resource a volume/instance change acts on (a duplicate's own)."""
        dup = self.dups.get(addr)
        if dup is not None:
            return dup.resource
        return (self.volumes if addr.startswith("volume.") else self.instances).get(addr)

    def nodes_of(self, rtype: ResourceType) -> list[tuple[str, tuple[str, ...]]]:
        """The spec graph's nodes of RTYPE, sorted: (address, names)."""
        out = []
        for node in self.graph.nodes:
            t, names = parse_address(node)
            if t is rtype:
                out.append((node, names))
        return sorted(out)
