"""The spec's references that only AWS can check, read in one batch each at plan time.

One `describe_subnets` (filtered by id, so missing ids are named instead of failing the
call) for every `subnet_id`, which must exist and lie in its instance's AZ; one
paginated `describe_instance_type_offerings` (location type availability-zone, filtered
by type) for every instance type in its AZ, prewarm's temporary instances included. A
check the caller is not allowed to make is skipped (apply would report it). Problems
come back located in the spec file (FILE:LINE:COL: path: message).

Also here, called by planner.aws.read: one `describe_availability_zones` (the region's
zones), one `describe_snapshots` for the `snapshot_id`s still to restore, one IAM
`get_instance_profile` per distinct profile name, and one `get_policy` for the project
role's data policy; their problems are plain strings.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from planner.aws.paging import FILTER_VALUES, chunks, pages
from planner.aws.session import ACCESS_DENIED_CODES, AwsContext
from planner.live import LiveVolume
from planner.spec import Spec, Strategy

Problem = tuple[tuple[str | int, ...], str]




def _denied(e: Any) -> bool:
    return str(e.response.get("Error", {}).get("Code", "")) in ACCESS_DENIED_CODES


def check_subnets(spec: Spec, ec2: Any, region: str) -> list[Problem]:
    """Every `subnet_id` exists in the region and lies in its instance's AZ."""
    from botocore.exceptions import ClientError

    users = [(n, i.subnet_id, i.availability_zone) for n, i in spec.instances.items()
             if i.subnet_id]
    if not users:
        return []
    zones: dict[str, str] = {}
    try:
        for chunk in chunks(sorted({s for _, s, _ in users})):
            for page in ec2.get_paginator("describe_subnets").paginate(
                    Filters=[{"Name": "subnet-id", "Values": chunk}]):
                for s in page.get("Subnets", ()):
                    zones[str(s["SubnetId"])] = str(s.get("AvailabilityZone", ""))
    except ClientError as e:
        if _denied(e):
            return []
        raise
    out: list[Problem] = []
    for name, subnet, az in users:
        path = ("instances", name, "subnet_id")
        if subnet not in zones:
            out.append((path, f"no subnet {subnet!r} in {region} visible to this account"))
        elif zones[subnet] != az:
            out.append((path, f"subnet {subnet} is in {zones[subnet]}, but the instance is "
                              f"in {az}; an instance launches in its subnet's AZ"))
    return out


def _wanted_types(spec: Spec) -> list[tuple[tuple[str | int, ...], str, str]]:
    """(spec path, instance type, AZ) for every instance trainctl may launch."""
    from planner.prewarmtypes import prewarm_image

    out: list[tuple[tuple[str | int, ...], str, str]] = [
        (("instances", n, "instance_type"), i.instance_type, i.availability_zone)
        for n, i in spec.instances.items() if not i.import_id]
    for name, ds in spec.datasets.items():
        vol = spec.volumes.get(ds.volume or "")
        if ds.strategy != Strategy.PREWARMED_EBS or vol is None:
            continue
        _ami, itype = prewarm_image(spec, vol.availability_zone)   # what the prewarm uses
        out.append((("datasets", name, "strategy"), itype, vol.availability_zone))
    return out


def check_instance_types(spec: Spec, ec2: Any,
                         zones: list[str] | None = None) -> list[Problem]:
    """Every instance type is offered in its AZ (one paginated call for all of them).

    An AZ outside `zones` (the region's, when known) is skipped: the AZ check names it.
    """
    from botocore.exceptions import ClientError

    wanted = [w for w in _wanted_types(spec) if zones is None or w[2] in zones]
    if not wanted:
        return []
    types = sorted({t for _, t, _ in wanted})
    offered: set[tuple[str, str]] = set()
    try:
        for chunk in chunks(types):
            for page in ec2.get_paginator("describe_instance_type_offerings").paginate(
                    LocationType="availability-zone",
                    Filters=[{"Name": "instance-type", "Values": chunk}]):
                for o in page.get("InstanceTypeOfferings", ()):
                    offered.add((str(o["InstanceType"]), str(o["Location"])))
    except ClientError as e:
        if _denied(e):
            return []
        raise
    out: list[Problem] = []
    for path, itype, az in wanted:
        if (itype, az) in offered:
            continue
        elsewhere = sorted(z for t, z in offered if t == itype)
        hint = f" (offered in {', '.join(elsewhere)})" if elsewhere else ""
        if path[0] == "datasets":
            out.append((path, f"prewarm's temporary {itype} instance is not offered in "
                              f"{az}, the volume's availability zone{hint}"))
        else:
            out.append((path, f"{itype} is not offered in {az}{hint}"))
    return out


def locate(spec: Spec, problems: list[Problem]) -> list[str]:
    """`FILE:LINE:COL: path: message` lines, positions read from the spec file again."""
    from planner.yamlsafe import format_path, load_yaml

    if not problems:
        return []
    try:
        doc = load_yaml(spec.source_file)
    except Exception:       # the file changed or went away since it was loaded
        return sorted(f"{spec.source_file}: {format_path(p)}: {m}" for p, m in problems)
    return [str(i) for i in sorted(doc.issue(p, m) for p, m in problems)]


def check_references(spec: Spec, ec2: Any, region: str,
                     zones: Callable[[], list[str] | None] = lambda: None) -> list[str]:
    """Subnets and instance type offerings, located in the spec file.

    `zones()` gives the region's AZs (None if unknown); it is called only when needed.
    """
    subnets = check_subnets(spec, ec2, region)
    types = check_instance_types(spec, ec2, zones() if _wanted_types(spec) else None)
    return locate(spec, subnets + types)


# --- the spec's other references to AWS (plain-string problems) ---------------------


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
    for chunk in chunks(sorted(set(wanted.values())), FILTER_VALUES):
        for snap in pages(ec2, "describe_snapshots", "Snapshots",
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
