"""Semantic checks: references, AZs, devices, mount paths, sharing, strategies, regexes."""

from __future__ import annotations

from pathlib import Path

import pytest

from planner.errors import SpecError
from planner.loader import load_spec, loads_spec
from planner.semantic import az_in_region

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


def test_dangling_mount_volume(tmp_path: Path) -> None:
    text = HEAD + ("volumes:\n  scratch: {size_gib: 1}\ninstances:\n  t:\n" + INSTANCE +
                   "    mounts:\n      - {volume: scrach, device: /dev/sdf, path: /s}\n")
    assert errors_of(tmp_path, text) == [
        "13:18: instances.t.mounts[0].volume: unknown volume 'scrach'; did you mean 'scratch'?"]


def test_dangling_instance_dataset(tmp_path: Path) -> None:
    text = HEAD + "instances:\n  t:\n" + INSTANCE + "    datasets: [imagenet]\n"
    assert errors_of(tmp_path, text) == [
        "10:16: instances.t.datasets[0]: unknown dataset 'imagenet' (no datasets are defined)"]


def test_dangling_dataset_volume(tmp_path: Path) -> None:
    text = HEAD + ("volumes:\n  cache: {size_gib: 1}\n"
                   "datasets:\n"
                   "  d: {source: 's3://bkt/d/', strategy: existing-ebs, volume: cahce}\n")
    assert errors_of(tmp_path, text) == [
        "9:62: datasets.d.volume: unknown volume 'cahce'; did you mean 'cache'?"]


def test_az_mismatch(tmp_path: Path) -> None:
    text = HEAD + ("volumes:\n  v: {size_gib: 1, availability_zone: us-east-1b}\n"
                   "instances:\n  t:\n" + INSTANCE +
                   "    mounts:\n      - {volume: v, device: /dev/sdf, path: /v}\n")
    assert errors_of(tmp_path, text) == [
        "13:18: instances.t.mounts[0].volume: volume 'v' is in us-east-1b but instance 't' "
        "is in us-east-1a (rule az-mismatch)"]


def test_az_not_in_region_and_missing_az(tmp_path: Path) -> None:
    text = ("version: 1\nproject: demo\nregion: eu-west-1\n"
            "volumes:\n  a: {size_gib: 1, availability_zone: us-east-1a}\n  b: {size_gib: 1}\n")
    assert errors_of(tmp_path, text) == [
        "5:39: volumes.a.availability_zone: availability zone 'us-east-1a' is not in region "
        "'eu-west-1'",
        "6:3: volumes.b: no availability_zone here and no defaults.availability_zone"]
    text = HEAD.replace("us-east-1a", "us-west-2a")
    assert errors_of(tmp_path, text) == [
        "5:22: defaults.availability_zone: availability zone 'us-west-2a' is not in region "
        "'us-east-1'"]


def test_az_in_region_helper() -> None:
    assert az_in_region("us-east-1a", "us-east-1")
    assert az_in_region("us-west-2-lax-1a", "us-west-2")
    assert not az_in_region("us-east-11a", "us-east-1")
    assert not az_in_region("us-east-2a", "us-east-1")


def test_duplicate_device_and_mount_path(tmp_path: Path) -> None:
    text = HEAD + ("volumes:\n  a: {size_gib: 1}\n  b: {size_gib: 1}\n  c: {size_gib: 1}\n"
                   "instances:\n  t:\n" + INSTANCE + "    mounts:\n"
                   "      - {volume: a, device: /dev/sdf, path: /a}\n"
                   "      - {volume: b, device: /dev/sdf, path: /b}\n"
                   "      - {volume: c, device: /dev/xvdf, path: /a/}\n")
    assert errors_of(tmp_path, text) == [
        "16:29: instances.t.mounts[1].device: device /dev/sdf is already used by mounts[0]",
        "17:29: instances.t.mounts[2].device: device /dev/xvdf is already used by mounts[0]",
        "17:46: instances.t.mounts[2].path: mount path /a/ is already used by mounts[0] "
        "(both are /a)"]


def test_volume_mounted_twice_on_one_instance(tmp_path: Path) -> None:
    text = HEAD + ("volumes:\n  a: {size_gib: 1}\ninstances:\n  t:\n" + INSTANCE + "    mounts:\n"
                   "      - {volume: a, device: /dev/sdf, path: /a}\n"
                   "      - {volume: a, device: /dev/sdg, path: /b}\n")
    assert errors_of(tmp_path, text) == [
        "14:18: instances.t.mounts[1].volume: volume 'a' is already mounted by mounts[0]"]


