"""The project's SSM instance role and profile, created when missing (idempotent).

Used by the engines for instances that name no `iam_instance_profile`, and by
`trainctl local up` for the emulator's `trainctl-ssm` profile. Names and documents:
planner.iamnames. trainctl never writes a policy document on AWS; only on an emulator
(`emulator=True`) does it create the data policy itself.
"""

from __future__ import annotations

import json
from typing import Any

from planner.iamnames import EC2_TRUST_POLICY, SSM_POLICY_ARN
from planner.live import TAG_PROJECT


def ensure_instance_profile(iam: Any, *, role: str, profile: str,
                            project: str | None = None,
                            data_policy_arn: str | None = None,
                            data_document: dict[str, Any] | None = None,
                            emulator: bool = False) -> list[str]:
    """Make sure `role` (EC2 trust + SSM core policy, and the managed `data_policy_arn`)
    sits in instance profile `profile`. Attaches managed policies only, never an inline one.

    Returns one line per thing created (empty when everything was there already).
    `emulator=True` tolerates an emulator without AWS-managed policies and creates the
    data policy from `data_document` when it is missing (never on AWS: there an admin
    creates it, and the plan refuses until it exists).
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
    if data_policy_arn and not any(p["PolicyArn"] == data_policy_arn for p in attached):
        if emulator and data_document is not None:
            _emulator_data_policy(iam, data_policy_arn, data_document)
        iam.attach_role_policy(RoleName=role, PolicyArn=data_policy_arn)
        done.append(f"policy {data_policy_arn.rsplit('/', 1)[-1]} attached to role {role}")
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


def _emulator_data_policy(iam: Any, arn: str, document: dict[str, Any]) -> None:
    """Emulator only (it enforces no IAM): create the data policy an admin creates on AWS."""
    try:
        iam.get_policy(PolicyArn=arn)
    except iam.exceptions.NoSuchEntityException:
        iam.create_policy(PolicyName=arn.rsplit("/", 1)[-1],
                          PolicyDocument=json.dumps(document),
                          Description="trainctl: the project instances' S3 access")
