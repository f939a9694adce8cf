"""The guards' fresh read (planner.guards.FreshRead) on EC2: one describe per question,
answered as planner.live types, so the guards stay engine-neutral and free of boto3."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from planner.aws.read import instance_from_aws, volume_from_aws
from planner.aws.session import aws_errors
from planner.live import TAG_ADDRESS, TAG_PROJECT, LiveInstance, LiveVolume

LIVE_VOLUME_STATES = ("creating", "available", "in-use")
LIVE_INSTANCE_STATES = ("pending", "running", "stopping", "stopped")
_MISSING = ("InvalidVolume.NotFound", "InvalidVolumeID.Malformed",
            "InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed")


def _code(e: Exception) -> str:
    return str(getattr(e, "response", {}).get("Error", {}).get("Code", ""))


class AwsFreshRead:
    """FreshRead over an AwsContext's EC2 client (botocore's retries apply)."""

    def __init__(self, aws: Any):
        self.aws = aws
        self.region = str(aws.region)

    def _call(self, op: str, **kwargs: Any) -> Mapping[str, Any] | None:
        from botocore.exceptions import ClientError

        with aws_errors():
            try:
                resp: Mapping[str, Any] = getattr(self.aws.ec2, op)(**kwargs)
            except ClientError as e:
                if _code(e) in _MISSING:
                    return None
                raise
        return resp

    def volume(self, volume_id: str) -> LiveVolume | None:
        resp = self._call("describe_volumes", VolumeIds=[volume_id])
        found = (resp or {}).get("Volumes", [])
        return volume_from_aws(found[0]) if found else None

    def instance(self, instance_id: str) -> LiveInstance | None:
        resp = self._call("describe_instances", InstanceIds=[instance_id])
        found = [i for r in (resp or {}).get("Reservations", ()) for i in r.get("Instances", ())]
        return instance_from_aws(found[0]) if found else None

    def _owned(self, project: str, address: str, state: str,
               states: tuple[str, ...]) -> list[dict[str, Any]]:
        return [{"Name": f"tag:{TAG_PROJECT}", "Values": [project]},
                {"Name": f"tag:{TAG_ADDRESS}", "Values": [address]},
                {"Name": state, "Values": list(states)}]

    def volumes_at(self, project: str, address: str) -> tuple[LiveVolume, ...]:
        resp = self._call("describe_volumes", Filters=self._owned(
            project, address, "status", LIVE_VOLUME_STATES))
        return tuple(volume_from_aws(v) for v in (resp or {}).get("Volumes", ()))

    def instances_at(self, project: str, address: str) -> tuple[LiveInstance, ...]:
        filters = self._owned(project, address, "instance-state-name", LIVE_INSTANCE_STATES)
        with aws_errors():
            pages = self.aws.ec2.get_paginator("describe_instances").paginate(Filters=filters)
            return tuple(instance_from_aws(i) for page in pages
                         for r in page.get("Reservations", ()) for i in r.get("Instances", ()))

