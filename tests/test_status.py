"""`trainctl status` and the cost ledger: real subprocesses on the moto server, and the
pure ledger's arithmetic."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli

from planner.ledger import Kind, LedgerEventType, Observed, reconcile, spend

SPEC = """\
version: 1
project: stat
region: us-east-1
defaults: {availability_zone: us-east-1a, min_age_minutes: 0}
datasets:
  tiny: {source: s3://stat-data/tiny/, strategy: local-cache}
volumes:
  data: {size_gib: 10, persistent: true}
instances:
  trainer:
    instance_type: g5.xlarge
    ami: ami-0123456789abcdef0
    mounts: [{volume: data, device: /dev/sdf, path: /data}]
    datasets: [tiny]
"""

T0 = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
G5 = {"instance_type": "g5.xlarge", "market": "on-demand", "availability_zone": "us-east-1a"}


def _rate(kind: Kind, attrs: Any) -> float | None:
    if kind is Kind.INSTANCE:
        return {"g5.xlarge": 1.0, "p5.48xlarge": 98.0}.get(attrs["instance_type"])
    return 0.001 * attrs["size_gib"]


def test_spend_counts_removed_resources_and_never_falls() -> None:
    inst = Observed("i-1", "instance.trainer", Kind.INSTANCE, T0, True, G5)
    vol = Observed("vol-1", "volume.data", Kind.VOLUME, T0, True, {"size_gib": 100})
    ev = reconcile([], [inst, vol], T0 + timedelta(hours=1))
    assert [e.ts for e in ev] == [T0, T0]                 # launched at AWS's own times
    grown = Observed("vol-1", "volume.data", Kind.VOLUME, T0, True, {"size_gib": 200})
    ev += reconcile(ev, [inst, grown], T0 + timedelta(hours=2))     # resize
    ev += reconcile(ev, [grown], T0 + timedelta(hours=3))           # terminate
    assert [e.event for e in ev[2:]] == [LedgerEventType.CHANGE, LedgerEventType.REMOVE]
    totals = []
    for h in (1, 2, 3, 4, 10):
        s = {x.id: x for x in spend(ev, T0 + timedelta(hours=h), _rate)}
        totals.append(sum(x.usd or 0 for x in s.values()))
    assert totals == sorted(totals)                       # never falls
    s = {x.id: x for x in spend(ev, T0 + timedelta(hours=10), _rate)}
    assert s["i-1"].removed and s["i-1"].usd == pytest.approx(3.0)
    assert s["vol-1"].usd == pytest.approx(0.1 * 2 + 0.2 * 8)


def test_an_unknown_price_is_unknown_not_zero() -> None:
    odd = Observed("i-2", "instance.x", Kind.INSTANCE, T0, True,
                   {**G5, "instance_type": "zz9.huge"})
    ev = reconcile([], [odd], T0)
    assert spend(ev, T0 + timedelta(hours=1), _rate)[0].usd is None


def test_a_stopped_instance_costs_nothing_while_stopped() -> None:
    run = Observed("i-1", "instance.trainer", Kind.INSTANCE, T0, True, G5)
    stop = Observed("i-1", "instance.trainer", Kind.INSTANCE, T0, False,
                    {**G5, "state": "stopped"})
    ev = reconcile([], [run], T0)
    ev += reconcile(ev, [stop], T0 + timedelta(hours=2))
    assert spend(ev, T0 + timedelta(hours=5), _rate)[0].usd == pytest.approx(2.0)


# --- end to end ------------------------------------------------------------------------

def _cli(d: Path, ep: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("--endpoint-url", ep, *args, cwd=d, input="")


def _status(d: Path, ep: str) -> dict[str, Any]:
    r = _cli(d, ep, "status", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    doc: dict[str, Any] = json.loads(r.stdout)
    return doc


@pytest.mark.slow
def test_status_after_apply_resize_and_terminate(tmp_path: Path, moto_endpoint: str) -> None:
    import boto3

    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket="stat-data")
    s3.put_object(Bucket="stat-data", Key="tiny/a.bin", Body=b"a" * 100)
    d = tmp_path / "proj"
    d.mkdir()
    (d / "trainctl.yaml").write_text(SPEC)
    assert _cli(d, moto_endpoint, "apply", "--auto-approve").returncode == 0

    first = _status(d, moto_endpoint)
    by = {r["address"]: r for r in first["resources"]}
    assert set(by) >= {"instance.trainer", "volume.data"}
    assert by["volume.data"]["flags"] == ["persistent"]
    assert by["instance.trainer"]["state"] == "running"
    assert by["volume.data"]["state"] == "in-use"                 # attached and mounted
    assert by["instance.trainer"]["hourly_usd"] > 0.5            # a g5.xlarge is priced
    assert first["datasets"][0]["last_synced"] is not None        # the sync step ran
    assert first["totals"]["spent_usd"] >= 0

    (d / "trainctl.yaml").write_text(SPEC.replace("size_gib: 10", "size_gib: 12"))
    assert _cli(d, moto_endpoint, "apply", "--auto-approve").returncode == 0
    grown = _status(d, moto_endpoint)
    assert {r["address"]: r for r in grown["resources"]}["volume.data"]["size"].startswith("12")
    assert grown["totals"]["spent_usd"] >= first["totals"]["spent_usd"]

    no_instance = SPEC.split("instances:")[0] + "instances: {}\n"
    (d / "trainctl.yaml").write_text(no_instance)
    r = _cli(d, moto_endpoint, "apply", "--auto-approve")
    assert r.returncode == 0, r.stdout + r.stderr
    gone = _status(d, moto_endpoint)
    assert "instance.trainer" not in {x["address"] for x in gone["resources"]}
    removed = {x["address"]: x for x in gone["removed"]}
    assert removed["instance.trainer"]["spent_usd"] > 0
    assert gone["totals"]["spent_usd"] >= grown["totals"]["spent_usd"]   # never falls
    # the plan's cost block counts the same ledger: what is gone still counts
    plan = json.loads(_cli(d, moto_endpoint, "plan", "--json").stdout)
    assert plan["cost"]["accumulated_usd"] >= removed["instance.trainer"]["spent_usd"] > 0
    assert plan["cost"]["accumulated_usd"] > _plan_without_ledger(d, moto_endpoint)

    text = _cli(d, moto_endpoint, "status")
    assert text.returncode == 0
    assert "Removed since launch" in text.stdout and "volume.data" in text.stdout
    assert "[persistent]" in text.stdout


def _plan_without_ledger(d: Path, ep: str) -> float:
    ledger = d / ".trainctl" / "ledger.jsonl"
    kept = ledger.read_bytes()
    ledger.unlink()
    try:
        doc = json.loads(_cli(d, ep, "plan", "--json").stdout)
    finally:
        ledger.write_bytes(kept)
    return float(doc["cost"]["accumulated_usd"])


@pytest.mark.slow
def test_status_check_training(tmp_path: Path, moto_endpoint: str) -> None:
    spec = SPEC.replace("    datasets: [tiny]\n",
                        "    training: {process_patterns: ['nope-xyz']}\n")
    spec = spec.replace("datasets:\n  tiny: {source: s3://stat-data/tiny/, strategy: "
                        "local-cache}\n", "")
    d = tmp_path / "proj"
    d.mkdir()
    (d / "trainctl.yaml").write_text(spec)
    assert _cli(d, moto_endpoint, "apply", "--auto-approve").returncode == 0
    r = _cli(d, moto_endpoint, "status", "--json", "--check-training")
    rows = {x["address"]: x for x in json.loads(r.stdout)["resources"]}
    assert rows["instance.trainer"]["training"] == "not running"


def test_a_corrupt_ledger_is_a_clear_error(tmp_path: Path) -> None:
    from planner.aws.ledger_store import LedgerStore
    from planner.errors import TrainctlError

    (tmp_path / "ledger.jsonl").write_text('{"ts": 5}\n{"ts": "x"\n')
    with pytest.raises(TrainctlError, match=r"ledger.jsonl:1: not a ledger line"):
        LedgerStore(str(tmp_path), None).read()
    (tmp_path / "ledger.jsonl").write_text('{"ts": "2026-12-01T00:00:00Z", "id": "i-1", '
                                           '"address": "a", "kind": "instance", '
                                           '"event": "launch", "charged": true, '
                                           '"attrs": {}}\n{"ts": "2026-')   # torn last line
    assert len(LedgerStore(str(tmp_path), None).read()) == 1


@pytest.mark.slow
def test_a_volume_deleted_outside_trainctl_reads_as_such(tmp_path: Path,
                                                         moto_endpoint: str) -> None:
    import boto3

    spec = ("version: 1\nproject: gone\nregion: us-east-1\n"
            "defaults: {availability_zone: us-east-1a, min_age_minutes: 0}\n"
            "volumes:\n  spare: {size_gib: 5}\n  other: {size_gib: 6}\n")
    d = tmp_path / "proj"
    d.mkdir()
    (d / "trainctl.yaml").write_text(spec)
    assert _cli(d, moto_endpoint, "apply", "--auto-approve").returncode == 0
    ec2 = boto3.client("ec2", endpoint_url=moto_endpoint, region_name="us-east-1")
    vols = {next(t["Value"] for t in v["Tags"] if t["Key"] == "trainctl:address"): v["VolumeId"]
            for v in ec2.describe_volumes()["Volumes"]}
    ec2.delete_volume(VolumeId=vols["volume.spare"])
    r = _cli(d, moto_endpoint, "plan")
    assert f"{vols['volume.spare']} was deleted outside trainctl" in r.stdout, r.stdout
    doc = json.loads(_cli(d, moto_endpoint, "plan", "--json").stdout)
    reasons = {c["address"]: c["reason"] for c in doc["changes"]}
    assert reasons["volume.spare"] == "create_because_deleted_outside"
    # a volume trainctl itself deleted, then asked for again, is simply missing
    (d / "trainctl.yaml").write_text(spec.replace("  other: {size_gib: 6}\n", ""))
    assert _cli(d, moto_endpoint, "apply", "--auto-approve").returncode == 0
    (d / "trainctl.yaml").write_text(spec)
    doc = json.loads(_cli(d, moto_endpoint, "plan", "--json").stdout)
    reasons = {c["address"]: c["reason"] for c in doc["changes"]}
    assert reasons["volume.other"] == "create_because_missing"
