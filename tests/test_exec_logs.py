"""`trainctl exec` and `trainctl logs` on the emulator: real subprocesses, a real moto
server, the instance's commands run by bash in its sandbox folder."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli

pytestmark = pytest.mark.slow

SPEC = """\
version: 1
project: dayops
region: us-east-1
defaults: {availability_zone: us-east-1a, min_age_minutes: 0}
instances:
  trainer:
    instance_type: t3.micro
    ami: ami-0123456789abcdef0
    training:
      log: /scratch/train.log
  other:
    instance_type: t3.micro
    ami: ami-0123456789abcdef0
"""


def _cli(d: Path, endpoint: str, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    kw.setdefault("input", "")
    return run_cli("--endpoint-url", endpoint, *args, cwd=d, **kw)


@pytest.fixture
def applied(tmp_path: Path, moto_endpoint: str) -> tuple[Path, str, str]:
    import boto3

    d = tmp_path / "proj"
    d.mkdir()
    (d / "trainctl.yaml").write_text(SPEC)
    r = _cli(d, moto_endpoint, "apply", "--auto-approve")
    assert r.returncode == 0, r.stdout + r.stderr
    ec2 = boto3.client("ec2", endpoint_url=moto_endpoint, region_name="us-east-1")
    res = ec2.describe_instances(Filters=[
        {"Name": "tag:trainctl:address", "Values": ["instance.trainer"]},
        {"Name": "instance-state-name", "Values": ["running"]}])["Reservations"]
    iid = res[0]["Instances"][0]["InstanceId"]
    return d, moto_endpoint, iid


def test_exec_prints_output_and_exits_with_the_commands_status(
        applied: tuple[Path, str, str]) -> None:
    d, ep, _iid = applied
    r = _cli(d, ep, "exec", "trainer", "--", "bash", "-c", "echo out; echo err >&2; exit 3")
    assert r.returncode == 3
    assert r.stdout == "out\n"
    assert "err\n" in r.stderr
    assert "Target:" in r.stderr                # says what it talks to
    ok = _cli(d, ep, "exec", "instance.trainer", "--", "true")
    assert ok.returncode == 0 and ok.stdout == ""


def test_exec_output_longer_than_ssm_keeps_is_not_cut(applied: tuple[Path, str, str]) -> None:
    d, ep, _iid = applied
    code = "import sys; [print(f'line {i:06d} ' + 'x' * 50) for i in range(2000)]"
    r = _cli(d, ep, "exec", "trainer", "--", sys.executable, "-c", code)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(r.stdout) > 100_000 > 24_000
    assert lines[0].startswith("line 000000") and lines[-1].startswith("line 001999")
    assert len(lines) == 2000


def test_exec_passes_arguments_as_data_not_code(applied: tuple[Path, str, str]) -> None:
    d, ep, _iid = applied
    r = _cli(d, ep, "exec", "trainer", "--", "echo", "$(touch pwned)", "; rm -rf /", "'")
    assert r.returncode == 0
    assert r.stdout == "$(touch pwned) ; rm -rf / '\n"
    assert not list(d.rglob("pwned"))


def test_exec_on_an_unknown_instance_is_a_clear_error(applied: tuple[Path, str, str]) -> None:
    d, ep, _iid = applied
    r = _cli(d, ep, "exec", "nosuch", "--", "true")
    assert r.returncode == 1
    assert "no instance 'nosuch'" in r.stderr and "Traceback" not in r.stderr


def test_logs_shows_the_training_log_whole_and_its_tail(applied: tuple[Path, str, str]) -> None:
    d, ep, iid = applied
    log = d / ".trainctl" / "sandbox" / iid / "scratch" / "train.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(f"step {i} loss {1 / (i + 1):.4f}\n" for i in range(3000))
    log.write_text(text)
    r = _cli(d, ep, "logs", "trainer")
    assert r.returncode == 0, r.stderr
    assert r.stdout == text                     # 60 KB: several pages, nothing cut
    t = _cli(d, ep, "logs", "trainer", "--tail", "30")
    assert t.stdout == text[-30:]
    none = _cli(d, ep, "logs", "other")
    assert none.returncode == 1 and "no `training.log`" in none.stderr


def test_logs_follow_prints_what_the_job_appends(applied: tuple[Path, str, str]) -> None:
    d, ep, iid = applied
    log = d / ".trainctl" / "sandbox" / iid / "scratch" / "train.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("epoch 1\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "planner", "--endpoint-url", ep, "logs", "trainer",
         "--follow", "--interval", "0.3"],
        cwd=d, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ.copy())
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"epoch 1\n"
        with log.open("a") as f:
            f.write("epoch 2\n")
        deadline = time.monotonic() + 30
        line = b""
        while time.monotonic() < deadline and not line:
            line = proc.stdout.readline()
        assert line == b"epoch 2\n"
    finally:
        proc.kill()
        proc.wait(timeout=10)
