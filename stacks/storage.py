"""The storage stack: EBS volumes, and the project's SSM role and instance profile when
an instance names none (as `planner.aws.iam` makes them)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi
import pulumi_aws as aws

from stacks._common import as_doc, by_kind, check_kinds, export, options, provider, set_args

VOLUME_ARGS = {"availability_zone": "availability_zone", "size_gib": "size", "type": "type",
               "iops": "iops", "throughput_mibps": "throughput", "encrypted": "encrypted",
               "snapshot_id": "snapshot_id", "tags": "tags"}
KINDS = ("volume", "iam-role", "iam-role-policy", "iam-instance-profile")


def volume(res: Mapping[str, Any], prov: aws.Provider) -> aws.ebs.Volume:
    props = res["props"]
    args = set_args(props, VOLUME_ARGS)
    if props.get("on_delete") == "snapshot":
        args["final_snapshot"] = True        # trainctl's `on_delete: snapshot`
    made = aws.ebs.Volume(res["address"], opts=options(res, prov), **args)
    export(res["address"], made, props)
    return made


def iam(doc: Mapping[str, Any], prov: aws.Provider) -> None:
    roles = {r["props"]["name"]: r for r in by_kind(doc, "iam-role")}
    made: dict[str, aws.iam.Role] = {}
    for name, res in roles.items():
        p = res["props"]
        made[name] = aws.iam.Role(res["address"], name=name,
                                  assume_role_policy=p["assume_role_policy"],
                                  description=p.get("description"), tags=p.get("tags"),
                                  opts=options(res, prov))
        export(res["address"], made[name], p)

    def role_of(p: Mapping[str, Any]) -> Any:
        role = made.get(p["role"])
        return role.name if role is not None else p["role"]   # a reference: ordered after

    for res in by_kind(doc, "iam-role-policy"):
        p = res["props"]
        att = aws.iam.RolePolicyAttachment(res["address"], role=role_of(p),
                                           policy_arn=p["policy_arn"],
                                           opts=options(res, prov))
        export(res["address"], att, p)
    for res in by_kind(doc, "iam-instance-profile"):
        p = res["props"]
        prof = aws.iam.InstanceProfile(res["address"], name=p["name"], role=role_of(p),
                                       tags=p.get("tags"), opts=options(res, prov))
        export(res["address"], prof, p)


def program(inputs: Any) -> None:
    """Declare the storage stack from its inputs (plain data only)."""
    doc = as_doc(inputs)
    check_kinds(doc, KINDS)
    prov = provider(doc)
    for res in by_kind(doc, "volume"):
        volume(res, prov)
    iam(doc, prov)
    pulumi.export("trainctl:stack", {"stack": doc.get("stack"), "project": doc.get("project")})
