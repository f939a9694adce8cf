"""planner.graph: cycles are reported with their path; where each dataset is read."""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType

import networkx as nx
import pytest

from planner.graph import GraphCycleError, check_acyclic, data_location
from planner.spec import Dataset, Instance, Mount, Spec, Volume

AZ = "us-east-1a"


def test_a_cycle_is_reported_with_its_path() -> None:
    g = nx.DiGraph([("volume.a", "attachment.i.a"), ("attachment.i.a", "mount.i.a"),
                    ("mount.i.a", "volume.a")])
    with pytest.raises(GraphCycleError) as err:
        check_acyclic(g)
    path = err.value.cycle
    assert path[0] == path[-1] and set(path) == {"volume.a", "attachment.i.a", "mount.i.a"}
    assert str(err.value).startswith("dependency cycle: ")
    assert " -> ".join(path) in str(err.value)
    check_acyclic(nx.DiGraph([("volume.a", "attachment.i.a")]))    # no cycle: no error


def test_where_each_strategy_puts_the_data() -> None:
    datasets = {
        "pre": Dataset("pre", "s3://b/pre/", "prewarmed-ebs", volume="cache", path="/imgs"),
        "ex": Dataset("ex", "s3://b/ex/", "existing-ebs", volume="cache", path="/"),
        "lc": Dataset("lc", "s3://b/lc/", "local-cache", path="/scratch/lc"),
        "d": Dataset("d", "s3://b/direct/", "direct-s3"),
    }
    trainer = Instance("t", "g5.xlarge", "ami-0123456789abcdef0", AZ,
                       mounts=(Mount("cache", "/dev/sdf", "/data", read_only=True),),
                       datasets=tuple(datasets))
    spec = Spec(version=1, project="p", region="us-east-1",
                datasets=MappingProxyType(datasets),
                volumes=MappingProxyType({"cache": Volume("cache", 10, AZ)}),
                instances=MappingProxyType({"t": trainer}))
    assert data_location(spec, trainer, "pre") == "/data/imgs"
    assert data_location(spec, trainer, "ex") == "/data"
    assert data_location(spec, trainer, "lc") == "/scratch/lc"
    assert data_location(spec, trainer, "d") == "s3://b/direct/"


def test_a_local_dataset_read_directly_from_its_stage(tmp_path: Path) -> None:
    """direct-s3 with a local source: uploaded to its stage, which the instance reads;
    the instance waits for the upload."""
    from datetime import UTC, datetime

    from planner.diff import diff
    from planner.graph import build_graph
    from planner.live import LiveState
    from planner.loader import load_spec

    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "a.txt").write_text("hello")
    (tmp_path / "trainctl.yaml").write_text(
        "version: 1\nproject: p\nregion: us-east-1\n"
        "defaults: {availability_zone: us-east-1a}\n"
        "datasets:\n"
        "  corpus: {source: ./corpus, stage: 's3://bkt/stage/corpus/', strategy: direct-s3}\n"
        "instances:\n"
        "  t: {instance_type: g5.xlarge, ami: ami-0123456789abcdef0, datasets: [corpus]}\n")
    spec = load_spec(str(tmp_path / "trainctl.yaml"))
    g = build_graph(spec)
    assert g.has_edge("dataset.corpus", "instance.t")
    assert data_location(spec, spec.instances["t"], "corpus") == "s3://bkt/stage/corpus/"
    now = datetime(2026, 11, 22, tzinfo=UTC)
    plan = diff(spec, g, LiveState(project="p", region="us-east-1", read_at=now), now=now)
    assert {c.address: c.kind for c in plan.changes} == {
        "dataset.corpus": "create", "instance.t": "create"}
