"""max_lifetime and idle_stop_minutes: the watcher on the (emulated) instance stops or
terminates it through the emulator's API, checkpoints first. Real bash, real moto."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
from conftest import run_cli

from planner.dataplane import scripts
from planner.ssm import emulator_env, venv_bin

pytestmark = pytest.mark.slow


def _state(ec2: Any, iid: str) -> str:
    r = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]
    return str(r["State"]["Name"])


def _wait_state(ec2: Any, iid: str, want: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    state = _state(ec2, iid)
    while time.monotonic() < deadline and state != want:
        time.sleep(0.5)
        state = _state(ec2, iid)
    return state


SPEC = """\
version: 1
project: life
region: us-east-1
defaults: {availability_zone: us-east-1a, min_age_minutes: 0}
instances:
  trainer:
    instance_type: t3.micro
    ami: ami-0123456789abcdef0
    max_lifetime: 6s
    idle_action: terminate
    checkpoints: {path: /scratch/ckpt, sync_to: "s3://life-ckpt/run/"}
"""


def test_a_lifetime_that_expires_on_the_emulator(tmp_path: Path, moto_endpoint: str) -> None:
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    ec2 = boto3.client("ec2", endpoint_url=moto_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket="life-ckpt")
    d = tmp_path / "proj"
    d.mkdir()
    (d / "trainctl.yaml").write_text(SPEC)
    r = run_cli("--endpoint-url", moto_endpoint, "apply", "--auto-approve", cwd=d, input="",
                env={"TRAINCTL_WATCH_INTERVAL": "1"})
    assert r.returncode == 0, r.stdout + r.stderr
    res = ec2.describe_instances(Filters=[{"Name": "tag:trainctl:project", "Values": ["life"]}])
    iid = res["Reservations"][0]["Instances"][0]["InstanceId"]
    ckpt = d / ".trainctl" / "sandbox" / iid / "scratch" / "ckpt"
    ckpt.mkdir(parents=True)
    (ckpt / "last.pt").write_bytes(b"weights")
    assert _state(ec2, iid) == "running"
    st = run_cli("--endpoint-url", moto_endpoint, "status", "--json", cwd=d, input="")
    row = next(r for r in __import__("json").loads(st.stdout)["resources"]
           if r["address"] == "instance.trainer")
    assert row["expires_at"] and row["expiry_action"] == "terminate"
    assert _wait_state(ec2, iid, "terminated", 40) == "terminated"
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="life-ckpt").get("Contents", [])]
    assert keys == ["run/last.pt"]                  # synced before the terminate
    log = d / ".trainctl" / "sandbox" / iid / "var" / "log" / "trainctl-lifetime-watcher.log"
    assert "max_lifetime reached" in log.read_text()
    plan = run_cli("--endpoint-url", moto_endpoint, "plan", cwd=d, input="")
    assert "expires" in plan.stdout and "6s after launch" in plan.stdout


def _watch(tmp_path: Path, endpoint: str, iid: str, **kw: Any) -> subprocess.Popen[str]:
    script = tmp_path / "watcher.sh"
    params = {"instance_id": iid, "deadline": None, "idle_seconds": 2, "action": "stop",
              "ckpt_path": None, "sync_to": None, "pid_file": None, "patterns": [],
              "interval": 1, **kw}
    script.write_text(scripts.lifetime_watcher_script(**params))
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir(exist_ok=True)
    env = {**os.environ, **emulator_env(endpoint, "us-east-1"),
           "TRAINCTL_SANDBOX": str(sandbox),
           "PATH": venv_bin() + os.pathsep + os.environ["PATH"]}
    return subprocess.Popen(["bash", str(script)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def test_idle_stops_only_without_a_training_job(tmp_path: Path, moto_endpoint: str) -> None:
    ec2 = boto3.client("ec2", endpoint_url=moto_endpoint, region_name="us-east-1")
    iid = ec2.run_instances(ImageId="ami-0123456789abcdef0", MinCount=1, MaxCount=1,
                            InstanceType="t3.micro")["Instances"][0]["InstanceId"]
    job = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)",
                            "trainctl-test-job-xyz"])
    watcher = _watch(tmp_path, moto_endpoint, iid, patterns=["trainctl-test-job-xyz"])
    try:
        time.sleep(5)                           # idle_seconds 2: a job keeps it running
        assert _state(ec2, iid) == "running"
        job.kill()
        job.wait()
        assert _wait_state(ec2, iid, "stopped", 30) == "stopped"
        out, _ = watcher.communicate(timeout=30)
        assert watcher.returncode == 0 and "idle for" in out
    finally:
        job.kill()
        watcher.kill()


def test_the_watcher_ends_when_the_instance_is_gone(tmp_path: Path, moto_endpoint: str) -> None:
    ec2 = boto3.client("ec2", endpoint_url=moto_endpoint, region_name="us-east-1")
    iid = ec2.run_instances(ImageId="ami-0123456789abcdef0", MinCount=1, MaxCount=1,
                            InstanceType="t3.micro")["Instances"][0]["InstanceId"]
    job = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)",
                            "trainctl-test-job-abc"])
    watcher = _watch(tmp_path, moto_endpoint, iid, patterns=["trainctl-test-job-abc"])
    try:
        time.sleep(2)
        ec2.terminate_instances(InstanceIds=[iid])
        out, _ = watcher.communicate(timeout=30)
        assert "no longer running" in out
    finally:
        job.kill()
        watcher.kill()
