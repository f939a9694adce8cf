"""load_spec: defaults applied, tags merged, local sources resolved, frozen, canonical dict."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from planner.digest import digest
from planner.loader import load_spec, loads_spec, spec_to_dict
from planner.spec import Checkpoints, Mount, Training

SPEC = """\
version: 1
project: demo
region: us-east-1
defaults:
  availability_zone: us-east-1a
  tags: {team: ml, owner: alice}
datasets:
  pre: {source: 's3://bkt/pre/', strategy: prewarmed-ebs, volume: cache}
  old: {source: 's3://bkt/old/', strategy: existing-ebs, volume: cache, path: /old}
  cached: {source: ../corpus, stage: 's3://bkt/stage/', strategy: local-cache}
  direct: {source: 's3://bkt/direct/', strategy: direct-s3}
volumes:
  cache: {size_gib: 50, persistent: true, tags: {owner: bob}}
  fast:
    size_gib: 100
    type: io2
    iops: 10000
    availability_zone: us-east-1a
    filesystem: xfs
    encrypted: true
    protect: true
    on_delete: snapshot
    import: vol-0123456789abcdef0
instances:
  t:
    instance_type: g5.xlarge
    ami: ami-0123456789abcdef0
    market: spot
    encrypted: true
    mounts:
      - {volume: cache, device: /dev/sdf, path: /data, read_only: true}
      - {volume: fast, device: /dev/sdg, path: /fast}
    datasets: [pre, old, cached, direct]
    checkpoints: {path: /fast/ckpt, sync_to: 's3://bkt/ckpt/'}
    training: {process_patterns: ['python.*train']}
  u:
    instance_type: g5.xlarge
    ami: ami-0123456789abcdef0
    availability_zone: us-east-1a
    import: i-0123456789abcdef0
    protect: true
    tags: {team: other}
