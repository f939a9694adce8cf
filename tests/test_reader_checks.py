"""read_live checks the spec's references against AWS (moto server): availability zones,
snapshots to restore, instance profiles; every problem at once, in a constant number of
calls. An empty dataset listing is not the reader's business (the diff warns)."""

from __future__ import annotations

from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from planner.aws.read import read_live
from planner.aws.session import AwsContext, connect
from planner.errors import TrainctlError
from planner.spec import Dataset, Instance, Spec, Volume

NOW = datetime(2026, 11, 22, 21, 0, 0, tzinfo=UTC)
AZ = "us-east-1a"


def make_spec(*, volumes: dict[str, Volume] | None = None,
              instances: dict[str, Instance] | None = None,
              datasets: dict[str, Dataset] | None = None) -> Spec:
    return Spec(version=1, project="proj", region="us-east-1",
                volumes=MappingProxyType(volumes or {}),
                instances=MappingProxyType(instances or {}),
                datasets=MappingProxyType(datasets or {}))


def vol(name: str, az: str = AZ, **kw: Any) -> Volume:
    return Volume(name=name, size_gib=10, availability_zone=az, **kw)


def inst(name: str, az: str = AZ, **kw: Any) -> Instance:
    return Instance(name=name, instance_type="t3.micro", ami="ami-1", availability_zone=az,
                    **kw)


@pytest.fixture
def aws(moto_endpoint: str) -> AwsContext:
    return connect("us-east-1", moto_endpoint)


@pytest.fixture
def ec2(moto_endpoint: str) -> Any:
    return boto3.client("ec2", region_name="us-east-1", endpoint_url=moto_endpoint)


@pytest.fixture
def iam(moto_endpoint: str) -> Any:
    return boto3.client("iam", region_name="us-east-1", endpoint_url=moto_endpoint)


def zones(ec2: Any) -> str:
    return ", ".join(sorted(z["ZoneName"] for z in
                            ec2.describe_availability_zones()["AvailabilityZones"]))


def problems(spec: Spec, aws: AwsContext) -> list[str]:
    with pytest.raises(TrainctlError) as e:
        read_live(spec, aws, now=NOW)
    return str(e.value).splitlines()


def test_unknown_availability_zones_are_all_named(ec2: Any, aws: AwsContext) -> None:
    spec = make_spec(volumes={"a": vol("a", "us-east-1z"), "b": vol("b"),
                              "c": vol("c", "us-east-1q")},
                     instances={"t": inst("t", "us-east-1z"), "u": inst("u")})
    have = zones(ec2)
    assert have.startswith("us-east-1a, us-east-1b")
    assert problems(spec, aws) == [
        f"volumes.a.availability_zone: us-east-1z is not an availability zone of us-east-1 "
        f"(it has: {have})",
        f"volumes.c.availability_zone: us-east-1q is not an availability zone of us-east-1 "
        f"(it has: {have})",
        f"instances.t.availability_zone: us-east-1z is not an availability zone of "
        f"us-east-1 (it has: {have})",
    ]
    assert aws.calls["DescribeAvailabilityZones"] == 1


def test_missing_snapshots_are_all_named(ec2: Any, aws: AwsContext) -> None:
    seed = ec2.create_volume(AvailabilityZone=AZ, Size=8)["VolumeId"]
    snap = ec2.create_snapshot(VolumeId=seed)["SnapshotId"]
    spec = make_spec(volumes={
        "ok": vol("ok", snapshot_id=snap),
        "gone": vol("gone", snapshot_id="snap-0123456789abcdef0"),
        "also": vol("also", snapshot_id="snap-0123456789abcdef0"),
        "other": vol("other", snapshot_id="snap-0fedcba9876543210"),
    })
    assert problems(spec, aws) == [
        "volumes.gone.snapshot_id: no snapshot 'snap-0123456789abcdef0' in us-east-1 "
        "visible to this account",
        "volumes.also.snapshot_id: no snapshot 'snap-0123456789abcdef0' in us-east-1 "
        "visible to this account",
        "volumes.other.snapshot_id: no snapshot 'snap-0fedcba9876543210' in us-east-1 "
        "visible to this account",
    ]
    # one call for all the ids (the project's own snapshots are the other one)
    assert aws.calls["DescribeSnapshots"] == 2


def test_a_volume_already_restored_needs_its_snapshot_no_more(ec2: Any,
                                                             aws: AwsContext) -> None:
    seed = ec2.create_volume(AvailabilityZone=AZ, Size=8)["VolumeId"]
    snap = ec2.create_snapshot(VolumeId=seed)["SnapshotId"]
    tags = [{"Key": "trainctl:project", "Value": "proj"},
            {"Key": "trainctl:address", "Value": "volume.data"}]
    ec2.create_volume(AvailabilityZone=AZ, Size=10, SnapshotId=snap,
                      TagSpecifications=[{"ResourceType": "volume", "Tags": tags}])
    ec2.delete_snapshot(SnapshotId=snap)                    # cleaned up after the restore
    live = read_live(make_spec(volumes={"data": vol("data", snapshot_id=snap)}), aws, now=NOW)
    assert [v.snapshot_id for v in live.volumes] == [snap]
    assert aws.calls["DescribeSnapshots"] == 1              # only the project's own

    spec = make_spec(volumes={"data": vol("data", snapshot_id=snap),
                              "new": vol("new", snapshot_id=snap)})
    assert problems(spec, aws) == [
        f"volumes.new.snapshot_id: no snapshot '{snap}' in us-east-1 visible to this account"]


