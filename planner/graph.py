"""The dependency graph: a networkx DiGraph of addresses (DESIGN section 2).

An edge `u -> v` means v depends on u: u is created first and deleted last.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable

import networkx as nx

from planner.errors import TrainctlError
from planner.plan import ResourceType
from planner.spec import Instance, Spec


class GraphCycleError(TrainctlError):
    def __init__(self, cycle: list[str]):
        self.cycle = cycle
        super().__init__("dependency cycle: " + " -> ".join(cycle))


def address(rtype: ResourceType | str, *names: str) -> str:
    return ".".join((str(rtype), *names))


def parse_address(addr: str) -> tuple[ResourceType, tuple[str, ...]]:
    """`attachment.trainer.scratch` -> (ATTACHMENT, ("trainer", "scratch"))."""
    head, _, rest = addr.partition(".")
    rtype = ResourceType(head)
    names = tuple(rest.split(".")) if rest else ()
    expected = 2 if rtype in (ResourceType.ATTACHMENT, ResourceType.MOUNT, ResourceType.SYNC) else 1
    if len(names) != expected or not all(names):
        raise ValueError(f"malformed address {addr!r}")
    return rtype, names


def _landing_mount(instance: Instance, path: str) -> str | None:
    """The volume whose mount path holds `path` (longest prefix wins)."""
    best: tuple[int, str] | None = None
    for m in instance.mounts:
        mp = m.path.rstrip("/") or "/"
        inside = path == mp or path.startswith(mp.rstrip("/") + "/")
        if inside and (best is None or len(mp) > best[0]):
            best = (len(mp), m.volume)
    return best[1] if best else None


def sync_path(spec: Spec, instance: Instance, dataset_name: str) -> str | None:
    """Where sync.I.D lands on the instance, or None when the dataset has no sync step."""
    ds = spec.datasets[dataset_name]
    if ds.strategy == "local-cache":
        return ds.path or f"/data/{ds.name}"
    if ds.strategy == "existing-ebs":
        for m in instance.mounts:
            if m.volume == ds.volume:
                rel = (ds.path or "/").lstrip("/")
                return posixpath.normpath(posixpath.join(m.path, rel))
    return None


def build_graph(spec: Spec) -> nx.DiGraph:
    """Every address the spec implies, with dependency edges. Raises GraphCycleError."""
    g: nx.DiGraph = nx.DiGraph()

    def node(rtype: ResourceType, *names: str, **attrs: str) -> str:
        addr = address(rtype, *names)
        g.add_node(addr, type=rtype.value, name=".".join(names), **attrs)
        return addr

    for ds in spec.datasets.values():
        if ds.is_local:
            node(ResourceType.DATASET, ds.name)
    for vol in spec.volumes.values():
        node(ResourceType.VOLUME, vol.name)
    for ds in spec.datasets.values():
        if ds.strategy == "prewarmed-ebs" and ds.volume:
            pw = node(ResourceType.PREWARM, ds.name, volume=ds.volume, dataset=ds.name)
            g.add_edge(address(ResourceType.VOLUME, ds.volume), pw)
            if ds.is_local:
                g.add_edge(address(ResourceType.DATASET, ds.name), pw)
    for inst in spec.instances.values():
        i_addr = node(ResourceType.INSTANCE, inst.name)
        for m in inst.mounts:
            att = node(ResourceType.ATTACHMENT, inst.name, m.volume,
                       instance=inst.name, volume=m.volume)
            g.add_edge(i_addr, att)
            g.add_edge(address(ResourceType.VOLUME, m.volume), att)
            for ds in spec.datasets_on_volume(m.volume):
                if ds.strategy == "prewarmed-ebs":
                    g.add_edge(address(ResourceType.PREWARM, ds.name), att)
            mnt = node(ResourceType.MOUNT, inst.name, m.volume,
                       instance=inst.name, volume=m.volume)
            g.add_edge(att, mnt)
        for ds_name in inst.datasets:
            path = sync_path(spec, inst, ds_name)
            if path is None:
                continue
            s = node(ResourceType.SYNC, inst.name, ds_name, instance=inst.name, dataset=ds_name)
            landing = _landing_mount(inst, path)
            if landing is not None:
                g.add_edge(address(ResourceType.MOUNT, inst.name, landing), s)
            else:
                g.add_edge(i_addr, s)
            if spec.datasets[ds_name].is_local:
                g.add_edge(address(ResourceType.DATASET, ds_name), s)
    check_acyclic(g)
    return g


def check_acyclic(g: nx.DiGraph) -> None:
    try:
        cycle = nx.find_cycle(g)
    except nx.NetworkXNoCycle:
        return
    path = [u for u, _v in cycle] + [cycle[0][0]]
    raise GraphCycleError(path)


def apply_order(g: nx.DiGraph) -> list[list[str]]:
    """Topological generations, each sorted: every node after all it depends on."""
    return [sorted(gen) for gen in nx.topological_generations(g)]


def with_dependencies(g: nx.DiGraph, targets: Iterable[str]) -> set[str]:
    """The targets plus everything they depend on (for `--target`)."""
    keep: set[str] = set()
    for t in targets:
        keep.add(t)
        keep |= nx.ancestors(g, t)
    return keep
