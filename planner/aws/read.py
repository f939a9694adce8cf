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
check the caller is not allowed to make is skipped (apply would report it).

`LiveState.spot_prices` is keyed `"INSTANCE_TYPE/AZ"` (e.g. `"g5.xlarge/us-east-1a"`),
the latest Linux/UNIX price per type and availability zone.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

from planner.aws.checks import check_references
from planner.aws.session import ACCESS_DENIED_CODES, AwsContext, aws_errors
from planner.errors import TrainctlError
from planner.live import (
    TAG_PROJECT,
    DatasetManifest,
    LiveAttachment,
    LiveEbsSnapshot,
    LiveInstance,
    LiveModification,
    LiveState,
    LiveVolume,
    StageState,
)
from planner.manifest import (  # noqa: F401  (re-exported for callers of this module)
    RECORD_NAME,
    Entry,
    local_entries,
    local_manifest,
    manifest_from_entries,
    s3_etag,
    split_s3_uri,
)
from planner.spec import Dataset, Market, Spec, Strategy
from planner.stage import StageRecord, record_from_bytes, stage_work
from planner.tags import with_recorded_modifications

VOLUME_PAGE = 500          # DescribeVolumes MaxResults cap
INSTANCE_PAGE = 1000       # DescribeInstances MaxResults cap
SNAPSHOT_PAGE = 1000
MODIFICATION_IDS = 500     # volume ids per DescribeVolumesModifications call
FILTER_VALUES = 200        # values per EC2 filter
LIST_PAGE = 1000           # ListObjectsV2 MaxKeys cap
LIVE_INSTANCE_STATES = ("pending", "running", "stopping", "stopped")
# read too: an instance terminated outside trainctl stays visible for a while, so the
# plan can say so instead of "does not exist yet" (the diff never acts on one)
READ_INSTANCE_STATES = (*LIVE_INSTANCE_STATES, "shutting-down", "terminated")
LIVE_VOLUME_STATES = ("creating", "available", "in-use", "error")
READ_THREADS = 8

Raw = list[dict[str, Any]]


def _chunks(items: list[str], n: int) -> Iterator[list[str]]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


def _utc(t: datetime) -> datetime:
    """tz-aware UTC, whole seconds (the snapshot's JSON form keeps seconds)."""
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.astimezone(UTC).replace(microsecond=0)


def _tags(items: Iterable[Mapping[str, str]] | None) -> Mapping[str, str]:
    return MappingProxyType({t["Key"]: t["Value"] for t in items or ()})


def _pages(client: Any, operation: str, key: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
    for page in client.get_paginator(operation).paginate(**kwargs):
        yield from page.get(key, ())


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


# --- dataset manifests ------------------------------------------------------------------


def list_prefix(s3: Any, uri: str) -> tuple[list[Entry], list[str], int]:
    """(entries, folder markers, pages) under URI, keys relative to its prefix; the
    record's key is not an entry. Raises botocore's ClientError (NoSuchBucket...)."""
    bucket, prefix = split_s3_uri(uri)
    entries: list[Entry] = []
    markers: list[str] = []
    pages = 0
    for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=prefix, PaginationConfig={"PageSize": LIST_PAGE}):
        pages += 1
        for obj in page.get("Contents", ()):
            key = obj["Key"][len(prefix):]
            if key.endswith("/"):
                markers.append(key)
            elif key and key != RECORD_NAME:
                entries.append((key, int(obj["Size"]), str(obj.get("ETag", "")).strip('"')))
    return entries, markers, max(pages, 1)


