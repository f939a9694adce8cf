"""Graph exports (DOT, Mermaid, node-link JSON, SVG/PNG) and `trainctl graph`."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import MappingProxyType

import networkx as nx
import pydot
import pytest
from conftest import EXAMPLES, run_cli

from planner import export
from planner.errors import TrainctlError
from planner.export import (
    ACTION_COLORS,
    BLOCKED_BORDER,
    NO_DOT_MESSAGE,
    graph_from_plan,
    mermaid_ids,
    render_image,
    to_dot,
    to_json,
    to_mermaid,
)
from planner.graph import build_graph
from planner.plan import (
    Action,
    Block,
    Change,
    Plan,
    Reason,
    ResourceType,
    Rule,
    plan_to_json,
)
from planner.spec import Dataset, Instance, Mount, Spec, Volume

AZ = "us-east-1a"


def make_spec() -> Spec:
    """Every resource type: a local dataset (upload), a prewarmed one, a local-cache sync,
    an existing-ebs verify, two instances sharing a read-only volume."""
    datasets = {
        "imagenet": Dataset("imagenet", "s3://acme-datasets/imagenet/", "prewarmed-ebs",
                            volume="imagenet-cache", path="/"),
        "tokens": Dataset("tokens", "./data/tokens", "local-cache",
                          stage="s3://acme-staging/tokens/", path="/scratch/tokens"),
        "eval": Dataset("eval", "s3://acme-datasets/eval/", "existing-ebs",
                        volume="imagenet-cache", path="/eval"),
    }
    volumes = {
        "imagenet-cache": Volume("imagenet-cache", 500, AZ, persistent=True),
        "scratch": Volume("scratch", 200, AZ),
        "scratch-2": Volume("scratch-2", 200, AZ),
    }
    instances = {
        "trainer": Instance(
            "trainer", "g5.2xlarge", "ami-0123456789abcdef0", AZ,
            mounts=(Mount("imagenet-cache", "/dev/sdf", "/data", read_only=True),
                    Mount("scratch", "/dev/sdg", "/scratch")),
            datasets=("imagenet", "tokens", "eval"),
        ),
        "trainer-2": Instance(
            "trainer-2", "g5.2xlarge", "ami-0123456789abcdef0", AZ,
            mounts=(Mount("imagenet-cache", "/dev/sdf", "/data", read_only=True),
                    Mount("scratch-2", "/dev/sdg", "/scratch")),
            datasets=("imagenet",),
        ),
    }
    return Spec(version=1, project="llm-finetune", region="us-east-1",
                datasets=MappingProxyType(datasets), volumes=MappingProxyType(volumes),
                instances=MappingProxyType(instances))


@pytest.fixture
def graph() -> nx.DiGraph:
    g = build_graph(make_spec())
    assert {"dataset.tokens", "prewarm.imagenet", "sync.trainer.tokens",
            "sync.trainer.eval", "mount.trainer-2.scratch-2"} <= set(g.nodes)
    return g


C, U, D, N = Action.CREATE, Action.UPDATE, Action.DELETE, Action.NOOP


def make_plan(g: nx.DiGraph) -> Plan:
    """A plan over the graph: every action, a blocked delete, and an orphan volume
    (with its attachment) that the spec graph does not have."""
    kinds = {
        "volume.scratch": ((C,), ()),
        "instance.trainer": ((U,), ()),
        "instance.trainer-2": ((D, C), ()),
        "attachment.trainer-2.imagenet-cache": ((C, D), ()),
        "volume.old-cache": ((D,), (Block(Rule.PERSISTENT, "volume.old-cache is persistent"),)),
        "attachment.trainer.old-cache": ((D,), (Block(Rule.PROTECTED, "protected"),
                                                Block(Rule.MIN_AGE, "too young"))),
    }
    changes = []
    for addr in sorted(g.nodes):
        actions, blocks = kinds.get(addr, ((N,), ()))
        reason = Reason.REPLACE_BECAUSE_CANNOT_UPDATE if len(actions) == 2 else (
            Reason.NO_CHANGE)
        changes.append(Change(addr, ResourceType(g.nodes[addr]["type"]), actions,
                              reason, depends_on=tuple(sorted(g.predecessors(addr))),
                              blocked_by=blocks))
    changes.append(Change("volume.old-cache", ResourceType.VOLUME, (D,),
                          Reason.DELETE_BECAUSE_NOT_IN_SPEC, id="vol-0abc",
                          before={"size_gib": 100}, blocked_by=kinds["volume.old-cache"][1]))
    changes.append(Change("attachment.trainer.old-cache", ResourceType.ATTACHMENT, (D,),
                          Reason.DELETE_BECAUSE_NOT_IN_SPEC,
                          depends_on=("instance.trainer", "volume.old-cache"),
                          blocked_by=kinds["attachment.trainer.old-cache"][1]))
    return Plan(project="llm-finetune", region="us-east-1", created_at="2026-11-22T21:00:00Z",
                spec_digest="sha256:1", live_digest="sha256:2", changes=tuple(changes))


EXTRA = {"volume.old-cache", "attachment.trainer.old-cache"}
EXTRA_EDGES = {("instance.trainer", "attachment.trainer.old-cache"),
               ("volume.old-cache", "attachment.trainer.old-cache")}


# --- DOT -----------------------------------------------------------------------------


def _parse_dot(text: str) -> pydot.Dot:
    parsed = pydot.graph_from_dot_data(text)
    assert parsed, "pydot could not parse the DOT output"
    assert len(parsed) == 1
    return parsed[0]


def _unq(s: str) -> str:
    return s[1:-1] if s.startswith('"') and s.endswith('"') else s


def _dot_nodes(dot: pydot.Dot) -> dict[str, pydot.Node]:
    nodes = {_unq(n.get_name()): n for n in dot.get_nodes()}
    for sub in dot.get_subgraphs():
        nodes.update({_unq(n.get_name()): n for n in sub.get_nodes()})
    return {k: v for k, v in nodes.items() if k not in ("node", "edge", "graph")}


def test_dot_parses_with_every_node_and_edge(graph: nx.DiGraph) -> None:
    dot = _parse_dot(to_dot(graph))
    assert dot.get_type() == "digraph"
    assert set(_dot_nodes(dot)) == set(graph.nodes)
    edges = {(_unq(e.get_source()), _unq(e.get_destination())) for e in dot.get_edges()}
    assert edges == set(graph.edges)


def test_dot_shapes_and_labels_by_type(graph: nx.DiGraph) -> None:
    nodes = _dot_nodes(_parse_dot(to_dot(graph)))
    assert nodes["volume.scratch"].get("shape") == "cylinder"
    assert nodes["instance.trainer"].get("shape") == "box3d"
    assert nodes["dataset.tokens"].get("shape") == "folder"
    assert _unq(nodes["attachment.trainer.scratch"].get("label")) == "attachment\\ntrainer.scratch"


def test_dot_quotes_hostile_ids() -> None:
    g = nx.DiGraph()
    g.add_node('volume.a"b', type="volume", name='a"b')
    g.add_node("volume.c\\d", type="volume", name="c\\d")
    g.add_edge('volume.a"b', "volume.c\\d")
    dot = _parse_dot(to_dot(g))
    assert len(_dot_nodes(dot)) == 2
    assert len(dot.get_edges()) == 1


def test_dot_plan_colours_and_blocked(graph: nx.DiGraph) -> None:
    plan = make_plan(graph)
    dot = _parse_dot(to_dot(graph, plan))
    nodes = _dot_nodes(dot)
    assert set(graph.nodes) | EXTRA <= set(nodes)
    fill = {a: _unq(n.get("fillcolor") or "") for a, n in nodes.items()}
    assert fill["volume.scratch"] == ACTION_COLORS["create"][0]
    assert fill["instance.trainer"] == ACTION_COLORS["update"][0]
    assert fill["instance.trainer-2"] == ACTION_COLORS["replace"][0]
    assert fill["volume.old-cache"] == ACTION_COLORS["delete"][0]
    assert fill["prewarm.imagenet"] == ACTION_COLORS["no-op"][0]
    blocked = nodes["attachment.trainer.old-cache"]
    assert _unq(blocked.get("color")) == BLOCKED_BORDER
    assert blocked.get("penwidth") == "3"
    assert "bold" in _unq(blocked.get("style"))
    assert "blocked: protected, min-age" in _unq(blocked.get("label"))
    assert "+/- replace" in _unq(nodes["attachment.trainer-2.imagenet-cache"].get("label"))
    assert "-/+ replace" in _unq(nodes["instance.trainer-2"].get("label"))
    assert nodes["volume.scratch"].get("penwidth") is None
    edges = {(_unq(e.get_source()), _unq(e.get_destination())) for e in dot.get_edges()}
    assert edges == set(graph.edges) | EXTRA_EDGES
    legend = [s for s in dot.get_subgraphs() if s.get_name() == "cluster_legend"]
    assert legend, "a plan-coloured graph has a legend"
    assert {_unq(n.get("label")) for n in legend[0].get_nodes()} >= {
        "create", "update", "replace", "delete", "no-op", "blocked (rule)"}


def test_dot_without_plan_has_no_colours(graph: nx.DiGraph) -> None:
    text = to_dot(graph)
    assert "cluster_legend" not in text
    for fill, _border in ACTION_COLORS.values():
        assert fill not in text


# --- Mermaid -------------------------------------------------------------------------

MERMAID_NODE = re.compile(r"^  ([A-Za-z0-9_]+)(\[/|\[\(|\[\[|\(\[|\{\{|>|\[)\"([^\"]*)\"")
MERMAID_EDGE = re.compile(r"^  ([A-Za-z0-9_]+) --> ([A-Za-z0-9_]+)$")


def _parse_mermaid(text: str) -> tuple[dict[str, str], set[tuple[str, str]], list[str]]:
    """(id -> label, edges, other lines) of our own Mermaid output."""
    lines = text.splitlines()
    assert lines[0] == "flowchart LR"
    nodes: dict[str, str] = {}
    edges: set[tuple[str, str]] = set()
    rest: list[str] = []
    for line in lines[1:]:
        if m := MERMAID_EDGE.match(line):
            edges.add((m[1], m[2]))
        elif m := MERMAID_NODE.match(line):
            nodes[m[1]] = m[3]
        else:
            rest.append(line)
    return nodes, edges, rest


def test_mermaid_flowchart_has_every_node_and_edge(graph: nx.DiGraph) -> None:
    text = to_mermaid(graph)
    assert text.startswith("flowchart LR\n")
    nodes, edges, rest = _parse_mermaid(text)
    assert rest == []
    ids = mermaid_ids(graph.nodes)
    assert set(nodes) == set(ids.values())
    assert {ids[a]: a for a in ids} == {i: nodes[i] for i in nodes}  # label = address
    assert edges == {(ids[u], ids[v]) for u, v in graph.edges}
    assert ids["mount.trainer-2.scratch-2"] == "mount_trainer_2_scratch_2"


def test_mermaid_ids_are_safe_and_unique() -> None:
    addrs = ["attachment.a-b.c", "attachment.a.b-c", "attachment.a_b.c", "volume.end",
             "end", "3d.x", "sync.o.x"]
    ids = mermaid_ids(addrs)
    assert len(set(ids.values())) == len(addrs)
    for nid in ids.values():
        assert re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", nid), nid
        assert nid.lower() not in {"end", "graph", "subgraph", "class", "style"}


def test_mermaid_labels_are_quoted_and_escaped() -> None:
    g = nx.DiGraph()
    g.add_node('volume.x"<y>', type="volume", name="x")
    text = to_mermaid(g)
    nodes, _, _ = _parse_mermaid(text)
    (label,) = nodes.values()
    assert label == "volume.x#quot;#lt;y#gt;"


def test_mermaid_plan_classes(graph: nx.DiGraph) -> None:
    plan = make_plan(graph)
    text = to_mermaid(graph, plan)
    nodes, edges, rest = _parse_mermaid(text)
    ids = mermaid_ids(set(graph.nodes) | EXTRA)
    assert set(nodes) == set(ids.values())
    assert edges == {(ids[u], ids[v]) for u, v in set(graph.edges) | EXTRA_EDGES}
    classdefs = {line.split()[1] for line in rest if line.startswith("  classDef ")}
    assert {"act_create", "act_update", "act_replace", "act_delete", "act_noop",
            "act_delete_blocked"} <= classdefs
    assigned: dict[str, str] = {}
    for line in rest:
        if line.startswith("  class "):
            _, members, cls = line.split()
            assert cls in classdefs
            for m in members.split(","):
                assert m not in assigned, f"{m} has two classes"
                assigned[m] = cls
    assert assigned[ids["volume.scratch"]] == "act_create"
    assert assigned[ids["instance.trainer"]] == "act_update"
    assert assigned[ids["instance.trainer-2"]] == "act_replace"
    assert assigned[ids["volume.old-cache"]] == "act_delete_blocked"
    assert assigned[ids["prewarm.imagenet"]] == "act_noop"
    assert set(assigned) == set(ids.values())
    assert "blocked: persistent" in nodes[ids["volume.old-cache"]]
    assert f"stroke:{BLOCKED_BORDER}" in text


@pytest.mark.skipif(shutil.which("node") is None or not os.environ.get("MERMAID_CHECK"),
                    reason="set MERMAID_CHECK=DIR (a node_modules with mermaid and jsdom) "
                           "to parse with the real Mermaid")
def test_mermaid_parses_with_real_mermaid(graph: nx.DiGraph, tmp_path: Path) -> None:
    """Optional: the output through mermaid.parse (what GitHub runs)."""
    src = tmp_path / "g.mmd"
    src.write_text(to_mermaid(graph, make_plan(graph)))
    # ESM resolves imports next to the script, so it goes into that node_modules' folder.
    script = Path(os.environ["MERMAID_CHECK"]) / "trainctl-mermaid-check.mjs"
    script.write_text(
        "import { JSDOM } from 'jsdom'; import fs from 'fs';\n"
        "const dom = new JSDOM('<body></body>'); global.window = dom.window;\n"
        "global.document = dom.window.document;\n"
        "const { default: m } = await import('mermaid');\n"
        "await m.parse(fs.readFileSync(process.argv[2], 'utf8'));\n"
    )
    r = subprocess.run(["node", str(script), str(src)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr


# --- JSON ----------------------------------------------------------------------------


def _same_graph(a: nx.DiGraph, b: nx.DiGraph) -> None:
    assert a.is_directed() and b.is_directed()
    assert dict(a.nodes(data=True)) == dict(b.nodes(data=True))
    assert {(u, v): d for u, v, d in a.edges(data=True)} == {
        (u, v): d for u, v, d in b.edges(data=True)}


def test_json_round_trips(graph: nx.DiGraph) -> None:
    data = json.loads(to_json(graph))
    assert "edges" in data and "links" not in data
    back = nx.node_link_graph(data, edges="edges")
    _same_graph(back, graph)


def test_json_with_plan_has_actions(graph: nx.DiGraph) -> None:
    plan = make_plan(graph)
    back = nx.node_link_graph(json.loads(to_json(graph, plan)), edges="edges")
    assert set(back.nodes) == set(graph.nodes) | EXTRA
    assert set(back.edges) == set(graph.edges) | EXTRA_EDGES
    assert back.nodes["volume.scratch"]["action"] == "create"
    assert back.nodes["instance.trainer-2"]["action"] == "replace"
    assert back.nodes["volume.old-cache"]["action"] == "delete"
    assert back.nodes["volume.old-cache"]["blocked_by"] == ["persistent"]
    assert back.nodes["volume.old-cache"]["type"] == "volume"
    assert back.nodes["volume.old-cache"]["reason"] == "delete_because_not_in_spec"
    # the input graph is left alone
    assert "action" not in graph.nodes["volume.scratch"]
    assert "volume.old-cache" not in graph


def test_graph_from_plan(graph: nx.DiGraph) -> None:
    g = graph_from_plan(make_plan(graph))
    assert set(g.nodes) == set(graph.nodes) | EXTRA
    assert set(g.edges) == set(graph.edges) | EXTRA_EDGES
    assert g.nodes["attachment.trainer.old-cache"]["type"] == "attachment"


# --- images --------------------------------------------------------------------------


def test_render_image_without_dot(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                  graph: nx.DiGraph) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(TrainctlError) as e:
        render_image(to_dot(graph), "svg")
    assert str(e.value) == NO_DOT_MESSAGE
    assert "apt-get install graphviz" in str(e.value)
    assert "brew install graphviz" in str(e.value)


def test_render_image_rejects_other_formats(graph: nx.DiGraph) -> None:
    with pytest.raises(TrainctlError, match="svg, png"):
        render_image(to_dot(graph), "pdf")


@pytest.mark.skipif(shutil.which("dot") is None,
                    reason="Graphviz's `dot` is not installed (apt-get install graphviz)")
@pytest.mark.parametrize("fmt", ["svg", "png"])
def test_render_image_with_dot(graph: nx.DiGraph, fmt: str) -> None:
    data = render_image(to_dot(graph, make_plan(graph)), fmt)
    if fmt == "svg":
        assert b"<svg" in data and b"volume.scratch" in data
    else:
        assert data.startswith(b"\x89PNG\r\n\x1a\n")


def test_render_image_reports_dot_errors(monkeypatch: pytest.MonkeyPatch,
                                         tmp_path: Path) -> None:
    """A `dot` that fails: its first stderr line in one TrainctlError."""
    fake = tmp_path / "dot"
    fake.write_text("#!/bin/sh\ncat >/dev/null\necho 'syntax error in line 1' >&2\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(TrainctlError, match=r"exit 3\): syntax error in line 1"):
        render_image("digraph {", "png")


def test_render_image_feeds_dot(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The DOT text goes to `dot -Tfmt` on stdin and its stdout comes back."""
    fake = tmp_path / "dot"
    fake.write_text('#!/bin/sh\necho "$1"\ncat\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert render_image("digraph {}", "svg") == b"-Tsvg\ndigraph {}"


# --- `trainctl graph` ----------------------------------------------------------------

SPEC_YAML = """\
version: 1
project: llm-finetune
region: us-east-1
defaults:
  availability_zone: us-east-1a
datasets:
  imagenet:
    source: s3://acme-datasets/imagenet/
    strategy: prewarmed-ebs
    volume: imagenet-cache
volumes:
  imagenet-cache:
    size_gib: 500
    persistent: true
  scratch:
    size_gib: 200
instances:
  trainer:
    instance_type: g5.2xlarge
    ami: ami-0123456789abcdef0
    mounts:
      - {volume: imagenet-cache, device: /dev/sdf, path: /data, read_only: true}
      - {volume: scratch, device: /dev/sdg, path: /scratch}
    datasets: [imagenet]
"""

QUICKSTART_EDGES = {
    ("volume.imagenet-cache", "prewarm.imagenet"),
    ("instance.trainer", "attachment.trainer.imagenet-cache"),
    ("volume.imagenet-cache", "attachment.trainer.imagenet-cache"),
    ("prewarm.imagenet", "attachment.trainer.imagenet-cache"),
    ("attachment.trainer.imagenet-cache", "mount.trainer.imagenet-cache"),
    ("instance.trainer", "attachment.trainer.scratch"),
    ("volume.scratch", "attachment.trainer.scratch"),
    ("attachment.trainer.scratch", "mount.trainer.scratch"),
}


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    path = tmp_path / "trainctl.yaml"
    path.write_text(SPEC_YAML)
    return path


def _spec_graph(spec_file: Path) -> nx.DiGraph:
    r = run_cli("-f", str(spec_file), "graph", "--format", "json")
    assert r.returncode == 0, r.stderr
    return nx.node_link_graph(json.loads(r.stdout), edges="edges")


def test_cli_graph_json(spec_file: Path) -> None:
    g = _spec_graph(spec_file)
    assert set(g.edges) == QUICKSTART_EDGES


def test_cli_graph_default_is_mermaid(spec_file: Path) -> None:
    r = run_cli("graph", cwd=spec_file.parent)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("flowchart LR\n")
    _, edges, _ = _parse_mermaid(r.stdout)
    assert ("volume_scratch", "attachment_trainer_scratch") in edges
    assert len(edges) == len(QUICKSTART_EDGES)


def test_cli_graph_dot_to_file(spec_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "g.dot"
    r = run_cli("-f", str(spec_file), "graph", "--format", "dot", "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""
    dot = _parse_dot(out.read_text())
    assert {(_unq(e.get_source()), _unq(e.get_destination()))
            for e in dot.get_edges()} == QUICKSTART_EDGES


def _spec_plan(spec_file: Path) -> Plan:
    g = _spec_graph(spec_file)
    changes = [Change(a, ResourceType(g.nodes[a]["type"]), (C,), Reason.CREATE_BECAUSE_MISSING,
                      depends_on=tuple(sorted(g.predecessors(a)))) for a in sorted(g.nodes)]
    changes.append(Change("volume.old", ResourceType.VOLUME, (D,),
                          Reason.DELETE_BECAUSE_NOT_IN_SPEC, id="vol-0old",
                          blocked_by=(Block(Rule.PERSISTENT, "persistent"),)))
    return Plan(project="llm-finetune", region="us-east-1", created_at="2026-11-22T21:00:00Z",
                spec_digest="sha256:1", live_digest="sha256:2", changes=tuple(changes))


def test_cli_graph_with_plan_colours(spec_file: Path, tmp_path: Path) -> None:
    plan_path = tmp_path / "plan.json"
    plan_path.write_text(json.dumps(plan_to_json(_spec_plan(spec_file))))
    r = run_cli("-f", str(spec_file), "graph", "--format", "json", "--plan", str(plan_path))
    assert r.returncode == 0, r.stderr
    g = nx.node_link_graph(json.loads(r.stdout), edges="edges")
    assert g.nodes["volume.scratch"]["action"] == "create"
    assert g.nodes["volume.old"]["action"] == "delete"
    assert g.nodes["volume.old"]["blocked_by"] == ["persistent"]

    r = run_cli("-f", str(spec_file), "graph", "--plan", str(plan_path))
    assert r.returncode == 0, r.stderr
    assert "class volume_old act_delete_blocked" in r.stdout
    r = run_cli("-f", str(spec_file), "graph", "--format", "dot", "--plan", str(plan_path))
    nodes = _dot_nodes(_parse_dot(r.stdout))
    assert _unq(nodes["volume.scratch"].get("fillcolor")) == ACTION_COLORS["create"][0]
    assert _unq(nodes["volume.old"].get("color")) == BLOCKED_BORDER


def test_cli_graph_bad_plan_file(spec_file: Path, tmp_path: Path) -> None:
    bad = tmp_path / "plan.json"
    bad.write_text('{"format_version": "9"}')
    r = run_cli("-f", str(spec_file), "graph", "--plan", str(bad))
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    assert r.stderr.strip() == f"{bad}: plan format_version '9' is not supported " \
                               "(this trainctl reads '1')"


def test_cli_graph_plan_of_another_project(spec_file: Path, tmp_path: Path) -> None:
    plan = _spec_plan(spec_file)
    other = Plan(**{**plan.__dict__, "project": "other"})
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan_to_json(other)))
    r = run_cli("-f", str(spec_file), "graph", "--plan", str(path))
    assert r.returncode == 1
    assert "project 'other'" in r.stderr and "Traceback" not in r.stderr


def test_cli_graph_svg_without_dot(spec_file: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty-path"
    empty.mkdir()
    r = run_cli("-f", str(spec_file), "graph", "--format", "svg", "-o",
                str(tmp_path / "g.svg"), env={"PATH": str(empty)})
    assert r.returncode == 1
    assert r.stderr.strip() == NO_DOT_MESSAGE
    assert not (tmp_path / "g.svg").exists()


def test_cli_graph_invalid_spec(tmp_path: Path) -> None:
    path = tmp_path / "trainctl.yaml"
    path.write_text("version: 1\nproject: x\n")
    r = run_cli("-f", str(path), "graph")
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    assert str(path) in r.stderr


def test_cli_graph_does_not_import_boto3(spec_file: Path) -> None:
    code = (
        "import sys\n"
        "from planner.cli import cli\n"
        f"cli.main(args=['-f', {str(spec_file)!r}, 'graph', '--format', 'dot'],"
        " standalone_mode=False)\n"
        "print('BOTO3', 'boto3' in sys.modules, 'botocore' in sys.modules, file=sys.stderr)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert "BOTO3 False False" in r.stderr
    assert r.stdout.startswith("digraph trainctl {")


@pytest.mark.skipif(not (EXAMPLES / "quickstart" / "trainctl.yaml").exists(),
                    reason="examples/quickstart/trainctl.yaml not written yet")
@pytest.mark.parametrize("fmt", ["dot", "mermaid", "json"])
def test_cli_graph_quickstart_example(fmt: str) -> None:
    r = run_cli("-f", str(EXAMPLES / "quickstart" / "trainctl.yaml"), "graph", "--format", fmt)
    assert r.returncode == 0, r.stderr
    if fmt == "dot":
        _parse_dot(r.stdout)
    elif fmt == "mermaid":
        assert r.stdout.startswith("flowchart LR\n")
    else:
        g = nx.node_link_graph(json.loads(r.stdout), edges="edges")
        assert any(n.startswith("instance.") for n in g)


def test_export_module_is_pure() -> None:
    """The exports import no AWS code."""
    r = subprocess.run([sys.executable, "-c",
                        "import sys, planner.export, planner.render.text, "
                        "planner.render.markdown; print('boto3' in sys.modules)"],
                       capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "False", r.stderr
    assert export.to_json  # the module under test