"""


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    d = tmp_path / "project"
    d.mkdir()
    (tmp_path / "corpus").mkdir()      # the local source `../corpus` must exist
    f = d / "trainctl.yaml"
    f.write_text(SPEC)
    return f


def test_defaults_are_applied(spec_file: Path) -> None:
    spec = load_spec(str(spec_file))
    cache, fast = spec.volumes["cache"], spec.volumes["fast"]
    assert (cache.type, cache.filesystem, cache.on_delete, cache.availability_zone) == \
        ("gp3", "ext4", "delete", "us-east-1a")
    assert (cache.iops, cache.throughput_mibps, cache.protect, cache.encrypted) == \
        (None, None, False, False)
    assert (fast.type, fast.iops, fast.filesystem, fast.on_delete, fast.import_id) == \
        ("io2", 10000, "xfs", "snapshot", "vol-0123456789abcdef0")
    assert fast.encrypted and fast.protect and cache.persistent
    t, u = spec.instances["t"], spec.instances["u"]
    assert (t.market, u.market) == ("spot", "on-demand")
    assert (t.availability_zone, t.encrypted, u.encrypted) == ("us-east-1a", True, False)
    assert (u.import_id, u.protect, u.mounts, u.datasets) == ("i-0123456789abcdef0", True, (), ())
    assert (u.checkpoints, u.training) == (None, None)
    assert t.mounts == (Mount("cache", "/dev/sdf", "/data", True),
                        Mount("fast", "/dev/sdg", "/fast", False))
    assert t.checkpoints == Checkpoints("/fast/ckpt", "s3://bkt/ckpt/")
    assert t.training == Training(None, ("python.*train",))
    assert spec.defaults.min_age_minutes == 5
    assert spec.cost.enforce is False and spec.cost.max_hourly_usd is None
    assert spec.source_file == str(spec_file)


def test_dataset_paths_default_per_strategy(spec_file: Path) -> None:
    ds = load_spec(str(spec_file)).datasets
    assert (ds["pre"].path, ds["old"].path, ds["cached"].path, ds["direct"].path) == \
        ("/", "/old", "/data/cached", None)


def test_local_source_resolves_against_the_spec_folder(spec_file: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir("/")
    ds = load_spec(str(spec_file)).datasets["cached"]
    assert ds.source == str(tmp_path / "corpus")
    assert ds.is_local and ds.s3_uri == "s3://bkt/stage/"
    assert load_spec(str(spec_file)).datasets["pre"].source == "s3://bkt/pre/"


def test_tags_merge_defaults_under_resource_tags(spec_file: Path) -> None:
    spec = load_spec(str(spec_file))
    assert dict(spec.volumes["cache"].tags) == {"team": "ml", "owner": "bob"}
    assert dict(spec.volumes["fast"].tags) == {"team": "ml", "owner": "alice"}
    assert dict(spec.instances["u"].tags) == {"team": "other", "owner": "alice"}


def test_spec_is_frozen(spec_file: Path) -> None:
    spec = load_spec(str(spec_file))
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.project = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        spec.volumes["x"] = spec.volumes["cache"]  # type: ignore[index]
    with pytest.raises(TypeError):
        spec.volumes["cache"].tags["k"] = "v"  # type: ignore[index]


def test_spec_to_dict_is_canonical_json(spec_file: Path, tmp_path: Path) -> None:
    d = spec_to_dict(load_spec(str(spec_file)))
    assert json.loads(json.dumps(d)) == d
    assert "source_file" not in d
    assert list(d["volumes"]) == ["cache", "fast"]
    assert d["volumes"]["fast"]["import_id"] == "vol-0123456789abcdef0"
    assert d["instances"]["t"]["mounts"][0] == {
        "volume": "cache", "device": "/dev/sdf", "path": "/data", "read_only": True}
    assert d["cost"] == {"max_hourly_usd": None, "max_daily_usd": None,
                         "max_accumulated_usd": None, "enforce": False}
    # the same spec, written differently (flow vs block, key order, explicit defaults),
    # has the same digest; a real change does not
    reordered = SPEC.replace("  cache: {size_gib: 50, persistent: true, tags: {owner: bob}}",
                             "  cache:\n    tags: {owner: bob}\n    type: gp3\n"
                             "    persistent: true\n    size_gib: 50")
    assert reordered != SPEC
    same = loads_spec(reordered, str(spec_file))
    assert digest(spec_to_dict(same)) == digest(d)
    changed = loads_spec(SPEC.replace("size_gib: 50", "size_gib: 51"), str(spec_file))
    assert digest(spec_to_dict(changed)) != digest(d)


def test_cost_limits_become_floats(tmp_path: Path) -> None:
    spec = loads_spec("version: 1\nproject: p\nregion: us-east-1\n"
                      "cost: {max_hourly_usd: 5, max_daily_usd: 100.5, enforce: true}\n",
                      str(tmp_path / "t.yaml"))
    assert spec.cost.max_hourly_usd == 5.0 and isinstance(spec.cost.max_hourly_usd, float)
    assert (spec.cost.max_daily_usd, spec.cost.enforce) == (100.5, True)


def test_training_grace_seconds_defaults_to_120(tmp_path: Path) -> None:
    from planner.errors import SpecError

    base = ("version: 1\nproject: p\nregion: us-east-1\n"
            "defaults: {availability_zone: us-east-1a}\n"
            "instances:\n  t:\n    instance_type: t3.micro\n    ami: ami-0123456789abcdef0\n"
            "    training: {pid_file: /run/t.pid%s}\n")
    spec = loads_spec(base % "", str(tmp_path / "t.yaml"))
    assert spec.instances["t"].training == Training("/run/t.pid", (), grace_seconds=120)
    spec = loads_spec(base % ", grace_seconds: 5", str(tmp_path / "t.yaml"))
    assert spec.instances["t"].training.grace_seconds == 5   # type: ignore[union-attr]
    for bad in (", grace_seconds: -1", ", grace_seconds: 1.5", ", grace_seconds: soon"):
        with pytest.raises(SpecError, match="grace_seconds"):
            loads_spec(base % bad, str(tmp_path / "t.yaml"))
