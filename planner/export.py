"""Graph exports: Graphviz DOT, Mermaid, node-link JSON, and SVG/PNG through `dot`.

Pure functions of a dependency graph (planner.graph) and, optionally, a plan whose
actions colour the nodes. Only `render_image` runs a program (Graphviz's `dot`).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterable

import networkx as nx

from planner.errors import TrainctlError
from planner.plan import Action, Change, ChangeKind, Plan, ResourceType

ACTIONS = ("create", "update", "replace", "delete", "no-op")

# (fill, border) per action; fills are light enough for black text.
ACTION_COLORS: dict[str, tuple[str, str]] = {
    "create": ("#b7eb8f", "#389e0d"),
    "update": ("#fff566", "#d4b106"),
    "replace": ("#ffc069", "#d46b08"),
    "delete": ("#ff7875", "#cf1322"),
    "no-op": ("#d9d9d9", "#8c8c8c"),
}
BLOCKED_BORDER = "#a8071a"
ACTION_SYMBOLS = {"create": "+", "update": "~", "replace": "-/+", "delete": "-", "no-op": "="}

DOT_SHAPES = {
    "dataset": "folder",
    "volume": "cylinder",
    "prewarm": "component",
    "instance": "box3d",
    "attachment": "ellipse",
    "mount": "hexagon",
    "sync": "parallelogram",
}
# Mermaid node shapes: (open, close) around the quoted label.
MERMAID_SHAPES = {
    "dataset": ("[/", "/]"),
    "volume": ("[(", ")]"),
    "prewarm": ("[[", "]]"),
    "instance": ("[", "]"),
    "attachment": ("([", "])"),
    "mount": ("{{", "}}"),
    "sync": (">", "]"),
}
# Words that break a Mermaid flowchart when used as a node id.
_MERMAID_RESERVED = {
    "end", "graph", "flowchart", "subgraph", "style", "class", "classdef", "click",
    "linkstyle", "direction", "default",
}

_IMAGE_FORMATS = ("svg", "png")
NO_DOT_MESSAGE = (
    "Graphviz's `dot` is not installed: apt-get install graphviz (Debian/Ubuntu), "
    "brew install graphviz (macOS); or use --format dot|mermaid|json"
)


def _type_of(addr: str) -> str:
    head = addr.partition(".")[0]
    return head if head in ResourceType._value2member_map_ else "unknown"


def _add_address(g: nx.DiGraph, addr: str, rtype: str | None = None) -> None:
    if addr not in g:
        g.add_node(addr, type=rtype or _type_of(addr), name=addr.partition(".")[2])


def graph_from_plan(plan: Plan) -> nx.DiGraph:
    """The dependency graph as the plan records it (changes and their depends_on),
    for when the spec is not at hand (`trainctl show --markdown`)."""
    g: nx.DiGraph = nx.DiGraph()
    for c in plan.changes:
        _add_address(g, c.address, c.type.value)
    for c in plan.changes:
        for dep in c.depends_on:
            _add_address(g, dep)
            g.add_edge(dep, c.address)
    return g


def with_plan(g: nx.DiGraph, plan: Plan | None) -> nx.DiGraph:
    """A copy of `g` with the plan's actions as node attributes. Changes that are not
    in `g` (deletes of resources dropped from the spec) are added with their edges."""
    out: nx.DiGraph = g.copy()
    if plan is None:
        return out
    missing = [c for c in plan.changes if c.address not in out]
    for c in missing:
        _add_address(out, c.address, c.type.value)
    for c in missing:
        for dep in c.depends_on:
            _add_address(out, dep)
            out.add_edge(dep, c.address)
    for c in plan.changes:
        out.nodes[c.address].update(
            action=c.kind,
            reason=c.reason.value,
            blocked_by=[b.rule.value for b in c.blocked_by],
        )
    return out


def _changes(plan: Plan | None) -> dict[str, Change]:
    return {c.address: c for c in plan.changes} if plan else {}


def change_symbol(c: Change) -> str:
    """Terraform's symbol: `+ ~ -/+ -`, and `+/-` for a create-before-delete replace."""
    if c.kind is ChangeKind.REPLACE and c.actions[0] is Action.CREATE:
        return "+/-"
    return ACTION_SYMBOLS[c.kind]


