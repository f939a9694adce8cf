"""`apply --stop-training instance.NAME` on the emulator's local runner, with real
processes on this machine: SIGTERM, grace_seconds, SIGKILL, then the checkpoint sync, then
unmount, detach and terminate. Without the flag (or with --force) the teardown is refused."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli

pytestmark = pytest.mark.slow

JOB = """\
import os, pathlib, signal, sys, time
ckpt, pid_file, mode = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3]
def on_term(signum, frame):
    (ckpt / "last.pt").write_bytes(b"written on SIGTERM")
    sys.exit(0)
signal.signal(signal.SIGTERM, on_term if mode == "graceful" else signal.SIG_IGN)
ckpt.mkdir(parents=True, exist_ok=True)
(ckpt / "step-1.pt").write_bytes(b"step 1")
pid_file.parent.mkdir(parents=True, exist_ok=True)
pid_file.write_text(f"{os.getpid()}\\n")
while True:
    time.sleep(0.05)
"""

SPEC = """\
version: 1
project: stoptrain
region: us-east-1
defaults:
  availability_zone: us-east-1a
  min_age_minutes: 0
volumes:
  scratch: {{size_gib: 20}}
instances:
  trainer:
    instance_type: t3.micro
    ami: ami-0123456789abcdef0
    mounts:
      - {{volume: scratch, device: /dev/sdg, path: /scratch}}
    checkpoints:
      path: /scratch/checkpoints
      sync_to: s3://stoptrain-ckpt/run-1/
    training:
      pid_file: /var/run/trainctl/training.pid
      process_patterns: ["{tag}"]
      grace_seconds: {grace}
"""

DROPPED = """\
version: 1
project: stoptrain
region: us-east-1
defaults:
  availability_zone: us-east-1a
  min_age_minutes: 0
volumes:
  scratch: {size_gib: 20}
"""


def _cli(d: Path, endpoint: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("--endpoint-url", endpoint, *args, cwd=d, input="", timeout=300)


def _ok(r: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert r.returncode == 0, f"rc={r.returncode}\n{r.stdout}\n{r.stderr}"
    return r


def _events(d: Path, address: str) -> list[dict[str, Any]]:
    from planner.journal import read_journal

    files = (d / ".trainctl" / "journal").glob("*.jsonl")
    return [e for f in files for e in read_journal(str(f)) if e["address"] == address
            and e["event"] == "finished"]


def _setup(tmp_path: Path, endpoint: str, grace: int, mode: str
           ) -> tuple[Path, Any, Any, str, subprocess.Popen[bytes], Path]:
    """The trainer up (trainctl apply), a job running on it, then the spec without it."""
    import boto3

    from planner.aws.seed import seed

    d = tmp_path / "proj"
    d.mkdir()
    tag = f"trainctl-test-job-{uuid.uuid4().hex}"
    (d / "trainctl.yaml").write_text(SPEC.format(tag=tag, grace=grace))
    seed(endpoint, "us-east-1", buckets=["stoptrain-ckpt"])
    _ok(_cli(d, endpoint, "apply", "--auto-approve"))
    ec2 = boto3.client("ec2", endpoint_url=endpoint, region_name="us-east-1")
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    res = ec2.describe_instances(Filters=[
        {"Name": "tag:trainctl:address", "Values": ["instance.trainer"]},
        {"Name": "instance-state-name", "Values": ["running"]}])["Reservations"]
    iid = res[0]["Instances"][0]["InstanceId"]
    box = d / ".trainctl" / "sandbox" / iid
    ckpt = box / "scratch" / "checkpoints"
    pid_file = box / "var" / "run" / "trainctl" / "training.pid"
    job = subprocess.Popen([sys.executable, "-c", JOB, str(ckpt), str(pid_file), mode, tag])
    deadline = time.monotonic() + 30
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pid_file.exists()
    (d / "trainctl.yaml").write_text(DROPPED)
    return d, ec2, s3, iid, job, ckpt


def _state(ec2: Any, iid: str) -> str:
    return str(ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0][
        "State"]["Name"])


def _keys(s3: Any) -> set[str]:
    return {o["Key"] for o in s3.list_objects_v2(Bucket="stoptrain-ckpt").get("Contents", ())}


def test_stop_training_saves_what_the_job_wrote_on_sigterm(moto_endpoint: str,
                                                           tmp_path: Path) -> None:
    d, ec2, s3, iid, job, ckpt = _setup(tmp_path, moto_endpoint, grace=60, mode="graceful")
    try:
        # without --stop-training (with --force too) the teardown is refused: job untouched
        for extra in ((), ("--force",)):
            r = _cli(d, moto_endpoint, "apply", "--auto-approve", *extra)
            assert r.returncode == 1, r.stdout + r.stderr
            assert "training-running" in r.stderr
            assert "--stop-training instance.trainer" in r.stderr
            assert job.poll() is None and _state(ec2, iid) == "running"
            assert not (ckpt / "last.pt").exists()
        # a name the plan does not tear down is refused before anything runs
        r = _cli(d, moto_endpoint, "apply", "--auto-approve", "--stop-training",
                 "instance.other")
        assert r.returncode == 1 and "--stop-training instance.other" in r.stderr
        assert job.poll() is None

        r = _ok(_cli(d, moto_endpoint, "apply", "--auto-approve",
                     "--stop-training", "instance.trainer"))
        assert job.wait(timeout=30) == 0                     # it exited on SIGTERM
        got = s3.get_object(Bucket="stoptrain-ckpt", Key="run-1/last.pt")["Body"].read()
        assert got == b"written on SIGTERM"
        assert _keys(s3) == {"run-1/last.pt", "run-1/step-1.pt"}
        assert _state(ec2, iid) == "terminated"
        [unmount] = [e for e in _events(d, "mount.trainer.scratch") if e["phase"] == "delete"]
        assert unmount["facts"]["training"].startswith(
            "stopped by --stop-training: the training job exited on SIGTERM")
        assert unmount["facts"]["checkpoints"].startswith(
            "synced /scratch/checkpoints to s3://stoptrain-ckpt/run-1/ (2 files")
        assert "Apply:" in r.stdout
    finally:
        if job.poll() is None:
            job.kill()
            job.wait()


def test_a_job_ignoring_sigterm_is_killed_after_grace_seconds(moto_endpoint: str,
                                                              tmp_path: Path) -> None:
    d, ec2, s3, iid, job, _ckpt = _setup(tmp_path, moto_endpoint, grace=2, mode="stubborn")
    try:
        start = time.monotonic()
        _ok(_cli(d, moto_endpoint, "apply", "--auto-approve", "--stop-training", "trainer"))
        assert time.monotonic() - start >= 2                 # it waited grace_seconds
        assert job.wait(timeout=30) == -9                    # then SIGKILL
        assert _keys(s3) == {"run-1/step-1.pt"}
        assert _state(ec2, iid) == "terminated"
        [unmount] = [e for e in _events(d, "mount.trainer.scratch") if e["phase"] == "delete"]
        assert "ignored SIGTERM for 2s and was killed" in unmount["facts"]["training"]
    finally:
        if job.poll() is None:
            job.kill()
            job.wait()
