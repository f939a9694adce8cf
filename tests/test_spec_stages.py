"""Validation: a dataset stage is a prefix trainctl owns alone (its upload deletes stale
objects there). Every overlap kind is a FILE:LINE:COL error, all of them at once."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_cli

from planner.errors import SpecError
from planner.loader import load_spec

HEAD = """\
version: 1
project: demo
region: us-east-1
defaults:
  availability_zone: us-east-1a
"""
INSTANCE = "    instance_type: g5.xlarge\n    ami: ami-0123456789abcdef0\n"


def errors_of(tmp_path: Path, text: str) -> list[str]:
    (tmp_path / "corpus").mkdir(exist_ok=True)
    f = tmp_path / "t.yaml"
    f.write_text(text)
    with pytest.raises(SpecError) as exc:
        load_spec(str(f))
    return [str(i)[len(f"{f}:"):] for i in exc.value.issues]


def local(name: str, stage: str) -> str:
    return f"  {name}: {{source: ./corpus, stage: '{stage}', strategy: local-cache}}\n"


@pytest.mark.parametrize("stage", ["s3://acme-stage/", "s3://acme-stage"])
def test_a_bucket_root_is_refused(tmp_path: Path, stage: str) -> None:
    errs = errors_of(tmp_path, HEAD + "datasets:\n" + local("d", stage))
    assert len(errs) == 1 and errs[0].startswith("7:32: datasets.d.stage: ")
    assert "bucket root" in errs[0]


@pytest.mark.parametrize("stage", ["s3://acme-stage/a//b/", "s3://acme-stage/./a/",
                                   "s3://acme-stage//"])
def test_odd_segments_are_refused(tmp_path: Path, stage: str) -> None:
    errs = errors_of(tmp_path, HEAD + "datasets:\n" + local("d", stage))
    assert len(errs) == 1 and "datasets.d.stage" in errs[0]


@pytest.mark.parametrize(("mine", "other", "relation"), [
    ("s3://acme-stage/a/", "s3://acme-stage/a/", "equals"),
    ("s3://acme-stage/a", "s3://acme-stage/a/", "equals"),
    ("s3://acme-stage/a/", "s3://acme-stage/a/b/", "contains"),
    ("s3://acme-stage/a/b", "s3://acme-stage/a", "lies inside"),
])
def test_overlapping_stages(tmp_path: Path, mine: str, other: str, relation: str) -> None:
    errs = errors_of(tmp_path, HEAD + "datasets:\n" + local("a", mine) + local("b", other))
    assert errs[0].startswith("7:32: datasets.a.stage: ")
    assert f"{relation} the stage of dataset 'b'" in errs[0]
    assert errs[1].startswith("8:32: datasets.b.stage: ")     # both are named
    assert len(errs) == 2


def test_neighbours_are_not_overlaps(tmp_path: Path) -> None:
    (tmp_path / "corpus").mkdir()
    f = tmp_path / "t.yaml"
    f.write_text(HEAD + "state: s3://acme-stage/state/\n" + "datasets:\n"
                 + local("a", "s3://acme-stage/a/") + local("ab", "s3://acme-stage/ab/")
                 + local("other", "s3://other-bucket/a/")
                 + "  remote: {source: 's3://acme-stage/abc/', strategy: local-cache}\n"
                 + "instances:\n  t:\n" + INSTANCE
                 + "    checkpoints: {path: /c, sync_to: 's3://acme-stage/a-ckpt/'}\n")
    spec = load_spec(str(f))
    assert set(spec.datasets) == {"a", "ab", "other", "remote"}


def test_a_stage_overlapping_a_source(tmp_path: Path) -> None:
    errs = errors_of(tmp_path, HEAD + "datasets:\n"
                     + "  remote: {source: 's3://acme-data/imagenet/', strategy: local-cache}\n"
                     + local("d", "s3://acme-data/imagenet/train/"))
    assert errs == ["8:32: datasets.d.stage: stage s3://acme-data/imagenet/train/ lies inside "
                    "the source of dataset 'remote' (s3://acme-data/imagenet/); a stage is a "
                    "prefix trainctl owns alone: give it its own prefix"]


@pytest.mark.parametrize(("sync_to", "relation"), [
    ("s3://acme-ckpt/run-7/", "equals"), ("s3://acme-ckpt/run-7", "equals"),
    ("s3://acme-ckpt/", "lies inside"), ("s3://acme-ckpt/run-7/step-1/", "contains")])
def test_a_stage_overlapping_checkpoints(tmp_path: Path, sync_to: str, relation: str) -> None:
    errs = errors_of(tmp_path, HEAD + "datasets:\n" + local("d", "s3://acme-ckpt/run-7/")
                     + "instances:\n  t:\n" + INSTANCE
                     + f"    checkpoints: {{path: /c, sync_to: '{sync_to}'}}\n")
    assert len(errs) == 1 and errs[0].startswith("7:32: datasets.d.stage: ")
    assert f"{relation} checkpoints.sync_to of instance 't'" in errs[0]


@pytest.mark.parametrize(("state", "relation"), [
    ("s3://acme-state/demo/", "equals"), ("s3://acme-state/", "lies inside"),
    ("s3://acme-state/demo/x/", "contains")])
def test_a_stage_overlapping_the_state_prefix(tmp_path: Path, state: str,
                                              relation: str) -> None:
    errs = errors_of(tmp_path, HEAD + f"state: {state}\n" + "datasets:\n"
                     + local("d", "s3://acme-state/demo/"))
    assert len(errs) == 1 and "datasets.d.stage" in errs[0]
    assert f"{relation} the state prefix" in errs[0]


def test_validate_lists_every_stage_error_at_once(tmp_path: Path) -> None:
    (tmp_path / "corpus").mkdir()
    (tmp_path / "trainctl.yaml").write_text(
        HEAD + "state: s3://acme-state/demo/\n" + "datasets:\n"
        + local("root", "s3://acme-stage/") + local("st", "s3://acme-state/demo/stage/")
        + local("ck", "s3://acme-ckpt/run-7/")
        + "instances:\n  t:\n" + INSTANCE
        + "    checkpoints: {path: /c, sync_to: 's3://acme-ckpt/run-7/'}\n")
    r = run_cli("validate", cwd=tmp_path)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    lines = [ln for ln in (r.stdout + r.stderr).splitlines() if "trainctl.yaml:" in ln]
    assert [ln.split(": ")[1] for ln in lines] == [
        "datasets.root.stage", "datasets.st.stage", "datasets.ck.stage"]


@pytest.mark.parametrize(("transfer", "relation"), [
    ("s3://acme-stage/d/", "equals"), ("s3://acme-stage/", "lies inside"),
    ("s3://acme-stage/d/x/", "contains")])
def test_a_stage_overlapping_the_transfer_prefix(tmp_path: Path, transfer: str,
                                                 relation: str) -> None:
    """`trainctl cp` writes and prunes under `transfer:`: a stage may not share it."""
    errs = errors_of(tmp_path, HEAD + f"transfer: {transfer}\n" + "datasets:\n"
                     + local("d", "s3://acme-stage/d/"))
    assert len(errs) == 1 and errs[0].startswith("8:32: datasets.d.stage: ")
    assert f"{relation} the transfer prefix" in errs[0]


@pytest.mark.parametrize(("transfer", "what"), [
    ("s3://acme-data/imagenet/", "equals the source of dataset 'remote'"),
    ("s3://acme-data/", "contains the source of dataset 'remote'"),
    ("s3://acme-data/imagenet/cp/", "lies inside the source of dataset 'remote'"),
    ("s3://acme-ckpt/run-7/", "equals checkpoints.sync_to of instance 't'")])
def test_the_transfer_prefix_overlaps_no_dataset_or_checkpoints(
        tmp_path: Path, transfer: str, what: str) -> None:
    """cp's mirror would write into a dataset's source (or checkpoints) and prune there."""
    errs = errors_of(tmp_path, HEAD + f"transfer: {transfer}\n" + "datasets:\n"
                     + "  remote: {source: 's3://acme-data/imagenet/', strategy: local-cache}\n"
                     + "instances:\n  t:\n" + INSTANCE
                     + "    checkpoints: {path: /c, sync_to: 's3://acme-ckpt/run-7/'}\n")
    assert len(errs) == 1 and errs[0].startswith("6:11: transfer: ")
    assert what in errs[0]


def test_a_transfer_prefix_of_its_own_or_inside_state_is_fine(tmp_path: Path) -> None:
    (tmp_path / "corpus").mkdir()
    f = tmp_path / "t.yaml"
    f.write_text(HEAD + "state: s3://acme-state/demo/\n"
                 + "transfer: s3://acme-state/demo/transfer/\n" + "datasets:\n"
                 + local("d", "s3://acme-stage/d/")
                 + "  remote: {source: 's3://acme-data/imagenet/', strategy: local-cache}\n")
    assert set(load_spec(str(f)).datasets) == {"d", "remote"}
