"""A Pulumi state resource (a deployment's `resources[]` entry) back to trainctl props:
the inverse of the programs' argument names (stacks/storage.py, stacks/compute.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from planner.engines.pulumi.props import OUTSIDE_TAGS
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
from planner.live import TAG_ON_DELETE, TAG_PROJECT, LiveState
from planner.spec import Market, OnDelete

GONE = ("shutting-down", "terminated", "deleting", "deleted")

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
        props["on_delete"] = OnDelete.SNAPSHOT
    if kind == INSTANCE:
        market = (inputs.get("instanceMarketOptions") or {}).get("marketType")
        props["market"] = Market.SPOT if market == "spot" else Market.ON_DEMAND
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


def live_props(live: LiveState, project: str) -> dict[str, dict[str, Any]]:
    """The live resources of PROJECT as props, by volume/instance id and by attachment
    address: what a resource not yet in a stack is imported with (the snapshot the plan
    was made from: apply refuses a plan whose `live_digest` no longer matches). Tags
    trainctl writes outside the programs are left out (the programs ignore them)."""
    out: dict[str, dict[str, Any]] = {}
    by_id: dict[str, str] = {}
    for i in live.instances:        # by id: an `import:` names one that is not ours yet
        if i.state in GONE:
            continue
        out[i.id] = _clean({
            "ami": i.ami, "instance_type": i.instance_type,
            "availability_zone": i.availability_zone, "subnet_id": i.subnet_id,
            "iam_instance_profile": i.iam_instance_profile.rsplit("/", 1)[-1]
            if i.iam_instance_profile else None, "market": i.market, "tags": _tags(i.tags)})
        if i.tags.get(TAG_PROJECT) == project and (i.address or "").startswith("instance."):
            by_id[i.id] = str(i.address).split(".", 1)[1]
    seen: dict[str, int] = {}
    for v in live.volumes:
        if v.state in GONE:
            continue
        out[v.id] = _clean({
            "availability_zone": v.availability_zone, "size_gib": v.size_gib, "type": v.type,
            "iops": v.iops, "throughput_mibps": v.throughput_mibps, "encrypted": v.encrypted,
            "snapshot_id": v.snapshot_id, "on_delete": v.tags.get(TAG_ON_DELETE),
            "tags": _tags(v.tags)})
        name = (v.address or "").split(".", 1)[1] if (v.address or "").startswith(
            "volume.") and v.tags.get(TAG_PROJECT) == project else None
        for a in v.attachments:
            if name and a.instance_id in by_id and a.state in ("attaching", "attached"):
                address = f"attachment.{by_id[a.instance_id]}.{name}"
                seen[address] = seen.get(address, 0) + 1
                out[address] = {"instance": by_id[a.instance_id], "volume": name,
                                "device": a.device, "instance_id": a.instance_id,
                                "volume_id": v.id}
    for address, n in seen.items():
        if n > 1:                 # two live attachments carry one address: neither
            del out[address]
    return out


def _tags(tags: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in tags.items() if k not in OUTSIDE_TAGS}


def _clean(props: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in props.items() if v is not None}