def read_record(s3: Any, stage_uri: str) -> tuple[StageRecord | None, str | None]:
    """(the stage record or None, why it could not be read or None). No record, or no
    bucket, is (None, None): nothing under the stage is trainctl's yet. A record that
    cannot be read owns nothing: nothing is deleted (the plan warns)."""
    from botocore.exceptions import ClientError

    bucket, prefix = split_s3_uri(stage_uri)
    try:
        raw = s3.get_object(Bucket=bucket, Key=prefix + RECORD_NAME)["Body"].read()
    except ClientError as e:
        code = e.response.get("Error", {}).get("Code")
        if code in ("NoSuchKey", "NoSuchBucket", "404"):
            return None, None
        if code in ACCESS_DENIED_CODES or code == "403":
            return None, (f"s3://{bucket}/{prefix}{RECORD_NAME} cannot be read ({code}; "
                          "iam-policy grants s3:GetObject there)")
        raise
    try:
        return record_from_bytes(raw), None
    except ValueError as e:
        return None, f"s3://{bucket}/{prefix}{RECORD_NAME} cannot be read: {e}"



def s3_manifest(aws: AwsContext, uri: str, *, missing_ok: bool = False) -> DatasetManifest:
    """One ListObjectsV2 page per 1,000 objects under `uri`, reduced to a manifest.

    Folder markers (keys ending in `/`) and trainctl's stage record are skipped (markers
    still count for unsafe keys). A missing bucket raises TrainctlError, or gives an
    empty manifest when `missing_ok`.
    """
    return _s3_listing(aws, uri, missing_ok=missing_ok)[0]


def _s3_listing(aws: AwsContext, uri: str, *, missing_ok: bool
                ) -> tuple[DatasetManifest, list[Entry]]:
    from botocore.exceptions import ClientError

    try:
        entries, markers, pages = list_prefix(aws.s3, uri)
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") != "NoSuchBucket":
            raise
        if not missing_ok:
            bucket, _ = split_s3_uri(uri)
            raise TrainctlError(f"bucket {bucket!r} of {uri} does not exist") from None
        entries, markers, pages = [], [], 1
    return manifest_from_entries(uri, entries, pages, markers), entries


def _local_source(spec: Spec, ds: Dataset) -> str:
    if os.path.isabs(ds.source):
        return ds.source
    base = os.path.dirname(os.path.abspath(spec.source_file))
    return os.path.join(base, ds.source)


@dataclass(frozen=True)
class _Read:
    """One dataset read: its manifest, and for a local dataset what the stage needs."""

    manifest: DatasetManifest
    entries: list[Entry] | None = None
    record: tuple[StageRecord | None, str | None] | None = None


def _read_local(path: str) -> _Read:
    entries = local_entries(path)
    return _Read(manifest_from_entries(Path(path).resolve().as_uri(), entries), entries)


def _dataset_tasks(spec: Spec, aws: AwsContext) -> list[tuple[str, Callable[[], _Read]]]:
    """(key, task) per manifest: the S3 side under NAME, a local source under NAME:local."""
    tasks: list[tuple[str, Callable[[], _Read]]] = []
    for name, ds in spec.datasets.items():
        if ds.is_local:
            tasks.append((f"{name}:local",
                          functools.partial(_read_local, _local_source(spec, ds))))
        if not ds.is_local or ds.stage:
            tasks.append((name, functools.partial(_dataset_manifest, aws, name, ds)))
    return tasks


def _dataset_manifest(aws: AwsContext, name: str, ds: Dataset) -> _Read:
    try:
        manifest, entries = _s3_listing(aws, ds.s3_uri, missing_ok=ds.is_local)
        if not ds.is_local:
            return _Read(manifest)
        return _Read(manifest, entries, read_record(aws.s3, ds.s3_uri))
    except TrainctlError as e:
        raise TrainctlError(f"dataset {name}: {e}") from None


def _combine(spec: Spec, reads: Mapping[str, _Read]
             ) -> tuple[dict[str, DatasetManifest], dict[str, StageState]]:
    """Manifests by key, and each local dataset's stage work (planner.stage)."""
    stages: dict[str, StageState] = {}
    for name, ds in spec.datasets.items():
        local, staged = reads.get(f"{name}:local"), reads.get(name)
        if not ds.is_local or local is None or staged is None or staged.record is None:
            continue
        record, problem = staged.record
        work = stage_work(local.entries or [], staged.entries or [], record, spec.project)
        stages[name] = work.state(owner=record.project if record else None, problem=problem)
    return {k: r.manifest for k, r in reads.items()}, stages


