"""Hand-built specs and live states for the pure diff and rules tests (no AWS, fixed clock)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

from planner.diff import diff
from planner.digesttag import short_digest
from planner.graph import build_graph
from planner.live import (
    TAG_ADDRESS,
    TAG_DATASET_DIGEST,
    TAG_MOUNTED,
    TAG_PROJECT,
    DatasetManifest,
    LiveAttachment,
    LiveInstance,
    LiveModification,
    LiveState,
    LiveVolume,
)
from planner.plan import Plan, PlanOptions
from planner.rules import Overrides
from planner.spec import CostLimits, Dataset, Defaults, Instance, Mount, Spec, Volume

PROJECT = "llm"
AZ = "us-east-1a"
NOW = datetime(2026, 11, 22, 21, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=3)
AMI = "ami-0123456789abcdef0"
PROFILE_ARN = "arn:aws:iam::123456789012:instance-profile/trainctl-ssm"
DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64


def frozen(d: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
    return MappingProxyType(dict(d or {}))


def make_spec(volumes: list[Volume] | None = None, instances: list[Instance] | None = None,
              datasets: list[Dataset] | None = None, *, min_age: int = 5,
              cost: CostLimits | None = None) -> Spec:
    return Spec(
        version=1, project=PROJECT, region="us-east-1",
        defaults=Defaults(availability_zone=AZ, min_age_minutes=min_age,
                          tags=frozen({"team": "ml"})),
        cost=cost or CostLimits(),
        datasets=frozen({d.name: d for d in datasets or ()}),
        volumes=frozen({v.name: v for v in volumes or ()}),
        instances=frozen({i.name: i for i in instances or ()}),
    )


def vol(name: str, size: int = 100, **kw: Any) -> Volume:
    return Volume(name=name, size_gib=size, availability_zone=kw.pop("availability_zone", AZ),
                  **kw)


def inst(name: str = "trainer", mounts: tuple[Mount, ...] = (), **kw: Any) -> Instance:
    return Instance(name=name, instance_type=kw.pop("instance_type", "g5.2xlarge"), ami=AMI,
                    availability_zone=kw.pop("availability_zone", AZ), mounts=mounts,
                    iam_instance_profile=kw.pop("iam_instance_profile", "trainctl-ssm"), **kw)


def tags(addr: str, *, project: str = PROJECT) -> Mapping[str, str]:
    """The tags trainctl puts on what it creates at `addr` (spec defaults: team=ml)."""
    return frozen({"Name": f"{project}/{addr}", TAG_PROJECT: project, TAG_ADDRESS: addr,
                   "team": "ml"})


def lvol(vid: str, addr: str | None, size: int = 100, *, created: datetime = OLD,
         attached_to: tuple[tuple[str, str], ...] = (), extra_tags: Mapping[str, str] = frozen(),
         project: str = PROJECT, **kw: Any) -> LiveVolume:
    base = dict(tags(addr, project=project)) if addr else {}
    base.update(extra_tags)
    return LiveVolume(
        id=vid, availability_zone=kw.pop("availability_zone", AZ), size_gib=size,
        type=kw.pop("type", "gp3"), state="in-use" if attached_to else "available",
        create_time=created, tags=frozen(base),
        attachments=tuple(LiveAttachment(i, d, "attached") for i, d in attached_to), **kw,
    )


def linst(iid: str, addr: str | None, *, launched: datetime = OLD,
          extra_tags: Mapping[str, str] = frozen(), project: str = PROJECT,
          **kw: Any) -> LiveInstance:
    base = dict(tags(addr, project=project)) if addr else {}
    if addr:    # as launched from a spec instance with no training or checkpoints section
        base.update({"trainctl:training": "{}", "trainctl:checkpoints": "{}"})
    base.update(extra_tags)
    return LiveInstance(
        id=iid, instance_type=kw.pop("instance_type", "g5.2xlarge"),
        availability_zone=kw.pop("availability_zone", AZ), state=kw.pop("state", "running"),
        launch_time=launched, ami=kw.pop("ami", AMI),
        iam_instance_profile=kw.pop("iam_instance_profile", PROFILE_ARN), tags=frozen(base),
        **kw,
    )


def live(volumes: tuple[LiveVolume, ...] = (), instances: tuple[LiveInstance, ...] = (),
         modifications: tuple[LiveModification, ...] = (),
         datasets: Mapping[str, DatasetManifest] | None = None, *,
         read_at: datetime = NOW, api_calls: int = 7) -> LiveState:
    return LiveState(project=PROJECT, region="us-east-1", read_at=read_at, volumes=volumes,
                     instances=instances, modifications=modifications,
                     datasets=frozen(datasets), api_calls=api_calls)


def manifest(uri: str, d: str, objects: int = 3, size: int = 300) -> DatasetManifest:
    return DatasetManifest(uri=uri, objects=objects, bytes=size, digest=d, list_calls=1)


def digest_tag(**entries: str) -> Mapping[str, str]:
    value = ",".join(f"{k}={short_digest(v)}" for k, v in entries.items())
    return frozen({TAG_DATASET_DIGEST: value})


def mounted_tag(instance_id: str, path: str) -> Mapping[str, str]:
    return frozen({TAG_MOUNTED: f"{instance_id}:{path}"})


def plan_of(spec: Spec, state: LiveState, *, destroy: bool = False,
            targets: tuple[str, ...] = (), now: datetime = NOW,
            overrides: Overrides | None = None) -> Plan:
    return diff(spec, build_graph(spec), state, now=now,
                options=PlanOptions(destroy=destroy, targets=targets),
                overrides=overrides or Overrides())


# --- a complete world: trainer with a scratch volume, already applied ---------------------


def scratch_world() -> tuple[Spec, LiveState]:
    spec = make_spec([vol("scratch", 200)],
                     [inst(mounts=(Mount("scratch", "/dev/sdg", "/scratch"),))])
    state = live(
        volumes=(lvol("vol-1", "volume.scratch", 200, attached_to=(("i-1", "/dev/sdg"),),
                      extra_tags=mounted_tag("i-1", "/scratch")),),
        instances=(linst("i-1", "instance.trainer"),),
    )
    return spec, state


def with_volume(state: LiveState, **changes: Any) -> LiveState:
    return replace(state, volumes=(replace(state.volumes[0], **changes), *state.volumes[1:]))
