"""`trainctl plan` end to end: a spec file, a real moto server, the CLI in a subprocess."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from conftest import run_cli

from planner.cli import Options
from planner.plan import SUMMARY_KEYS, Rule, plan_from_json
from planner.rules import Overrides
from planner.workflow import PlanRequest, make_plan

AZ = "us-east-1a"
MOTO_AMI = "ami-760aaa0f"      # in moto's default AMI list

SPEC = """\
version: 1
project: plantest
region: us-east-1
defaults:
  availability_zone: us-east-1a
  min_age_minutes: 5
  tags: {team: ml}
volumes:
  scratch:
    size_gib: 20
instances:
  trainer:
    instance_type: t3.micro
    ami: ami-760aaa0f
    mounts:
      - {volume: scratch, device: /dev/sdg, path: /scratch}
"""

VOLUME_ONLY = """\
version: 1
project: plantest
region: us-east-1
defaults:
  availability_zone: us-east-1a
volumes:
  scratch:
    size_gib: 20
"""

TOP_KEYS = {"format_version", "project", "region", "created_at", "spec_digest", "live_digest",
            "changes", "warnings", "cost", "summary", "applyable"}
CHANGE_KEYS = {"address", "type", "actions", "reason", "id", "before", "after",
               "replace_paths", "depends_on", "blocked_by"}
COST_KEYS = {"hourly_usd_before", "hourly_usd_after", "daily_usd_after", "accumulated_usd",
             "exceeded"}


@pytest.fixture
def ec2(moto_endpoint: str) -> Any:
    return boto3.client("ec2", region_name="us-east-1", endpoint_url=moto_endpoint)


def write_spec(tmp_path: Path, text: str = SPEC) -> Path:
    path = tmp_path / "trainctl.yaml"
    path.write_text(text)
    return path


def tagspec(kind: str, address: str, project: str = "plantest",
            **extra: str) -> list[dict[str, Any]]:
    tags = {"trainctl:project": project, "trainctl:address": address,
            "Name": f"{project}/{address}", **extra}
    return [{"ResourceType": kind, "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}]


def seed_volume(ec2: Any, address: str | None, size: int = 20, project: str = "plantest",
                **tags: str) -> str:
    kw: dict[str, Any] = {}
    if address:
        kw["TagSpecifications"] = tagspec("volume", address, project, **tags)
    return str(ec2.create_volume(AvailabilityZone=AZ, Size=size, VolumeType="gp3",
                                 **kw)["VolumeId"])


def plan_cli(tmp_path: Path, endpoint: str | None, *args: str,
             env: dict[str, str] | None = None):
    glob = ["-f", str(tmp_path / "trainctl.yaml")]
    if endpoint:
        glob += ["--endpoint-url", endpoint]
    return run_cli(*glob, "plan", *args, cwd=tmp_path, env=env)


def plan_json(tmp_path: Path, endpoint: str | None, *args: str) -> dict[str, Any]:
    r = plan_cli(tmp_path, endpoint, "--json", *args)
    assert r.returncode == 0, r.stderr
    doc: dict[str, Any] = json.loads(r.stdout)
    return doc


def by_address(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["address"]: c for c in doc["changes"]}


# --- exit codes -------------------------------------------------------------------------------


def test_exit_codes_plain_and_detailed(tmp_path: Path, moto_endpoint: str, ec2: Any):
    write_spec(tmp_path, VOLUME_ONLY)
    r = plan_cli(tmp_path, moto_endpoint)
    assert r.returncode == 0, r.stderr
    assert "volume.scratch" in r.stdout
    assert f"Target: AWS endpoint {moto_endpoint} (from --endpoint-url)" in r.stderr
    r = plan_cli(tmp_path, moto_endpoint, "--detailed-exitcode")
    assert r.returncode == 2, r.stderr
    # the world matches the spec: nothing to do
    seed_volume(ec2, "volume.scratch")
    r = plan_cli(tmp_path, moto_endpoint, "--detailed-exitcode")
    assert r.returncode == 0, r.stdout + r.stderr


def test_invalid_spec_exits_1_without_traceback(tmp_path: Path, moto_endpoint: str):
    write_spec(tmp_path, VOLUME_ONLY.replace("size_gib: 20", "size_gb: 20"))
    r = plan_cli(tmp_path, moto_endpoint, "--detailed-exitcode")
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    assert "trainctl.yaml:" in r.stderr and "size_gb" in r.stderr


def test_unreachable_endpoint_is_one_clean_line(tmp_path: Path):
    write_spec(tmp_path)
    r = plan_cli(tmp_path, "http://127.0.0.1:1")
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    errors = [line for line in r.stderr.splitlines() if not line.startswith("Target: ")]
    assert len(errors) == 1 and "127.0.0.1:1" in errors[0]


def test_unknown_target_exits_1_with_a_suggestion(tmp_path: Path, moto_endpoint: str):
    write_spec(tmp_path)
    r = plan_cli(tmp_path, moto_endpoint, "--target", "volume.scratc")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "did you mean volume.scratch" in r.stderr


# --- output forms --------------------------------------------------------------------------------


def test_json_output_has_the_documented_keys(tmp_path: Path, moto_endpoint: str):
    write_spec(tmp_path)
    doc = plan_json(tmp_path, moto_endpoint)
    assert set(doc) >= TOP_KEYS
    assert doc["format_version"] == "1" and doc["project"] == "plantest"
    assert doc["region"] == "us-east-1" and doc["created_at"].endswith("Z")
    assert doc["spec_digest"].startswith("sha256:") and doc["live_digest"].startswith("sha256:")
    assert all(set(c) == CHANGE_KEYS for c in doc["changes"])
    assert set(doc["cost"]) >= COST_KEYS
    assert list(doc["summary"]) == list(SUMMARY_KEYS)
    assert doc["summary"]["create"] == 4 and doc["applyable"] is True
    changes = by_address(doc)
    assert changes["volume.scratch"]["actions"] == ["create"]
    assert changes["volume.scratch"]["reason"] == "create_because_missing"
    assert changes["mount.trainer.scratch"]["depends_on"] == ["attachment.trainer.scratch"]
    assert plan_from_json(doc).summary == doc["summary"]


def test_plan_file_and_markdown_are_written(tmp_path: Path, moto_endpoint: str):
    write_spec(tmp_path)
    r = plan_cli(tmp_path, moto_endpoint, "-o", "plan.json", "--markdown", "plan.md")
    assert r.returncode == 0, r.stderr
    assert "Plan saved to plan.json" in r.stdout
    plan = plan_from_json(json.loads((tmp_path / "plan.json").read_text()))
    assert plan.project == "plantest" and plan.summary["create"] == 4
    md = (tmp_path / "plan.md").read_text()
    assert "volume.scratch" in md and "mermaid" in md
    # --json keeps stdout parseable: the notice goes to stderr
    r = plan_cli(tmp_path, moto_endpoint, "--json", "-o", "again.json")
    assert json.loads(r.stdout)["project"] == "plantest"
    assert "Plan saved to again.json" in r.stderr


def test_live_snapshot_plans_offline(tmp_path: Path, moto_endpoint: str, ec2: Any):
    write_spec(tmp_path)
    seed_volume(ec2, "volume.scratch", size=10)
    online = plan_json(tmp_path, moto_endpoint, "--record-live", "live.json")
    assert json.loads((tmp_path / "live.json").read_text())["project"] == "plantest"
    # no endpoint at all, and any AWS call would fail
    r = plan_cli(tmp_path, None, "--json", "--live-snapshot", "live.json",
                 env={"AWS_ENDPOINT_URL": "http://127.0.0.1:1"})
    assert r.returncode == 0, r.stderr
    offline = json.loads(r.stdout)
    assert offline["live_digest"] == online["live_digest"]
    assert by_address(offline)["volume.scratch"]["actions"] == ["update"]
    assert "Target:" not in r.stderr


def test_bad_live_snapshot_is_a_clean_error(tmp_path: Path):
    write_spec(tmp_path)
    (tmp_path / "live.json").write_text('{"format": "1", "project": "other"}')
    r = plan_cli(tmp_path, None, "--live-snapshot", "live.json")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "live.json: not a valid live snapshot" in r.stderr


# --- live state from moto -------------------------------------------------------------------------


def test_other_projects_never_appear(tmp_path: Path, moto_endpoint: str, ec2: Any):
    write_spec(tmp_path)
    foreign = [
        seed_volume(ec2, "volume.scratch", project="other"),
        seed_volume(ec2, "volume.old", project="other", **{"trainctl:persistent": "true"}),
        seed_volume(ec2, None),
    ]
    ec2.run_instances(ImageId=MOTO_AMI, MinCount=1, MaxCount=1, InstanceType="t3.micro",
                      Placement={"AvailabilityZone": AZ},
                      TagSpecifications=tagspec("instance", "instance.trainer", "other"))
    doc = plan_json(tmp_path, moto_endpoint)
    assert {c["actions"][0] for c in doc["changes"]} == {"create"}
    text = json.dumps(doc)
    assert not any(vid in text for vid in foreign)
    destroy = plan_json(tmp_path, moto_endpoint, "--destroy")
    assert destroy["changes"] == []


def test_orphan_persistent_volume_is_blocked_and_destroy_keeps_it(
        tmp_path: Path, moto_endpoint: str, ec2: Any):
    # min_age_minutes 0: moto's volumes are brand new, only `persistent` should hold
    write_spec(tmp_path, VOLUME_ONLY.replace("us-east-1a\n", "us-east-1a\n  min_age_minutes: 0\n"))
    seed_volume(ec2, "volume.scratch")
    old = seed_volume(ec2, "volume.old-cache", size=50, **{"trainctl:persistent": "true"})
    doc = plan_json(tmp_path, moto_endpoint)
    c = by_address(doc)["volume.old-cache"]
    assert c["actions"] == ["delete"] and c["id"] == old
    assert c["reason"] == "delete_because_not_in_spec"
    assert [b["rule"] for b in c["blocked_by"]] == ["persistent"]
    assert doc["summary"]["blocked"] == 1
    r = plan_cli(tmp_path, moto_endpoint, "--detailed-exitcode")
    assert r.returncode == 2, "a blocked delete is still a difference (issue 11)"
    destroy = by_address(plan_json(tmp_path, moto_endpoint, "--destroy"))
    assert destroy["volume.old-cache"]["blocked_by"][0]["rule"] == "persistent"
    assert destroy["volume.scratch"]["actions"] == ["delete"]
    assert destroy["volume.scratch"]["blocked_by"] == []


def test_import_adopts_an_untagged_volume(tmp_path: Path, moto_endpoint: str, ec2: Any):
    vid = seed_volume(ec2, None, size=20)
    write_spec(tmp_path, VOLUME_ONLY + f"    import: {vid}\n")
    c = by_address(plan_json(tmp_path, moto_endpoint))["volume.scratch"]
    assert c["actions"] == ["update"] and c["reason"] == "adopt_because_import"
    assert c["id"] == vid and c["after"]["tags"]["trainctl:address"] == "volume.scratch"


def test_make_plan_digests_are_stable_across_reads(tmp_path: Path, moto_endpoint: str,
                                                   ec2: Any):
    spec_file = write_spec(tmp_path)
    vid = seed_volume(ec2, "volume.scratch")
    opts = Options(file=str(spec_file), region=None, endpoint_url=moto_endpoint, no_color=True)
    t0 = datetime(2026, 11, 22, 21, 0, tzinfo=UTC)
    first = make_plan(PlanRequest(opts, now=t0))
    live1, p1 = first.live, first.plan
    p2 = make_plan(PlanRequest(opts, now=t0.replace(minute=7))).plan
    assert (p1.live_digest, p1.spec_digest) == (p2.live_digest, p2.spec_digest)
    assert live1.api_calls > 0
    ec2.create_tags(Resources=[vid], Tags=[{"Key": "trainctl:mounted", "Value": "i-1:/x"}])
    p3 = make_plan(PlanRequest(opts, now=t0)).plan
    assert p3.live_digest != p1.live_digest and p3.spec_digest == p1.spec_digest


def test_make_plan_with_overrides_and_min_age(tmp_path: Path, moto_endpoint: str, ec2: Any):
    write_spec(tmp_path, VOLUME_ONLY)
    seed_volume(ec2, "volume.scratch")
    seed_volume(ec2, "volume.young")          # created just now by moto's clock
    opts = Options(file=str(tmp_path / "trainctl.yaml"), region=None,
                   endpoint_url=moto_endpoint, no_color=True)
    now = datetime.now(UTC)
    plan = make_plan(PlanRequest(opts, now=now)).plan
    assert [b.rule for b in plan.change("volume.young").blocked_by] == [Rule.MIN_AGE]
    forced = make_plan(PlanRequest(opts, now=now, overrides=Overrides(force=True))).plan
    assert not forced.change("volume.young").blocked


def test_a_region_other_than_the_specs_is_refused(tmp_path: Path):
    write_spec(tmp_path)
    r = run_cli("--region", "eu-west-1", "--endpoint-url", "http://127.0.0.1:1", "plan",
                cwd=tmp_path)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "--region eu-west-1 differs from the spec's region us-east-1" in r.stderr