def _shared(ro1: str, ro2: str) -> str:
    return HEAD + ("volumes:\n  a: {size_gib: 1}\ninstances:\n"
                   "  t:\n" + INSTANCE +
                   f"    mounts: [{{volume: a, device: /dev/sdf, path: /a, read_only: {ro1}}}]\n"
                   "  u:\n" + INSTANCE +
                   f"    mounts: [{{volume: a, device: /dev/sdf, path: /a, read_only: {ro2}}}]\n")


def test_volume_mounted_writable_by_two_instances(tmp_path: Path) -> None:
    assert errors_of(tmp_path, _shared("false", "true")) == [
        "16:23: instances.u.mounts[0].volume: volume 'a' is also mounted by instance 't' and "
        "mounted writable by 't'; a writable volume belongs to one instance"]


def test_volume_mounted_read_only_by_two_instances(tmp_path: Path) -> None:
    assert errors_of(tmp_path, _shared("true", "true")) == [
        "16:23: instances.u.mounts[0].volume: volume 'a' is also mounted by instance 't'; an "
        "EBS volume attaches to one instance (no Multi-Attach)"]


@pytest.mark.parametrize(("dataset", "expected"), [
    ("{source: 's3://bkt/d/', strategy: prewarmed-ebs}",
     "7:3: datasets.d: strategy prewarmed-ebs needs volume: the volume holding the dataset"),
    ("{source: 's3://bkt/d/', strategy: existing-ebs}",
     "7:3: datasets.d: strategy existing-ebs needs volume: the volume holding the dataset"),
    ("{source: 's3://bkt/d/', strategy: local-cache, volume: v}",
     "7:53: datasets.d.volume: strategy local-cache takes no volume"),
    ("{source: 's3://bkt/d/', strategy: direct-s3, volume: v}",
     "7:51: datasets.d.volume: strategy direct-s3 takes no volume"),
    ("{source: ./data, strategy: local-cache}",
     "7:15: datasets.d.source: a local source needs stage: the s3:// prefix it is uploaded to"),
    ("{source: 's3://bkt/d/', strategy: direct-s3, path: /x}",
     "7:51: datasets.d.path: path does not apply to strategy direct-s3"),
])
def test_strategy_combinations(tmp_path: Path, dataset: str, expected: str) -> None:
    (tmp_path / "data").mkdir()
    text = HEAD + f"datasets:\n  d: {dataset}\nvolumes:\n  v: {{size_gib: 1}}\n"
    assert errors_of(tmp_path, text) == [expected]


def test_on_volume_dataset_needs_its_volume_mounted(tmp_path: Path) -> None:
    text = HEAD + ("datasets:\n  d: {source: 's3://bkt/d/', strategy: prewarmed-ebs, volume: v}\n"
                   "volumes:\n  v: {size_gib: 1}\n  w: {size_gib: 1}\ninstances:\n  t:\n"
                   + INSTANCE + "    mounts: [{volume: w, device: /dev/sdf, path: /w}]\n"
                   "    datasets: [d]\n")
    assert errors_of(tmp_path, text) == [
        "16:16: instances.t.datasets[0]: dataset 'd' is on volume 'v', which instance 't' "
        "does not mount"]


def test_process_patterns_must_compile(tmp_path: Path) -> None:
    text = HEAD + ("instances:\n  t:\n" + INSTANCE +
                   "    training: {process_patterns: ['python.*train', '(unclosed', '$(ok)']}\n")
    assert errors_of(tmp_path, text) == [
        "10:52: instances.t.training.process_patterns[1]: not a valid regular expression: "
        "missing ), unterminated subpattern at position 0"]


def test_volume_iops_and_throughput_ratios(tmp_path: Path) -> None:
    text = HEAD + ("volumes:\n  a: {size_gib: 10, type: io1, iops: 1000}\n"
                   "  b: {size_gib: 10, iops: 6000}\n"
                   "  c: {size_gib: 100, throughput_mibps: 1000}\n"
                   "  d: {size_gib: 1, import: vol-0123456789abcdef0, "
                   "snapshot_id: snap-0123456789abcdef0}\n")
    assert errors_of(tmp_path, text) == [
        "7:38: volumes.a.iops: io1 allows at most 50 iops per GiB: 500 for 10 GiB",
        "8:27: volumes.b.iops: gp3 allows at most 500 iops per GiB: 5000 for 10 GiB",
        "9:40: volumes.c.throughput_mibps: gp3 throughput may be at most iops/4 = 750 MiB/s; "
        "raise iops",
        "10:20: volumes.d.import: import and snapshot_id exclude each other"]


