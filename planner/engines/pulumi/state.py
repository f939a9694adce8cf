"""A Pulumi state resource (a deployment's `resources[]` entry) back to trainctl props:
the inverse of the programs' argument names (stacks/storage.py, stacks/compute.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from planner.engines.pulumi.schema import (
    ATTACHMENT,
    INSTANCE,
    PROFILE,
    ROLE,
    ROLE_POLICY,
    VOLUME,
    Deployed,
    _frozen,
)

TYPES = {"aws:ebs/volume:Volume": VOLUME, "aws:ec2/instance:Instance": INSTANCE,
         "aws:ec2/volumeAttachment:VolumeAttachment": ATTACHMENT,
         "aws:iam/role:Role": ROLE, "aws:iam/rolePolicyAttachment:RolePolicyAttachment":
         ROLE_POLICY, "aws:iam/instanceProfile:InstanceProfile": PROFILE}
# the provider's input names -> props
NAMES: dict[str, dict[str, str]] = {
    VOLUME: {"availabilityZone": "availability_zone", "size": "size_gib", "type": "type",
             "iops": "iops", "throughput": "throughput_mibps", "encrypted": "encrypted",
             "snapshotId": "snapshot_id", "tags": "tags"},
    INSTANCE: {"ami": "ami", "instanceType": "instance_type",
               "availabilityZone": "availability_zone", "subnetId": "subnet_id",
               "iamInstanceProfile": "iam_instance_profile",
               "instanceInitiatedShutdownBehavior": "shutdown_behavior", "tags": "tags"},
    ATTACHMENT: {"deviceName": "device", "instanceId": "instance_id", "volumeId": "volume_id"},
    ROLE: {"name": "name", "assumeRolePolicy": "assume_role_policy",
           "description": "description", "tags": "tags"},
    ROLE_POLICY: {"role": "role", "policyArn": "policy_arn"},
    PROFILE: {"name": "name", "role": "role", "tags": "tags"},
}


def props_of(res: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """(address, props) of a state resource the programs declare; None for the stack,
    the provider and anything else."""
    kind = TYPES.get(str(res.get("type")))
    urn = str(res.get("urn") or "")
    if kind is None or "::" not in urn:
        return None
    address = urn.rsplit("::", 1)[1]
    inputs = res.get("inputs") or {}
    props = {prop: inputs[name] for name, prop in NAMES[kind].items()
             if inputs.get(name) is not None}
    if isinstance(props.get("size_gib"), float) and props["size_gib"].is_integer():
        props["size_gib"] = int(props["size_gib"])
    if kind == VOLUME and inputs.get("finalSnapshot"):
        props["on_delete"] = "snapshot"
    if kind == INSTANCE:
        market = (inputs.get("instanceMarketOptions") or {}).get("marketType")
        props["market"] = "spot" if market == "spot" else "on-demand"
    if kind == ATTACHMENT:
        _, instance, volume = [*address.split(".", 2), "", ""][:3]
        props.update(instance=instance, volume=volume)
    return address, props


def from_deployment(*deployments: Mapping[str, Any]) -> Deployed:
    """What the stacks hold, from their state (`Stack.export_stack().deployment`): every
    resource named by a trainctl address, with the inputs Pulumi recorded as props. The
    state is the truth after a crash (outputs are written only by a finished `up`)."""
    addresses: set[str] = set()
    props: dict[str, Mapping[str, Any]] = {}
    ids: dict[str, str] = {}
    for deployment in deployments:
        for res in deployment.get("resources") or ():
            if res.get("delete"):           # a replaced resource waiting for its delete
                continue
            got = props_of(res)
            if got is None:
                continue
            address, p = got
            addresses.add(address)
            props[address] = _frozen(p)
            if isinstance(res.get("id"), str) and res["id"]:
                ids[address] = res["id"]
    return Deployed(frozenset(addresses), _frozen(props), _frozen(ids))
