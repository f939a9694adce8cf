"""The dependency graph: a networkx DiGraph of addresses (DESIGN section 2).

An edge `u -> v` means v depends on u: u is created first and deleted last.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from planner.errors import TrainctlError
from planner.plan import ResourceType
from planner.spec import Instance, Spec, Strategy

if TYPE_CHECKING:      # networkx is imported where a graph is built: `validate` needs none
    import networkx as nx


class GraphCycleError(TrainctlError):
    def __init__(self, cycle: list[str]):
        self.cycle = cycle
        super().__init__("dependency cycle: " + " -> ".join(cycle))


def address(rtype: ResourceType | str, *names: str) -> str:
    return ".".join((str(rtype), *names))


_RTYPES = {t.value: t for t in ResourceType}
_TWO_NAMES = frozenset({ResourceType.ATTACHMENT, ResourceType.MOUNT, ResourceType.SYNC})


def parse_address(addr: str) -> tuple[ResourceType, tuple[str, ...]]:
    """`attachment.trainer.scratch` -> (ATTACHMENT, ("trainer", "scratch"))."""
    head, _, rest = addr.partition(".")
    rtype = _RTYPES.get(head)
    if rtype is None:         # what ResourceType(head) raises; the dict is 10x faster
        raise ValueError(f"{head!r} is not a valid ResourceType")
    names = tuple(rest.split(".")) if rest else ()
    expected = 2 if rtype in _TWO_NAMES else 1
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
    if ds.strategy == Strategy.LOCAL_CACHE:
        return ds.path or f"/data/{ds.name}"
    if ds.strategy == Strategy.EXISTING_EBS:
        for m in instance.mounts:
            if m.volume == ds.volume:
                rel = (ds.path or "/").lstrip("/")
                return posixpath.normpath(posixpath.join(m.path, rel))
    return None


Op = tuple[str, str | None, dict[str, Any] | None]   # (node, None, attrs) | (u, v, None)


def _construction(spec: Spec) -> list[Op]:
    """The graph's nodes and edges, in the order they are added (stdlib only)."""
    ops: list[Op] = []

    def node(rtype: ResourceType, *names: str, **attrs: str) -> str:
        addr = address(rtype, *names)
        ops.append((addr, None, {"type": rtype.value, "name": ".".join(names), **attrs}))
        return addr

    def edge(u: str, v: str) -> None:
        ops.append((u, v, None))

    for ds in spec.datasets.values():
        if ds.is_local:
            node(ResourceType.DATASET, ds.name)
    for vol in spec.volumes.values():
        node(ResourceType.VOLUME, vol.name)
    for ds in spec.datasets.values():
        if ds.strategy == Strategy.PREWARMED_EBS and ds.volume:
            pw = node(ResourceType.PREWARM, ds.name, volume=ds.volume, dataset=ds.name)
            edge(address(ResourceType.VOLUME, ds.volume), pw)
            if ds.is_local:
                edge(address(ResourceType.DATASET, ds.name), pw)
    for inst in spec.instances.values():
        i_addr = node(ResourceType.INSTANCE, inst.name)
        for m in inst.mounts:
            att = node(ResourceType.ATTACHMENT, inst.name, m.volume,
                       instance=inst.name, volume=m.volume)
            edge(i_addr, att)
            edge(address(ResourceType.VOLUME, m.volume), att)
            for ds in spec.datasets_on_volume(m.volume):
                if ds.strategy == Strategy.PREWARMED_EBS:
                    edge(address(ResourceType.PREWARM, ds.name), att)
            mnt = node(ResourceType.MOUNT, inst.name, m.volume,
                       instance=inst.name, volume=m.volume)
            edge(att, mnt)
        for ds_name in inst.datasets:
            path = sync_path(spec, inst, ds_name)
            if path is None:
                ds = spec.datasets[ds_name]
                if ds.strategy == Strategy.DIRECT_S3 and ds.is_local:    # it reads the stage
                    edge(address(ResourceType.DATASET, ds_name), i_addr)
                continue
            s = node(ResourceType.SYNC, inst.name, ds_name, instance=inst.name, dataset=ds_name)
            landing = _landing_mount(inst, path)
            if landing is not None:
                edge(address(ResourceType.MOUNT, inst.name, landing), s)
            else:
                edge(i_addr, s)
            if spec.datasets[ds_name].is_local:
                edge(address(ResourceType.DATASET, ds_name), s)
    return ops


def data_location(spec: Spec, instance: Instance, dataset_name: str) -> str:
    """Where the instance reads the dataset: a path on it, or the S3 URI for direct-s3."""
    ds = spec.datasets[dataset_name]
    if ds.strategy == Strategy.DIRECT_S3:
        return ds.s3_uri
    if ds.strategy == Strategy.PREWARMED_EBS:
        mount = next((m for m in instance.mounts if m.volume == ds.volume), None)
        if mount is not None:
            rel = (ds.path or "/").lstrip("/")
            return posixpath.normpath(posixpath.join(mount.path, rel))
    return sync_path(spec, instance, dataset_name) or ds.s3_uri


def build_graph(spec: Spec) -> nx.DiGraph:
    """Every address the spec implies, with dependency edges. Raises GraphCycleError."""
    import networkx as nx

    g: nx.DiGraph = nx.DiGraph()
    for u, v, attrs in _construction(spec):
        if v is None:
            g.add_node(u, **(attrs or {}))
        else:
            g.add_edge(u, v)
    check_acyclic(g)
    return g


def check_spec_graph(spec: Spec) -> None:
    """build_graph's cycle check without building a networkx graph (for `validate`,
    which must start fast). Raises GraphCycleError."""
    import graphlib

    preds: dict[str, list[str]] = {}
    for u, v, _attrs in _construction(spec):
        if v is None:
            preds.setdefault(u, [])
        else:
            preds.setdefault(u, [])
            preds.setdefault(v, []).append(u)
    try:
        graphlib.TopologicalSorter(preds).prepare()
    except graphlib.CycleError as e:
        raise GraphCycleError(list(e.args[1])) from None


def check_acyclic(g: nx.DiGraph) -> None:
    import networkx as nx

    if nx.is_directed_acyclic_graph(g):    # fast; find_cycle only to name the cycle
        return
    try:
        cycle = nx.find_cycle(g)
    except nx.NetworkXNoCycle:
        return
    path = [u for u, _v in cycle] + [cycle[0][0]]
    raise GraphCycleError(path)


def apply_order(g: nx.DiGraph) -> list[list[str]]:
    """Topological generations, each sorted: every node after all it depends on."""
    import networkx as nx

    return [sorted(gen) for gen in nx.topological_generations(g)]


def with_dependencies(g: nx.DiGraph, targets: Iterable[str]) -> set[str]:
    """The targets plus everything they depend on (for `--target`)."""
    import networkx as nx

    keep: set[str] = set()
    for t in targets:
        keep.add(t)
        keep |= nx.ancestors(g, t)
    return keep
