"""`trainctl iam-policy`: the least-privilege IAM policy trainctl itself needs.

Built from what the reader, the direct engine, the uploader and the S3 lock call. EC2
changes are conditioned on the `trainctl:project` tag: `aws:RequestTag` for creates
(tags are set at creation), `aws:ResourceTag` for everything that changes a resource
trainctl owns. S3 is scoped to the buckets and prefixes the spec names. Never imports
boto3.
"""

from __future__ import annotations

import json
import os
from typing import Any

import click

from planner.cli import Options
from planner.spec import Market, Strategy

TAG = "trainctl:project"
SSM_POLICY_ARN = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"

READ_ONLY_EC2 = [
    "ec2:DescribeVolumes", "ec2:DescribeInstances", "ec2:DescribeVolumesModifications",
    "ec2:DescribeSnapshots", "ec2:DescribeSpotPriceHistory", "ec2:DescribeImages",
    "ec2:DescribeAvailabilityZones",
    "ec2:DescribeSubnets", "ec2:DescribeInstanceTypeOfferings",
]


def _s3_parts(uri: str) -> tuple[str, str]:
    bucket, _, prefix = uri[5:].partition("/")
    return bucket, prefix


def _s3_statements(sid: str, uris: list[str], object_actions: list[str]) -> list[dict[str, Any]]:
    """ListBucket limited to the prefixes, and `object_actions` on the objects below them."""
    by_bucket: dict[str, list[str]] = {}
    for uri in uris:
        bucket, prefix = _s3_parts(uri)
        by_bucket.setdefault(bucket, []).append(prefix)
    out: list[dict[str, Any]] = []
    for n, (bucket, prefixes) in enumerate(sorted(by_bucket.items())):
        prefixes = sorted(set(prefixes))
        out.append({
            "Sid": f"{sid}List{n}", "Effect": "Allow", "Action": "s3:ListBucket",
            "Resource": f"arn:aws:s3:::{bucket}",
            "Condition": {"StringLike": {"s3:prefix": [f"{p}*" for p in prefixes]}},
        })
        if object_actions:
            out.append({
                "Sid": f"{sid}Objects{n}", "Effect": "Allow", "Action": object_actions,
                "Resource": [f"arn:aws:s3:::{bucket}/{p}*" for p in prefixes],
            })
    return out


def _project_role_statements(role: str, data: str) -> list[dict[str, Any]]:
    """The project's SSM role and instance profile, which trainctl manages when an
    instance names no profile. The role gets only two fixed managed policies (the SSM
    core and the admin-created `trainctl-PROJECT-data`): no PutRolePolicy, no
    CreatePolicy*, so trainctl's policy can never give the role more (issue 10 item 8)."""
    return [
        {"Sid": "ProjectInstanceRole", "Effect": "Allow",
         "Action": ["iam:GetRole", "iam:CreateRole", "iam:TagRole",
                    "iam:ListAttachedRolePolicies",
                    "iam:GetInstanceProfile", "iam:CreateInstanceProfile",
                    "iam:TagInstanceProfile", "iam:AddRoleToInstanceProfile"],
         "Resource": [f"arn:aws:iam::*:role/{role}",
                      f"arn:aws:iam::*:instance-profile/{role}"]},
        {"Sid": "AttachFixedManagedPolicies", "Effect": "Allow",
         "Action": "iam:AttachRolePolicy", "Resource": f"arn:aws:iam::*:role/{role}",
         "Condition": {"ArnEquals": {"iam:PolicyARN": [
             SSM_POLICY_ARN, f"arn:aws:iam::*:policy/{data}"]}}},
        # the plan checks that the admin created the data policy
        {"Sid": "CheckDataPolicy", "Effect": "Allow", "Action": "iam:GetPolicy",
         "Resource": f"arn:aws:iam::*:policy/{data}"},
        {"Sid": "PassInstanceRole", "Effect": "Allow", "Action": "iam:PassRole",
         "Resource": f"arn:aws:iam::*:role/{role}",
         "Condition": {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}},
    ]


