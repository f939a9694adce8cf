"""Applies of one project from two folders of one machine are serialised by a lock keyed
by target, region and project, outside the folders ($TRAINCTL_LOCK_DIR here); two
machines (two lock folders) that made a duplicate set anyway see it in the next plan."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import run_cli

from planner.errors import LockHeldError
from planner.lock import MachineLock, machine_lock_dir

SPEC = """\
version: 1
project: twofold
region: us-east-1
defaults:
  availability_zone: us-east-1a
  min_age_minutes: 0
volumes:
  scratch: {size_gib: 20}
instances:
  trainer:
    instance_type: g5.xlarge
    ami: ami-0123456789abcdef0
    iam_instance_profile: trainctl-ssm
"""


def _folders(tmp_path: Path) -> tuple[Path, Path]:
    out = []
    for name in ("a", "b"):
        d = tmp_path / name
        d.mkdir()
        (d / "trainctl.yaml").write_text(SPEC)
        out.append(d)
    return out[0], out[1]


def _live(ec2, kind: str) -> list[str]:
    name = "scratch" if kind == "volume" else "trainer"
    addr = {"Name": "tag:trainctl:address", "Values": [f"{kind}.{name}"]}
    if kind == "volume":
        return [v["VolumeId"] for v in ec2.describe_volumes(Filters=[addr])["Volumes"]]
    res = ec2.describe_instances(Filters=[addr, {"Name": "instance-state-name",
                                                 "Values": ["pending", "running"]}])
    return [i["InstanceId"] for r in res["Reservations"] for i in r["Instances"]]


def test_the_lock_lives_outside_the_folder_and_is_overridable(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAINCTL_LOCK_DIR", str(tmp_path / "locks"))
    assert machine_lock_dir() == str(tmp_path / "locks")
    monkeypatch.delenv("TRAINCTL_LOCK_DIR")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert machine_lock_dir() == str(tmp_path / "trainctl-locks")


def test_a_second_holder_waits_then_is_refused_and_kill_9_frees_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAINCTL_LOCK_DIR", str(tmp_path / "locks"))
    code = ("import sys, time; from planner.lock import MachineLock; "
            "MachineLock(sys.argv[1]).acquire('apply', '/folder/a', wait=0); "
            "print('held', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code, "k1"], stdout=subprocess.PIPE,
                              text=True, env=dict(os.environ))
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        said: list[str] = []
        with pytest.raises(LockHeldError, match="from /folder/a, pid"):
            MachineLock("k1").acquire("apply", "/folder/b", wait=0.5, on_wait=said.append)
        assert said and "Waiting for another apply of k1" in said[0]
        other = MachineLock("k2")            # another project: not serialised with k1
        other.acquire("apply", "/folder/c", wait=0)
        other.release()
    finally:
        holder.kill()          # SIGKILL: the kernel drops the flock
        holder.wait()
    lock = MachineLock("k1")
    lock.acquire("apply", "/folder/b", wait=5)
    lock.release()


@pytest.mark.slow
def test_two_folders_applying_one_project_at_once_make_one_set(
        tmp_path: Path, moto_endpoint: str) -> None:
    import boto3

    from planner.aws.seed import seed

    seed(moto_endpoint, "us-east-1")
    a, b = _folders(tmp_path)
    env = {**os.environ, "TRAINCTL_LOCK_DIR": str(tmp_path / "locks")}
    cmd = [sys.executable, "-m", "planner", "--endpoint-url", moto_endpoint, "apply",
           "--auto-approve", "--no-color"]
    procs = [subprocess.Popen(cmd, cwd=d, env=env, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for d in (a, b)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, out + err
    ec2 = boto3.client("ec2", endpoint_url=moto_endpoint, region_name="us-east-1")
    assert len(_live(ec2, "volume")) == 1 and len(_live(ec2, "instance")) == 1
    texts = [out + err for out, err in outs]
    assert sum("No changes" in t for t in texts) == 1, texts


@pytest.mark.slow
def test_two_machines_duplicate_set_is_shown_refused_and_resolved_by_id(
        tmp_path: Path, moto_endpoint: str) -> None:
    """Two lock folders stand for two machines; the second machine's plan was made
    before the first's apply, and it applies its own anyway: a full duplicate set."""
    import boto3

    from planner.aws.seed import seed

    seed(moto_endpoint, "us-east-1")
    a, b = _folders(tmp_path)
    ea = {"TRAINCTL_LOCK_DIR": str(tmp_path / "locks-a")}
    eb = {"TRAINCTL_LOCK_DIR": str(tmp_path / "locks-b")}
    flag = ("--endpoint-url", moto_endpoint)
    assert run_cli(*flag, "plan", "-o", "b.json", cwd=b, env=eb).returncode == 0
    assert run_cli(*flag, "apply", "--auto-approve", cwd=a, env=ea).returncode == 0
    stale = run_cli(*flag, "apply", "b.json", cwd=b, env=eb)
    assert stale.returncode == 1, stale.stdout + stale.stderr     # never a second set
    ec2 = boto3.client("ec2", endpoint_url=moto_endpoint, region_name="us-east-1")
    first_v, first_i = _live(ec2, "volume")[0], _live(ec2, "instance")[0]
    # what a lost answer or a race on another machine leaves: copies with the same tags
    vol = ec2.describe_volumes(VolumeIds=[first_v])["Volumes"][0]
    time.sleep(1.1)
    dup_v = ec2.create_volume(AvailabilityZone="us-east-1a", Size=20, TagSpecifications=[
        {"ResourceType": "volume", "Tags": vol["Tags"]}])["VolumeId"]
    inst = ec2.describe_instances(InstanceIds=[first_i])["Reservations"][0]["Instances"][0]
    dup_i = ec2.run_instances(ImageId="ami-0123456789abcdef0", InstanceType="g5.xlarge",
                              MinCount=1, MaxCount=1, TagSpecifications=[
                                  {"ResourceType": "instance", "Tags": inst["Tags"]}],
                              Placement={"AvailabilityZone": "us-east-1a"})[
        "Instances"][0]["InstanceId"]
    plan = run_cli(*flag, "plan", "--no-color", "--detailed-exitcode", cwd=b, env=eb)
    # 2 once `--detailed-exitcode` counts blocked changes (DESIGN section 6)
    assert plan.returncode in (0, 2), plan.stdout + plan.stderr
    assert "4 blocked" in plan.stdout
    for rid in (first_v, dup_v, first_i, dup_i):
        assert rid in plan.stdout
    assert "No changes" not in plan.stdout and "(duplicate)" in plan.stdout
    refused = run_cli(*flag, "apply", "--auto-approve", cwd=b, env=eb)
    assert "blocked" in refused.stdout, refused.stdout + refused.stderr
    assert set(_live(ec2, "volume")) == {first_v, dup_v}
    fixed = run_cli(*flag, "apply", "--auto-approve", "--allow-delete", dup_v,
                    "--allow-delete", dup_i, cwd=b, env=eb)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert _live(ec2, "volume") == [first_v] and _live(ec2, "instance") == [first_i]
    clean = run_cli(*flag, "plan", "--detailed-exitcode", cwd=a, env=ea)
    assert clean.returncode == 0, clean.stdout + clean.stderr
