"""Read live AWS state for one spec in batches: the only planning module that calls AWS.

Calls are constant in the number of resources (modulo page size): one paginated
`describe_volumes` and one `describe_instances` filtered by `tag:trainctl:project`, one
of each for the ids named by `import:`, `describe_volumes_modifications` by chunks of
500 volume ids, one `describe_snapshots`, one `describe_spot_price_history`, and one
ListObjectsV2 page per 1,000 objects of each dataset.

The spec's references to AWS are checked on the way, so a typo fails the plan instead of
half an apply: one `describe_availability_zones` (the region's zones), one
`describe_snapshots` for the `snapshot_id`s still to restore, and one IAM
`get_instance_profile` per distinct profile name, and the subnets and instance type
offerings (planner.aws.checks: one call each). Every problem is reported at once; a
check the caller is not allowed to make is skipped (apply would report it). The
datasets' manifests are read by planner.aws.datasets_read.

`LiveState.spot_prices` is keyed `"INSTANCE_TYPE/AZ"` (e.g. `"g5.xlarge/us-east-1a"`),
the latest Linux/UNIX price per type and availability zone.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from planner.aws.checks import (
    check_availability_zones,
    check_data_policy,
    check_instance_profiles,
    check_references,
    check_snapshots,
    read_zone_names,
)
from planner.aws.datasets_read import combine_datasets, dataset_tasks
from planner.aws.paging import FILTER_VALUES, chunks, pages
from planner.aws.session import AwsContext, aws_errors
from planner.errors import TrainctlError
from planner.live import (
    TAG_PROJECT,
    LiveAttachment,
    LiveEbsSnapshot,
    LiveInstance,
    LiveModification,
    LiveState,
    LiveVolume,
)
from planner.spec import Market, Spec
from planner.tags import with_recorded_modifications

VOLUME_PAGE = 500          # DescribeVolumes MaxResults cap
INSTANCE_PAGE = 1000       # DescribeInstances MaxResults cap
SNAPSHOT_PAGE = 1000
MODIFICATION_IDS = 500     # volume ids per DescribeVolumesModifications call
LIVE_INSTANCE_STATES = ("pending", "running", "stopping", "stopped")
# read too: an instance terminated outside trainctl stays visible for a while, so the
# plan can say so instead of "does not exist yet" (the diff never acts on one)
READ_INSTANCE_STATES = (*LIVE_INSTANCE_STATES, "shutting-down", "terminated")
LIVE_VOLUME_STATES = ("creating", "available", "in-use", "error")
READ_THREADS = 8

Raw = list[dict[str, Any]]



def _utc(t: datetime) -> datetime:
    """tz-aware UTC, whole seconds (the snapshot's JSON form keeps seconds)."""
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.astimezone(UTC).replace(microsecond=0)


def _tags(items: Iterable[Mapping[str, str]] | None) -> Mapping[str, str]:
    return MappingProxyType({t["Key"]: t["Value"] for t in items or ()})



# --- boto3 shapes -> planner.live ------------------------------------------------------


def volume_from_aws(v: Mapping[str, Any]) -> LiveVolume:
    return LiveVolume(
        id=v["VolumeId"],
        availability_zone=v["AvailabilityZone"],
        size_gib=int(v["Size"]),
        type=v.get("VolumeType", "gp2"),
        state=v.get("State", "available"),
        create_time=_utc(v["CreateTime"]),
        iops=v.get("Iops"),
        throughput_mibps=v.get("Throughput"),
        encrypted=bool(v.get("Encrypted", False)),
        snapshot_id=v.get("SnapshotId") or None,
        tags=_tags(v.get("Tags")),
        attachments=tuple(
            LiveAttachment(instance_id=a["InstanceId"], device=a.get("Device", ""),
                           state=a.get("State", "attached"))
            for a in v.get("Attachments", ())
        ),
    )


def instance_from_aws(i: Mapping[str, Any]) -> LiveInstance:
    profile = i.get("IamInstanceProfile") or {}
    return LiveInstance(
        id=i["InstanceId"],
        instance_type=i["InstanceType"],
        availability_zone=(i.get("Placement") or {}).get("AvailabilityZone", ""),
        state=(i.get("State") or {}).get("Name", "pending"),
        launch_time=_utc(i["LaunchTime"]),
        ami=i.get("ImageId"),
        market=Market.SPOT if i.get("InstanceLifecycle") == "spot" else Market.ON_DEMAND,
        subnet_id=i.get("SubnetId") or None,
        iam_instance_profile=profile.get("Arn"),
        tags=_tags(i.get("Tags")),
    )


def modification_from_aws(m: Mapping[str, Any]) -> LiveModification:
    end = m.get("EndTime")
    return LiveModification(
        volume_id=m["VolumeId"],
        state=m.get("ModificationState", "completed"),
        start_time=_utc(m["StartTime"]),
        end_time=_utc(end) if end else None,
    )


def snapshot_from_aws(s: Mapping[str, Any]) -> LiveEbsSnapshot:
    return LiveEbsSnapshot(
        id=s["SnapshotId"],
        volume_id=s.get("VolumeId") or None,
        state=s.get("State", "pending"),
        start_time=_utc(s["StartTime"]),
        tags=_tags(s.get("Tags")),
    )


# --- EC2 --------------------------------------------------------------------------------


def _project_filter(spec: Spec) -> dict[str, Any]:
    return {"Name": f"tag:{TAG_PROJECT}", "Values": [spec.project]}


def _read_volumes(spec: Spec, ec2: Any) -> list[dict[str, Any]]:
    return list(pages(
        ec2, "describe_volumes", "Volumes",
        Filters=[_project_filter(spec),
                 {"Name": "status", "Values": list(LIVE_VOLUME_STATES)}],
        PaginationConfig={"PageSize": VOLUME_PAGE},
    ))


def _instances(reservations: Iterable[Mapping[str, Any]]) -> Iterator[dict[str, Any]]:
    for r in reservations:
        yield from r.get("Instances", ())


def _read_instances(spec: Spec, ec2: Any) -> list[dict[str, Any]]:
    return list(_instances(pages(
        ec2, "describe_instances", "Reservations",
        Filters=[_project_filter(spec),
                 {"Name": "instance-state-name", "Values": list(READ_INSTANCE_STATES)}],
        PaginationConfig={"PageSize": INSTANCE_PAGE},
    )))


def _read_imports(spec: Spec, ec2: Any, region: str) -> tuple[Raw, Raw, list[str]]:
    """The volumes and instances named by `import:`, and a problem line per missing id.

    Filters (not VolumeIds/InstanceIds) so that one call answers for all ids and the
    missing ones can be named, instead of failing on the first.
    """
    vol_ids = {v.import_id: f"volume.{n}" for n, v in spec.volumes.items() if v.import_id}
    inst_ids = {i.import_id: f"instance.{n}" for n, i in spec.instances.items() if i.import_id}
    volumes: Raw = []
    instances: Raw = []
    for chunk in chunks(sorted(vol_ids), FILTER_VALUES):
        volumes += pages(ec2, "describe_volumes", "Volumes",
                          Filters=[{"Name": "volume-id", "Values": chunk}])
    for chunk in chunks(sorted(inst_ids), FILTER_VALUES):
        instances += _instances(pages(ec2, "describe_instances", "Reservations",
                                       Filters=[{"Name": "instance-id", "Values": chunk}]))
    states = {v["VolumeId"]: v.get("State") for v in volumes}
    states.update({i["InstanceId"]: (i.get("State") or {}).get("Name") for i in instances})
    live_states = {*LIVE_VOLUME_STATES, *LIVE_INSTANCE_STATES}
    problems = []
    for rid, addr in sorted({**vol_ids, **inst_ids}.items(), key=lambda kv: kv[1]):
        if rid not in states:
            problems.append(f"{addr}: import: {rid} does not exist in {region}")
        elif states[rid] not in live_states:
            problems.append(f"{addr}: import: {rid} is {states[rid]}")
    return volumes, instances, problems


def _read_modifications(ec2: Any, volume_ids: list[str]) -> list[dict[str, Any]]:
    """The latest modification of each volume, by chunks of ids.

    A volume deleted since it was listed makes VolumeIds fail for the whole chunk:
    that chunk is asked again with a volume-id filter, which ignores missing ids.
    """
    from botocore.exceptions import ClientError

    out: list[dict[str, Any]] = []
    for chunk in chunks(sorted(volume_ids), MODIFICATION_IDS):
        try:
            out += pages(ec2, "describe_volumes_modifications", "VolumesModifications",
                          VolumeIds=chunk)
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") != "InvalidVolume.NotFound":
                raise
            for small in chunks(chunk, FILTER_VALUES):
                out += pages(ec2, "describe_volumes_modifications", "VolumesModifications",
                              Filters=[{"Name": "volume-id", "Values": small}])
    return out


def _read_snapshots(spec: Spec, ec2: Any) -> list[dict[str, Any]]:
    return list(pages(
        ec2, "describe_snapshots", "Snapshots", OwnerIds=["self"],
        Filters=[_project_filter(spec)], PaginationConfig={"PageSize": SNAPSHOT_PAGE},
    ))


def read_spot_prices(ec2: Any, instance_types: Iterable[str], now: datetime) -> dict[str, float]:
    """Latest Linux/UNIX spot price per `TYPE/AZ`, in one call; {} when AWS will not say."""
    from botocore.exceptions import ClientError

    types = sorted(set(instance_types))
    if not types:
        return {}
    latest: dict[str, tuple[datetime, float]] = {}
    try:
        resp = ec2.describe_spot_price_history(
            InstanceTypes=types, ProductDescriptions=["Linux/UNIX"],
            StartTime=now, EndTime=now, MaxResults=1000,
        )
    except ClientError:
        return {}     # not allowed or not supported: cost falls back to a fraction
    for p in resp.get("SpotPriceHistory", ()):
        # Emulators may ignore ProductDescriptions; keep Linux/UNIX (incl. "(Amazon VPC)").
        if not str(p.get("ProductDescription", "Linux/UNIX")).startswith("Linux/UNIX"):
            continue
        try:
            price = float(p["SpotPrice"])
        except (KeyError, ValueError):
            continue
        key = f"{p['InstanceType']}/{p['AvailabilityZone']}"
        ts = p.get("Timestamp") or now
        if key not in latest or ts > latest[key][0]:
            latest[key] = (ts, price)
    return {k: v[1] for k, v in sorted(latest.items())}


def read_image_roots(ec2: Any, amis: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Root volume size and type of each AMI, in one call; an AMI AWS will not describe is
    left out (cost then prices the documented default root volume)."""
    from botocore.exceptions import ClientError

    ids = sorted({a for a in amis if a})
    if not ids:
        return {}
    try:
        images = ec2.describe_images(ImageIds=ids).get("Images", ())
    except ClientError:
        return {}
    roots: dict[str, dict[str, Any]] = {}
    for img in images:
        root = img.get("RootDeviceName")
        for m in img.get("BlockDeviceMappings", ()):
            ebs = m.get("Ebs") or {}
            if m.get("DeviceName") == root and isinstance(ebs.get("VolumeSize"), int):
                roots[str(img["ImageId"])] = {"size_gib": ebs["VolumeSize"],
                                              "type": str(ebs.get("VolumeType") or "gp2")}
    return dict(sorted(roots.items()))


# --- the spec's references to AWS ---------------------------------------------------------


def _dedupe(items: Iterable[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    return list({i[key]: i for i in items}.values())


def read_live(spec: Spec, aws: AwsContext, *, now: datetime,
              with_datasets: bool = True) -> LiveState:
    """A snapshot of everything the spec owns (by tag) or imports, read in batches.

    Independent reads run concurrently (wall time is the slowest chain, not the sum);
    the calls made are the same as in sequence. A spec that names what does not exist
    (availability zone, snapshot, instance profile, imported id) raises one TrainctlError
    listing every such problem.
    """
    start_calls = aws.total_calls()
    with aws_errors(), ThreadPoolExecutor(max_workers=READ_THREADS) as pool:
        ec2 = aws.ec2
        f_volumes = pool.submit(_read_volumes, spec, ec2)
        f_instances = pool.submit(_read_instances, spec, ec2)
        f_imports = pool.submit(_read_imports, spec, ec2, aws.region)
        f_snapshots = pool.submit(_read_snapshots, spec, ec2)
        f_zone_names = (pool.submit(read_zone_names, ec2)
                        if spec.volumes or spec.instances else None)

        def zone_names() -> list[str] | None:
            return f_zone_names.result() if f_zone_names else None

        f_profiles = pool.submit(check_instance_profiles, spec, aws)
        # an AZ that is not one is reported once, as such, not again per instance type
        f_references = pool.submit(check_references, spec, ec2, aws.region, zone_names)
        f_data_policy = pool.submit(check_data_policy, spec, aws)
        f_datasets = [(key, pool.submit(task))
                      for key, task in (dataset_tasks(spec, aws) if with_datasets else ())]
        imp_volumes, imp_instances, import_problems = f_imports.result()
        volumes = sorted(
            (volume_from_aws(v)
             for v in _dedupe(f_volumes.result() + imp_volumes, "VolumeId")),
            key=lambda v: v.id,
        )
        f_spec_snapshots = pool.submit(check_snapshots, spec, ec2, aws.region, volumes)
        f_modifications = (pool.submit(_read_modifications, ec2, [v.id for v in volumes])
                           if volumes else None)
        instances = sorted(
            (instance_from_aws(i)
             for i in _dedupe(f_instances.result() + imp_instances, "InstanceId")),
            key=lambda i: i.id,
        )
        spot_types = [i.instance_type for i in spec.instances.values()
                      if i.market == Market.SPOT]
        spot_types += [i.instance_type for i in instances if i.market == Market.SPOT]
        spot_prices = read_spot_prices(ec2, spot_types, now)
        image_roots = read_image_roots(ec2, [i.ami for i in spec.instances.values()])
        modifications = with_recorded_modifications(
            volumes, (modification_from_aws(m) for m in f_modifications.result())
            if f_modifications else ())
        snapshots = sorted((snapshot_from_aws(s) for s in f_snapshots.result()),
                           key=lambda s: s.id)
        zone_problems = check_availability_zones(spec, zone_names(), aws.region)
        problems = (f_references.result() + zone_problems + f_spec_snapshots.result()
                    + f_profiles.result() + f_data_policy.result() + import_problems)
        if problems:
            raise TrainctlError("\n".join(problems))
        datasets, stages = combine_datasets(spec, {key: f.result() for key, f in f_datasets})
    return LiveState(
        project=spec.project,
        region=aws.region,
        read_at=_utc(now),
        volumes=tuple(volumes),
        instances=tuple(instances),
        modifications=tuple(modifications),
        snapshots=tuple(snapshots),
        datasets=MappingProxyType(dict(sorted(datasets.items()))),
        stages=MappingProxyType(dict(sorted(stages.items()))),
        spot_prices=MappingProxyType(spot_prices),
        image_roots=MappingProxyType(image_roots),
        api_calls=aws.total_calls() - start_calls,
    )
