"""planner.aws.read against a real moto server: mapping, scoping, imports, call counts, S3."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from planner.aws.datasets_read import s3_manifest
from planner.aws.read import read_live, read_spot_prices
from planner.aws.session import AwsContext, connect
from planner.errors import TrainctlError
from planner.live import LiveAttachment, LiveState, live_from_json, live_to_json
from planner.manifest import local_manifest
from planner.spec import Dataset, Instance, Spec, Volume

NOW = datetime(2026, 11, 22, 21, 0, 0, tzinfo=UTC)
AZ = "us-east-1a"
MOTO_AMI = "ami-760aaa0f"   # Amazon Linux, in moto's default AMI list


def make_spec(project: str = "proj", *, volumes: dict[str, Volume] | None = None,
              instances: dict[str, Instance] | None = None,
              datasets: dict[str, Dataset] | None = None, source_file: str = "trainctl.yaml",
              ) -> Spec:
    return Spec(
        version=1, project=project, region="us-east-1",
        volumes=MappingProxyType(volumes or {}),
        instances=MappingProxyType(instances or {}),
        datasets=MappingProxyType(datasets or {}),
        source_file=source_file,
    )


def tagspec(kind: str, project: str, address: str, **extra: str) -> list[dict[str, Any]]:
    tags = {"trainctl:project": project, "trainctl:address": address,
            "Name": f"{project}/{address}", **extra}
    return [{"ResourceType": kind, "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}]


@pytest.fixture
def ec2(moto_endpoint: str) -> Any:
    return boto3.client("ec2", region_name="us-east-1", endpoint_url=moto_endpoint)


@pytest.fixture
def s3(moto_endpoint: str) -> Any:
    return boto3.client("s3", region_name="us-east-1", endpoint_url=moto_endpoint)


@pytest.fixture
def aws(moto_endpoint: str) -> AwsContext:
    return connect("us-east-1", moto_endpoint)


def ami(ec2: Any) -> str:
    return MOTO_AMI        # describe_images on moto takes seconds: use one of its defaults


def run(ec2: Any, project: str, address: str, count: int = 1, **kw: Any) -> list[dict[str, Any]]:
    resp = ec2.run_instances(
        ImageId=ami(ec2), MinCount=count, MaxCount=count,
        InstanceType=kw.pop("InstanceType", "t3.micro"), Placement={"AvailabilityZone": AZ},
        TagSpecifications=tagspec("instance", project, address), **kw,
    )
    return list(resp["Instances"])


def volume(ec2: Any, project: str, address: str, size: int = 10, **kw: Any) -> str:
    tags = kw.pop("tags", {})
    return str(ec2.create_volume(AvailabilityZone=AZ, Size=size,
                                 TagSpecifications=tagspec("volume", project, address, **tags),
                                 **kw)["VolumeId"])


# --- EC2 ----------------------------------------------------------------------------------


def test_reader_maps_every_field(ec2: Any, aws: AwsContext, moto_endpoint: str) -> None:
    iam = boto3.client("iam", region_name="us-east-1", endpoint_url=moto_endpoint)
    profile_arn = iam.create_instance_profile(
        InstanceProfileName="trainctl-ssm")["InstanceProfile"]["Arn"]
    seed = ec2.create_volume(AvailabilityZone=AZ, Size=8)["VolumeId"]
    snap = ec2.create_snapshot(VolumeId=seed)["SnapshotId"]
    vid = volume(ec2, "proj", "volume.data", size=500, VolumeType="gp3", Iops=6000,
                 Throughput=500, Encrypted=True, SnapshotId=snap,
                 tags={"trainctl:persistent": "true", "team": "ml"})
    inst = run(ec2, "proj", "instance.trainer", InstanceType="g5.xlarge",
               InstanceMarketOptions={"MarketType": "spot"},
               IamInstanceProfile={"Name": "trainctl-ssm"})[0]
    ondemand = run(ec2, "proj", "instance.helper")[0]
    ec2.attach_volume(VolumeId=vid, InstanceId=inst["InstanceId"], Device="/dev/sdf")
    ec2.modify_volume(VolumeId=vid, Size=600)
    own_snap = ec2.create_snapshot(
        VolumeId=vid, TagSpecifications=tagspec("snapshot", "proj", "volume.data"),
    )["SnapshotId"]
    spec = make_spec(instances={"trainer": Instance(
        name="trainer", instance_type="g5.xlarge", ami="ami-1", availability_zone=AZ,
        market="spot")})

    live = read_live(spec, aws, now=NOW)

    assert live.project == "proj" and live.region == "us-east-1" and live.read_at == NOW
    [v] = live.volumes
    assert v.id == vid and v.availability_zone == AZ and v.size_gib == 600
    assert (v.type, v.iops, v.throughput_mibps) == ("gp3", 6000, 500)
    assert v.encrypted is True and v.snapshot_id == snap
    assert v.state == "in-use"
    assert v.address == "volume.data" and v.persistent and not v.protected
    assert v.tags["team"] == "ml" and v.tags["Name"] == "proj/volume.data"
    assert v.attachments == (LiveAttachment(inst["InstanceId"], "/dev/sdf", "attached"),)
    assert v.create_time.tzinfo is not None and v.create_time.utcoffset().total_seconds() == 0
    assert v.create_time.microsecond == 0

    by_id = {i.id: i for i in live.instances}
    t = by_id[inst["InstanceId"]]
    assert t.instance_type == "g5.xlarge" and t.market == "spot"
    assert t.availability_zone == AZ and t.state == "running"
    assert t.ami == inst["ImageId"] and t.subnet_id == inst["SubnetId"]
    assert t.iam_instance_profile == profile_arn
    assert t.address == "instance.trainer" and t.launch_time.tzinfo is not None
    h = by_id[ondemand["InstanceId"]]
    assert h.market == "on-demand" and h.iam_instance_profile is None

    [m] = live.modifications
    assert m.volume_id == vid and m.state == "completed" and m.start_time.tzinfo is not None
    assert [s.id for s in live.snapshots] == [own_snap]
    assert live.snapshots[0].volume_id == vid
    assert live.snapshots[0].tags["trainctl:address"] == "volume.data"

    assert "g5.xlarge/us-east-1a" in live.spot_prices
    assert all(k.startswith("g5.xlarge/") for k in live.spot_prices)
    assert live.api_calls == aws.total_calls() > 0


def test_other_projects_never_appear_terminated_instances_read_as_such(
        ec2: Any, aws: AwsContext) -> None:
    mine = volume(ec2, "proj", "volume.a")
    volume(ec2, "proj-other", "volume.a")
    volume(ec2, "projx", "volume.b")
    ec2.create_volume(AvailabilityZone=AZ, Size=5)                 # untagged
    run(ec2, "proj-other", "instance.t")
    keep = run(ec2, "proj", "instance.t")[0]["InstanceId"]
    stopped = run(ec2, "proj", "instance.s")[0]["InstanceId"]
    gone = run(ec2, "proj", "instance.g")[0]["InstanceId"]
    ec2.stop_instances(InstanceIds=[stopped])
    ec2.terminate_instances(InstanceIds=[gone])
    ec2.create_snapshot(VolumeId=mine, TagSpecifications=tagspec("snapshot", "proj-other", "x"))

    live = read_live(make_spec(), aws, now=NOW)

    assert [v.id for v in live.volumes] == [mine]
    # terminated: read, so the plan can say "terminated outside trainctl" (never acted on)
    assert {i.id: i.state for i in live.instances} == {keep: "running", stopped: "stopped",
                                                       gone: "terminated"}
    assert live.snapshots == ()
    assert live.spot_prices == {}


def test_imports_are_read(ec2: Any, aws: AwsContext) -> None:
    vid = ec2.create_volume(AvailabilityZone=AZ, Size=50, VolumeType="gp2")["VolumeId"]
    resp = ec2.run_instances(ImageId=ami(ec2), MinCount=1, MaxCount=1, InstanceType="t3.micro")
    iid = resp["Instances"][0]["InstanceId"]
    tagged = volume(ec2, "proj", "volume.old")
    spec = make_spec(
        volumes={"data": Volume(name="data", size_gib=50, availability_zone=AZ, type="gp2",
                                import_id=vid),
                 "old": Volume(name="old", size_gib=10, availability_zone=AZ, import_id=tagged)},
        instances={"box": Instance(name="box", instance_type="t3.micro", ami="ami-1",
                                   availability_zone=AZ, import_id=iid)},
    )
    live = read_live(spec, aws, now=NOW)
    assert sorted(v.id for v in live.volumes) == sorted([vid, tagged])   # no duplicate
    assert [i.id for i in live.instances] == [iid]
    assert live.volume_by_id(vid).tags == {}                             # type: ignore[union-attr]


def test_missing_imports_are_named(ec2: Any, aws: AwsContext) -> None:
    dead = ec2.run_instances(ImageId=ami(ec2), MinCount=1, MaxCount=1,
                             InstanceType="t3.micro")["Instances"][0]["InstanceId"]
    ec2.terminate_instances(InstanceIds=[dead])
    spec = make_spec(
        volumes={"data": Volume(name="data", size_gib=5, availability_zone=AZ,
                                import_id="vol-0123456789abcdef0")},
        instances={"box": Instance(name="box", instance_type="t3.micro", ami="ami-1",
                                   availability_zone=AZ, import_id="i-0123456789abcdef0"),
                   "old": Instance(name="old", instance_type="t3.micro", ami="ami-1",
                                   availability_zone=AZ, import_id=dead)},
    )
    with pytest.raises(TrainctlError) as e:
        read_live(spec, aws, now=NOW)
    msg = str(e.value)
    assert "instance.box: import: i-0123456789abcdef0 does not exist in us-east-1" in msg
    assert f"instance.old: import: {dead} is terminated" in msg
    assert "volume.data: import: vol-0123456789abcdef0 does not exist in us-east-1" in msg


def _describe_calls(aws: AwsContext) -> Counter[str]:
    return Counter({k: v for k, v in aws.calls.items() if k.startswith("Describe")})


@pytest.mark.slow
def test_describe_calls_are_constant_in_the_number_of_resources(
        ec2: Any, moto_endpoint: str) -> None:
    """Reading and checking the spec's references (AZs, snapshots, profiles, instance
    type offerings) alike."""
    iam = boto3.client("iam", region_name="us-east-1", endpoint_url=moto_endpoint)
    iam.create_instance_profile(InstanceProfileName="trainctl-ssm")
    snap = ec2.create_snapshot(
        VolumeId=ec2.create_volume(AvailabilityZone=AZ, Size=8)["VolumeId"])["SnapshotId"]
    counts = []
    for n in (50, 500):
        project = f"scale{n}"
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda k, p=project: volume(ec2, p, f"volume.v{k}"), range(n // 2)))
        run(ec2, project, "instance.i", count=n // 2)
        spec = make_spec(
            project,
            volumes={f"v{k}": Volume(name=f"v{k}", size_gib=10, availability_zone=AZ,
                                     snapshot_id=snap) for k in range(n // 2)},
            instances={f"i{k}": Instance(name=f"i{k}", instance_type="t3.micro", ami="ami-1",
                                         availability_zone=AZ,
                                         iam_instance_profile="trainctl-ssm")
                       for k in range(n // 2)},
        )
        aws = connect("us-east-1", moto_endpoint)
        live = read_live(spec, aws, now=NOW, with_datasets=False)
        assert len(live.volumes) + len(live.instances) == n
        counts.append(_describe_calls(aws) + Counter(
            GetInstanceProfile=aws.calls["GetInstanceProfile"]))
        assert live.api_calls == aws.total_calls()
    assert counts[0] == counts[1]
    assert sum(counts[1].values()) <= 9        # DescribeImages: root volume sizes (cost)
    assert counts[1]["DescribeInstanceTypeOfferings"] == 1   # every type, every AZ
    assert counts[1]["DescribeVolumes"] == 1 and counts[1]["DescribeInstances"] == 1
    assert counts[1]["DescribeAvailabilityZones"] == 1
    assert counts[1]["DescribeSnapshots"] == 2          # the project's, and the spec's ids
    assert counts[1]["GetInstanceProfile"] == 1


def test_no_volumes_means_no_modification_call(aws: AwsContext) -> None:
    read_live(make_spec(), aws, now=NOW)
    assert aws.calls["DescribeVolumesModifications"] == 0
    assert aws.calls["DescribeSpotPriceHistory"] == 0      # no spot instances
    assert aws.calls["DescribeVolumes"] == 1 and aws.calls["DescribeInstances"] == 1


def test_spot_prices_empty_when_aws_refuses() -> None:
    aws = connect("us-east-1", None)
    with Stubber(aws.ec2) as stub:
        stub.add_client_error("describe_spot_price_history",
                              service_error_code="UnauthorizedOperation")
        assert read_spot_prices(aws.ec2, ["g5.xlarge"], NOW) == {}


def test_spot_prices_keep_the_latest_per_type_and_az() -> None:
    aws = connect("us-east-1", None)
    older, newer = datetime(2026, 11, 22, 20, tzinfo=UTC), datetime(2026, 11, 22, 21, tzinfo=UTC)
    history = [
        {"InstanceType": "g5.xlarge", "AvailabilityZone": AZ, "SpotPrice": "0.40",
         "ProductDescription": "Linux/UNIX", "Timestamp": older},
        {"InstanceType": "g5.xlarge", "AvailabilityZone": AZ, "SpotPrice": "0.45",
         "ProductDescription": "Linux/UNIX", "Timestamp": newer},
        {"InstanceType": "g5.xlarge", "AvailabilityZone": "us-east-1b", "SpotPrice": "0.50",
         "ProductDescription": "Linux/UNIX", "Timestamp": older},
        {"InstanceType": "g5.xlarge", "AvailabilityZone": AZ, "SpotPrice": "9.99",
         "ProductDescription": "Windows", "Timestamp": newer},
    ]
    with Stubber(aws.ec2) as stub:
        stub.add_response("describe_spot_price_history", {"SpotPriceHistory": history})
        prices = read_spot_prices(aws.ec2, ["g5.xlarge"], NOW)
    assert prices == {"g5.xlarge/us-east-1a": 0.45, "g5.xlarge/us-east-1b": 0.50}


def test_snapshot_round_trip(ec2: Any, s3: Any, aws: AwsContext, tmp_path: Path) -> None:
    vid = volume(ec2, "proj", "volume.a", VolumeType="io2", Iops=4000)
    inst = run(ec2, "proj", "instance.t", InstanceMarketOptions={"MarketType": "spot"})[0]
    ec2.attach_volume(VolumeId=vid, InstanceId=inst["InstanceId"], Device="/dev/sdg")
    ec2.modify_volume(VolumeId=vid, Size=20)
    ec2.create_snapshot(VolumeId=vid, TagSpecifications=tagspec("snapshot", "proj", "volume.a"))
    s3.create_bucket(Bucket="data")
    s3.put_object(Bucket="data", Key="set/a.bin", Body=b"abc")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "f.txt").write_text("hi")
    spec = make_spec(
        instances={"t": Instance(name="t", instance_type="t3.micro", ami="ami-1",
                                 availability_zone=AZ, market="spot")},
        datasets={"d": Dataset(name="d", source="s3://data/set/", strategy="direct-s3"),
                  "l": Dataset(name="l", source=str(tmp_path / "src"), strategy="local-cache",
                               stage="s3://data/stage/l/")},
    )
    live = read_live(spec, aws, now=NOW)
    assert live.volumes and live.instances and live.modifications and live.snapshots
    assert set(live.datasets) == {"d", "l", "l:local"} and live.spot_prices
    back = live_from_json(live_to_json(live))
    assert back == live
    assert isinstance(back, LiveState)


# --- S3 manifests -------------------------------------------------------------------------


def test_manifest_digest_changes_with_content_only(s3: Any, aws: AwsContext) -> None:
    s3.create_bucket(Bucket="acme-datasets")
    for k in ("a.bin", "sub/b.bin", "c.bin"):
        s3.put_object(Bucket="acme-datasets", Key=f"imagenet/{k}", Body=k.encode())
    s3.put_object(Bucket="acme-datasets", Key="imagenet/emptydir/", Body=b"")   # folder marker
    s3.put_object(Bucket="acme-datasets", Key="imagenet-old/x", Body=b"outside the prefix")
    uri = "s3://acme-datasets/imagenet/"

    first = s3_manifest(aws, uri)
    assert (first.uri, first.objects, first.list_calls) == (uri, 3, 1)
    assert first.bytes == len(b"a.bin") + len(b"sub/b.bin") + len(b"c.bin")
    assert first.digest.startswith("sha256:")
    assert s3_manifest(aws, uri).digest == first.digest
    assert s3_manifest(aws, "s3://acme-datasets/imagenet").digest == first.digest

    s3.put_object(Bucket="acme-datasets", Key="imagenet/a.bin", Body=b"a.bin")   # same bytes
    assert s3_manifest(aws, uri).digest == first.digest

    s3.put_object(Bucket="acme-datasets", Key="imagenet/a.bin", Body=b"A.bin")   # new bytes
    changed = s3_manifest(aws, uri)
    assert changed.digest != first.digest and changed.objects == 3

    s3.delete_object(Bucket="acme-datasets", Key="imagenet/c.bin")
    assert s3_manifest(aws, uri).objects == 2


def test_manifest_pages_follow_the_page_size(s3: Any, aws: AwsContext,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import planner.aws.datasets_read as datasets_read

    monkeypatch.setattr(datasets_read, "LIST_PAGE", 10)
    s3.create_bucket(Bucket="few")
    for k in range(25):
        s3.put_object(Bucket="few", Key=f"p/{k:02d}", Body=b"xy")
    m = s3_manifest(aws, "s3://few/p/")
    assert (m.objects, m.bytes, m.list_calls) == (25, 50, 3)
    assert aws.calls["ListObjectsV2"] == 3


@pytest.mark.slow
def test_manifest_pages_grow_with_objects(s3: Any, aws: AwsContext) -> None:
    s3.create_bucket(Bucket="many")
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: s3.put_object(Bucket="many", Key=f"p/{k:05d}", Body=b"x"),
                      range(1001)))
    m = s3_manifest(aws, "s3://many/p/")
    assert (m.objects, m.bytes, m.list_calls) == (1001, 1001, 2)
    s3.delete_object(Bucket="many", Key="p/01000")
    assert s3_manifest(aws, "s3://many/p/").list_calls == 1
    assert aws.calls["ListObjectsV2"] == 3


def test_missing_bucket_is_an_error_for_s3_sources(aws: AwsContext) -> None:
    spec = make_spec(datasets={"imagenet": Dataset(
        name="imagenet", source="s3://no-such-bucket/imagenet/", strategy="direct-s3")})
    with pytest.raises(TrainctlError) as e:
        read_live(spec, aws, now=NOW)
    assert str(e.value) == (
        "dataset imagenet: bucket 'no-such-bucket' of s3://no-such-bucket/imagenet/ "
        "does not exist"
    )


def test_local_source_manifest_matches_its_uploaded_stage(
        s3: Any, aws: AwsContext, tmp_path: Path) -> None:
    src = tmp_path / "spec" / "data"
    (src / "nested").mkdir(parents=True)
    (src / "a.txt").write_bytes(b"alpha")
    (src / "nested" / "b.bin").write_bytes(bytes(range(256)) * 10)
    spec = make_spec(
        datasets={"mine": Dataset(name="mine", source="data", strategy="local-cache",
                                  stage="s3://stage-bucket/mine/")},
        source_file=str(tmp_path / "spec" / "trainctl.yaml"),
    )

    before = read_live(spec, aws, now=NOW).datasets      # stage bucket not there yet
    assert before["mine"].objects == 0 and before["mine"].uri == "s3://stage-bucket/mine/"
    local = before["mine:local"]
    assert local.uri == src.resolve().as_uri()
    assert (local.objects, local.bytes, local.list_calls) == (2, 5 + 2560, 0)
    assert before["mine"].digest != local.digest

    s3.create_bucket(Bucket="stage-bucket")
    for p in src.rglob("*"):
        if p.is_file():
            s3.put_object(Bucket="stage-bucket", Key=f"mine/{p.relative_to(src).as_posix()}",
                          Body=p.read_bytes())
    after = read_live(spec, aws, now=NOW).datasets
    assert after["mine"].digest == after["mine:local"].digest == local.digest

    (src / "a.txt").write_bytes(b"ALPHA")
    assert local_manifest(src).digest != local.digest


def test_local_manifest_matches_multipart_uploads(
        s3: Any, aws: AwsContext, tmp_path: Path) -> None:
    from boto3.s3.transfer import TransferConfig

    mib = 1 << 20
    src = tmp_path / "src"
    src.mkdir()
    (src / "big.bin").write_bytes(bytes(range(256)) * (11 * mib // 256 + 3))   # 3 parts
    (src / "small.txt").write_bytes(b"small")
    s3.create_bucket(Bucket="multipart")
    config = TransferConfig(multipart_threshold=5 * mib, multipart_chunksize=5 * mib)
    for p in src.iterdir():
        s3.upload_file(str(p), "multipart", f"d/{p.name}", Config=config)
    remote = s3_manifest(aws, "s3://multipart/d/")
    assert s3.head_object(Bucket="multipart", Key="d/big.bin")["ETag"].endswith('-3"')
    assert local_manifest(src, part_size=5 * mib).digest == remote.digest
    assert local_manifest(src, part_size=None).digest != remote.digest   # single-part MD5s


def test_local_manifest_defaults_to_the_uploaders_part_size(
        s3: Any, aws: AwsContext, tmp_path: Path) -> None:
    """boto3 uploads in 8 MiB parts from 8 MiB on: exactly 8 MiB is a 1-part upload."""
    from boto3.s3.transfer import TransferConfig

    mib = 1 << 20
    src = tmp_path / "src"
    src.mkdir()
    (src / "eight.bin").write_bytes(b"8" * (8 * mib))
    (src / "nine.bin").write_bytes(b"9" * (9 * mib))
    (src / "one.bin").write_bytes(b"1" * mib)
    s3.create_bucket(Bucket="defaults")
    config = TransferConfig(multipart_threshold=8 * mib, multipart_chunksize=8 * mib)
    for p in src.iterdir():
        s3.upload_file(str(p), "defaults", f"d/{p.name}", Config=config)
    assert s3.head_object(Bucket="defaults", Key="d/eight.bin")["ETag"].endswith('-1"')
    assert local_manifest(src).digest == s3_manifest(aws, "s3://defaults/d/").digest


def test_local_manifest_of_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(TrainctlError, match="is not a directory"):
        local_manifest(tmp_path / "nope")


def test_datasets_can_be_skipped(aws: AwsContext) -> None:
    spec = make_spec(datasets={"x": Dataset(name="x", source="s3://no-such-bucket/x/",
                                            strategy="direct-s3")})
    live = read_live(spec, aws, now=NOW, with_datasets=False)
    assert live.datasets == {} and aws.calls["ListObjectsV2"] == 0
