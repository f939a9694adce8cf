"""`trainctl destroy`, `apply --destroy` and `apply --target` on the moto server."""

from __future__ import annotations

import subprocess
from collections import Counter
from pathlib import Path

import boto3
import pytest
from conftest import run_cli

pytestmark = pytest.mark.slow

SPEC = """\
version: 1
project: verbs
region: us-east-1
defaults: {availability_zone: us-east-1a, min_age_minutes: 0}
volumes:
  data: {size_gib: 10, persistent: true}
  scratch: {size_gib: 20}
  spare: {size_gib: 5}
instances:
  trainer:
    instance_type: t3.micro
    ami: ami-0123456789abcdef0
    mounts:
      - {volume: data, device: /dev/sdf, path: /data}
      - {volume: scratch, device: /dev/sdg, path: /scratch}
"""


def _cli(d: Path, ep: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return run_cli("--endpoint-url", ep, *args, cwd=d, input=stdin)


def _live(ep: str) -> Counter[str]:
    ec2 = boto3.client("ec2", endpoint_url=ep, region_name="us-east-1")
    out: Counter[str] = Counter()
    for v in ec2.describe_volumes(Filters=[{"Name": "tag:trainctl:project",
                                            "Values": ["verbs"]}])["Volumes"]:
        tags = {t["Key"]: t["Value"] for t in v.get("Tags", [])}
        if "trainctl:address" in tags:
            out[tags["trainctl:address"]] += 1
    for r in ec2.describe_instances(Filters=[
            {"Name": "tag:trainctl:project", "Values": ["verbs"]},
            {"Name": "instance-state-name", "Values": ["pending", "running"]}])["Reservations"]:
        for i in r["Instances"]:
            tags = {t["Key"]: t["Value"] for t in i.get("Tags", [])}
            out[tags["trainctl:address"]] += 1
    return out


@pytest.fixture
def proj(tmp_path: Path) -> Path:
    d = tmp_path / "proj"
    d.mkdir()
    (d / "trainctl.yaml").write_text(SPEC)
    return d


def test_apply_target_brings_only_the_target_and_its_dependencies(
        proj: Path, moto_endpoint: str) -> None:
    r = _cli(proj, moto_endpoint, "apply", "--auto-approve", "--target", "mount.trainer.scratch")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Targeting is for exceptions" in r.stderr
    assert _live(moto_endpoint) == Counter({"volume.scratch": 1, "instance.trainer": 1})
    # the same meaning as plan --target: what is left is exactly the rest
    full = _cli(proj, moto_endpoint, "plan", "--json")
    todo = {c["address"] for c in __import__("json").loads(full.stdout)["changes"]
            if c["actions"] != ["no-op"]}
    assert "volume.scratch" not in todo and "volume.data" in todo and "volume.spare" in todo


def test_destroy_keeps_the_persistent_volume(proj: Path, moto_endpoint: str) -> None:
    r = _cli(proj, moto_endpoint, "apply", "--auto-approve")
    assert r.returncode == 0, r.stdout + r.stderr
    assert _live(moto_endpoint) == Counter({"volume.data": 1, "volume.scratch": 1,
                                            "volume.spare": 1, "instance.trainer": 1})
    refused = _cli(proj, moto_endpoint, "destroy")          # no terminal, no --auto-approve
    assert refused.returncode == 1 and "confirmation" in refused.stderr
    assert _live(moto_endpoint)["instance.trainer"] == 1
    d = _cli(proj, moto_endpoint, "destroy", "--auto-approve")
    assert "persistent" in d.stdout
    assert _live(moto_endpoint) == Counter({"volume.data": 1}), d.stdout + d.stderr
    again = _cli(proj, moto_endpoint, "plan", "--destroy", "--json")
    changes = __import__("json").loads(again.stdout)["changes"]
    assert [c["address"] for c in changes if c["actions"] == ["delete"]] == ["volume.data"]
    assert all(c["blocked_by"] for c in changes if c["actions"] == ["delete"])


def test_apply_destroy_with_target(proj: Path, moto_endpoint: str) -> None:
    assert _cli(proj, moto_endpoint, "apply", "--auto-approve").returncode == 0
    r = _cli(proj, moto_endpoint, "apply", "--destroy", "--auto-approve",
             "--target", "volume.spare")
    assert r.returncode == 0, r.stdout + r.stderr
    live = _live(moto_endpoint)
    assert "volume.spare" not in live and live["instance.trainer"] == 1


def test_a_saved_plan_takes_no_destroy_or_target(proj: Path, moto_endpoint: str) -> None:
    assert _cli(proj, moto_endpoint, "plan", "-o", "p.json").returncode == 0
    for extra in (["--destroy"], ["--target", "volume.spare"]):
        r = _cli(proj, moto_endpoint, "apply", "p.json", *extra)
        assert r.returncode == 1 and "saved plan file" in r.stderr
    assert not _live(moto_endpoint)


def test_destroy_target_takes_dependents_never_dependencies(
        proj: Path, moto_endpoint: str) -> None:
    """Terraform's `destroy -target`: the mount (and what needs it), not its instance or
    volume; the volume takes its attachment and mount along, not the instance."""
    import json

    assert _cli(proj, moto_endpoint, "apply", "--auto-approve").returncode == 0

    def deletes(target: str) -> set[str]:
        r = _cli(proj, moto_endpoint, "plan", "--destroy", "--json", "--target", target)
        assert r.returncode == 0, r.stderr
        return {c["address"] for c in json.loads(r.stdout)["changes"]
                if "delete" in c["actions"]}

    assert deletes("mount.trainer.scratch") == {"mount.trainer.scratch"}
    assert deletes("volume.scratch") == {"volume.scratch", "attachment.trainer.scratch",
                                         "mount.trainer.scratch"}
    d = _cli(proj, moto_endpoint, "destroy", "--auto-approve", "--target", "volume.scratch")
    assert d.returncode == 0, d.stdout + d.stderr
    assert _live(moto_endpoint) == Counter({"volume.data": 1, "volume.spare": 1,
                                            "instance.trainer": 1})
