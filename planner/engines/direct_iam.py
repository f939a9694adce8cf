"""SSM prerequisites: the project's instance role and profile (AmazonSSMManagedInstanceCore).

Used by the direct engine for instances that name no `iam_instance_profile`, and by
`trainctl local up` for the emulator's `trainctl-ssm` profile. Idempotent.
"""

from __future__ import annotations

import json
from typing import Any

from planner.live import TAG_PROJECT
from planner.spec import Spec

SSM_POLICY_ARN = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
DATA_POLICY_NAME = "trainctl-data"
EC2_TRUST_POLICY = json.dumps({
    "Version": "2012-10-17",
    "Statement": [{
        "Effect": "Allow",
        "Principal": {"Service": "ec2.amazonaws.com"},
        "Action": "sts:AssumeRole",
    }],
})


def project_role_name(project: str) -> str:
    """`trainctl-PROJECT-ssm` (role and instance profile share the name; <= 53 chars)."""
    return f"trainctl-{project}-ssm"


def _s3_arns(uri: str) -> tuple[str, str, str]:
    """(bucket ARN, object ARN pattern, prefix) for `s3://bucket/prefix/`."""
    bucket, _, prefix = uri[5:].partition("/")
    return f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/{prefix}*", prefix


def data_policy(spec: Spec) -> dict[str, Any] | None:
    """Inline policy for the project role: read the datasets, write the checkpoints."""
    statements: list[dict[str, Any]] = []
    reads = sorted({d.s3_uri for d in spec.datasets.values() if d.s3_uri.startswith("s3://")})
    writes = sorted({i.checkpoints.sync_to for i in spec.instances.values()
                     if i.checkpoints and i.checkpoints.sync_to})
    for sid, uris, actions in (("ReadDatasets", reads, ["s3:GetObject"]),
                               ("WriteCheckpoints", writes,
                                ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"])):
        for n, uri in enumerate(uris):
            bucket_arn, objects_arn, prefix = _s3_arns(uri)
            statements.append({
                "Sid": f"{sid}List{n}", "Effect": "Allow", "Action": "s3:ListBucket",
                "Resource": bucket_arn,
                "Condition": {"StringLike": {"s3:prefix": [f"{prefix}*"]}},
            })
            statements.append({"Sid": f"{sid}{n}", "Effect": "Allow", "Action": actions,
                               "Resource": objects_arn})
    if not statements:
        return None
    return {"Version": "2012-10-17", "Statement": statements}


def ensure_instance_profile(iam: Any, *, role: str, profile: str,
                            project: str | None = None,
                            inline_policy: dict[str, Any] | None = None,
                            emulator: bool = False) -> list[str]:
    """Make sure `role` (EC2 trust + SSM core policy) sits in instance profile `profile`.

    Returns one line per thing created (empty when everything was there already).
    `emulator=True` tolerates an emulator without AWS-managed policies.
    """
    errors = iam.exceptions
    tags = [{"Key": TAG_PROJECT, "Value": project}] if project else []
    done: list[str] = []
    try:
        iam.get_role(RoleName=role)
    except errors.NoSuchEntityException:
        iam.create_role(RoleName=role, AssumeRolePolicyDocument=EC2_TRUST_POLICY,
                        Description="trainctl: lets instances run SSM commands", Tags=tags)
        done.append(f"role {role}")
    attached = iam.list_attached_role_policies(RoleName=role).get("AttachedPolicies", [])
    if not any(p["PolicyArn"] == SSM_POLICY_ARN for p in attached):
        try:
            iam.attach_role_policy(RoleName=role, PolicyArn=SSM_POLICY_ARN)
        except errors.NoSuchEntityException:
            if not emulator:      # real IAM always has this AWS-managed policy
                raise
    if inline_policy is not None:
        iam.put_role_policy(RoleName=role, PolicyName=DATA_POLICY_NAME,
                            PolicyDocument=json.dumps(inline_policy))
    try:
        got = iam.get_instance_profile(InstanceProfileName=profile)["InstanceProfile"]
    except errors.NoSuchEntityException:
        got = iam.create_instance_profile(InstanceProfileName=profile, Tags=tags)[
            "InstanceProfile"]
        done.append(f"instance profile {profile}")
    if not any(r["RoleName"] == role for r in got.get("Roles", [])):
        iam.add_role_to_instance_profile(InstanceProfileName=profile, RoleName=role)
        if f"instance profile {profile}" not in done:
            done.append(f"role {role} added to instance profile {profile}")
    return done
