"""The project's SSM role and instance profile as storage-stack resources: the same
names, trust policy, managed policies and tags as the direct engine
(`planner.iamnames`, `planner.aws.iam`). Never deleted by a stack (`retain_on_delete`): the plan
does not show them, so no pass may remove them."""

from __future__ import annotations

from planner.engines.pulumi.schema import (
    PROFILE,
    ROLE,
    ROLE_POLICY,
    Deployed,
    Options,
    Resource,
    _frozen,
)
from planner.errors import TrainctlError
from planner.iamnames import (
    EC2_TRUST_POLICY,
    SSM_POLICY_ARN,
    data_policy_arn,
    project_role_name,
)
from planner.live import TAG_PROJECT

ROLE_ADDRESS = "iam.role"
PROFILE_ADDRESS = "iam.instance-profile"
SSM_ADDRESS = "iam.role-policy.ssm-core"
DATA_ADDRESS = "iam.role-policy.data"
ADDRESSES = (ROLE_ADDRESS, SSM_ADDRESS, DATA_ADDRESS, PROFILE_ADDRESS)
DESCRIPTION = "trainctl: lets instances run SSM commands"


def in_state(deployed: Deployed) -> bool:
    return any(a in deployed.addresses for a in ADDRESSES)


def resources(project: str, *, needed: bool, account: str | None, in_state: bool,
              live: bool) -> tuple[Resource, ...]:
    """The role, its two policy attachments and the profile, when an instance of the plan
    names no profile or the stack holds them already; imported when `live` and not yet
    in the stack."""
    if not (needed or in_state):
        return ()
    if account is None:
        raise TrainctlError("the Pulumi storage stack needs the AWS account id for the "
                            "project role's data policy")
    name = project_role_name(project)
    tags = {TAG_PROJECT: project}
    data_arn = data_policy_arn(account, project)

    def opts(import_id: str) -> Options:
        return Options(retain_on_delete=True,
                       import_id=import_id if live and not in_state else None)

    return (
        Resource(ROLE_ADDRESS, ROLE, _frozen({
            "name": name, "assume_role_policy": EC2_TRUST_POLICY,
            "description": DESCRIPTION, "tags": tags}), opts(name)),
        Resource(SSM_ADDRESS, ROLE_POLICY, _frozen({
            "role": name, "policy_arn": SSM_POLICY_ARN}), opts(f"{name}/{SSM_POLICY_ARN}")),
        Resource(DATA_ADDRESS, ROLE_POLICY, _frozen({
            "role": name, "policy_arn": data_arn}), opts(f"{name}/{data_arn}")),
        Resource(PROFILE_ADDRESS, PROFILE, _frozen({
            "name": name, "role": name, "tags": tags}), opts(name)),
    )