def test_missing_instance_profiles_are_all_named(iam: Any, aws: AwsContext) -> None:
    arn = iam.create_instance_profile(InstanceProfileName="trainctl-ssm")[
        "InstanceProfile"]["Arn"]
    spec = make_spec(instances={
        "a": inst("a", iam_instance_profile="trainctl-ssm"),
        "b": inst("b", iam_instance_profile="no-such-profile"),
        "c": inst("c", iam_instance_profile=arn),
        "d": inst("d", iam_instance_profile="no-such-profile"),
        "e": inst("e"),
    })
    assert problems(spec, aws) == [
        "instances.b.iam_instance_profile: no instance profile 'no-such-profile' in this "
        "account",
        "instances.d.iam_instance_profile: no instance profile 'no-such-profile' in this "
        "account",
    ]
    assert aws.calls["GetInstanceProfile"] == 2             # one per distinct name


def test_every_kind_of_problem_is_reported_at_once(aws: AwsContext) -> None:
    spec = make_spec(
        volumes={"a": vol("a", "us-east-1z", snapshot_id="snap-0123456789abcdef0"),
                 "b": vol("b", import_id="vol-0123456789abcdef0")},
        instances={"t": inst("t", "us-east-1z", iam_instance_profile="nope")},
    )
    found = problems(spec, aws)
    assert [line.split(":")[0] for line in found] == [
        "volumes.a.availability_zone", "instances.t.availability_zone",
        "volumes.a.snapshot_id", "instances.t.iam_instance_profile", "volume.b"]
    assert found[-1] == "volume.b: import: vol-0123456789abcdef0 does not exist in us-east-1"


def test_a_valid_spec_costs_a_constant_number_of_checks(ec2: Any, iam: Any,
                                                        aws: AwsContext) -> None:
    iam.create_instance_profile(InstanceProfileName="trainctl-ssm")
    seed = ec2.create_volume(AvailabilityZone=AZ, Size=8)["VolumeId"]
    snap = ec2.create_snapshot(VolumeId=seed)["SnapshotId"]
    spec = make_spec(
        volumes={f"v{k}": vol(f"v{k}", "us-east-1b" if k % 2 else AZ, snapshot_id=snap)
                 for k in range(30)},
        instances={f"i{k}": inst(f"i{k}", iam_instance_profile="trainctl-ssm")
                   for k in range(30)},
    )
    live = read_live(spec, aws, now=NOW)
    assert live.volumes == () and live.instances == ()
    assert aws.calls["DescribeAvailabilityZones"] == 1
    assert aws.calls["DescribeSnapshots"] == 2
    assert aws.calls["GetInstanceProfile"] == 1


def test_no_resources_no_reference_calls(aws: AwsContext) -> None:
    read_live(make_spec(), aws, now=NOW)
    assert aws.calls["DescribeAvailabilityZones"] == 0
    assert aws.calls["GetInstanceProfile"] == 0
    assert aws.calls["DescribeSnapshots"] == 1


def test_a_check_the_caller_may_not_make_is_skipped(aws: AwsContext) -> None:
    spec = make_spec(instances={"t": inst("t", iam_instance_profile="maybe")})
    with Stubber(aws.iam) as stub:
        stub.add_client_error("get_instance_profile", service_error_code="AccessDenied",
                              http_status_code=403)
        live = read_live(spec, aws, now=NOW)
        stub.assert_no_pending_responses()
    assert live.instances == ()


def test_an_empty_dataset_listing_is_fine_for_the_reader(aws: AwsContext,
                                                         moto_endpoint: str) -> None:
    s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=moto_endpoint)
    s3.create_bucket(Bucket="empty-datasets")
    s3.put_object(Bucket="empty-datasets", Key="other/x.bin", Body=b"x")
    spec = make_spec(datasets={"d": Dataset(name="d", source="s3://empty-datasets/d/",
                                            strategy="direct-s3")})
    m = read_live(spec, aws, now=NOW).datasets["d"]
    assert (m.uri, m.objects, m.bytes, m.list_calls) == ("s3://empty-datasets/d/", 0, 0, 1)


def test_an_unknown_zone_is_named_once_but_an_unoffered_type_still_is(
        aws: AwsContext) -> None:
    # t3.micro in a zone that does not exist: only the AZ problem (not "not offered in");
    # a type no zone offers in a real AZ is still reported, in the same run.
    spec = make_spec(instances={
        "t": inst("t", "us-east-1z"),
        "v": Instance(name="v", instance_type="p9.nosuch", ami="ami-1", availability_zone=AZ),
    })
    found = problems(spec, aws)
    assert [line for line in found if "us-east-1z" in line] == [
        line for line in found if line.startswith("instances.t.availability_zone: ")]
    assert len([line for line in found if "us-east-1z" in line]) == 1
    assert [line for line in found if "p9.nosuch" in line] == [
        "trainctl.yaml: instances.v.instance_type: p9.nosuch is not offered in us-east-1a"]
    assert aws.calls["DescribeAvailabilityZones"] == 1
    assert aws.calls["DescribeInstanceTypeOfferings"] == 1
