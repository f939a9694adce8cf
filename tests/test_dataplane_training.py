"""training_check.sh: a real background `python train.py` and pid files."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_dataplane_support import BashTransport, path_without

from planner.dataplane import steps

IID = "i-0train"


@pytest.fixture
def job_dir(tmp_path: Path) -> Path:
    # a unique folder name, so a pattern can single out this test's process on a shared host
    d = tmp_path / f"job{uuid.uuid4().hex}"
    d.mkdir()
    (d / "train.py").write_text("import time\ntime.sleep(300)\n")
    return d


@pytest.fixture
def trainer(job_dir: Path) -> Iterator[subprocess.Popen[bytes]]:
    p = subprocess.Popen([sys.executable, str(job_dir / "train.py")], cwd=job_dir)
    try:
        yield p
    finally:
        p.kill()
        p.wait()


def test_running_python_train_blocks_then_stops_blocking(
        job_dir: Path, trainer: subprocess.Popen[bytes], tmp_path: Path) -> None:
    t = BashTransport(tmp_path / "sandbox")
    r = steps.training_running(t, IID, pid_file=None, patterns=["python.*train"])
    assert r.ok, r.output
    assert r.data["running"] is True
    assert trainer.pid in r.data["pids"]

    mine = f"python.*{job_dir.name}/train"
    r = steps.training_running(t, IID, pid_file="/var/run/trainctl/training.pid",
                               patterns=["no-such-process-h7", mine])
    assert r.ok and r.data["running"] is True
    assert r.data["pids"] == [trainer.pid]
    assert f"process {trainer.pid} matches" in r.data["evidence"]
    assert "train.py" in r.data["evidence"]

    trainer.kill()
    trainer.wait()
    r = steps.training_running(t, IID, pid_file="/var/run/trainctl/training.pid",
                               patterns=[mine])
    assert r.ok and r.data["running"] is False and r.data["pids"] == []


def test_the_check_does_not_see_itself(tmp_path: Path) -> None:
    # the patterns are in the script text; its own bash (and subshells) must not count
    t = BashTransport(tmp_path / "sandbox")
    pattern = f"pattern-only-in-the-script-{uuid.uuid4().hex}"
    r = steps.training_running(t, IID, pid_file=None, patterns=[pattern])
    assert r.ok and r.data["running"] is False, r.output
    proc = subprocess.run(["bash", "-c", steps.scripts.training_check_script(
        pid_file=None, patterns=[pattern])], capture_output=True, text=True, timeout=60)
    assert '"running":false' in proc.stdout


def test_live_pid_file_blocks(job_dir: Path, trainer: subprocess.Popen[bytes],
                              tmp_path: Path) -> None:
    t = BashTransport(tmp_path / "sandbox")
    pid_file = t.sandbox(IID) / "var" / "run" / "trainctl" / "training.pid"
    pid_file.parent.mkdir(parents=True)
    pid_file.write_text(f"{trainer.pid}\n")
    r = steps.training_running(t, IID, pid_file="/var/run/trainctl/training.pid", patterns=[])
    assert r.ok and r.data["running"] is True, r.output
    assert r.data["pids"] == [trainer.pid]
    assert "training.pid" in r.data["evidence"]

    trainer.kill()
    trainer.wait()
    r = steps.training_running(t, IID, pid_file="/var/run/trainctl/training.pid", patterns=[])
    assert r.ok and r.data["running"] is False          # a stale pid file does not block


def test_cannot_tell_is_not_ok(tmp_path: Path) -> None:
    t = BashTransport(tmp_path / "sandbox")
    pid_file = t.sandbox(IID) / "run" / "train.pid"
    pid_file.parent.mkdir(parents=True)
    pid_file.write_text("not-a-pid")
    r = steps.training_running(t, IID, pid_file="/run/train.pid", patterns=[])
    assert r.state == "failed" and "cannot tell" in r.data["error"]
    # an invalid regular expression: pgrep exits 2
    r = steps.training_running(t, IID, pid_file=None, patterns=["python(["])
    assert r.state == "failed" and "cannot tell" in r.data["error"]
    # no pgrep at all
    nopgrep = BashTransport(tmp_path / "sandbox", {"PATH": path_without(tmp_path, "pgrep")})
    r = steps.training_running(nopgrep, IID, pid_file=None, patterns=["x"])
    assert r.state == "failed" and "pgrep is not installed" in r.data["error"]
