"""Synthetic specs and live snapshots of any size, built in memory (no YAML, no AWS).

Live resources in sync carry exactly the tags trainctl would have put on them
(`planner.tags`), so "in sync" stays in sync when the tag scheme grows.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import MappingProxyType as Frozen

from planner.live import (
    TAG_MOUNTED,
    LiveAttachment,
    LiveInstance,
    LiveState,
    LiveVolume,
)
from planner.spec import Instance, Mount, Spec, Volume
from planner.tags import instance_safety_tags, owner_tags

PROJECT = "bench"
AZ = "us-east-1a"
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
NODES_PER_GROUP = 4    # instance, volume, attachment, mount


def spec_of(groups: int) -> Spec:
    volumes = {f"v{i}": Volume(name=f"v{i}", size_gib=100, availability_zone=AZ)
               for i in range(groups)}
    instances = {
        f"i{i}": Instance(
            name=f"i{i}", instance_type="g5.xlarge", ami="ami-0123456789abcdef0",
            availability_zone=AZ, mounts=(Mount(f"v{i}", "/dev/sdf", "/data"),),
        )
        for i in range(groups)
    }
    return Spec(version=1, project=PROJECT, region="us-east-1",
                volumes=Frozen(volumes), instances=Frozen(instances))


def live_of(groups: int, spec: Spec | None = None) -> LiveState:
    """Half the groups in sync, a quarter drifted (size), a quarter missing, 1% orphans."""
    spec = spec or spec_of(groups)
    old = NOW - timedelta(days=2)
    vols: list[LiveVolume] = []
    insts: list[LiveInstance] = []
    for i in range(groups):
        if i % 4 == 3:
            continue
        iid, vid = f"i-{i:017x}", f"vol-{i:017x}"
        insts.append(LiveInstance(
            id=iid, instance_type="g5.xlarge", availability_zone=AZ, state="running",
            launch_time=old, ami="ami-0123456789abcdef0",
            tags=Frozen({**owner_tags(spec, f"instance.i{i}"),
                         **instance_safety_tags(spec.instances[f"i{i}"])}),
        ))
        vols.append(LiveVolume(
            id=vid, availability_zone=AZ, size_gib=100 if i % 4 != 2 else 50, type="gp3",
            state="in-use", create_time=old,
            tags=Frozen({**owner_tags(spec, f"volume.v{i}"), TAG_MOUNTED: f"{iid}:/data"}),
            attachments=(LiveAttachment(iid, "/dev/sdf", "attached"),),
        ))
    for j in range(max(1, groups // 100)):
        vols.append(LiveVolume(
            id=f"vol-orphan{j:012x}", availability_zone=AZ, size_gib=10, type="gp3",
            state="available", create_time=old,
            tags=Frozen(owner_tags(spec, f"volume.orphan-{j}")),
        ))
    return LiveState(project=PROJECT, region="us-east-1", read_at=NOW,
                     volumes=tuple(vols), instances=tuple(insts))


def spec_yaml(groups: int) -> str:
    """The YAML a user would write for `spec_of(groups)` (block style, one resource per
    entry): loading it gives the same Spec, so `live_of` snapshots match it."""
    out = [f"version: 1\nproject: {PROJECT}\nregion: us-east-1\nvolumes:\n"]
    out += [f"  v{i}:\n    size_gib: 100\n    availability_zone: {AZ}\n" for i in range(groups)]
    out.append("instances:\n")
    out += [f"  i{i}:\n    instance_type: g5.xlarge\n    ami: ami-0123456789abcdef0\n"
            f"    availability_zone: {AZ}\n    mounts:\n"
            f"      - {{volume: v{i}, device: /dev/sdf, path: /data}}\n" for i in range(groups)]
    return "".join(out)
