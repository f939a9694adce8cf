"""What AWS or the instance would refuse mid-apply is a spec error (planner.speclimits):
merged tags over EC2's limits, mount paths naming one directory or nesting, local file
names that cannot be S3 keys. Each is located FILE:LINE:COL and stops `plan` (exit 1)
before any change."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import run_cli

from planner.errors import SpecError
from planner.loader import load_spec
from planner.speclimits import normalise_mount_path, s3_key_problem

HEAD = """\
version: 1
project: demo
region: us-east-1
defaults:
  availability_zone: us-east-1a
"""
INSTANCE = "    instance_type: g5.xlarge\n    ami: ami-0123456789abcdef0\n"


def errors_of(tmp_path: Path, text: str) -> list[str]:
    f = tmp_path / "t.yaml"
    f.write_text(text)
    with pytest.raises(SpecError) as exc:
        load_spec(str(f))
    prefix = f"{f}:"
    return [str(i)[len(prefix):] for i in exc.value.issues]


def loads(tmp_path: Path, text: str) -> None:
    f = tmp_path / "t.yaml"
    f.write_text(text)
    load_spec(str(f))


def tag_block(prefix: str, n: int, indent: int) -> str:
    pad = " " * indent
    return "".join(f"{pad}{prefix}{k}: v\n" for k in range(n))


def spec_with_tags(n_default: int, n_volume: int, *, volume_extra: str = "",
                   n_instance: int = 0, mounted: bool = False) -> str:
    text = HEAD + "  tags:\n" + tag_block("d", n_default, 4) if n_default else HEAD
    text += "volumes:\n  data:\n    size_gib: 1\n" + volume_extra
    if n_volume:
        text += "    tags:\n" + tag_block("v", n_volume, 6)
    text += "instances:\n  t:\n" + INSTANCE
    if n_instance:
        text += "    tags:\n" + tag_block("i", n_instance, 6)
    if mounted:
        text += "    mounts:\n      - {volume: data, device: /dev/sdf, path: /data}\n"
    return text


# --- tags ------------------------------------------------------------------------------------

def test_merged_tags_at_the_limit_pass_and_one_more_fails(tmp_path: Path) -> None:
    # a plain volume carries 6 trainctl tags (Name, project, address, client-token,
    # modified, created-empty): 44 of the spec's fit, 45 do not
    loads(tmp_path, spec_with_tags(24, 20))
    errs = errors_of(tmp_path, spec_with_tags(25, 20))
    assert len(errs) == 1
    assert errs[0].startswith("35:5: volumes.data.tags: 51 tags on this EBS volume: "
                              "45 from defaults.tags and its tags, 6 trainctl's own")
    assert "EC2 allows 50 per resource: remove 1" in errs[0]


def test_tags_overridden_by_the_resource_count_once(tmp_path: Path) -> None:
    text = spec_with_tags(25, 20).replace("    v0: v\n", "    d0: other\n")
    loads(tmp_path, text)


def test_trainctl_tags_that_the_spec_implies_are_counted(tmp_path: Path) -> None:
    # persistent, protect, on_delete: snapshot and a mount add 4 more trainctl tags
    extra = "    persistent: true\n    protect: true\n    on_delete: snapshot\n"
    loads(tmp_path, spec_with_tags(20, 20, volume_extra=extra, mounted=True))
    errs = errors_of(tmp_path, spec_with_tags(21, 20, volume_extra=extra, mounted=True))
    assert len(errs) == 1 and "volumes.data.tags: 51 tags" in errs[0]
    for tag in ("trainctl:persistent", "trainctl:protected", "trainctl:on-delete",
                "trainctl:mounted"):
        assert tag in errs[0]


def test_a_volume_from_a_snapshot_carries_no_created_empty_tag(tmp_path: Path) -> None:
    # trainctl:created-empty is set only on volumes created empty (issue 10, item 3)
    extra = "    snapshot_id: snap-0123456789abcdef0\n"
    loads(tmp_path, spec_with_tags(25, 20, volume_extra=extra))
    errs = errors_of(tmp_path, spec_with_tags(25, 20))
    assert len(errs) == 1 and "trainctl:created-empty" in errs[0]


def test_instance_tags_over_the_limit(tmp_path: Path) -> None:
    # an instance carries 5: Name, project, address, training, checkpoints
    loads(tmp_path, spec_with_tags(25, 0, n_instance=20))
    errs = errors_of(tmp_path, spec_with_tags(26, 0, n_instance=20))
    assert len(errs) == 1 and "instances.t.tags: 51 tags on this EC2 instance" in errs[0]


def test_over_the_limit_from_defaults_alone_points_at_defaults(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import planner.speclimits as sl

    # the schema caps one map at 40, so this is only reachable with a lower limit
    monkeypatch.setattr(sl, "EC2_TAGS_MAX", 30)
    errs = errors_of(tmp_path, spec_with_tags(26, 0))
    assert [e.split(": ")[1] for e in errs] == ["defaults.tags", "defaults.tags"]


def test_aws_prefix_in_any_case_is_refused(tmp_path: Path) -> None:
    text = HEAD + "volumes:\n  data:\n    size_gib: 1\n    tags: {AWS:team: x, Aws:Cost: y}\n"
    errs = errors_of(tmp_path, text)
    assert len(errs) == 2
    assert all("the aws: prefix (in any case) is reserved by AWS" in e for e in errs)


def test_key_and_value_lengths_are_refused_once(tmp_path: Path) -> None:
    text = HEAD + ("volumes:\n  data:\n    size_gib: 1\n    tags:\n"
                   f"      {'k' * 129}: v\n      team: {'v' * 257}\n")
    errs = errors_of(tmp_path, text)
    assert len(errs) == 2, errs       # the schema's or ours, never both
    assert "volumes.data.tags." in errs[0] and "volumes.data.tags.team" in errs[1]


# --- mount paths -----------------------------------------------------------------------------

def mounts_spec(*paths: str) -> str:
    vols = "".join(f"  v{k}: {{size_gib: 1}}\n" for k in range(len(paths)))
    mounts = "".join(f"      - {{volume: v{k}, device: /dev/sd{'fghij'[k]}, path: '{p}'}}\n"
                     for k, p in enumerate(paths))
    return HEAD + "volumes:\n" + vols + "instances:\n  t:\n" + INSTANCE + "    mounts:\n" + mounts


@pytest.mark.parametrize("other", ["//data", "/data/", "/data/.", "/./data", "///data//"])
def test_mount_paths_that_normalise_to_one_are_refused(tmp_path: Path, other: str) -> None:
    errs = errors_of(tmp_path, mounts_spec("/data", other))
    assert len(errs) == 1
    assert (f"instances.t.mounts[1].path: mount path {other} is already used by mounts[0] "
            "(both are /data)") in errs[0]


@pytest.mark.parametrize("paths", [("/data", "/data/cache"), ("/data/cache", "//data"),
                                   ("/a", "/b", "/a/b/c")])
def test_nested_mount_paths_are_refused(tmp_path: Path, paths: tuple[str, ...]) -> None:
    errs = errors_of(tmp_path, mounts_spec(*paths))
    assert len(errs) == 1
    assert "one mount would hide the other's files" in errs[0]


def test_sibling_paths_with_a_common_prefix_are_fine(tmp_path: Path) -> None:
    loads(tmp_path, mounts_spec("/data", "/data2", "/dat"))


@pytest.mark.parametrize("path", ["//", "/.", "/./"])
def test_a_mount_over_root_in_disguise_is_refused(tmp_path: Path, path: str) -> None:
    errs = errors_of(tmp_path, mounts_spec(path))
    assert len(errs) == 1 and "cannot mount a volume over /" in errs[0]


def test_a_mount_path_too_long_to_record_is_refused(tmp_path: Path) -> None:
    errs = errors_of(tmp_path, mounts_spec("/" + "d" * 220))
    assert len(errs) == 1 and "allows 200" in errs[0]


def test_normalise_mount_path() -> None:
    assert normalise_mount_path("//data//x/./") == "/data/x"
    assert normalise_mount_path("/") == "/"


# --- local dataset files ---------------------------------------------------------------------

def local_spec(tmp_path: Path, stage: str = "s3://bkt/stage/") -> Path:
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data" / "fine.bin").write_bytes(b"x")
    f = tmp_path / "trainctl.yaml"
    f.write_text(HEAD + "datasets:\n  d:\n    source: ./data\n"
                 f"    strategy: direct-s3\n    stage: {stage}\n")
    return f


@pytest.mark.parametrize("name,why", [
    (b"caf\xe9.bin", "its name is not UTF-8"),
    (b"a\x01b.bin", "control characters (U+0001)"),
    (b"tab\there.bin", "control characters (U+0009)"),
    (b"new\nline", "control characters (U+000A)"),
    (b"del\x7f", "control characters (U+007F)"),
    (b"c1\xc2\x85", "control characters (U+0085)"),
    (b"back\\slash.bin", "backslash"),
])
def test_local_file_names_that_are_not_s3_keys_are_refused(tmp_path: Path, name: bytes,
                                                           why: str) -> None:
    f = local_spec(tmp_path)
    with open(os.path.join(os.fsencode(tmp_path / "data"), name), "wb") as out:
        out.write(b"x")
    with pytest.raises(SpecError) as exc:
        load_spec(str(f))
    [issue] = exc.value.issues
    assert (issue.line, issue.col, issue.path) == (8, 13, "datasets.d.source")
    assert "1 file cannot be uploaded as S3 keys: " in issue.message
    assert issue.message.endswith("; rename it")
    assert why in issue.message


def test_a_key_over_1024_bytes_with_its_stage_prefix_is_refused(tmp_path: Path) -> None:
    f = local_spec(tmp_path, "s3://bkt/" + "p" * 200 + "/")
    deep = tmp_path / "data" / ("é" * 100) / ("é" * 100) / ("é" * 100)   # 2 bytes each
    deep.mkdir(parents=True)
    (deep / ("x" * 200)).write_bytes(b"x")       # 201 + 600 + 3 + 200 bytes: fits
    load_spec(str(f))
    (deep / ("y" * 250)).write_bytes(b"y")       # 201 + 600 + 3 + 250 > 1024
    with pytest.raises(SpecError) as exc:
        load_spec(str(f))
    assert "would be 1054 bytes of UTF-8 (S3 allows 1024)" in str(exc.value)
    assert "1 file cannot be uploaded" in str(exc.value)


def test_unicode_names_that_are_valid_keys_pass(tmp_path: Path) -> None:
    f = local_spec(tmp_path)
    (tmp_path / "data" / "日本語 ünï.bin").write_bytes(b"x")
    load_spec(str(f))


def test_s3_key_problem_unit() -> None:
    assert s3_key_problem(b"ok/fine.bin", "p/") is None
    assert s3_key_problem(b"\xff", "") == "its name is not UTF-8"


# --- end to end: plan and apply stop before any change ---------------------------------------

def test_plan_and_apply_refuse_before_any_change(tmp_path: Path, moto_endpoint: str) -> None:
    import boto3

    d = tmp_path / "proj"
    (d / "data").mkdir(parents=True)
    with open(os.path.join(os.fsencode(d / "data"), b"bad\xff.bin"), "wb") as out:
        out.write(b"x")
    (d / "trainctl.yaml").write_text(
        mounts_spec("/data", "//data").replace("    mounts:", "    datasets: [d]\n    mounts:")
        + "datasets:\n  d: {source: ./data, strategy: local-cache, stage: s3://bkt/stage/}\n")
    for cmd in (("plan",), ("apply", "--auto-approve")):
        r = run_cli("--endpoint-url", moto_endpoint, *cmd, cwd=d, input="")
        assert r.returncode == 1, r.stdout + r.stderr
        assert "Traceback" not in r.stderr
        assert "trainctl.yaml:" in r.stderr
        assert "mount path //data is already used by mounts[0]" in r.stderr
        assert "cannot be uploaded as S3 keys" in r.stderr
    ec2 = boto3.client("ec2", endpoint_url=moto_endpoint, region_name="us-east-1")
    assert ec2.describe_volumes()["Volumes"] == []
    assert not any(r["Instances"] for r in ec2.describe_instances()["Reservations"])
