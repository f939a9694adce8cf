"""Subnets and instance type offerings are checked at plan time (planner.aws.checks),
one batched call each, on moto's server: a subnet that does not exist or lies in another
AZ, or a type not offered in its AZ, stops plan and apply (exit 1, located in the spec)
before anything is created."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from conftest import run_cli

from planner.aws.checks import check_instance_types, check_subnets
from planner.aws.read import read_live
from planner.aws.session import connect
from planner.errors import TrainctlError
from planner.loader import loads_spec

NOW = datetime(2026, 12, 1, tzinfo=UTC)
HEAD = """\
version: 1
project: refs
region: us-east-1
defaults:
  min_age_minutes: 0
"""


def instance(name: str, itype: str, az: str, extra: str = "") -> str:
    return (f"  {name}:\n    instance_type: {itype}\n    ami: ami-0123456789abcdef0\n"
            f"    availability_zone: {az}\n{extra}")


def ec2(endpoint: str) -> Any:
    return boto3.client("ec2", endpoint_url=endpoint, region_name="us-east-1")


def subnet_in(endpoint: str, az: str) -> str:
    client = ec2(endpoint)
    vpc = client.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    cidr = f"10.9.{ord(az[-1]) - ord('a')}.0/24"
    return str(client.create_subnet(VpcId=vpc, CidrBlock=cidr,
                                    AvailabilityZone=az)["Subnet"]["SubnetId"])


def write(tmp_path: Path, text: str) -> Path:
    d = tmp_path / "proj"
    d.mkdir(exist_ok=True)
    (d / "trainctl.yaml").write_text(text)
    return d


def nothing_created(endpoint: str) -> None:
    client = ec2(endpoint)
    assert client.describe_volumes()["Volumes"] == []
    assert not any(r["Instances"] for r in client.describe_instances()["Reservations"])


def refused(d: Path, endpoint: str) -> str:
    out = ""
    for cmd in (("plan",), ("apply", "--auto-approve")):
        r = run_cli("--endpoint-url", endpoint, *cmd, cwd=d, input="")
        assert r.returncode == 1, r.stdout + r.stderr
        assert "Traceback" not in r.stderr
        out = r.stderr
    nothing_created(endpoint)
    return out


def test_a_missing_subnet_and_one_in_another_az_are_refused(tmp_path: Path,
                                                            moto_endpoint: str) -> None:
    other = subnet_in(moto_endpoint, "us-east-1b")
    text = HEAD + "volumes:\n  v: {size_gib: 1, availability_zone: us-east-1a}\ninstances:\n"
    text += instance("a", "t3.micro", "us-east-1a",
                     "    subnet_id: subnet-0123456789abcdef0\n"
                     "    mounts:\n      - {volume: v, device: /dev/sdf, path: /v}\n")
    text += instance("b", "t3.micro", "us-east-1a", f"    subnet_id: {other}\n")
    d = write(tmp_path, text)
    err = refused(d, moto_endpoint)
    f = "trainctl.yaml"
    assert (f"{f}:13:16: instances.a.subnet_id: no subnet 'subnet-0123456789abcdef0' in "
            "us-east-1 visible to this account") in err
    assert (f"{f}:20:16: instances.b.subnet_id: subnet {other} is in us-east-1b, but the "
            "instance is in us-east-1a") in err


def test_a_subnet_in_the_instance_az_passes(tmp_path: Path, moto_endpoint: str) -> None:
    good = subnet_in(moto_endpoint, "us-east-1c")
    d = write(tmp_path, HEAD + "instances:\n" + instance("a", "t3.micro", "us-east-1c",
                                                         f"    subnet_id: {good}\n"))
    r = run_cli("--endpoint-url", moto_endpoint, "plan", cwd=d, input="")
    assert r.returncode == 0, r.stdout + r.stderr


def test_instance_types_not_offered_in_their_az_are_refused(tmp_path: Path,
                                                            moto_endpoint: str) -> None:
    # moto's offerings (AWS's data): no g5 in us-east-1e, no p3.2xlarge in us-east-1
    text = HEAD + "instances:\n" + instance("g", "g5.xlarge", "us-east-1e")
    text += instance("p", "p3.2xlarge", "us-east-1a")
    text += instance("ok", "g5.xlarge", "us-east-1a")
    d = write(tmp_path, text)
    err = refused(d, moto_endpoint)
    f = "trainctl.yaml"
    assert f"{f}:8:20: instances.g.instance_type: g5.xlarge is not offered in us-east-1e " \
           "(offered in us-east-1a, us-east-1b, us-east-1c, us-east-1d, us-east-1f)" in err
    assert f"{f}:12:20: instances.p.instance_type: p3.2xlarge is not offered in " \
           "us-east-1a\n" in err + "\n"
    assert "instances.ok" not in err


def test_prewarm_temporary_instance_type_is_checked_in_the_volume_az(
        tmp_path: Path, moto_endpoint: str) -> None:
    # p5.48xlarge is offered in us-east-1e, prewarm's t3.small is not
    text = HEAD + ("volumes:\n  v: {size_gib: 1, availability_zone: us-east-1e}\n"
                   "datasets:\n  d: {source: 's3://refs-data/d/', strategy: prewarmed-ebs, "
                   "volume: v}\ninstances:\n")
    text += instance("a", "p5.48xlarge", "us-east-1e",
                     "    datasets: [d]\n"
                     "    mounts:\n      - {volume: v, device: /dev/sdf, path: /v}\n")
    d = write(tmp_path, text)
    boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1").create_bucket(
        Bucket="refs-data")
    err = refused(d, moto_endpoint)
    assert ("datasets.d.strategy: prewarm's temporary t3.small instance is not offered in "
            "us-east-1e, the volume's availability zone") in err


def test_one_call_each_for_many_instances(moto_endpoint: str) -> None:
    subnets = {az: subnet_in(moto_endpoint, az) for az in ("us-east-1a", "us-east-1b")}
    text = HEAD + "instances:\n" + "".join(
        instance(f"i{k}", ("t3.micro", "g5.xlarge", "m5.large")[k % 3],
                 ("us-east-1a", "us-east-1b")[k % 2],
                 f"    subnet_id: {subnets[('us-east-1a', 'us-east-1b')[k % 2]]}\n")
        for k in range(30))
    spec = loads_spec(text)
    aws = connect("us-east-1", moto_endpoint)
    read_live(spec, aws, now=NOW, with_datasets=False)
    assert aws.calls["DescribeSubnets"] == 1
    assert aws.calls["DescribeInstanceTypeOfferings"] == 1


def test_problems_from_live_read_are_all_reported(moto_endpoint: str) -> None:
    text = HEAD + "instances:\n" + instance("a", "p3.2xlarge", "us-east-1a",
                                            "    subnet_id: subnet-0123456789abcdef0\n")
    with pytest.raises(TrainctlError) as exc:
        read_live(loads_spec(text, "/nonexistent/trainctl.yaml"),
                  connect("us-east-1", moto_endpoint), now=NOW, with_datasets=False)
    lines = str(exc.value).splitlines()
    assert lines == [
        "/nonexistent/trainctl.yaml: instances.a.instance_type: p3.2xlarge is not offered "
        "in us-east-1a",
        "/nonexistent/trainctl.yaml: instances.a.subnet_id: no subnet "
        "'subnet-0123456789abcdef0' in us-east-1 visible to this account"]


@pytest.mark.parametrize("check,operation", [
    (lambda spec, c: check_subnets(spec, c, "us-east-1"), "DescribeSubnets"),
    (check_instance_types, "DescribeInstanceTypeOfferings")])
def test_a_check_the_caller_may_not_make_is_skipped(check: Any, operation: str) -> None:
    spec = loads_spec(HEAD + "instances:\n" + instance(
        "a", "t3.micro", "us-east-1a", "    subnet_id: subnet-0123456789abcdef0\n"))
    client = connect("us-east-1", None).ec2
    with Stubber(client) as stub:
        stub.add_client_error(
            "describe_subnets" if operation == "DescribeSubnets"
            else "describe_instance_type_offerings", "UnauthorizedOperation")
        assert check(spec, client) == []
