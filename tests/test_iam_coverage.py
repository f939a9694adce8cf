"""Every AWS call that trainctl's applies make is allowed by `trainctl iam-policy`.

Real applies (subprocesses, moto's server) run with TRAINCTL_RECORD_AWS_CALLS, which makes
planner.aws.session append `service:Operation` for each call; each recorded call must
be allowed by the policy that `trainctl iam-policy` prints for that very spec. On AWS a
missing action is an AccessDenied mid-apply, after resources exist (issue 10, item 6).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import boto3
import pytest
from conftest import EXAMPLES, run_cli
from iampolicy import allows, missing, needed

pytestmark = pytest.mark.slow

OWN_ROLE = """\
version: 1
project: iamcov
region: us-east-1
state: s3://iamcov-state/trainctl/
defaults:
  availability_zone: us-east-1a
  min_age_minutes: 0
  tags: {team: ml}
datasets:
  corpus: {source: s3://iamcov-data/corpus/, strategy: prewarmed-ebs, volume: data}
  local: {source: ./local-data, strategy: local-cache, stage: s3://iamcov-data/stage/}
volumes:
  data: {size_gib: 10, persistent: true, on_delete: snapshot}
  scratch: {size_gib: 8}
  restored: {size_gib: 8, snapshot_id: SNAPSHOT}
  adopted: {size_gib: 8, import: VOLUME}
instances:
  trainer:
    instance_type: t3.micro
    ami: ami-0123456789abcdef0
    market: spot
    mounts:
      - {volume: data, device: /dev/sdf, path: /data, read_only: true}
      - {volume: scratch, device: /dev/sdg, path: /scratch}
    datasets: [corpus, local]
    checkpoints: {path: /scratch/ckpt, sync_to: 's3://iamcov-ckpt/trainer/'}
"""


def cli(d: Path, endpoint: str, record: Path, *args: str) -> subprocess.CompletedProcess[str]:
    r = run_cli("--endpoint-url", endpoint, *args, cwd=d, input="",
                env={"TRAINCTL_RECORD_AWS_CALLS": str(record)}, timeout=300)
    assert r.returncode == 0, f"{args}: rc={r.returncode}\n{r.stdout}\n{r.stderr}"
    return r


def policy_for(d: Path) -> dict[str, Any]:
    r = run_cli("iam-policy", cwd=d)
    assert r.returncode == 0, r.stderr
    return dict(json.loads(r.stdout))


def recorded(record: Path) -> set[str]:
    return set(record.read_text().split())


def assert_covered(d: Path, record: Path, *expect: str) -> None:
    calls = recorded(record)
    for call in expect:                   # the scenario really made these calls
        assert call in calls, f"{call} not recorded: {sorted(calls)}"
    assert missing(policy_for(d), calls) == []


def seed(endpoint: str, buckets: list[str]) -> None:
    from planner.aws.seed import seed as emulator_seed

    emulator_seed(endpoint, "us-east-1", buckets=buckets)
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    s3.put_object(Bucket=buckets[0], Key="tiny-imagenet/part-0.bin", Body=b"d" * 2048)
    s3.put_object(Bucket=buckets[0], Key="corpus/part-0.bin", Body=b"c" * 2048)


def admin_creates_data_policy(d: Path, endpoint: str) -> None:
    """The admin's one-time step: create trainctl-PROJECT-data from `--instance-data`
    (so the applies below never need iam:CreatePolicy, which trainctl is not granted)."""
    import yaml

    project = yaml.safe_load((d / "trainctl.yaml").read_text())["project"]
    r = run_cli("iam-policy", "--instance-data", cwd=d)
    assert r.returncode == 0, r.stderr
    iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1")
    iam.create_policy(PolicyName=f"trainctl-{project}-data", PolicyDocument=r.stdout)


def test_quickstart_apply_and_destroy(tmp_path: Path, moto_endpoint: str) -> None:
    d = tmp_path / "quickstart"
    shutil.copytree(EXAMPLES / "quickstart", d)
    seed(moto_endpoint, ["trainctl-demo-datasets", "trainctl-demo-checkpoints"])
    admin_creates_data_policy(d, moto_endpoint)
    record = tmp_path / "calls"
    cli(d, moto_endpoint, record, "apply", "--auto-approve")
    # prewarm's temporary instance runs with the project's role: trainctl creates it
    assert_covered(d, record, "ec2:RunInstances", "iam:CreateRole",
                   "iam:CreateInstanceProfile", "ec2:AttachVolume")
    cli(d, moto_endpoint, record, "destroy", "--auto-approve", "--force")
    assert_covered(d, record, "ec2:TerminateInstances", "ec2:DetachVolume",
                   "ec2:DeleteVolume")


def test_multi_node_apply_and_destroy(tmp_path: Path, moto_endpoint: str) -> None:
    d = tmp_path / "multi-node"
    shutil.copytree(EXAMPLES / "multi-node", d)
    seed(moto_endpoint, ["trainctl-demo-datasets", "trainctl-demo-checkpoints"])
    admin_creates_data_policy(d, moto_endpoint)
    record = tmp_path / "calls"
    cli(d, moto_endpoint, record, "apply", "--auto-approve")
    assert_covered(d, record, "ec2:RunInstances", "ec2:DescribeSpotPriceHistory",
                   "ec2:CreateTags")
    cli(d, moto_endpoint, record, "destroy", "--auto-approve", "--force")
    assert_covered(d, record, "ec2:TerminateInstances", "ec2:DeleteVolume")


def test_own_role_upload_import_snapshot_teardown_and_destroy(tmp_path: Path,
                                                              moto_endpoint: str) -> None:
    """No instance profile named (trainctl's project role), a local dataset uploaded to
    its stage, an S3 state lock, a volume restored from a snapshot, an imported volume,
    a spot instance; then a grow, a dropped volume and instance (teardown), a destroy."""
    seed(moto_endpoint, ["iamcov-data", "iamcov-ckpt", "iamcov-state"])
    ec2 = boto3.client("ec2", endpoint_url=moto_endpoint, region_name="us-east-1")
    base = ec2.create_volume(AvailabilityZone="us-east-1a", Size=8)["VolumeId"]
    snap = ec2.create_snapshot(VolumeId=base)["SnapshotId"]
    foreign = ec2.create_volume(AvailabilityZone="us-east-1a", Size=8)["VolumeId"]
    d = tmp_path / "proj"
    (d / "local-data").mkdir(parents=True)
    (d / "local-data" / "a.txt").write_bytes(b"a" * 100)
    (d / "local-data" / "big.bin").write_bytes(os.urandom(9 * 1024 * 1024))   # multipart
    spec = OWN_ROLE.replace("SNAPSHOT", snap).replace("VOLUME", foreign)
    (d / "trainctl.yaml").write_text(spec)
    admin_creates_data_policy(d, moto_endpoint)
    record = tmp_path / "calls"
    cli(d, moto_endpoint, record, "apply", "--auto-approve")
    assert "iam:CreatePolicy" not in recorded(record)
    assert_covered(d, record, "iam:CreateRole", "iam:AttachRolePolicy",
                   "iam:CreateInstanceProfile", "s3:PutObject", "s3:CreateMultipartUpload",
                   "ec2:CreateVolume")

    # grow scratch, drop the adopted volume and the local dataset
    edited = (spec.replace("scratch: {size_gib: 8}", "scratch: {size_gib: 12}")
              .replace(f"  adopted: {{size_gib: 8, import: {foreign}}}\n", "")
              )
    (d / "trainctl.yaml").write_text(edited)
    cli(d, moto_endpoint, record, "apply", "--auto-approve", "--allow-delete",
        "volume.adopted")
    assert_covered(d, record, "ec2:ModifyVolume", "ec2:DetachVolume")
    cli(d, moto_endpoint, record, "destroy", "--auto-approve", "--force", "--allow-delete",
        "volume.data")
    assert_covered(d, record, "ec2:TerminateInstances", "ec2:CreateSnapshot",
                   "ec2:DeleteVolume")


def test_the_checker_notices_a_missing_action() -> None:
    policy = {"Statement": [{"Effect": "Allow", "Action": ["ec2:Describe*", "s3:PutObject"]}]}
    assert allows(policy, "ec2:DescribeVolumes") and allows(policy, "EC2:describevolumes")
    assert not allows(policy, "ec2:CreateVolume")
    assert needed("s3:UploadPart") == ("s3:PutObject",)
    assert missing(policy, ["ec2:DescribeSubnets", "s3:UploadPart", "iam:CreateRole",
                            "sts:GetCallerIdentity"]) == ["iam:CreateRole -> iam:CreateRole"]
