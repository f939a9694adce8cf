"""The JSON Schema: its own shape, the packaged copy, and each error class it reports."""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from planner.errors import SpecError
from planner.loader import load_spec
from planner.schema import load_schema

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_FILE = ROOT / "schemas" / "trainctl.schema.json"

HEAD = """\
version: 1
project: demo
region: us-east-1
defaults:
  availability_zone: us-east-1a
"""


def errors_of(tmp_path: Path, text: str) -> list[str]:
    f = tmp_path / "t.yaml"
    f.write_text(text)
    with pytest.raises(SpecError) as exc:
        load_spec(str(f))
    prefix = f"{f}:"
    lines = [str(i) for i in exc.value.issues]
    assert all(line.startswith(prefix) for line in lines)
    return [line[len(prefix):] for line in lines]


def _walk(node: Any, where: str = "#") -> Any:
    if isinstance(node, dict):
        yield where, node
        for k, v in node.items():
            yield from _walk(v, f"{where}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk(v, f"{where}/{i}")


# --- the schema itself -------------------------------------------------------------------

def test_schema_is_valid_draft_2020_12() -> None:
    schema = json.loads(SCHEMA_FILE.read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


def test_every_object_schema_is_closed_and_every_key_described() -> None:
    schema = json.loads(SCHEMA_FILE.read_text())
    objects = 0
    for where, node in _walk(schema):
        if node.get("type") == "object":
            objects += 1
            assert "additionalProperties" in node, where
            if "properties" in node:
                assert node["additionalProperties"] is False, where
        if where.endswith("/properties") and "/allOf/" not in where and "/if" not in where \
                and "/dependentSchemas/" not in where:
            for key, sub in node.items():
                assert "description" in sub, f"{where}/{key}"
    assert objects >= 10


def test_defaults_are_documented() -> None:
    defs = load_schema()["$defs"]
    assert defs["volume"]["properties"]["type"]["default"] == "gp3"
    assert defs["volume"]["properties"]["filesystem"]["default"] == "ext4"
    assert defs["volume"]["properties"]["on_delete"]["default"] == "delete"
    assert defs["volume"]["properties"]["persistent"]["default"] is False
    assert defs["instance"]["properties"]["market"]["default"] == "on-demand"
    assert defs["defaults"]["properties"]["min_age_minutes"]["default"] == 5
    assert defs["mount"]["properties"]["read_only"]["default"] is False
    assert defs["cost"]["properties"]["enforce"]["default"] is False


def test_packaged_schema_is_a_relative_symlink_found_by_importlib_resources() -> None:
    link = ROOT / "planner" / "schemas" / "trainctl.schema.json"
    assert link.is_symlink()
    assert os.readlink(link) == "../../schemas/trainctl.schema.json"
    packaged = resources.files("planner").joinpath("schemas/trainctl.schema.json")
    assert json.loads(packaged.read_text()) == json.loads(SCHEMA_FILE.read_text())
    assert load_schema() == json.loads(SCHEMA_FILE.read_text())


# --- error classes -----------------------------------------------------------------------

def test_unknown_key_with_suggestion(tmp_path: Path) -> None:
    assert errors_of(tmp_path, HEAD + "volumes:\n  a:\n    size_gib: 10\n    persistant: true\n") \
        == ["9:5: volumes.a.persistant: unknown key 'persistant'; did you mean 'persistent'?"]


def test_unknown_key_without_close_match_lists_the_keys(tmp_path: Path) -> None:
    assert errors_of(tmp_path, HEAD + "cost:\n  zzz: 1\n") == [
        "7:3: cost.zzz: unknown key 'zzz' (expected one of: enforce, max_accumulated_usd, "
        "max_daily_usd, max_hourly_usd)"]


def test_unknown_top_level_key(tmp_path: Path) -> None:
    assert errors_of(tmp_path, HEAD + "instance: {}\n") == [
        "6:1: instance: unknown key 'instance'; did you mean 'instances'?"]


def test_wrong_type(tmp_path: Path) -> None:
    assert errors_of(tmp_path, HEAD + "volumes:\n  a: {size_gib: big}\n") == [
        "7:17: volumes.a.size_gib: expected an integer, got a string ('big')"]
    assert errors_of(tmp_path, HEAD + "volumes: [a, b]\n") == [
        "6:10: volumes: expected a mapping, got a list"]


def test_bad_enum(tmp_path: Path) -> None:
    assert errors_of(tmp_path, HEAD + "volumes:\n  a: {size_gib: 1, type: gp4}\n") == [
        "7:26: volumes.a.type: must be one of gp3, gp2, io1, io2, st1, sc1; got 'gp4'; "
        "did you mean 'gp3'?"]


def test_missing_required_keys(tmp_path: Path) -> None:
    assert errors_of(tmp_path, "version: 1\nproject: demo\n") == [
        "1:1: (document): missing required key 'region'"]
    assert errors_of(tmp_path, HEAD + "volumes:\n  a: {type: gp2}\n") == [
        "7:3: volumes.a: missing required key 'size_gib'"]


def test_bad_s3_uri(tmp_path: Path) -> None:
    text = HEAD + "datasets:\n  d: {source: 's3://Bad_Bucket/x/', strategy: direct-s3}\n"
    assert errors_of(tmp_path, text) == [
        "7:15: datasets.d.source: must be an s3:// URI like s3://bucket/prefix/ (lowercase "
        "bucket; prefix without spaces, shell metacharacters or '..'); got 's3://Bad_Bucket/x/'"]


def test_bad_names_via_property_names(tmp_path: Path) -> None:
    assert errors_of(tmp_path, HEAD + "volumes:\n  Bad_Name: {size_gib: 1}\n") == [
        "7:3: volumes.Bad_Name: invalid name 'Bad_Name': must be 1-40 characters of a-z, 0-9 "
        "and '-', starting with a letter or digit"]


def test_reserved_tag_keys(tmp_path: Path) -> None:
    text = HEAD.replace("  availability", "  tags: {'trainctl:project': x}\n  availability")
    assert errors_of(tmp_path, text) == [
        "5:10: defaults.tags.trainctl:project: invalid tag key 'trainctl:project': must be a "
        "tag key of 1-128 letters, digits, spaces and _.:/=+@- that is not Name and does not "
        "start with aws: or trainctl:"]


def test_version_must_be_one(tmp_path: Path) -> None:
    assert errors_of(tmp_path, HEAD.replace("version: 1", "version: 2")) == [
        "1:10: version: must be 1; got 2"]


@pytest.mark.parametrize(("volume", "expected"), [
    ("{size_gib: 10, type: gp2, iops: 3000}",
     "7:38: volumes.a.iops: iops applies only to gp3, io1 and io2 volumes; got 3000"),
    ("{size_gib: 10, type: io2, iops: 500, throughput_mibps: 200}",
     "7:61: volumes.a.throughput_mibps: throughput_mibps applies only to gp3 volumes; got 200"),
    ("{size_gib: 10, type: io1}", "7:3: volumes.a: io1 and io2 volumes need iops"),
    ("{size_gib: 10, type: st1}",
     "7:17: volumes.a.size_gib: st1 and sc1 volumes need at least 125 GiB; got 10"),
    ("{size_gib: 20000, type: gp2}",
     "7:17: volumes.a.size_gib: only gp3 and io2 volumes may exceed 16384 GiB; got 20000"),
    ("{size_gib: 20000, type: io1, iops: 1000}",
     "7:17: volumes.a.size_gib: only gp3 and io2 volumes may exceed 16384 GiB; got 20000"),
    ("{size_gib: 70000}", "7:17: volumes.a.size_gib: must be at most 65536; got 70000"),
    ("{size_gib: 100, iops: 90000}",
     "7:28: volumes.a.iops: gp3 iops must be 3000-80000; got 90000"),
    ("{size_gib: 100, throughput_mibps: 2500}",
     "7:40: volumes.a.throughput_mibps: must be at most 2000; got 2500"),
    ("{size_gib: 300, type: io2, iops: 300000}",
     "7:39: volumes.a.iops: must be at most 256000; got 300000"),
    ("{size_gib: 10, iops: 1000}", "7:27: volumes.a.iops: gp3 iops must be 3000-80000; got 1000"),
])
def test_volume_type_rules(tmp_path: Path, volume: str, expected: str) -> None:
    assert errors_of(tmp_path, HEAD + f"volumes:\n  a: {volume}\n") == [expected]


def test_type_rules_accept_what_the_type_allows(tmp_path: Path) -> None:
    f = tmp_path / "t.yaml"
    f.write_text(HEAD + "volumes:\n  a: {size_gib: 100, type: io2, iops: 20000}\n"
                        "  b: {size_gib: 100, iops: 6000, throughput_mibps: 500}\n"
                        "  c: {size_gib: 20000, type: io2, iops: 64000}\n"
                        # gp3 as AWS raised it (2025): 64 TiB, 80,000 IOPS, 2,000 MiB/s
                        "  d: {size_gib: 65536, iops: 80000, throughput_mibps: 2000}\n"
                        "  e: {size_gib: 65536, type: io2, iops: 256000}\n")
    spec = load_spec(str(f))
    assert spec.volumes["d"].size_gib == 65536
    assert (spec.volumes["a"].iops, spec.volumes["b"].throughput_mibps) == (20000, 500)


@pytest.mark.parametrize(("key", "value", "message"), [
    ("ami", "ami-123", "must be an AMI id like ami-0123456789abcdef0"),
    ("ami", "ami-0123456789ABCDEF0", "must be an AMI id like ami-0123456789abcdef0"),
    ("subnet_id", "subnet-xyz", "must be a subnet id like subnet-0123456789abcdef0"),
    ("availability_zone", "us-east-1", "must be an availability zone like us-east-1a"),
    ("import", "vol-0123456789abcdef0", "must be an instance id like i-0123456789abcdef0"),
    ("instance_type", "G5 XL", "must be an instance type like g5.2xlarge"),
])
def test_aws_id_patterns(tmp_path: Path, key: str, value: str, message: str) -> None:
    fields = {"instance_type": "g5.xlarge", "ami": "ami-0123456789abcdef0", key: value}
    body = "".join(f"    {k}: {json.dumps(v)}\n" for k, v in fields.items())
    got = errors_of(tmp_path, HEAD + "instances:\n  t:\n" + body)
    assert len(got) == 1 and got[0].endswith(f": {message}; got {value!r}")


def test_snapshot_and_volume_ids(tmp_path: Path) -> None:
    text = HEAD + ("volumes:\n  a: {size_gib: 1, snapshot_id: snap-1}\n"
                   "  b: {size_gib: 1, import: x}\n")
    assert errors_of(tmp_path, text) == [
        "7:33: volumes.a.snapshot_id: must be a snapshot id like snap-0123456789abcdef0; "
        "got 'snap-1'",
        "8:28: volumes.b.import: must be a volume id like vol-0123456789abcdef0; got 'x'"]


SHELL_NASTIES = ["$(id)", "`id`", ";rm -rf", "a'b", 'a"b', "a b", "a\nb", "a|b", "a&b",
                 "a>b", "a\\b", "${HOME}", "a\tb"]


def _mount_spec(device: str = "/dev/sdf", path: str = "/data") -> str:
    return HEAD + (
        "volumes:\n  v: {size_gib: 1}\n"
        "instances:\n  t:\n    instance_type: g5.xlarge\n    ami: ami-0123456789abcdef0\n"
        f"    mounts:\n      - volume: v\n        device: {json.dumps(device)}\n"
        f"        path: {json.dumps(path)}\n")


@pytest.mark.parametrize("nasty", SHELL_NASTIES)
def test_shell_metacharacters_in_paths_are_rejected(tmp_path: Path, nasty: str) -> None:
    got = errors_of(tmp_path, _mount_spec(path="/data/" + nasty))
    assert got == [f"15:15: instances.t.mounts[0].path: must be an absolute path (starting "
                   f"with /, no '..', no spaces or shell metacharacters); got "
                   f"{'/data/' + nasty!r}"]


@pytest.mark.parametrize("nasty", [*SHELL_NASTIES, "\n"])
def test_shell_metacharacters_in_devices_are_rejected(tmp_path: Path, nasty: str) -> None:
    got = errors_of(tmp_path, _mount_spec(device="/dev/sdf" + nasty))
    assert got == ["14:17: instances.t.mounts[0].device: must be a device name /dev/sdf ... "
                   f"/dev/sdp or /dev/xvdf ... /dev/xvdp; got {'/dev/sdf' + nasty!r}"]


@pytest.mark.parametrize("nasty", [*SHELL_NASTIES, "\n"])
def test_shell_metacharacters_in_s3_uris_are_rejected(tmp_path: Path, nasty: str) -> None:
    uri = "s3://bucket/prefix/" + nasty
    got = errors_of(tmp_path, HEAD + f"state: {json.dumps(uri)}\n")
    assert got == ["6:8: state: must be an s3:// URI like s3://bucket/prefix/ (lowercase "
                   f"bucket; prefix without spaces, shell metacharacters or '..'); got {uri!r}"]


@pytest.mark.parametrize("path", ["data", "/data/../etc", "/..", "/a/..", "/"])
def test_mount_paths_must_be_absolute_without_dotdot(tmp_path: Path, path: str) -> None:
    (got,) = errors_of(tmp_path, _mount_spec(path=path))
    assert got.startswith("15:15: instances.t.mounts[0].path: ")


@pytest.mark.parametrize("device", ["/dev/sda", "/dev/sdq", "/dev/nvme1n1", "/dev/xvdz"])
def test_device_names_outside_sdf_to_sdp(tmp_path: Path, device: str) -> None:
    (got,) = errors_of(tmp_path, _mount_spec(device=device))
    assert got.startswith("14:17: instances.t.mounts[0].device: must be a device name")


def test_all_schema_errors_are_listed_at_once(tmp_path: Path) -> None:
    text = HEAD + "volumes:\n  a:\n    size_gib: -1\n    type: fast\n    colour: red\n"
    assert errors_of(tmp_path, text) == [
        "8:15: volumes.a.size_gib: must be at least 1; got -1",
        "9:11: volumes.a.type: must be one of gp3, gp2, io1, io2, st1, sc1; got 'fast'",
        "10:5: volumes.a.colour: unknown key 'colour' (expected one of: availability_zone, "
        "encrypted, filesystem, import, iops, on_delete, persistent, protect, size_gib, "
        "snapshot_id, tags, throughput_mibps, type)"]


def test_a_float_is_not_an_integer(tmp_path: Path) -> None:
    """100.0 passes JSON Schema's integer but boto3 refuses it mid-apply: caught here."""
    errors = errors_of(tmp_path, HEAD + "volumes:\n  a: {size_gib: 100.0, iops: 3000.0}\n")
    assert len(errors) == 2
    assert all(e.startswith("7:") and "integer" in e for e in errors), errors
    (tmp_path / "ok.yaml").write_text(HEAD + "volumes:\n  a: {size_gib: 100}\n")
    assert load_spec(str(tmp_path / "ok.yaml")).volumes["a"].size_gib == 100
