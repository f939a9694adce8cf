"""The names and documents of the project's IAM: its SSM instance role and profile and
the data policy (pure: no boto3). planner.aws.iam creates them; the plan checks them;
the Pulumi storage stack declares them.

The project role gets only fixed managed policies: AmazonSSMManagedInstanceCore and the
customer-managed `trainctl-PROJECT-data` (the S3 access of `data_policy`), which an
admin creates once (`trainctl iam-policy --instance-data`); trainctl never writes a
policy document on AWS (issue 10 item 8: PutRolePolicy + PassRole + SendCommand would
let whoever holds trainctl's policy run code with any permission). Only on an emulator
(`emulator=True`, an endpoint on this machine) does it create that policy itself.
"""

from __future__ import annotations

import json
from typing import Any

from planner.spec import Spec

SSM_POLICY_ARN = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
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


def data_policy_name(project: str) -> str:
    """`trainctl-PROJECT-data`: the customer-managed policy with the instances' S3 access."""
    return f"trainctl-{project}-data"


def data_policy_arn(account: str, project: str) -> str:
    return f"arn:aws:iam::{account}:policy/{data_policy_name(project)}"


def _s3_arns(uri: str) -> tuple[str, str, str]:
    """(bucket ARN, object ARN pattern, prefix) for `s3://bucket/prefix/`."""
    bucket, _, prefix = uri[5:].partition("/")
    return f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/{prefix}*", prefix


def data_prefixes(spec: Spec) -> tuple[list[str], list[str]]:
    """(prefixes the instances read, prefixes they write) as s3:// URIs ending in `/`.

    Read: the datasets' S3 sources and local datasets' stages (with trainctl's stage
    records under them). Write (and read): checkpoints' sync_to and the transfer prefix
    (`transfer:`, else `transfer/` under an s3:// `state:`) that `trainctl cp` uses.
    """
    def norm(uri: str) -> str:
        return uri if uri.endswith("/") else uri + "/"

    reads = {norm(d.s3_uri) for d in spec.datasets.values() if d.s3_uri.startswith("s3://")}
    writes = {norm(i.checkpoints.sync_to) for i in spec.instances.values()
              if i.checkpoints and i.checkpoints.sync_to
              and i.checkpoints.sync_to.startswith("s3://")}
    if spec.transfer and spec.transfer.startswith("s3://"):
        writes.add(norm(spec.transfer))
    elif spec.state and spec.state.startswith("s3://"):
        writes.add(norm(spec.state) + "transfer/")
    return sorted(reads - writes), sorted(writes)


def data_policy(spec: Spec) -> dict[str, Any]:
    """The document of `trainctl-PROJECT-data`: read the datasets, write the checkpoints
    and the transfer prefix; every statement scoped to those prefixes."""
    statements: list[dict[str, Any]] = []
    reads, writes = data_prefixes(spec)
    for sid, uris, actions in (("ReadDatasets", reads, ["s3:GetObject"]),
                               ("WriteCheckpointsTransfers", writes,
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
    if not statements:    # a managed policy needs one statement: this one grants nothing
        statements.append({"Sid": "NoData", "Effect": "Deny", "Action": "s3:*",
                           "Resource": "*"})
    return {"Version": "2012-10-17", "Statement": statements}


def create_data_policy_commands(spec: Spec) -> str:
    """What an admin runs once to create the project's data policy."""
    name = data_policy_name(spec.project)
    return (f"  trainctl iam-policy -f {spec.source_file} --instance-data > {name}.json\n"
            f"  aws iam create-policy --policy-name {name} "
            f"--policy-document file://{name}.json")
