"""Find one managed resource of a project by its address tag (day-2 commands)."""

from __future__ import annotations

from typing import Any

from planner.aws.read import LIVE_INSTANCE_STATES, instance_from_aws
from planner.errors import TrainctlError
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
