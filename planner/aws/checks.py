"""The spec's references that only AWS can check, read in one batch each at plan time.

One `describe_subnets` (filtered by id, so missing ids are named instead of failing the
call) for every `subnet_id`, which must exist and lie in its instance's AZ; one
paginated `describe_instance_type_offerings` (location type availability-zone, filtered
by type) for every instance type in its AZ, prewarm's temporary instances included. A
check the caller is not allowed to make is skipped (apply would report it). Problems
come back located in the spec file (FILE:LINE:COL: path: message).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from planner.aws.session import ACCESS_DENIED_CODES
from planner.spec import Spec, Strategy

FILTER_VALUES = 200
Problem = tuple[tuple[str | int, ...], str]


def _chunks(items: list[str], n: int = FILTER_VALUES) -> Iterator[list[str]]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


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
        for chunk in _chunks(sorted({s for _, s, _ in users})):
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
        for chunk in _chunks(types):
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