def test_three_errors_give_three_lines(tmp_path: Path) -> None:
    text = HEAD + ("volumes:\n  v: {size_gib: 1, type: gp4}\ninstances:\n  t:\n" + INSTANCE +
                   "    mounts: [{volume: nope, device: /dev/sdf, path: /v}]\n"
                   "    datasets: [missing]\n")
    f = tmp_path / "t.yaml"
    f.write_text(text)
    with pytest.raises(SpecError) as exc:
        load_spec(str(f))
    assert str(exc.value).splitlines() == [
        f"{f}:7:26: volumes.v.type: must be one of gp3, gp2, io1, io2, st1, sc1; got 'gp4'; "
        "did you mean 'gp3'?",
        f"{f}:12:23: instances.t.mounts[0].volume: unknown volume 'nope' (defined: v)",
        f"{f}:13:16: instances.t.datasets[0]: unknown dataset 'missing' (no datasets are "
        "defined)"]


def test_schema_errors_are_not_reported_twice(tmp_path: Path) -> None:
    # the AZ is malformed: no az-mismatch or not-in-region noise on top of the schema error
    text = HEAD + ("volumes:\n  v: {size_gib: 1, availability_zone: 'us-east-1 b'}\n"
                   "instances:\n  t:\n" + INSTANCE +
                   "    mounts: [{volume: v, device: /dev/sdf, path: /v}]\n")
    (only,) = errors_of(tmp_path, text)
    assert only.startswith("7:39: volumes.v.availability_zone: must be an availability zone")


def test_valid_spec_with_everything(tmp_path: Path) -> None:
    (tmp_path / "local").mkdir()
    spec = loads_spec(HEAD + (
        "datasets:\n"
        "  a: {source: 's3://bkt/a/', strategy: prewarmed-ebs, volume: v, path: /a}\n"
        "  b: {source: ./local, stage: 's3://bkt/b/', strategy: local-cache}\n"
        "  c: {source: 's3://bkt/c/', strategy: direct-s3}\n"
        "volumes:\n  v: {size_gib: 1}\n  w: {size_gib: 1}\n"
        "instances:\n  t:\n" + INSTANCE +
        "    mounts:\n      - {volume: v, device: /dev/sdf, path: /v, read_only: true}\n"
        "      - {volume: w, device: /dev/xvdg, path: /data}\n"
        "    datasets: [a, b, c]\n"), str(tmp_path / "t.yaml"))
    assert sorted(spec.datasets) == ["a", "b", "c"]


def test_local_sources_must_be_existing_folders(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    spec_dir = tmp_path / "project"
    (spec_dir / "folder").mkdir(parents=True)
    (spec_dir / "folder" / "a.txt").write_text("a")
    (tmp_path / "shared").mkdir()
    monkeypatch.chdir(tmp_path)           # relative sources resolve against the spec's folder
    (tmp_path / "nosuch").mkdir()         # ...not against the working directory
    text = HEAD + (
        "datasets:\n"
        "  a: {source: ./nosuch, stage: 's3://bkt/a/', strategy: local-cache}\n"
        "  b: {source: ./folder/a.txt, stage: 's3://bkt/b/', strategy: local-cache}\n"
        "  c: {source: ./folder, stage: 's3://bkt/c/', strategy: local-cache}\n"
        "  d: {source: ../shared, stage: 's3://bkt/d/', strategy: local-cache}\n"
        f"  e: {{source: '{tmp_path / 'gone'}', stage: 's3://bkt/e/', strategy: local-cache}}\n"
        "  f: {source: 's3://bkt/f/', strategy: direct-s3}\n")
    f = spec_dir / "t.yaml"
    f.write_text(text)
    with pytest.raises(SpecError) as exc:
        load_spec(str(f))
    prefix = f"{f}:"
    assert [str(i)[len(prefix):] for i in exc.value.issues] == [
        f"7:15: datasets.a.source: local source ./nosuch does not exist "
        f"(looked for {spec_dir / 'nosuch'})",
        f"8:15: datasets.b.source: local source ./folder/a.txt is not a directory "
        f"({spec_dir / 'folder' / 'a.txt'}); a dataset source is a folder",
        f"11:15: datasets.e.source: local source {tmp_path / 'gone'} does not exist "
        f"(looked for {tmp_path / 'gone'})",
    ]


def test_existing_local_folders_are_accepted(tmp_path: Path) -> None:
    (tmp_path / "project" / "data").mkdir(parents=True)
    text = HEAD + ("datasets:\n"
                   "  a: {source: data, stage: 's3://bkt/a/', strategy: local-cache}\n")
    spec = loads_spec(text, str(tmp_path / "project" / "t.yaml"))
    assert spec.datasets["a"].source == str(tmp_path / "project" / "data")
