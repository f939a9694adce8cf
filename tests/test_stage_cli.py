"""A local dataset's stage end to end (`trainctl plan` / `apply` subprocesses against the
moto server): apply deletes only the stale objects trainctl uploaded, and the plan says
so (count and bytes) in text, JSON and Markdown; another team's objects and checkpoints
under or beside the stage survive."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import boto3
import pytest
from conftest import run_cli

pytestmark = pytest.mark.slow

BUCKET = "team-bucket"
SPEC = f"""\
version: 1
project: stest
region: us-east-1
defaults:
  availability_zone: us-east-1a
  min_age_minutes: 0
datasets:
  corpus: {{source: ./corpus, stage: 's3://{BUCKET}/stages/corpus/', strategy: direct-s3}}
"""
THEIRS = {
    "stages/corpus/other-team/model-final.bin": b"their weights",   # under the stage
    "stages/corpus/checkpoints/step-100/model.pt": b"ckpt",         # under the stage
    "stages/corpus-ckpt/run-7/model.pt": b"near: a neighbour prefix",
    "stages/keep.txt": b"beside",
    "other-team/model-final.bin": b"elsewhere in the bucket",
}


def s3(endpoint: str) -> Any:
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")


def keys(endpoint: str) -> dict[str, bytes]:
    c = s3(endpoint)
    return {o["Key"]: c.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read()
            for o in c.list_objects_v2(Bucket=BUCKET).get("Contents", ())}


def cli(d: Path, endpoint: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("--endpoint-url", endpoint, "--no-color", *args, cwd=d, input="")


def ok(r: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert r.returncode == 0, f"rc={r.returncode}\n{r.stdout}\n{r.stderr}"
    return r


def dataset_change(plan: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in plan["changes"] if c["address"] == "dataset.corpus")


@pytest.fixture
def proj(tmp_path: Path, moto_endpoint: str) -> Path:
    d = tmp_path / "proj"
    (d / "corpus" / "old").mkdir(parents=True)
    (d / "trainctl.yaml").write_text(SPEC)
    (d / "corpus" / "a.txt").write_text("a" * 100)
    (d / "corpus" / "old" / "stale.bin").write_bytes(b"s" * 1234)
    (d / "corpus" / "old" / "stale2.bin").write_bytes(b"t" * 766)
    c = s3(moto_endpoint)
    c.create_bucket(Bucket=BUCKET)
    for k, body in THEIRS.items():
        c.put_object(Bucket=BUCKET, Key=k, Body=body)
    return d


def test_apply_keeps_what_trainctl_did_not_write_and_the_plan_counts_what_it_deletes(
        proj: Path, moto_endpoint: str) -> None:
    first = json.loads(ok(cli(proj, moto_endpoint, "plan", "--json")).stdout)
    c = dataset_change(first)
    assert c["after"]["delete_objects"] == 0 and c["after"]["kept_objects"] == 2
    assert any(w["rule"] == "foreign-objects" and "other-team/model-final.bin" in w["message"]
               for w in first["warnings"])
    ok(cli(proj, moto_endpoint, "apply", "--auto-approve"))
    live = keys(moto_endpoint)
    for k, body in THEIRS.items():
        assert live[k] == body, k
    assert "stages/corpus/old/stale.bin" in live

    # two files go stale: the plan names them, apply deletes exactly them
    for name in ("stale.bin", "stale2.bin"):
        (proj / "corpus" / "old" / name).unlink()
    plan = json.loads(ok(cli(proj, moto_endpoint, "plan", "--json")).stdout)
    c = dataset_change(plan)
    assert c["actions"] == ["update"] and c["blocked_by"] == []
    assert (c["after"]["delete_objects"], c["after"]["delete_bytes"]) == (2, 2000)
    assert c["after"]["delete_examples"] == ["old/stale.bin", "old/stale2.bin"]
    text = ok(cli(proj, moto_endpoint, "plan")).stdout
    assert "deletes 2 objects (2.0 KiB (2,000 bytes)) under s3://team-bucket/stages/corpus/" \
        in text
    assert "S3 objects to delete: 2" in text
    md_file = proj / "plan.md"
    ok(cli(proj, moto_endpoint, "plan", "--markdown", str(md_file)))
    md = md_file.read_text()
    warning = md.split("**Warning: this plan deletes", 1)[1].split("\n\n", 1)[0]
    assert "`dataset.corpus`" in warning and "deletes 2 objects" in warning

    ok(cli(proj, moto_endpoint, "apply", "--auto-approve"))
    live = keys(moto_endpoint)
    assert "stages/corpus/old/stale.bin" not in live
    assert "stages/corpus/old/stale2.bin" not in live
    for k, body in THEIRS.items():
        assert live[k] == body, k
    assert "stages/corpus/a.txt" in live
    r = cli(proj, moto_endpoint, "plan", "--detailed-exitcode")
    assert r.returncode == 0, r.stdout + r.stderr       # converged, their files kept


def test_a_stage_equal_to_checkpoints_is_refused_before_any_change(
        proj: Path, moto_endpoint: str) -> None:
    (proj / "trainctl.yaml").write_text(SPEC + f"""\
instances:
  trainer:
    instance_type: t3.micro
    ami: ami-0123456789abcdef0
    checkpoints: {{path: /scratch/ckpt, sync_to: 's3://{BUCKET}/stages/corpus'}}
""")
    before = keys(moto_endpoint)
    for args in (("plan",), ("apply", "--auto-approve")):
        r = cli(proj, moto_endpoint, *args)
        assert r.returncode == 1 and "Traceback" not in r.stderr
        assert "datasets.corpus.stage" in r.stdout + r.stderr
        assert "equals checkpoints.sync_to of instance 'trainer'" in r.stdout + r.stderr
    assert keys(moto_endpoint) == before


def test_the_iam_policy_lets_trainctl_read_its_stage_record(proj: Path) -> None:
    doc = json.loads(ok(run_cli("iam-policy", cwd=proj)).stdout)
    objects = [s for s in doc["Statement"] if s.get("Sid", "").startswith("UploadStagesObjects")]
    assert len(objects) == 1
    assert "s3:GetObject" in objects[0]["Action"]
    assert objects[0]["Resource"] == [f"arn:aws:s3:::{BUCKET}/stages/corpus/*"]