def _blocked_rules(c: Change) -> str:
    return ", ".join(dict.fromkeys(b.rule.value for b in c.blocked_by))


# --- DOT -----------------------------------------------------------------------------


def _dot_escape(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


def _dot_q(s: str) -> str:
    return '"' + _dot_escape(s) + '"'


def _dot_label(lines: Iterable[str]) -> str:
    return '"' + "\\n".join(_dot_escape(x) for x in lines) + '"'


def _dot_attrs(attrs: dict[str, str]) -> str:
    return "[" + ", ".join(f"{k}={v}" for k, v in attrs.items()) + "]"


def to_dot(g: nx.DiGraph, plan: Plan | None = None) -> str:
    """Graphviz DOT: one node per address, shaped by type; with a plan, filled by action
    (blocked changes get a bold red border and their rule) plus a legend."""
    g = with_plan(g, plan)
    changes = _changes(plan)
    title = f"trainctl: {plan.project} ({plan.region})" if plan else "trainctl dependency graph"
    out = [
        "digraph trainctl {",
        f"  graph [rankdir=LR, fontname=Helvetica, labelloc=t, label={_dot_q(title)}];",
        '  node [fontname=Helvetica, fontsize=11, style=filled, fillcolor="#ffffff"];',
        '  edge [color="#595959"];',
    ]
    for addr in sorted(g.nodes):
        data = g.nodes[addr]
        rtype = str(data.get("type", _type_of(addr)))
        lines = [rtype, str(data.get("name") or addr)]
        attrs = {"shape": DOT_SHAPES.get(rtype, "box")}
        c = changes.get(addr)
        if c is not None:
            fill, border = ACTION_COLORS[c.kind]
            lines.append(f"{change_symbol(c)} {c.kind}")
            attrs.update(fillcolor=_dot_q(fill), color=_dot_q(border))
            if c.blocked:
                lines.append(f"blocked: {_blocked_rules(c)}")
                attrs.update(color=_dot_q(BLOCKED_BORDER), penwidth="3",
                             style='"filled,bold"')
        attrs = {"label": _dot_label(lines), **attrs}
        out.append(f"  {_dot_q(addr)} {_dot_attrs(attrs)};")
    for u, v in sorted(g.edges):
        out.append(f"  {_dot_q(u)} -> {_dot_q(v)};")
    if plan is not None:
        out += [
            "  subgraph cluster_legend {",
            '    label="legend"; style=dashed; color="#8c8c8c";',
        ]
        for action in ACTIONS:
            fill, border = ACTION_COLORS[action]
            out.append(f"    {_dot_q('_legend_' + action)} "
                       f"[label={_dot_q(action)}, shape=box, fillcolor={_dot_q(fill)}, "
                       f"color={_dot_q(border)}];")
        out.append(f'    "_legend_blocked" [label="blocked (rule)", shape=box, '
                   f'fillcolor="#ffffff", color="{BLOCKED_BORDER}", penwidth=3, '
                   f'style="filled,bold"];')
        out.append("  }")
    out.append("}")
    return "\n".join(out) + "\n"


# --- Mermaid -------------------------------------------------------------------------


def mermaid_ids(nodes: Iterable[str]) -> dict[str, str]:
    """Address -> Mermaid-safe id ([A-Za-z0-9_], unique, never a keyword)."""
    ids: dict[str, str] = {}
    used: set[str] = set()
    for addr in sorted(nodes):
        base = re.sub(r"[^A-Za-z0-9_]", "_", addr) or "n"
        if base[0].isdigit() or base.lower() in _MERMAID_RESERVED:
            base = "n_" + base
        nid, i = base, 2
        while nid in used:
            nid, i = f"{base}_{i}", i + 1
        used.add(nid)
        ids[addr] = nid
    return ids


def _mermaid_text(s: str) -> str:
    return (s.replace("&", "#amp;").replace('"', "#quot;")
            .replace("<", "#lt;").replace(">", "#gt;").replace("\n", " "))


def _mermaid_class(action: str, blocked: bool) -> str:
    return "act_" + action.replace("-", "") + ("_blocked" if blocked else "")


def to_mermaid(g: nx.DiGraph, plan: Plan | None = None) -> str:
    """A Mermaid `flowchart LR` (GitHub renders it in Markdown); with a plan, nodes get
    one class per action, and blocked nodes a thick red border and their rule."""
    g = with_plan(g, plan)
    changes = _changes(plan)
    ids = mermaid_ids(g.nodes)
    out = ["flowchart LR"]
    for addr in sorted(g.nodes):
        rtype = str(g.nodes[addr].get("type", _type_of(addr)))
        parts = [_mermaid_text(addr)]
        c = changes.get(addr)
        if c is not None:
            parts.append(_mermaid_text(f"{change_symbol(c)} {c.kind}"))
            if c.blocked:
                parts.append(_mermaid_text(f"blocked: {_blocked_rules(c)}"))
        opening, closing = MERMAID_SHAPES.get(rtype, ("[", "]"))
        out.append(f'  {ids[addr]}{opening}"{"<br/>".join(parts)}"{closing}')
    for u, v in sorted(g.edges):
        out.append(f"  {ids[u]} --> {ids[v]}")
    if plan is not None:
        for action in ACTIONS:
            fill, border = ACTION_COLORS[action]
            out.append(f"  classDef {_mermaid_class(action, False)} "
                       f"fill:{fill},stroke:{border},color:#000")
            out.append(f"  classDef {_mermaid_class(action, True)} "
                       f"fill:{fill},stroke:{BLOCKED_BORDER},stroke-width:4px,color:#000")
        members: dict[str, list[str]] = {}
        for addr, c in sorted(changes.items()):
            members.setdefault(_mermaid_class(c.kind, c.blocked), []).append(ids[addr])
        for cls, node_ids in sorted(members.items()):
            out.append(f"  class {','.join(node_ids)} {cls}")
    return "\n".join(out) + "\n"


# --- JSON ----------------------------------------------------------------------------


def to_json(g: nx.DiGraph, plan: Plan | None = None) -> str:
    """networkx node-link JSON (edges under "edges"); with a plan, nodes carry
    `action`, `reason` and `blocked_by`. Round-trips through
    `networkx.node_link_graph(data, edges="edges")`."""
    data = nx.node_link_data(with_plan(g, plan), edges="edges")
    data["nodes"].sort(key=lambda n: n["id"])
    data["edges"].sort(key=lambda e: (e["source"], e["target"]))
    return json.dumps(data, indent=2, sort_keys=True, default=str) + "\n"


# --- images --------------------------------------------------------------------------


def render_image(dot: str, fmt: str) -> bytes:
    """Render DOT text to SVG or PNG with Graphviz's `dot`."""
    if fmt not in _IMAGE_FORMATS:
        raise TrainctlError(f"image format must be one of {', '.join(_IMAGE_FORMATS)}, "
                            f"not {fmt!r}")
    exe = shutil.which("dot")
    if exe is None:
        raise TrainctlError(NO_DOT_MESSAGE)
    try:
        proc = subprocess.run([exe, f"-T{fmt}"], input=dot.encode(), capture_output=True,
                              timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise TrainctlError(f"Graphviz's `dot` failed: {e}") from None
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        raise TrainctlError(
            f"Graphviz's `dot` failed (exit {proc.returncode}): "
            f"{err[0] if err else 'no message'}"
        )
    return proc.stdout
