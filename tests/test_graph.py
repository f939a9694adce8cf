"""planner.graph: cycles are reported with their path; where each dataset is read."""

from __future__ import annotations

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