def _and(*conditions: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Condition blocks merged (IAM ANDs every key of every operator)."""
    out: dict[str, dict[str, Any]] = {}
    for c in conditions:
        for operator, keys in c.items():
            out.setdefault(operator, {}).update(keys)
    return out


def build_policy(project: str | None, spec: Any | None = None) -> dict[str, Any]:
    """The policy document. `project` None: any trainctl project (the tag must be set)."""
    region = spec.region if spec is not None else "*"
    ec2 = f"arn:aws:ec2:{region}:*"
    snapshots = f"arn:aws:ec2:{region}::snapshot/*"
    if project:
        request = {f"aws:RequestTag/{TAG}": project}
        resource = {f"aws:ResourceTag/{TAG}": project}
        ssm_resource = {"StringEquals": {f"ssm:resourceTag/{TAG}": project}}
        op = "StringEquals"
    else:
        request = {f"aws:RequestTag/{TAG}": "?*"}
        resource = {f"aws:ResourceTag/{TAG}": "?*"}
        ssm_resource = {"StringLike": {f"ssm:resourceTag/{TAG}": "?*"}}
        op = "StringLike"
    owned = [f"{ec2}:volume/*", f"{ec2}:instance/*"]
    in_region = ({"StringEquals": {"aws:RequestedRegion": region}}
                 if spec is not None else None)
    amis = sorted({i.ami for i in spec.instances.values()}) if spec is not None else []
    spec_snapshots = sorted({v.snapshot_id for v in spec.volumes.values()
                             if v.snapshot_id}) if spec is not None else []
    statements: list[dict[str, Any]] = [
        {"Sid": "ReadLiveState", "Effect": "Allow", "Action": READ_ONLY_EC2, "Resource": "*",
         **({"Condition": in_region} if in_region else {})},
        {"Sid": "CreateTaggedVolumesInstancesSnapshots", "Effect": "Allow",
         "Action": ["ec2:CreateVolume", "ec2:RunInstances", "ec2:CreateSnapshot"],
         "Resource": [*owned, snapshots], "Condition": {op: request}},
        {"Sid": "RunInstancesWith", "Effect": "Allow", "Action": "ec2:RunInstances",
         "Resource": [*([f"arn:aws:ec2:{region}::image/{a}" for a in amis]
                        or [f"arn:aws:ec2:{region}::image/*"]),
                      f"{ec2}:subnet/*", f"{ec2}:network-interface/*",
                      f"{ec2}:security-group/*", f"{ec2}:key-pair/*",
                      f"{ec2}:spot-instances-request/*"]},
        # restores only from the project's own snapshots and those the spec names
        {"Sid": "CreateVolumeFromProjectSnapshots", "Effect": "Allow",
         "Action": "ec2:CreateVolume", "Resource": snapshots, "Condition": {op: resource}},
        *([{"Sid": "CreateVolumeFromSpecSnapshots", "Effect": "Allow",
            "Action": "ec2:CreateVolume",
            "Resource": [f"arn:aws:ec2:{region}::snapshot/{sid}" for sid in spec_snapshots]}]
          if spec_snapshots else []),
        # tags given at creation, which must name this project
        {"Sid": "TagOnCreate", "Effect": "Allow", "Action": "ec2:CreateTags",
         "Resource": [*owned, snapshots],
         "Condition": _and({"StringEquals": {
             "ec2:CreateAction": ["CreateVolume", "RunInstances", "CreateSnapshot"]}},
             {op: request})},
        {"Sid": "ChangeOwnedResources", "Effect": "Allow",
         "Action": ["ec2:ModifyVolume", "ec2:AttachVolume", "ec2:DetachVolume",
                    "ec2:DeleteVolume", "ec2:CreateSnapshot", "ec2:TerminateInstances"],
         "Resource": owned, "Condition": {op: resource}},
        # tag writes on owned resources never move them into another project's namespace
        {"Sid": "TagOwnedResources", "Effect": "Allow", "Action": "ec2:CreateTags",
         "Resource": owned,
         "Condition": {op: resource, f"{op}IfExists": request}},
        {"Sid": "UntagOwnedResources", "Effect": "Allow", "Action": "ec2:DeleteTags",
         "Resource": owned,
         "Condition": {op: resource, "ForAllValues:StringNotEquals": {
             "aws:TagKeys": [TAG, "trainctl:address"]}}},
        {"Sid": "RunScriptsOnOwnedInstances", "Effect": "Allow", "Action": "ssm:SendCommand",
         "Resource": f"{ec2}:instance/*", "Condition": ssm_resource},
        {"Sid": "RunShellScriptDocument", "Effect": "Allow", "Action": "ssm:SendCommand",
         "Resource": f"arn:aws:ssm:{region}::document/AWS-RunShellScript"},
        {"Sid": "ReadCommandResults", "Effect": "Allow",
         "Action": ["ssm:GetCommandInvocation", "ssm:DescribeInstanceInformation"],
         "Resource": "*", **({"Condition": in_region} if in_region else {})},
    ]
    imports = ([f"{ec2}:volume/{v.import_id}" for v in spec.volumes.values() if v.import_id]
               + [f"{ec2}:instance/{i.import_id}" for i in spec.instances.values()
                  if i.import_id]) if spec is not None else owned
    if imports:   # adopting an untagged resource the spec imports
        statements.append({
            "Sid": "AdoptImportedResources", "Effect": "Allow", "Action": "ec2:CreateTags",
            "Resource": sorted(imports),
            "Condition": {"Null": {f"aws:ResourceTag/{TAG}": "true"}, op: request}})
    if spec is None or any(i.market == Market.SPOT for i in spec.instances.values()):
        statements.append({
            "Sid": "SpotServiceLinkedRole", "Effect": "Allow",
            "Action": "iam:CreateServiceLinkedRole",
            "Resource": "arn:aws:iam::*:role/aws-service-role/spot.amazonaws.com/"
                        "AWSServiceRoleForEC2Spot",
            "Condition": {"StringEquals": {"iam:AWSServiceName": "spot.amazonaws.com"}}})
    # prewarm's temporary instances run with the project role too
    needs_role = spec is None or any(not i.iam_instance_profile
                                     for i in spec.instances.values()) or any(
        d.strategy == Strategy.PREWARMED_EBS for d in spec.datasets.values())
    if needs_role:
        statements += _project_role_statements(
            f"trainctl-{project}-ssm" if project else "trainctl-*-ssm",
            f"trainctl-{project}-data" if project else "trainctl-*-data")
    if spec is not None:
        profiles = sorted({i.iam_instance_profile.rsplit("/", 1)[-1]
                           for i in spec.instances.values() if i.iam_instance_profile})
        if profiles:   # roles are usually named like their profile (see notes())
            statements += [
                {"Sid": "CheckNamedInstanceProfiles", "Effect": "Allow",
                 "Action": "iam:GetInstanceProfile",
                 "Resource": [f"arn:aws:iam::*:instance-profile/{p}" for p in profiles]},
                {"Sid": "PassNamedInstanceRoles", "Effect": "Allow", "Action": "iam:PassRole",
                 "Resource": [f"arn:aws:iam::*:role/{p}" for p in profiles],
                 "Condition": {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}},
            ]
        reads = sorted({d.s3_uri for d in spec.datasets.values()
                        if d.s3_uri.startswith("s3://") and not d.is_local})
        stages = sorted({str(d.stage) for d in spec.datasets.values()
                         if d.is_local and d.stage})
        statements += _s3_statements("ListDatasets", reads, [])
        # GetObject: trainctl's record of what it wrote under a stage (planner.stage)
        statements += _s3_statements("UploadStages", stages,
                                     ["s3:GetObject", "s3:PutObject",
                                      "s3:AbortMultipartUpload", "s3:DeleteObject"])
        if spec.state and spec.state.startswith("s3://"):
            statements += _s3_statements("StateLockAndPlans", [spec.state],
                                         ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"])
    return {"Version": "2012-10-17", "Statement": statements}


def notes(spec: Any | None) -> list[str]:
    out = []
    if spec is None:
        out.append("no spec found: S3 statements are left out and the tag condition "
                   "accepts any project; run with -f FILE for a project's policy")
    else:
        named = sorted({i.iam_instance_profile for i in spec.instances.values()
                        if i.iam_instance_profile})
        if named:
            out.append("instances name their own instance profiles "
                       f"({', '.join(named)}): iam:PassRole is granted on roles of the "
                       "same names; if a profile holds a role of another name, grant "
                       "PassRole on that role instead")
    return out


@click.command("iam-policy")
@click.option("--project", default=None,
              help="Project for the tag conditions (default: the spec's project).")
@click.option("--instance-data", is_flag=True,
              help="Print instead the document of the project role's managed policy "
                   "trainctl-PROJECT-data (the instances' S3 access), for an admin to "
                   "create once.")
@click.pass_obj
def command(opts: Options, project: str | None, instance_data: bool) -> None:
    """Print the least-privilege IAM policy (JSON) for the identity running trainctl.

    \b
    When an instance names no iam_instance_profile (or a dataset is prewarmed), trainctl
    makes the role trainctl-PROJECT-ssm and attaches only two managed policies to it:
    AmazonSSMManagedInstanceCore and trainctl-PROJECT-data. trainctl may not write IAM
    policies, so an admin creates the data policy once (the plan refuses until then):
      trainctl iam-policy --instance-data > trainctl-PROJECT-data.json
      aws iam create-policy --policy-name trainctl-PROJECT-data \\
          --policy-document file://trainctl-PROJECT-data.json
    Re-create it (create-policy-version) when the spec's S3 prefixes change.
    """
    spec = None
    if os.path.exists(opts.file):
        from planner.loader import load_spec

        spec = load_spec(opts.file)
    if instance_data:
        from planner.iamnames import data_policy

        if spec is None:
            raise click.UsageError(f"--instance-data needs a spec ({opts.file} not found)")
        click.echo(json.dumps(data_policy(spec), indent=2))
        return
    policy = build_policy(project or (spec.project if spec is not None else None), spec)
    click.echo(json.dumps(policy, indent=2))
    for line in notes(spec):
        click.echo(f"note: {line}", err=True)