def read_datasets(spec: Spec, aws: AwsContext) -> dict[str, DatasetManifest]:
    """Manifests by dataset name (the S3 side), plus `NAME:local` for local sources."""
    with aws_errors():
        return _combine(spec, {key: task() for key, task in _dataset_tasks(spec, aws)})[0]


# --- EC2 --------------------------------------------------------------------------------


def _project_filter(spec: Spec) -> dict[str, Any]:
    return {"Name": f"tag:{TAG_PROJECT}", "Values": [spec.project]}


def _read_volumes(spec: Spec, ec2: Any) -> list[dict[str, Any]]:
    return list(_pages(
        ec2, "describe_volumes", "Volumes",
        Filters=[_project_filter(spec),
                 {"Name": "status", "Values": list(LIVE_VOLUME_STATES)}],
        PaginationConfig={"PageSize": VOLUME_PAGE},
    ))


def _instances(reservations: Iterable[Mapping[str, Any]]) -> Iterator[dict[str, Any]]:
    for r in reservations:
        yield from r.get("Instances", ())


def _read_instances(spec: Spec, ec2: Any) -> list[dict[str, Any]]:
    return list(_instances(_pages(
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
    for chunk in _chunks(sorted(vol_ids), FILTER_VALUES):
        volumes += _pages(ec2, "describe_volumes", "Volumes",
                          Filters=[{"Name": "volume-id", "Values": chunk}])
    for chunk in _chunks(sorted(inst_ids), FILTER_VALUES):
        instances += _instances(_pages(ec2, "describe_instances", "Reservations",
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
    for chunk in _chunks(sorted(volume_ids), MODIFICATION_IDS):
        try:
            out += _pages(ec2, "describe_volumes_modifications", "VolumesModifications",
                          VolumeIds=chunk)
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") != "InvalidVolume.NotFound":
                raise
            for small in _chunks(chunk, FILTER_VALUES):
                out += _pages(ec2, "describe_volumes_modifications", "VolumesModifications",
                              Filters=[{"Name": "volume-id", "Values": small}])
    return out


def _read_snapshots(spec: Spec, ec2: Any) -> list[dict[str, Any]]:
    return list(_pages(
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


def _error_code(e: Any) -> str:
    return str(e.response.get("Error", {}).get("Code", ""))


def read_zone_names(ec2: Any) -> list[str] | None:
    """The region's availability zones (one call); None when the caller may not ask."""
    from botocore.exceptions import ClientError

    try:
        resp = ec2.describe_availability_zones()
    except ClientError as e:
        if _error_code(e) in ACCESS_DENIED_CODES:
            return None
        raise
    return sorted(str(z["ZoneName"]) for z in resp.get("AvailabilityZones", ()))


def check_availability_zones(spec: Spec, zones: list[str] | None, region: str) -> list[str]:
    """Every volume and instance AZ of the spec must be one of the region's `zones`."""
    used = [(f"volumes.{n}.availability_zone", v.availability_zone)
            for n, v in spec.volumes.items()]
    used += [(f"instances.{n}.availability_zone", i.availability_zone)
             for n, i in spec.instances.items()]
    if not used or zones is None:
        return []
    known = set(zones)
    return [f"{path}: {az} is not an availability zone of {region} "
            f"(it has: {', '.join(zones)})"
            for path, az in used if az not in known]


def check_snapshots(spec: Spec, ec2: Any, region: str,
                    live_volumes: Iterable[LiveVolume]) -> list[str]:
    """The `snapshot_id`s still to restore exist and are usable.

    A volume already restored from its snapshot needs it no more (snapshots are often
    deleted after a restore), so it is not checked. Filters, not SnapshotIds: one call
    answers for every id and names the missing ones instead of failing on the first.
    """
    restored = {(v.address, v.snapshot_id) for v in live_volumes}
    wanted = {n: v.snapshot_id for n, v in spec.volumes.items()
              if v.snapshot_id and (f"volume.{n}", v.snapshot_id) not in restored}
    if not wanted:
        return []
    states: dict[str, str] = {}
    for chunk in _chunks(sorted(set(wanted.values())), FILTER_VALUES):
        for snap in _pages(ec2, "describe_snapshots", "Snapshots",
                           Filters=[{"Name": "snapshot-id", "Values": chunk}]):
            states[snap["SnapshotId"]] = str(snap.get("State", "completed"))
    problems = []
    for name, sid in wanted.items():
        if sid not in states:
            problems.append(f"volumes.{name}.snapshot_id: no snapshot {sid!r} in {region} "
                            "visible to this account")
        elif states[sid] == "error":
            problems.append(f"volumes.{name}.snapshot_id: snapshot {sid!r} is in state error")
    return problems


def _profile_name(profile: str) -> str:
    """`NAME`, or the last part of an instance profile ARN (`...:instance-profile/p/NAME`)."""
    return profile.rsplit("/", 1)[-1] if profile.startswith("arn:") else profile


def check_instance_profiles(spec: Spec, aws: AwsContext) -> list[str]:
    """One `get_instance_profile` per distinct profile name the spec's instances use."""
    from botocore.exceptions import ClientError

    users = [(n, i.iam_instance_profile) for n, i in spec.instances.items()
             if i.iam_instance_profile]
    if not users:
        return []           # no IAM client at all
    iam = aws.iam
    missing: set[str] = set()
    for name in sorted({_profile_name(p) for _, p in users}):
        try:
            iam.get_instance_profile(InstanceProfileName=name)
        except ClientError as e:
            code = _error_code(e)
            if code == "NoSuchEntity":
                missing.add(name)
            elif code in ACCESS_DENIED_CODES:
                return []
            else:
                raise
    return [f"instances.{n}.iam_instance_profile: no instance profile {p!r} in this account"
            for n, p in users if _profile_name(p) in missing]


def needs_project_role(spec: Spec) -> bool:
    """An instance with no `iam_instance_profile`, or a prewarm (its temporary instance)."""
    return any(not i.iam_instance_profile for i in spec.instances.values()) or any(
        d.strategy == Strategy.PREWARMED_EBS for d in spec.datasets.values())


def check_data_policy(spec: Spec, aws: AwsContext) -> list[str]:
    """One `get_policy`: the project role's `trainctl-PROJECT-data` policy exists.

    Skipped when the role is not needed, when access is denied, and on an emulator on
    this machine (a loopback endpoint; the engine creates the policy there itself)."""
    from botocore.exceptions import ClientError

    from planner.aws.session import account_of, is_loopback
    from planner.iamnames import (
        create_data_policy_commands,
        data_policy_arn,
        data_policy_name,
    )

    if not needs_project_role(spec) or is_loopback(aws.endpoint_url):
        return []
    arn = data_policy_arn(account_of(aws), spec.project)
    try:
        aws.iam.get_policy(PolicyArn=arn)
    except ClientError as e:
        code = _error_code(e)
        if code in ACCESS_DENIED_CODES:
            return []
        if code != "NoSuchEntity":
            raise
        return [f"{spec.source_file}: the project role {'trainctl-' + spec.project + '-ssm'} "
                f"needs the managed policy {data_policy_name(spec.project)} ({arn}), which "
                "does not exist; trainctl does not create IAM policies: have an admin "
                "create it once:\n" + create_data_policy_commands(spec)]
    return []


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
                      for key, task in (_dataset_tasks(spec, aws) if with_datasets else ())]
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
        datasets, stages = _combine(spec, {key: f.result() for key, f in f_datasets})
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
