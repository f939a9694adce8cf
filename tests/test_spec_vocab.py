"""The spec's closed vocabularies are string enums whose values are the YAML form: the
loader hands out members, the JSON Schema allows exactly their values, and they read and
serialise as their strings."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path

import pytest

from planner.digest import canonical_json
from planner.loader import loads_spec
from planner.spec import (
    Filesystem,
    IdleAction,
    Market,
    OnDelete,
    Strategy,
    VolumeType,
)
from planner.specdict import spec_to_dict

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = [ROOT / "planner" / "schemas" / "trainctl.schema.json",
           ROOT / "schemas" / "trainctl.schema.json"]

# where each vocabulary stands in the spec's JSON Schema
IN_SCHEMA: dict[tuple[str, str], type[StrEnum]] = {
    ("dataset", "strategy"): Strategy,
    ("volume", "type"): VolumeType,
    ("volume", "filesystem"): Filesystem,
    ("volume", "on_delete"): OnDelete,
    ("instance", "market"): Market,
    ("instance", "idle_action"): IdleAction,
}

SPEC = """\
version: 1
project: vocab
region: us-east-1
defaults: {availability_zone: us-east-1a}
datasets:
  shards: {source: s3://vocab-data/shards/, strategy: prewarmed-ebs, volume: cache}
  raw: {source: s3://vocab-data/raw/, strategy: direct-s3}
volumes:
  cache: {size_gib: 50, type: io2, iops: 3000, filesystem: xfs, on_delete: snapshot}
  plain: {size_gib: 10}
instances:
  trainer:
    instance_type: t3.micro
    ami: ami-0123456789abcdef0
    market: spot
    max_lifetime: 12h
    idle_action: terminate
    mounts: [{volume: cache, device: /dev/sdf, path: /data}]
    datasets: [shards, raw]
"""


@pytest.mark.parametrize("schema", SCHEMAS, ids=lambda p: str(p.relative_to(ROOT)))
@pytest.mark.parametrize(("where", "vocab"), list(IN_SCHEMA.items()),
                         ids=lambda x: x[1] if isinstance(x, tuple) else x.__name__)
def test_the_schema_allows_exactly_the_enum(schema: Path, where: tuple[str, str],
                                            vocab: type[StrEnum]) -> None:
    doc = json.loads(schema.read_text())
    allowed = doc["$defs"][where[0]]["properties"][where[1]]["enum"]
    assert sorted(allowed) == sorted(m.value for m in vocab)


def test_the_loader_hands_out_members() -> None:
    spec = loads_spec(SPEC, "trainctl.yaml")
    shards, raw = spec.datasets["shards"], spec.datasets["raw"]
    cache, plain = spec.volumes["cache"], spec.volumes["plain"]
    trainer = spec.instances["trainer"]
    assert shards.strategy is Strategy.PREWARMED_EBS and raw.strategy is Strategy.DIRECT_S3
    assert (cache.type, cache.filesystem, cache.on_delete) == (
        VolumeType.IO2, Filesystem.XFS, OnDelete.SNAPSHOT)
    assert type(cache.type) is VolumeType and type(cache.on_delete) is OnDelete
    assert plain.type is VolumeType.GP3 and plain.filesystem is Filesystem.EXT4
    assert plain.on_delete is OnDelete.DELETE
    assert trainer.market is Market.SPOT and trainer.idle_action is IdleAction.TERMINATE
    assert shards.path == "/"                       # on a volume: the volume's root
    # a member is its string: reads and comparisons of the wire form keep working
    assert shards.strategy == "prewarmed-ebs" and f"{trainer.market}" == "spot"


def test_the_spec_digest_form_is_plain_strings() -> None:
    doc = spec_to_dict(loads_spec(SPEC, "trainctl.yaml"))
    assert type(doc["datasets"]["shards"]["strategy"]) is str
    assert type(doc["instances"]["trainer"]["market"]) is str
    assert b'"strategy":"prewarmed-ebs"' in canonical_json(doc["datasets"]["shards"])


def _snapshot(market: str) -> dict[str, object]:
    from datetime import UTC, datetime

    from planner.live import LiveInstance, LiveState, live_to_json

    t = datetime(2026, 11, 22, 21, 0, tzinfo=UTC)
    inst = LiveInstance(id="i-1", instance_type="t3.micro", availability_zone="us-east-1a",
                        state="running", launch_time=t, market=Market.SPOT)
    doc = live_to_json(LiveState(project="vocab", region="us-east-1", read_at=t,
                                 instances=(inst,)))
    json.dumps(doc)                                   # the members serialise as strings
    doc["instances"][0]["market"] = market
    return doc


def test_a_live_snapshot_market_is_the_enum() -> None:
    from planner.filecheck import issues_of
    from planner.fileschemas import live_schema
    from planner.live import live_from_json

    good = _snapshot("spot")
    assert issues_of(good, live_schema()) == []
    assert live_from_json(good).instances[0].market is Market.SPOT
    bad = issues_of(_snapshot("reserved"), live_schema())
    assert bad and "market" in str(bad[0][0])
