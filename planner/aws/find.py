"""Find one managed resource of a project by its address tag (day-2 commands)."""

from __future__ import annotations

from typing import Any

from planner.aws.read import LIVE_INSTANCE_STATES, instance_from_aws
from planner.errors import TrainctlError
from planner.ledger import Kind, Observed
from planner.live import TAG_ADDRESS, TAG_PROJECT, LiveInstance


def find_instance(ec2: Any, project: str, address: str) -> LiveInstance:
    """The one live instance at ADDRESS; an error when there is none, or more than one."""
    found: list[LiveInstance] = []
    for page in ec2.get_paginator("describe_instances").paginate(Filters=[
            {"Name": f"tag:{TAG_PROJECT}", "Values": [project]},
            {"Name": f"tag:{TAG_ADDRESS}", "Values": [address]},
            {"Name": "instance-state-name", "Values": list(LIVE_INSTANCE_STATES)}]):
        for r in page.get("Reservations", ()):
            found += [instance_from_aws(i) for i in r.get("Instances", ())]
    if not found:
        raise TrainctlError(f"{address} does not exist in project {project}: "
                            "run `trainctl apply` first")
    if len(found) > 1:
        ids = ", ".join(sorted(i.id for i in found))
        raise TrainctlError(f"{address} has {len(found)} live instances ({ids}); "
                            "`trainctl plan` shows how to resolve the duplicate")
    inst = found[0]
    if inst.state != "running":
        raise TrainctlError(f"{address} ({inst.id}) is {inst.state}, not running")
    return inst


def _flags(tags: dict[str, str]) -> tuple[str, ...]:
    return tuple(f for f in ("persistent", "protected", "temporary")
                 if tags.get(f"trainctl:{f}") == "true")


def _label(tags: dict[str, str], project: str, rid: str) -> str:
    """The address, else the Name tag less the project (root volumes, temporary ones)."""
    if TAG_ADDRESS in tags:
        return tags[TAG_ADDRESS]
    name = tags.get("Name", "")
    return name.removeprefix(f"{project}/") or rid


def observe_project(ec2: Any, project: str) -> list[Observed]:
    """Every billable resource tagged with the project: two paginated describes."""
    from planner.aws.read import LIVE_VOLUME_STATES, volume_from_aws

    flt = {"Name": f"tag:{TAG_PROJECT}", "Values": [project]}
    out: list[Observed] = []
    for page in ec2.get_paginator("describe_volumes").paginate(Filters=[
            flt, {"Name": "status", "Values": list(LIVE_VOLUME_STATES)}]):
        for raw in page.get("Volumes", ()):
            v = volume_from_aws(raw)
            out.append(Observed(v.id, _label(dict(v.tags), project, v.id), Kind.VOLUME,
                                v.create_time, True, {
                                    "size_gib": v.size_gib, "type": v.type, "iops": v.iops,
                                    "throughput_mibps": v.throughput_mibps,
                                    "availability_zone": v.availability_zone},
                                _flags(dict(v.tags)), v.state))
    for page in ec2.get_paginator("describe_instances").paginate(Filters=[
            flt, {"Name": "instance-state-name", "Values": list(LIVE_INSTANCE_STATES)}]):
        for r in page.get("Reservations", ()):
            for raw in r.get("Instances", ()):
                i = instance_from_aws(raw)
                out.append(Observed(i.id, _label(dict(i.tags), project, i.id), Kind.INSTANCE,
                                    i.launch_time, i.state in ("pending", "running"), {
                                        "instance_type": i.instance_type, "market": i.market,
                                        "availability_zone": i.availability_zone,
                                        "state": i.state}, _flags(dict(i.tags)),
                                    i.state))
    return out
