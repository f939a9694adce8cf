"""`trainctl apply` end to end: real subprocesses against the moto server."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from conftest import EXAMPLES, ROOT, run_cli

from planner.journal import read_journal
from planner.lock import LocalLock

pytestmark = pytest.mark.slow

BASE = """\
version: 1
project: itest
region: us-east-1
defaults:
  availability_zone: us-east-1a
  min_age_minutes: 0
volumes:
  data: {size_gib: 10, persistent: true}
  scratch: {size_gib: 20}
instances:
  trainer:
    instance_type: t3.micro
    ami: ami-0123456789abcdef0
    mounts:
      - {volume: data, device: /dev/sdf, path: /data}
      - {volume: scratch, device: /dev/sdg, path: /scratch}
"""

EDITED = """\
version: 1
project: itest
region: us-east-1
defaults:
  availability_zone: us-east-1a
  min_age_minutes: 0
volumes:
  data: {size_gib: 16, persistent: true}
instances:
  trainer:
    instance_type: t3.micro
    ami: ami-0123456789abcdef0
    mounts:
      - {volume: data, device: /dev/sdf, path: /data}
  second:
    instance_type: t3.micro
    ami: ami-0123456789abcdef0
"""

# A slow engine for tests that interrupt an apply: every step sleeps SLOW_STEP seconds first.
SLOW_MAIN = """\
import os, sys, time
from planner.engines import direct
real_apply = direct.DirectEngine.apply
def slow_apply(self, change, action):
    time.sleep(float(os.environ["SLOW_STEP"]))
    return real_apply(self, change, action)
direct.DirectEngine.apply = slow_apply
from planner.cli import main
main(sys.argv[1:])
"""


# An engine whose create of FAIL_ADDR fails as AWS would (for a cause plan cannot see).
FAIL_MAIN = """\
import os, sys
from planner.engines import direct
from planner.engines.base import StepFailed
real_apply = direct.DirectEngine.apply
def failing_apply(self, change, action):
    if change.address == os.environ["FAIL_ADDR"]:
        raise StepFailed(f"{change.address}: InsufficientInstanceCapacity (injected)")
    return real_apply(self, change, action)
