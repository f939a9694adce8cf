"""The project role gets only fixed managed policies (issue 10 item 8).

trainctl's policy grants no PutRolePolicy / CreatePolicy*: AttachRolePolicy only under an
iam:PolicyARN condition naming AmazonSSMManagedInstanceCore and trainctl-PROJECT-data,
which an admin creates from `iam-policy --instance-data`. The plan refuses a missing data
policy on AWS (any endpoint not on this machine); only a loopback emulator lets the
engine create it.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from conftest import run_cli

from planner.aws.iam import ensure_instance_profile
from planner.commands.iam_policy import build_policy
from planner.iamnames import SSM_POLICY_ARN, data_policy, data_policy_arn
from planner.loader import load_spec

SPEC = """\
version: 1
project: escal
region: us-east-1
state: s3://escal-state/trainctl/
defaults: {availability_zone: us-east-1a}
datasets:
  corpus: {source: s3://escal-data/corpus/, strategy: prewarmed-ebs, volume: data}
  local: {source: ./local-data, strategy: local-cache, stage: s3://escal-data/stage/}
  direct: {source: s3://escal-other/raw, strategy: direct-s3}
volumes:
  data: {size_gib: 10}
instances:
  trainer:
    instance_type: t3.micro
    ami: ami-0123456789abcdef0
    mounts: [{volume: data, device: /dev/sdf, path: /data, read_only: true}]
    datasets: [corpus, local, direct]
    checkpoints: {path: /data/ckpt, sync_to: 's3://escal-ckpt/trainer/'}
"""


def _actions(s: dict[str, Any]) -> list[str]:
    a = s.get("Action", [])
    return [a] if isinstance(a, str) else list(a)


@pytest.fixture
def spec_dir(tmp_path: Path) -> Path:
    (tmp_path / "local-data").mkdir()
    (tmp_path / "local-data" / "a.txt").write_text("a")
    (tmp_path / "trainctl.yaml").write_text(SPEC)
    return tmp_path


@pytest.mark.parametrize("with_spec", [True, False])
def test_policy_grants_no_policy_writes_and_attach_only_two_arns(
        spec_dir: Path, with_spec: bool) -> None:
    spec = load_spec(str(spec_dir / "trainctl.yaml")) if with_spec else None
    policy = build_policy("escal" if with_spec else None, spec)
    data = "trainctl-escal-data" if with_spec else "trainctl-*-data"
    attach = []
    for s in policy["Statement"]:
        for a in _actions(s):
            low = a.lower()
            assert not low.startswith(("iam:putrolepolicy", "iam:createpolicy",
                                       "iam:setdefaultpolicyversion", "iam:*")), s
            assert "*" not in low or not low.startswith("iam:"), s
            if low == "iam:attachrolepolicy":
                attach.append(s)
    assert len(attach) == 1
    assert attach[0]["Condition"] == {"ArnEquals": {"iam:PolicyARN": [
        SSM_POLICY_ARN, f"arn:aws:iam::*:policy/{data}"]}}


def test_data_policy_covers_exactly_the_spec_prefixes(spec_dir: Path) -> None:
    doc = data_policy(load_spec(str(spec_dir / "trainctl.yaml")))
    objects: dict[str, set[str]] = {}
    lists: dict[str, list[str]] = {}
    for s in doc["Statement"]:
        assert s["Effect"] == "Allow"
        if _actions(s) == ["s3:ListBucket"]:
            lists.setdefault(s["Resource"], []).extend(
                s["Condition"]["StringLike"]["s3:prefix"])
        else:
            objects[s["Resource"]] = set(_actions(s))
    read, write = {"s3:GetObject"}, {"s3:GetObject", "s3:PutObject",
                                     "s3:AbortMultipartUpload"}
    assert objects == {
        "arn:aws:s3:::escal-data/corpus/*": read,
        "arn:aws:s3:::escal-data/stage/*": read,          # with trainctl's stage records
        "arn:aws:s3:::escal-other/raw/*": read,
        "arn:aws:s3:::escal-ckpt/trainer/*": write,
        "arn:aws:s3:::escal-state/trainctl/transfer/*": write,   # state's transfer prefix
    }
    assert {k: sorted(v) for k, v in lists.items()} == {
        "arn:aws:s3:::escal-data": ["corpus/*", "stage/*"],
        "arn:aws:s3:::escal-other": ["raw/*"],
        "arn:aws:s3:::escal-ckpt": ["trainer/*"],
        "arn:aws:s3:::escal-state": ["trainctl/transfer/*"],
    }
    text = json.dumps(doc)
    assert "DeleteObject" not in text and '"s3:*"' not in text and "iam:" not in text


def test_data_policy_uses_the_transfer_prefix_when_set(spec_dir: Path) -> None:
    (spec_dir / "trainctl.yaml").write_text(
        SPEC.replace("state: s3://escal-state/trainctl/\n",
                     "state: s3://escal-state/trainctl/\ntransfer: s3://escal-xfer/cp/\n"))
    doc = data_policy(load_spec(str(spec_dir / "trainctl.yaml")))
    res = {s["Resource"] for s in doc["Statement"]}
    assert "arn:aws:s3:::escal-xfer/cp/*" in res
    assert not any("escal-state" in r for r in res)


def test_cli_prints_the_data_policy_and_help_says_the_two_steps(spec_dir: Path) -> None:
    r = run_cli("iam-policy", "--instance-data", cwd=spec_dir)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == data_policy(load_spec(str(spec_dir / "trainctl.yaml")))
    h = run_cli("iam-policy", "--help")
    assert "--instance-data" in h.stdout and "aws iam create-policy" in h.stdout


def _iam(endpoint: str) -> Any:
    return boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1")


def test_engine_attaches_exactly_the_two_arns(moto_endpoint: str, spec_dir: Path) -> None:
    iam = _iam(moto_endpoint)
    asked: list[str] = []       # every AttachRolePolicy trainctl sends (moto lacks the
    iam.meta.events.register(   # AWS-managed policies, so it refuses the SSM one)
        "before-call.iam.AttachRolePolicy",
        lambda params, **_: asked.append(params["body"]["PolicyArn"]))
    arn = data_policy_arn("123456789012", "escal")
    doc = data_policy(load_spec(str(spec_dir / "trainctl.yaml")))
    ensure_instance_profile(iam, role="trainctl-escal-ssm", profile="trainctl-escal-ssm",
                            project="escal", data_policy_arn=arn, data_document=doc,
                            emulator=True)
    assert sorted(asked) == sorted([SSM_POLICY_ARN, arn])
    attached = iam.list_attached_role_policies(RoleName="trainctl-escal-ssm")
    assert [p["PolicyArn"] for p in attached["AttachedPolicies"]] == [arn]
    assert iam.list_role_policies(RoleName="trainctl-escal-ssm")["PolicyNames"] == []
    version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
    got = iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]
    assert got["Document"] == doc or json.loads(got["Document"]) == doc


def test_engine_never_creates_the_data_policy_off_the_emulator(moto_endpoint: str) -> None:
    iam = _iam(moto_endpoint)
    arn = data_policy_arn("123456789012", "escal")
    with pytest.raises(iam.exceptions.NoSuchEntityException):
        ensure_instance_profile(iam, role="r", profile="r", data_policy_arn=arn,
                                data_document={"Version": "2012-10-17", "Statement": []},
                                emulator=False)
    with pytest.raises(iam.exceptions.NoSuchEntityException):
        iam.get_policy(PolicyArn=arn)


@pytest.fixture
def remote_moto() -> Iterator[str]:
    """A moto server reached by a non-loopback address: what trainctl must treat as AWS."""
    from moto.server import ThreadedMotoServer

    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))     # no packet is sent: picks the outgoing address
        ip = probe.getsockname()[0]
    except OSError:
        ip = "127.0.0.1"
    finally:
        probe.close()
    if ip.startswith("127."):
        pytest.skip("this machine has no non-loopback IPv4 address")
    server = ThreadedMotoServer(ip_address=ip, port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def test_plan_refuses_a_missing_data_policy_off_the_emulator(
        remote_moto: str, spec_dir: Path) -> None:
    s3 = boto3.client("s3", endpoint_url=remote_moto, region_name="us-east-1")
    for b in ("escal-data", "escal-other", "escal-ckpt", "escal-state"):
        s3.create_bucket(Bucket=b)
    r = run_cli("--endpoint-url", remote_moto, "plan", cwd=spec_dir)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "trainctl-escal-data" in r.stderr and "aws iam create-policy" in r.stderr
    assert "iam-policy" in r.stderr and "--instance-data" in r.stderr
    assert "Traceback" not in r.stderr
    doc = run_cli("iam-policy", "--instance-data", cwd=spec_dir).stdout
    _iam(remote_moto).create_policy(PolicyName="trainctl-escal-data", PolicyDocument=doc)
    r = run_cli("--endpoint-url", remote_moto, "plan", cwd=spec_dir)
    assert r.returncode == 0, r.stdout + r.stderr


def test_plan_on_the_loopback_emulator_needs_no_admin_step(
        moto_endpoint: str, spec_dir: Path) -> None:
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    for b in ("escal-data", "escal-other", "escal-ckpt", "escal-state"):
        s3.create_bucket(Bucket=b)
    r = run_cli("--endpoint-url", moto_endpoint, "plan", cwd=spec_dir)
    assert r.returncode == 0, r.stdout + r.stderr


def test_no_project_role_no_data_policy_check(remote_moto: str, tmp_path: Path) -> None:
    """Every instance names its profile and nothing is prewarmed: no role, no check."""
    spec = (SPEC.replace("strategy: prewarmed-ebs, volume: data", "strategy: direct-s3")
            .replace("    ami: ami-0123456789abcdef0\n",
                     "    ami: ami-0123456789abcdef0\n    iam_instance_profile: mine\n"))
    (tmp_path / "local-data").mkdir()
    (tmp_path / "local-data" / "a.txt").write_text("a")
    (tmp_path / "trainctl.yaml").write_text(spec)
    from planner.aws.checks import needs_project_role

    assert not needs_project_role(load_spec(str(tmp_path / "trainctl.yaml")))
    s3 = boto3.client("s3", endpoint_url=remote_moto, region_name="us-east-1")
    for b in ("escal-data", "escal-other", "escal-ckpt", "escal-state"):
        s3.create_bucket(Bucket=b)
    _iam(remote_moto).create_instance_profile(InstanceProfileName="mine")
    r = run_cli("--endpoint-url", remote_moto, "plan", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
