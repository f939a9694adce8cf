"""Both examples validate, point editors at the schema, and have the expected graphs."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import EXAMPLES, run_cli

from planner.graph import build_graph
from planner.loader import load_spec

NAMES = ["quickstart", "multi-node"]


@pytest.mark.parametrize("name", NAMES)
def test_example_validates_and_points_at_the_schema(name: str) -> None:
    folder = EXAMPLES / name
    spec_file = folder / "trainctl.yaml"
    first = spec_file.read_text().splitlines()[0]
    assert first == "# yaml-language-server: $schema=../../schemas/trainctl.schema.json"
    assert (folder / "../../schemas/trainctl.schema.json").resolve().is_file()
    assert (folder / "README.md").read_text().strip()
    spec = load_spec(str(spec_file))
    assert spec.project == name and spec.region == "us-east-1"


def test_quickstart_shape_and_edges() -> None:
    spec = load_spec(str(EXAMPLES / "quickstart" / "trainctl.yaml"))
    assert list(spec.instances) == ["trainer"]
    assert spec.instances["trainer"].instance_type == "g5.xlarge"
    assert spec.instances["trainer"].ami == "ami-0123456789abcdef0"
    assert [v.persistent for v in spec.volumes.values()] == [True, False]
    (ds,) = spec.datasets.values()
    assert (ds.strategy, ds.source) == \
        ("prewarmed-ebs", "s3://trainctl-demo-datasets/tiny-imagenet/")
    assert {v.availability_zone for v in spec.volumes.values()} == {"us-east-1a"}
    g = build_graph(spec)
    assert set(g.edges) == {
        ("volume.datasets", "prewarm.tiny-imagenet"),
        ("instance.trainer", "attachment.trainer.datasets"),
        ("volume.datasets", "attachment.trainer.datasets"),
        ("prewarm.tiny-imagenet", "attachment.trainer.datasets"),
        ("attachment.trainer.datasets", "mount.trainer.datasets"),
        ("instance.trainer", "attachment.trainer.scratch"),
        ("volume.scratch", "attachment.trainer.scratch"),
        ("attachment.trainer.scratch", "mount.trainer.scratch"),
    }
    assert len(g.nodes) == 8


def test_multi_node_shape_and_edges() -> None:
    spec = load_spec(str(EXAMPLES / "multi-node" / "trainctl.yaml"))
    assert len(spec.instances) == 4 and len(spec.volumes) == 4 and len(spec.datasets) == 1
    (ds,) = spec.datasets.values()
    assert (ds.strategy, ds.path) == ("local-cache", "/data/tiny-imagenet")
    g = build_graph(spec)
    expected = set()
    for i in range(4):
        node, vol = f"node-{i}", f"data-{i}"
        expected |= {
            (f"instance.{node}", f"attachment.{node}.{vol}"),
            (f"volume.{vol}", f"attachment.{node}.{vol}"),
            (f"attachment.{node}.{vol}", f"mount.{node}.{vol}"),
            (f"mount.{node}.{vol}", f"sync.{node}.tiny-imagenet"),
        }
    assert set(g.edges) == expected
    assert len(g.nodes) == 20


@pytest.mark.parametrize(("name", "counts"), [
    ("quickstart", "2 volumes, 1 instance, 1 dataset"),
    ("multi-node", "4 volumes, 4 instances, 1 dataset"),
])
def test_examples_validate_on_the_command_line(name: str, counts: str) -> None:
    spec_file = Path("examples") / name / "trainctl.yaml"
    r = run_cli("-f", str(spec_file), "validate", cwd=EXAMPLES.parent)
    assert (r.returncode, r.stdout, r.stderr) == (0, f"OK: {spec_file} ({counts})\n", "")


def test_multi_node_protects_training_and_checkpoints_per_node() -> None:
    spec = load_spec(str(EXAMPLES / "multi-node" / "trainctl.yaml"))
    prefixes = set()
    for name, ins in spec.instances.items():
        assert ins.training is not None, name
        assert ins.training.pid_file == "/var/run/trainctl/training.pid"
        assert ins.training.process_patterns == ("python.*train",)
        assert ins.checkpoints is not None, name
        (mount,) = ins.mounts                      # the checkpoints live on the node's own volume
        assert ins.checkpoints.path.startswith(mount.path.rstrip("/") + "/")
        assert ins.checkpoints.sync_to == f"s3://trainctl-demo-checkpoints/multi-node/{name}/"
        prefixes.add(ins.checkpoints.sync_to)
    assert len(prefixes) == len(spec.instances) == 4
