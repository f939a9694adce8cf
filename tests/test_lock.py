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

from planner.aws.lock_store import S3Lock
from planner.errors import LockHeldError
from planner.lock import LocalLock, LockError, LockInfo, holding


def _race(state_dir: str, start: Any, results: Any, done: Any) -> None:
    start.wait(30)
    try:
        info = LocalLock(state_dir).acquire("apply")
    except LockHeldError:
        results.put("held")
    else:
        results.put(info.id)
    done.wait(60)      # stay alive: a holder that exits is gone, and its lock taken over


def test_two_processes_racing_exactly_one_wins(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    start, results, done = ctx.Event(), ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=_race, args=(str(tmp_path), start, results, done))
             for _ in range(6)]
    for p in procs:
        p.start()
    start.set()
    outcomes = [results.get(timeout=60) for _ in procs]
    done.set()
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


def _dead_holder_lock(state_dir: Path) -> str:
    """A lock taken by a process that then exited without releasing it (as kill -9 does)."""
    proc = subprocess.run(
        [sys.executable, "-c",
         f"from planner.lock import LocalLock; print(LocalLock({str(state_dir)!r})"
         ".acquire('apply').id)"],
        capture_output=True, text=True, check=True, cwd=Path(__file__).parent.parent)
    return proc.stdout.strip()


def test_a_dead_holders_lock_is_taken_over_with_a_message(tmp_path: Path) -> None:
    old_id = _dead_holder_lock(tmp_path)
    said: list[str] = []
    info = LocalLock(str(tmp_path)).acquire("apply", said.append)
    assert info.id != old_id and LocalLock(str(tmp_path)).status() == info
    assert len(said) == 1 and old_id in said[0] and "is gone" in said[0]
    assert socket.gethostname() in said[0] and "pid " in said[0]


def test_a_live_holder_on_another_host_is_never_taken_over(tmp_path: Path) -> None:
    other = LockInfo(id="b" * 32, holder="ann", host="elsewhere", pid=2 ** 22 + 7,
                     time="2026-01-01T00:00:00Z", operation="apply")
    (tmp_path / "lock").write_bytes(other.to_bytes())
    with pytest.raises(LockHeldError) as e:
        LocalLock(str(tmp_path)).acquire("apply")
    assert "ann@elsewhere" in str(e.value)
    assert LocalLock(str(tmp_path)).status() == other


def test_apply_takes_over_a_dead_holders_lock(tmp_path: Path) -> None:
    (tmp_path / "trainctl.yaml").write_text(
        "version: 1\nproject: demo\nregion: us-east-1\n"
        "defaults: {availability_zone: us-east-1a}\n")
    (tmp_path / "live.json").write_text(
        '{"format": "1", "project": "demo", "region": "us-east-1", '
        '"read_at": "2026-01-01T00:00:00Z"}')
    old_id = _dead_holder_lock(tmp_path / ".trainctl")
    # an unreachable endpoint: the lock is taken before AWS is read, then released
    r = run_cli("--endpoint-url", "http://127.0.0.1:9", "apply", "--auto-approve",
                cwd=tmp_path, timeout=60)
    assert f"taking over the lock {tmp_path / '.trainctl' / 'lock'}" in r.stderr
    assert old_id in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / ".trainctl" / "lock").exists()


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


def test_s3_dead_holder_on_this_host_is_taken_over(s3: Any) -> None:
    dead = LockInfo(id="a" * 32, holder="me", host=socket.gethostname(), pid=2 ** 22 + 7,
                    time="2026-01-01T00:00:00Z", operation="apply")
    s3.put_object(Bucket="team-state", Key="p/lock", Body=dead.to_bytes())
    said: list[str] = []
    info = S3Lock(s3, "s3://team-state/p/").acquire("apply", said.append)
    assert info.id != dead.id and S3Lock(s3, "s3://team-state/p/").status() == info
    assert "a" * 32 in said[0] and "s3://team-state/p/lock" in said[0]


def test_s3_lock_from_another_host_past_the_limit_gets_a_release_hint(s3: Any) -> None:
    from planner.lock import STALE_AFTER_HOURS

    old = LockInfo(id="c" * 32, holder="bob", host="ci-runner-7", pid=4242,
                   time="2026-01-01T00:00:00Z", operation="apply")
    s3.put_object(Bucket="team-state", Key="q/lock", Body=old.to_bytes())
    lock = S3Lock(s3, "s3://team-state/q/")
    with pytest.raises(LockHeldError) as e:
        lock.acquire("apply")
    msg = str(e.value)
    assert "bob@ci-runner-7 (pid 4242)" in msg and "2026-01-01T00:00:00Z" in msg
    assert f"older than {STALE_AFTER_HOURS} h" in msg
    assert f"trainctl lock release {'c' * 32}" in msg
    lock.release(old.id)
    assert lock.acquire("apply").id != old.id


def test_s3_lock_from_another_host_within_the_limit_has_no_release_hint(s3: Any) -> None:
    fresh = LockInfo.new("apply")
    fresh = LockInfo(id=fresh.id, holder="bob", host="ci-runner-7", pid=4242,
                     time=fresh.time, operation="apply")
    s3.put_object(Bucket="team-state", Key="r/lock", Body=fresh.to_bytes())
    with pytest.raises(LockHeldError) as e:
        S3Lock(s3, "s3://team-state/r/").acquire("apply")
    assert "lock release" not in str(e.value) and "bob@ci-runner-7" in str(e.value)


@pytest.mark.parametrize("content, field", [
    ('{"id": "x", "holder": "a", "host": "h", "pid": "12", "time": "t", "operation": "o"}',
     "pid: expected an integer"),
    ('{"id": "x", "holder": "a", "host": "h", "pid": 12, "time": "2026-01-01T00:00:00Z"}',
     "missing required key 'operation'"),
    ('{"id": "x", "holder": "a", "host": "h", "pid": 1e400, "time": "t", "operation": "o"}',
     "pid: number too large"),
    ('[1, 2]', "expected an object"),
])
def test_an_invalid_lock_is_refused_naming_the_field(tmp_path: Path, content: str,
                                                     field: str) -> None:
    (tmp_path / "lock").write_text(content)
    with pytest.raises(LockHeldError) as e:
        LocalLock(str(tmp_path)).acquire("apply")
    assert field in str(e.value) and str(tmp_path / "lock") in str(e.value)
    assert "trainctl lock release unreadable" in str(e.value)


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
