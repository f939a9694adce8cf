"""The apply lock: atomic local file, S3 conditional put (moto server), the lock command."""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli

from planner.errors import LockHeldError
from planner.lock import LocalLock, LockError, LockInfo, S3Lock, holding


def _race(state_dir: str, start: Any, results: Any) -> None:
    start.wait(30)
    try:
        info = LocalLock(state_dir).acquire("apply")
    except LockHeldError:
        results.put("held")
    else:
        results.put(info.id)


def test_two_processes_racing_exactly_one_wins(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    start, results = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_race, args=(str(tmp_path), start, results)) for _ in range(6)]
    for p in procs:
        p.start()
    start.set()
    outcomes = [results.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(30)
    winners = [o for o in outcomes if o != "held"]
    assert len(winners) == 1, outcomes
    assert json.loads((tmp_path / "lock").read_text())["id"] == winners[0]


def test_lock_file_records_the_holder(tmp_path: Path) -> None:
    info = LocalLock(str(tmp_path / "st")).acquire("apply plan 1234")
    doc = json.loads((tmp_path / "st" / "lock").read_text())
    assert doc == {"id": info.id, "holder": info.holder, "host": socket.gethostname(),
                   "pid": os.getpid(), "time": info.time, "operation": "apply plan 1234"}
    assert len(info.id) == 32


def test_held_lock_names_who_where_since_without_hint_when_alive(tmp_path: Path) -> None:
    lock = LocalLock(str(tmp_path))
    info = lock.acquire("apply")
    with pytest.raises(LockHeldError) as e:
        lock.acquire("apply")
    msg = str(e.value)
    assert f"pid {os.getpid()}" in msg and info.time in msg and info.id in msg
    assert socket.gethostname() in msg
    assert "gone" not in msg


def test_stale_holder_gets_a_release_hint(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c",
         f"from planner.lock import LocalLock; print(LocalLock({str(tmp_path)!r})"
         ".acquire('apply').id)"],
        capture_output=True, text=True, check=True, cwd=Path(__file__).parent.parent)
    lock_id = proc.stdout.strip()
    with pytest.raises(LockHeldError) as e:
        LocalLock(str(tmp_path)).acquire("apply")
    assert "the holder process (pid" in str(e.value)
    assert f"is gone; if no apply is running: trainctl lock release {lock_id}" in str(e.value)


def test_release_with_the_wrong_id_is_refused(tmp_path: Path) -> None:
    lock = LocalLock(str(tmp_path))
    info = lock.acquire("apply")
    with pytest.raises(LockError, match="does not match"):
        lock.release("0" * 32)
    assert lock.status() == info
    lock.release(info.id)
    assert lock.status() is None
    with pytest.raises(LockError, match="not held"):
        lock.release(info.id)


def test_holding_releases_in_a_finally(tmp_path: Path) -> None:
    lock = LocalLock(str(tmp_path))
    with pytest.raises(RuntimeError), holding(lock, "apply"):
        assert lock.status() is not None
        raise RuntimeError("boom")
    assert lock.status() is None


def test_unreadable_lock_is_held_with_a_hint(tmp_path: Path) -> None:
    (tmp_path / "lock").write_text("")
    lock = LocalLock(str(tmp_path))
    with pytest.raises(LockHeldError, match="trainctl lock release unreadable"):
        lock.acquire("apply")
    lock.release("unreadable")
    assert lock.status() is None


def test_lock_command_status_and_release(tmp_path: Path) -> None:
    (tmp_path / "trainctl.yaml").write_text(
        "version: 1\nproject: demo\nregion: us-east-1\n"
        "defaults: {availability_zone: us-east-1a}\n")
    r = run_cli("lock", "status", cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.strip() == "unlocked", r.stderr
    info = LocalLock(str(tmp_path / ".trainctl")).acquire("apply")
    r = run_cli("lock", "status", cwd=tmp_path)
    assert r.returncode == 0 and info.id in r.stdout and "locked" in r.stdout
    r = run_cli("lock", "release", "deadbeef", cwd=tmp_path)
    assert r.returncode == 1 and "does not match" in r.stderr
    assert (tmp_path / ".trainctl" / "lock").exists()
    r = run_cli("lock", "release", info.id, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert not (tmp_path / ".trainctl" / "lock").exists()


# --- S3 ------------------------------------------------------------------------------------

@pytest.fixture
def s3(moto_endpoint: str) -> Any:
    from planner.aws.session import connect

    client = connect("us-east-1", moto_endpoint).s3
    client.create_bucket(Bucket="team-state")
    return client


def test_s3_lock_conditional_put(s3: Any) -> None:
    lock = S3Lock(s3, "s3://team-state/proj")
    assert lock.where == "s3://team-state/proj/lock"
    info = lock.acquire("apply")
    body = json.loads(s3.get_object(Bucket="team-state", Key="proj/lock")["Body"].read())
    assert body["id"] == info.id
    with pytest.raises(LockHeldError) as e:
        S3Lock(s3, "s3://team-state/proj/").acquire("apply")
    assert info.id in str(e.value) and "s3://team-state/proj/lock" in str(e.value)
    with pytest.raises(LockError, match="does not match"):
        lock.release("nope")
    assert lock.status() == info
    lock.release(info.id)
    assert lock.status() is None
    assert S3Lock(s3, "s3://team-state/proj/").acquire("apply").id != info.id


def test_s3_lock_race_one_winner(s3: Any) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def attempt(_: int) -> str:
        try:
            return S3Lock(s3, "s3://team-state/race/").acquire("apply").id
        except LockHeldError:
            return "held"

    with ThreadPoolExecutor(4) as pool:
        outcomes = list(pool.map(attempt, range(4)))
    assert len([o for o in outcomes if o != "held"]) >= 1
    holder = S3Lock(s3, "s3://team-state/race/").status()
    assert holder is not None and holder.id in outcomes


def test_s3_stale_holder_hint(s3: Any) -> None:
    dead = LockInfo(id="a" * 32, holder="me", host=socket.gethostname(), pid=2 ** 22 + 7,
                    time="2026-01-01T00:00:00Z", operation="apply")
    s3.put_object(Bucket="team-state", Key="p/lock", Body=dead.to_bytes())
    with pytest.raises(LockHeldError, match=f"trainctl lock release {'a' * 32}"):
        S3Lock(s3, "s3://team-state/p/").acquire("apply")


def test_lock_command_uses_the_s3_state_prefix(tmp_path: Path, s3: Any,
                                               moto_endpoint: str) -> None:
    (tmp_path / "trainctl.yaml").write_text(
        "version: 1\nproject: demo\nregion: us-east-1\nstate: s3://team-state/demo/\n"
        "defaults: {availability_zone: us-east-1a}\n")
    info = S3Lock(s3, "s3://team-state/demo/").acquire("apply")
    r = run_cli("--endpoint-url", moto_endpoint, "lock", "status", cwd=tmp_path)
    assert r.returncode == 0 and info.id in r.stdout, r.stderr
    r = run_cli("--endpoint-url", moto_endpoint, "lock", "release", info.id, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert S3Lock(s3, "s3://team-state/demo/").status() is None
    assert not (tmp_path / ".trainctl" / "lock").exists()
