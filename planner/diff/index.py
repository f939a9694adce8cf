"""The index built once before any pass: live resources by address (the oldest kept,
`import:` ids adopted, the rest duplicates) and the temporary instances left behind."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any

import networkx as nx

from planner import leftovers
from planner.diff.base import INSTANCE, VOLUME, cleanup_address, valid_address
from planner.diff.context import DiffContext
from planner.errors import TrainctlError
from planner.live import TAG_PROJECT, LiveInstance, LiveState, LiveVolume
from planner.plan import PlanOptions
from planner.rules import GONE_INSTANCE_STATES, Overrides
from planner.spec import Spec


class _Index:
    """The mutable scratch the index is built in (frozen into the DiffContext)."""

    def __init__(self, spec: Spec, live: LiveState, overrides: Overrides):
        self.spec, self.live, self.project = spec, live, spec.project
        self.volumes: dict[str, Any] = {}
        self.instances: dict[str, Any] = {}
        self.adopting: set[str] = set()
        self.groups: dict[str, tuple[Any, ...]] = {}
        self.dups: dict[str, leftovers.Duplicate] = {}
        named = overrides.allow_delete
        vol_groups = leftovers.group_by_address(
            live.volumes, self.project, lambda a: valid_address(a, VOLUME))
        inst_groups = leftovers.group_by_address(
            live.instances, self.project, lambda a: valid_address(a, INSTANCE))
        for addr, group in vol_groups.items():
            self.volumes[addr] = leftovers.pick_primary(group, named)
        for addr, group in inst_groups.items():
            self.instances[addr] = leftovers.pick_primary(group, named)
        self.imports()
        self.duplicates(vol_groups, self.volumes)
        self.duplicates(inst_groups, self.instances)

    def imports(self) -> None:
        """`import:` ids: the resource named moves to the spec's address."""
        for name, vs in self.spec.volumes.items():
            if vs.import_id:
                self.adopt(f"volume.{name}", vs.import_id, self.live.volume_by_id(vs.import_id),
                           self.volumes)
        for name, ins in self.spec.instances.items():
            if ins.import_id:
                found = self.live.instance_by_id(ins.import_id)
                if found is not None and found.state in GONE_INSTANCE_STATES:
                    found = None
                self.adopt(f"instance.{name}", ins.import_id, found, self.instances)

    def adopt(self, addr: str, rid: str, found: LiveVolume | LiveInstance | None,
              index: dict[str, Any]) -> None:
        if found is None:
            if addr in index:          # adopted earlier: the tag carries it now
                return
            raise TrainctlError(f"{addr}: import: {rid} is not in the live state of "
                                f"{self.live.region}")
        owner = found.tags.get(TAG_PROJECT)
        if owner is not None and owner != self.project:
            raise TrainctlError(f"{addr}: import: {rid} belongs to trainctl project {owner}; "
                                f"remove it there first")
        for other, res in list(index.items()):
            if res.id == found.id and other != addr:
                del index[other]
        index[addr] = found
        if not (found.tags.get(TAG_PROJECT) == self.project and found.address == addr):
            self.adopting.add(addr)

    def duplicates(self, groups: Mapping[str, list[Any]], index: dict[str, Any]) -> None:
        """Every live resource carrying an address besides the one kept there."""
        kept = {r.id for r in index.values()}
        imported = {f"volume.{n}": v.import_id for n, v in self.spec.volumes.items()}
        imported |= {f"instance.{n}": i.import_id for n, i in self.spec.instances.items()}
        for addr, group in groups.items():
            rest = [r for r in group if r.id not in kept]
            if addr not in index and rest:          # its oldest was imported elsewhere
                index[addr] = rest.pop(0)
                kept.add(index[addr].id)
            if not rest:
                continue
            primary = index[addr]
            is_import = imported.get(addr) == primary.id
            self.groups[addr] = (primary, *rest)
            for r in rest:
                dup = leftovers.Duplicate(addr, r, primary, is_import)
                self.dups[dup.change_address] = dup


def _cleanups(live: LiveState, temporaries: list[LiveInstance],
              volumes: Mapping[str, LiveVolume]) -> dict[str, tuple[str, ...]]:
    """`prewarm.D@i-...` -> the managed volumes that temporary instance holds."""
    out: dict[str, tuple[str, ...]] = {}
    for t in temporaries:
        held = leftovers.held_volumes(live, t.id, volumes)
        out[cleanup_address(t)] = tuple(
            a for a, v in volumes.items() if v in held)
    return out


def build_context(spec: Spec, graph: nx.DiGraph, live: LiveState, *, now: datetime,
                  options: PlanOptions, overrides: Overrides,
                  known_volumes: Mapping[str, str] | None,
                  removed_spend_usd: float | None) -> DiffContext:
    """The frozen context every pass reads (raises TrainctlError for a bad `import:`)."""
    ix = _Index(spec, live, overrides)
    temporaries = leftovers.temporary_instances(live)
    return DiffContext(
        spec=spec, graph=graph, live=live, now=now, options=options, overrides=overrides,
        known_volumes=MappingProxyType(dict(known_volumes or {})),
        removed_spend_usd=removed_spend_usd,
        volumes=MappingProxyType(ix.volumes), instances=MappingProxyType(ix.instances),
        adopting=frozenset(ix.adopting), groups=MappingProxyType(ix.groups),
        dups=MappingProxyType(ix.dups), temporaries=tuple(temporaries),
        cleanups=MappingProxyType(_cleanups(live, temporaries, ix.volumes)),
    )
