"""The compute stack: EC2 instances and their volume attachments. The volumes live in
the storage stack: an attachment names its volume by id (the storage pass runs first);
its instance, declared here, by reference, so Pulumi orders and replaces them together."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi
import pulumi_aws as aws

from stacks._common import as_doc, by_kind, check_kinds, export, options, provider, set_args

INSTANCE_ARGS = {"ami": "ami", "instance_type": "instance_type",
                 "availability_zone": "availability_zone", "subnet_id": "subnet_id",
                 "iam_instance_profile": "iam_instance_profile",
                 "shutdown_behavior": "instance_initiated_shutdown_behavior",
                 "tags": "tags"}
# IMDSv2 only, as the direct engine launches them
METADATA = {"http_tokens": "required", "http_endpoint": "enabled",
            "http_put_response_hop_limit": 2}
SPOT = {"market_type": "spot",
        "spot_options": {"spot_instance_type": "one-time",
                         "instance_interruption_behavior": "terminate"}}
KINDS = ("instance", "attachment")


def root_tags(tags: Mapping[str, str], address: str) -> dict[str, str]:
    """The root volume's tags as the direct engine writes them: the user's tags, Name
    `PROJECT/ADDRESS/root` and the project tag (no address: it is not a trainctl volume)."""
    project = tags.get("trainctl:project", "")
    out = {k: v for k, v in tags.items() if k != "Name" and not k.startswith("trainctl:")}
    return {**out, "Name": f"{project}/{address}/root", "trainctl:project": project}


def instance(res: Mapping[str, Any], prov: aws.Provider) -> aws.ec2.Instance:
    props = res["props"]
    args = set_args(props, INSTANCE_ARGS)
    if props.get("market") == "spot":
        args["instance_market_options"] = SPOT
    tags = props.get("tags") or {}
    made = aws.ec2.Instance(
        res["address"], metadata_options=METADATA,
        root_block_device={"tags": root_tags(tags, res["address"])},
        opts=options(res, prov), **args)
    export(res["address"], made, props)
    return made


def attachment(res: Mapping[str, Any], prov: aws.Provider,
               instances: Mapping[str, aws.ec2.Instance]) -> aws.ec2.VolumeAttachment:
    props = res["props"]
    if not props.get("volume_id"):
        raise ValueError(f"{res['address']}: no volume id (the storage pass makes the "
                         "volume first; fill it with with_volume_ids)")
    ins = instances.get(f"instance.{props['instance']}")
    if ins is None and not props.get("instance_id"):
        raise ValueError(f"{res['address']}: instance.{props['instance']} is neither "
                         "declared here nor named by id")
    made = aws.ec2.VolumeAttachment(
        res["address"], device_name=props["device"], volume_id=props["volume_id"],
        instance_id=ins.id if ins is not None else props["instance_id"],
        opts=options(res, prov, [ins] if ins is not None else ()))
    export(res["address"], made, props)
    return made


def program(inputs: Any) -> None:
    """Declare the compute stack from its inputs (plain data only)."""
    doc = as_doc(inputs)
    check_kinds(doc, KINDS)
    prov = provider(doc)
    instances = {r["address"]: instance(r, prov) for r in by_kind(doc, "instance")}
    for res in by_kind(doc, "attachment"):
        attachment(res, prov, instances)
    pulumi.export("trainctl:stack", {"stack": doc.get("stack"), "project": doc.get("project")})