direct.DirectEngine.apply = failing_apply
from planner.cli import main
main(sys.argv[1:])
"""


# --- helpers ---------------------------------------------------------------------------------

def project(tmp_path: Path, spec: str = BASE) -> Path:
    d = tmp_path / "proj"
    d.mkdir(exist_ok=True)
    (d / "trainctl.yaml").write_text(spec)
    return d


def cli(d: Path, endpoint: str, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    kw.setdefault("input", "")         # stdin is never a terminal here
    return run_cli("--endpoint-url", endpoint, *args, cwd=d, **kw)


def ok(r: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert r.returncode == 0, f"rc={r.returncode}\n{r.stdout}\n{r.stderr}"
    return r


def ec2(endpoint: str) -> Any:
    import boto3

    return boto3.client("ec2", endpoint_url=endpoint, region_name="us-east-1")


def live_volumes(endpoint: str, project_name: str = "itest") -> dict[str, list[dict[str, Any]]]:
    """Volumes tagged with the project, by address (a list: duplicates must show)."""
    out: dict[str, list[dict[str, Any]]] = {}
    vols = ec2(endpoint).describe_volumes(
        Filters=[{"Name": "tag:trainctl:project", "Values": [project_name]}])["Volumes"]
    for v in vols:
        tags = {t["Key"]: t["Value"] for t in v.get("Tags", [])}
        if "trainctl:address" in tags:         # instance root volumes have none
            out.setdefault(tags["trainctl:address"], []).append(v)
    return out


def live_instances(endpoint: str, project_name: str = "itest") -> Counter[str]:
    res = ec2(endpoint).describe_instances(Filters=[
        {"Name": "tag:trainctl:project", "Values": [project_name]},
        {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]},
    ])["Reservations"]
    return Counter({t["Value"] for t in i.get("Tags", []) if t["Key"] == "trainctl:address"}.pop()
                   for r in res for i in r["Instances"])


def journal(d: Path) -> list[dict[str, Any]]:
    files = sorted((d / ".trainctl" / "journal").glob("*.jsonl"), key=os.path.getmtime)
    assert files, "no journal written"
    return read_journal(str(files[-1]))


def no_changes(d: Path, endpoint: str) -> None:
    r = cli(d, endpoint, "plan", "--detailed-exitcode")
    assert r.returncode == 0, f"plan still has changes:\n{r.stdout}\n{r.stderr}"


def wait_for(pred: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def journal_events(d: Path) -> list[dict[str, Any]]:
    jdir = d / ".trainctl" / "journal"
    return [e for f in jdir.glob("*.jsonl") for e in read_journal(str(f))] if jdir.exists() else []


# --- tests -----------------------------------------------------------------------------------

def test_quickstart_from_empty_then_no_changes(tmp_path: Path, moto_endpoint: str) -> None:
    import boto3

    from planner.aws.seed import seed

    d = tmp_path / "quickstart"
    shutil.copytree(EXAMPLES / "quickstart", d)
    seed(moto_endpoint, "us-east-1",
         buckets=["trainctl-demo-datasets", "trainctl-demo-checkpoints"])
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    for i in range(3):
        s3.put_object(Bucket="trainctl-demo-datasets", Key=f"tiny-imagenet/part-{i}.bin",
                      Body=os.urandom(2048))

    r = ok(cli(d, moto_endpoint, "apply", "--auto-approve"))
    summary = r.stdout.strip().splitlines()[-2]
    assert summary == ("Apply: 8 created, 0 updated, 0 replaced, 0 deleted, 0 blocked; "
                       "0 failed, 0 skipped."), r.stdout
    no_changes(d, moto_endpoint)
    assert {a: len(v) for a, v in live_volumes(moto_endpoint, "quickstart").items()} == {
        "volume.datasets": 1, "volume.scratch": 1}
    events = journal(d)
    finished = {e["address"] for e in events if e["event"] == "finished"}
    assert finished == {"volume.datasets", "volume.scratch", "instance.trainer",
                        "prewarm.tiny-imagenet", "attachment.trainer.datasets",
                        "attachment.trainer.scratch", "mount.trainer.datasets",
                        "mount.trainer.scratch"}
    plan_id = events[0]["plan_id"]
    saved = json.loads((d / ".trainctl" / "plans" / f"{plan_id}.json").read_text())
    assert saved["plan_id"] == plan_id
    assert not (d / ".trainctl" / "lock").exists()


def test_nothing_to_do_needs_no_confirmation(tmp_path: Path, moto_endpoint: str) -> None:
    d = project(tmp_path, "version: 1\nproject: itest\nregion: us-east-1\n")
    r = ok(cli(d, moto_endpoint, "apply"))
    assert "No changes." in r.stdout and "Apply:" not in r.stdout
    assert not (d / ".trainctl" / "journal").exists()


def test_without_terminal_or_auto_approve_apply_refuses(tmp_path: Path,
                                                       moto_endpoint: str) -> None:
    d = project(tmp_path)
    r = cli(d, moto_endpoint, "apply")
    assert r.returncode == 1
    assert "--auto-approve" in r.stderr and "saved plan" in r.stderr
    assert live_volumes(moto_endpoint) == {}
    assert not (d / ".trainctl" / "lock").exists()


def test_spec_edits_converge(tmp_path: Path, moto_endpoint: str) -> None:
    d = project(tmp_path)
    ok(cli(d, moto_endpoint, "apply", "--auto-approve"))
    no_changes(d, moto_endpoint)
    scratch_id = live_volumes(moto_endpoint)["volume.scratch"][0]["VolumeId"]

    (d / "trainctl.yaml").write_text(EDITED)     # grow data, drop scratch, add an instance
    r = ok(cli(d, moto_endpoint, "apply", "--auto-approve"))     # one apply converges
    assert "0 blocked; 0 failed, 0 skipped." in r.stdout
    no_changes(d, moto_endpoint)
    vols = live_volumes(moto_endpoint)
    assert set(vols) == {"volume.data"} and len(vols["volume.data"]) == 1
    assert vols["volume.data"][0]["Size"] == 16
    gone = ec2(moto_endpoint).describe_volumes(
        Filters=[{"Name": "volume-id", "Values": [scratch_id]}])["Volumes"]
    assert gone == []
    assert live_instances(moto_endpoint) == Counter({"instance.trainer": 1,
                                                     "instance.second": 1})
    events = sorted(journal_events(d), key=lambda e: e["ts"])
    order = [(e["address"], e["phase"], e["event"]) for e in events]
    # unmount before detach, detach before delete
    assert order.index(("mount.trainer.scratch", "delete", "finished")) < order.index(
        ("attachment.trainer.scratch", "delete", "started"))
    assert order.index(("attachment.trainer.scratch", "delete", "finished")) < order.index(
        ("volume.scratch", "delete", "started"))


def test_stale_plan_is_refused_and_changes_nothing(tmp_path: Path, moto_endpoint: str) -> None:
    d = project(tmp_path)
    ok(cli(d, moto_endpoint, "plan", "-o", "plan.json"))
    ok(cli(d, moto_endpoint, "plan", "-o", "plan2.json"))
    ok(cli(d, moto_endpoint, "apply", "plan.json"))      # a saved plan needs no confirmation
    before = live_volumes(moto_endpoint)
    assert set(before) == {"volume.data", "volume.scratch"}

    r = cli(d, moto_endpoint, "apply", "plan2.json")     # live state moved on
    assert r.returncode == 1
    assert "stale plan: live state changed since" in r.stderr
    assert live_volumes(moto_endpoint) == before

    ok(cli(d, moto_endpoint, "plan", "-o", "plan3.json"))
    (d / "trainctl.yaml").write_text(EDITED)
    r = cli(d, moto_endpoint, "apply", "plan3.json")     # the spec moved on
    assert r.returncode == 1
    assert "stale plan: the spec changed since" in r.stderr
    assert live_volumes(moto_endpoint) == before
    assert live_instances(moto_endpoint) == Counter({"instance.trainer": 1})


def test_a_plan_for_another_project_or_region_is_refused(tmp_path: Path,
                                                         moto_endpoint: str) -> None:
    d = project(tmp_path)
    ok(cli(d, moto_endpoint, "plan", "-o", "plan.json"))
    (d / "trainctl.yaml").write_text(BASE.replace("project: itest", "project: other"))
    r = cli(d, moto_endpoint, "apply", "plan.json")
    assert r.returncode == 1 and "plan is for project itest / region us-east-1" in r.stderr
    r = cli(d, moto_endpoint, "--region", "eu-west-1", "apply", "plan.json")
    assert r.returncode == 1 and "plan is for project itest" in r.stderr
    assert live_volumes(moto_endpoint) == {}


def test_a_corrupt_plan_file_is_refused(tmp_path: Path, moto_endpoint: str) -> None:
    d = project(tmp_path)
    (d / "plan.json").write_text('{"format_version": "1", "changes": 3}')
    r = cli(d, moto_endpoint, "apply", "plan.json")
    assert r.returncode == 1 and "Traceback" not in r.stderr and "plan" in r.stderr


def test_pulumi_engine_is_refused_and_changes_nothing(tmp_path: Path,
                                                     moto_endpoint: str) -> None:
    d = project(tmp_path)
    r = cli(d, moto_endpoint, "apply", "--auto-approve", "--engine", "pulumi",
            env={"PATH": os.path.dirname(sys.executable) + os.pathsep + "/usr/bin:/bin"})
    assert r.returncode == 1 and "--engine direct" in r.stderr
    assert live_volumes(moto_endpoint) == {}


def test_two_concurrent_applies_the_second_is_refused(tmp_path: Path,
                                                      moto_endpoint: str) -> None:
    import pty

    d = project(tmp_path)
    leader, follower = pty.openpty()
    first = subprocess.Popen(
        [sys.executable, "-m", "planner", "--endpoint-url", moto_endpoint, "apply"],
        cwd=d, stdin=follower, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    os.close(follower)
    try:
        # The first apply waits at its y/N prompt, holding the lock.
        wait_for(lambda: (d / ".trainctl" / "lock").exists())
        holder = LocalLock(str(d / ".trainctl")).status()
        assert holder is not None and holder.pid == first.pid

        r = cli(d, moto_endpoint, "apply", "--auto-approve")
        assert r.returncode == 1
        assert f"pid {first.pid}" in r.stderr and holder.id in r.stderr
        assert "gone" not in r.stderr
        assert live_volumes(moto_endpoint) == {}

        os.write(leader, b"y\n")
        out, err = first.communicate(timeout=120)
        assert first.returncode == 0, err
        assert "Do you want to perform these actions?" in out
        assert ("Apply: 7 created, 0 updated, 0 replaced, 0 deleted, 0 blocked; "
                "0 failed, 0 skipped.") in out
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
        os.close(leader)
    assert not (d / ".trainctl" / "lock").exists()
    no_changes(d, moto_endpoint)


def test_a_failed_step_skips_its_dependents_and_the_rest_is_done(
        tmp_path: Path, moto_endpoint: str) -> None:
    # A failure plan cannot foresee (no capacity): injected into the engine's create.
    spec = BASE + (
        "  other:\n    instance_type: t3.micro\n    ami: ami-0123456789abcdef0\n"
        "  broken:\n    instance_type: t3.micro\n    ami: ami-0123456789abcdef0\n"
        "    mounts:\n      - {volume: spare, device: /dev/sdh, path: /spare}\n")
    spec = spec.replace("  scratch: {size_gib: 20}\n",
                        "  scratch: {size_gib: 20}\n  spare: {size_gib: 5}\n")
    d = project(tmp_path, spec)
    r = subprocess.run(
        [sys.executable, "-c", FAIL_MAIN, "--endpoint-url", moto_endpoint,
         "apply", "--auto-approve"],
        cwd=d, env={**os.environ, "FAIL_ADDR": "instance.broken", "PYTHONPATH": str(ROOT)},
        input="", capture_output=True, text=True, timeout=300)
    assert r.returncode == 1, r.stdout + r.stderr
    assert ("Apply: 9 created, 0 updated, 0 replaced, 0 deleted, 0 blocked; "
            "1 failed, 2 skipped.") in r.stdout
    assert "instance.broken" in r.stderr
    events = journal(d)
    by = {(e["address"], e["event"]) for e in events}
    assert ("instance.broken", "failed") in by
    failed = next(e for e in events if e["event"] == "failed")
    assert "InsufficientInstanceCapacity" in failed["message"]
    for addr in ("attachment.broken.spare", "mount.broken.spare"):
        assert (addr, "skipped") in by and (addr, "started") not in by
        msg = next(e["message"] for e in events if e["address"] == addr)
        assert msg == "skipped (upstream failed: instance.broken)"
    for addr in ("volume.data", "volume.scratch", "volume.spare", "instance.trainer",
                 "instance.other", "attachment.trainer.data", "mount.trainer.scratch"):
        assert (addr, "finished") in by
    assert set(live_volumes(moto_endpoint)) == {"volume.data", "volume.scratch", "volume.spare"}


def test_kill_9_during_apply_then_apply_converges_without_duplicates(
        tmp_path: Path, moto_endpoint: str) -> None:
    d = project(tmp_path, BASE + (
        "  second:\n    instance_type: t3.micro\n    ami: ami-0123456789abcdef0\n"))
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_MAIN, "--endpoint-url", moto_endpoint,
         "apply", "--auto-approve", "--parallelism", "2"],
        cwd=d, env={**os.environ, "SLOW_STEP": "0.4", "PYTHONPATH": str(ROOT)},
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: any(e["event"] == "finished" for e in journal_events(d)))
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    events = journal_events(d)
    assert proc.returncode == -9
    assert not any(e["address"].startswith("mount.") and e["event"] == "finished"
                   for e in events), "the apply finished before it was killed"

    # plan shows only what remains
    r = cli(d, moto_endpoint, "plan", "--json")
    remaining = {c["address"] for c in json.loads(r.stdout)["changes"]
                 if c["actions"] != ["no-op"]}
    finished = {e["address"] for e in events if e["event"] == "finished"}
    assert not remaining & finished
    # the dead apply's lock is taken over, naming its holder; apply converges with one
    # volume per address (no manual `lock release`)
    r = ok(cli(d, moto_endpoint, "apply", "--auto-approve"))
    assert "taking over the lock" in r.stderr and f"(pid {proc.pid}," in r.stderr
    no_changes(d, moto_endpoint)
    vols = live_volumes(moto_endpoint)
    assert {a: len(v) for a, v in vols.items()} == {"volume.data": 1, "volume.scratch": 1}
    assert live_instances(moto_endpoint) == Counter({"instance.trainer": 1,
                                                     "instance.second": 1})


def test_ctrl_c_lets_running_steps_finish_and_exits_130(tmp_path: Path,
                                                        moto_endpoint: str) -> None:
    spec = ("version: 1\nproject: itest\nregion: us-east-1\n"
            "defaults: {availability_zone: us-east-1a}\nvolumes:\n"
            + "".join(f"  v{i}: {{size_gib: 5}}\n" for i in range(4)))
    d = project(tmp_path, spec)
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_MAIN, "--endpoint-url", moto_endpoint,
         "apply", "--auto-approve", "--parallelism", "1"],
        cwd=d, env={**os.environ, "SLOW_STEP": "1", "PYTHONPATH": str(ROOT)},
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: any(e["event"] == "started" for e in journal_events(d)))
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out + err
    events = journal_events(d)
    started = [e["address"] for e in events if e["event"] == "started"]
    finished = [e["address"] for e in events if e["event"] == "finished"]
    interrupted = [e["address"] for e in events if e["event"] == "interrupted"]
    assert started == finished == ["volume.v0"]
    assert sorted(interrupted) == ["volume.v1", "volume.v2", "volume.v3"]
    assert "3 not started (interrupted)" in out
    assert set(live_volumes(moto_endpoint)) == {"volume.v0"}
    assert not (d / ".trainctl" / "lock").exists()


def test_a_hand_edited_plan_cannot_delete_a_persistent_volume(tmp_path: Path,
                                                              moto_endpoint: str) -> None:
    d = project(tmp_path)
    ok(cli(d, moto_endpoint, "apply", "--auto-approve"))
    data_id = live_volumes(moto_endpoint)["volume.data"][0]["VolumeId"]
    (d / "trainctl.yaml").write_text(
        "version: 1\nproject: itest\nregion: us-east-1\n"
        "defaults: {availability_zone: us-east-1a, min_age_minutes: 0}\n")
    ok(cli(d, moto_endpoint, "plan", "-o", "plan.json"))
    doc = json.loads((d / "plan.json").read_text())
    data = next(c for c in doc["changes"] if c["address"] == "volume.data")
    assert data["actions"] == ["delete"] and data["blocked_by"][0]["rule"] == "persistent"
    for c in doc["changes"]:
        c["blocked_by"] = []              # the reviewer's safety net, removed by hand
    doc["summary"]["blocked"] = 0
    (d / "plan.json").write_text(json.dumps(doc))

    r = ok(cli(d, moto_endpoint, "apply", "plan.json"))
    assert "1 change blocked, not carried out" in r.stdout
    assert "volume.data (delete): persistent" in r.stdout
    assert "1 blocked; 0 failed" in r.stdout
    still = ec2(moto_endpoint).describe_volumes(VolumeIds=[data_id])["Volumes"]
    assert len(still) == 1
    assert "volume.scratch" not in live_volumes(moto_endpoint)
    assert live_instances(moto_endpoint) == Counter()


def test_a_hand_edited_action_is_refused(tmp_path: Path, moto_endpoint: str) -> None:
    d = project(tmp_path)
    ok(cli(d, moto_endpoint, "apply", "--auto-approve"))
    ok(cli(d, moto_endpoint, "plan", "-o", "plan.json"))
    doc = json.loads((d / "plan.json").read_text())
    for c in doc["changes"]:
        if c["address"] == "volume.scratch":
            c["actions"] = ["delete"]
    (d / "plan.json").write_text(json.dumps(doc))
    r = cli(d, moto_endpoint, "apply", "plan.json")
    assert r.returncode == 1 and "was it edited?" in r.stderr
    assert set(live_volumes(moto_endpoint)) == {"volume.data", "volume.scratch"}


def test_s3_state_lock_held_refuses_apply(tmp_path: Path, moto_endpoint: str) -> None:
    from planner.aws.lock_store import S3Lock
    from planner.aws.session import connect

    s3 = connect("us-east-1", moto_endpoint).s3
    s3.create_bucket(Bucket="team-state")
    d = project(tmp_path, BASE + "state: s3://team-state/itest/\n")
    other = S3Lock(s3, "s3://team-state/itest/").acquire("apply")
    r = cli(d, moto_endpoint, "apply", "--auto-approve")
    assert r.returncode == 1 and "s3://team-state/itest/lock" in r.stderr
    assert other.id in r.stderr
    assert live_volumes(moto_endpoint) == {}
    S3Lock(s3, "s3://team-state/itest/").release(other.id)
    ok(cli(d, moto_endpoint, "apply", "--auto-approve"))
    assert S3Lock(s3, "s3://team-state/itest/").status() is None
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="team-state")["Contents"]}
    plan_id = journal(d)[0]["plan_id"]
    assert keys == {f"itest/plans/{plan_id}.json", f"itest/journal/{plan_id}.jsonl",
                    "itest/ledger.jsonl"}       # the cost ledger is shared there too


def test_enforced_cost_limits_refuse_unless_allowed(tmp_path: Path, moto_endpoint: str) -> None:
    d = project(tmp_path, BASE + "cost: {max_hourly_usd: 0.0001, enforce: true}\n")
    r = cli(d, moto_endpoint, "apply", "--auto-approve")
    assert r.returncode == 1 and "--allow-cost" in r.stderr and "max_hourly_usd" in r.stderr
    assert live_volumes(moto_endpoint) == {}
    r = ok(cli(d, moto_endpoint, "apply", "--auto-approve", "--allow-cost"))
    assert "Apply: 7 created" in r.stdout


def test_answering_no_at_the_prompt_changes_nothing(tmp_path: Path, moto_endpoint: str) -> None:
    import pty

    d = project(tmp_path)
    leader, follower = pty.openpty()
    try:
        os.write(leader, b"n\n")
        proc = subprocess.run(
            [sys.executable, "-m", "planner", "--endpoint-url", moto_endpoint, "apply"],
            cwd=d, stdin=follower, capture_output=True, text=True, timeout=120)
    finally:
        os.close(follower)
        os.close(leader)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Do you want to perform these actions? [y/N]" in proc.stdout
    assert "Apply cancelled; nothing changed." in proc.stderr
    assert live_volumes(moto_endpoint) == {}
    assert not (d / ".trainctl" / "lock").exists()


def test_an_unknown_price_with_enforce_refuses_unless_allowed(tmp_path: Path,
                                                              moto_endpoint: str) -> None:
    """The price table has no x2iedn: the cost is unknown, never $0, and an enforced
    spec refuses to apply it until --allow-cost; the plan names the price."""
    spec = BASE.replace("t3.micro", "x2iedn.xlarge") + (
        "cost: {max_hourly_usd: 1000, enforce: true}\n")
    d = project(tmp_path, spec)
    r = cli(d, moto_endpoint, "plan", "--json")
    doc = json.loads(r.stdout)
    assert doc["cost"]["hourly_usd_after"] is None and doc["applyable"] is False
    assert doc["cost"]["unknown_prices"][0]["message"] == (
        "no price for x2iedn.xlarge in us-east-1")
    r = cli(d, moto_endpoint, "apply", "--auto-approve")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "no price for x2iedn.xlarge in us-east-1" in r.stderr and "--allow-cost" in r.stderr
    assert live_volumes(moto_endpoint) == {}
    r = ok(cli(d, moto_endpoint, "apply", "--auto-approve", "--allow-cost"))
    assert "Apply: 7 created, 0 updated, 0 replaced, 0 deleted, 0 blocked" in r.stdout


def _apply_at_a_terminal(d: Path, endpoint: str, answer: bytes) -> subprocess.CompletedProcess[str]:
    import pty

    leader, follower = pty.openpty()
    try:
        os.write(leader, answer)
        return subprocess.run(
            [sys.executable, "-m", "planner", "--endpoint-url", endpoint, "apply"],
            cwd=d, stdin=follower, capture_output=True, text=True, timeout=120)
    finally:
        os.close(follower)
        os.close(leader)


def test_deleting_needs_the_word_yes_creating_takes_y(tmp_path: Path,
                                                      moto_endpoint: str) -> None:
    """As Terraform: `y` is enough to create and update; a plan that deletes or
    replaces anything asks for `yes`, and anything else cancels it."""
    d = project(tmp_path)
    r = _apply_at_a_terminal(d, moto_endpoint, b"y\n")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "[y/N]" in r.stdout and "Only 'yes'" not in r.stdout
    assert "volume.scratch" in live_volumes(moto_endpoint)

    (d / "trainctl.yaml").write_text(BASE.replace("  scratch: {size_gib: 20}\n", "").replace(
        "      - {volume: scratch, device: /dev/sdg, path: /scratch}\n", ""))
    for answer in (b"y\n", b"Y\n", b"yes please\n", b"\n"):
        r = _apply_at_a_terminal(d, moto_endpoint, answer)
        assert r.returncode == 1, r.stdout + r.stderr
        assert "This plan deletes or replaces" in r.stdout and "volume.scratch" in r.stdout
        assert "Only 'yes' will be accepted" in r.stdout
        assert "needs the word yes" in r.stderr
        assert "volume.scratch" in live_volumes(moto_endpoint)
    r = _apply_at_a_terminal(d, moto_endpoint, b"yes\n")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "volume.scratch" not in live_volumes(moto_endpoint)
