"""The journal: one fsync'd JSON line per event; torn lines from a crash are tolerated."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from planner.journal import Journal, journal_path, read_journal


def test_lines_are_json_with_the_documented_fields(tmp_path: Path) -> None:
    path = journal_path(str(tmp_path), "abc123")
    assert path == str(tmp_path / "journal" / "abc123.jsonl")
    with Journal(path, "abc123") as j:
        j.event("volume.a", "create", "started")
        j.event("volume.a", "create", "finished", facts={"id": "vol-1"})
    lines = Path(path).read_text().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(x) for x in lines)
    assert list(first) == ["ts", "plan_id", "address", "phase", "event", "message", "facts"]
    assert first["ts"].endswith("Z")
    assert second["facts"] == {"id": "vol-1"} and second["event"] == "finished"


def test_unknown_event_is_refused(tmp_path: Path) -> None:
    with Journal(str(tmp_path / "j.jsonl"), "p") as j, pytest.raises(ValueError):
        j.event("volume.a", "create", "exploded")


def test_each_line_is_on_disk_before_event_returns(tmp_path: Path) -> None:
    # A child process writes one event and is killed with SIGKILL right after: the line
    # must be there (flush + fsync before returning), with no buffered tail lost.
    path = tmp_path / "j.jsonl"
    code = (
        "import os, signal, sys\n"
        "from planner.journal import Journal\n"
        f"j = Journal({str(path)!r}, 'p')\n"
        "for i in range(3):\n"
        "    j.event(f'volume.v{i}', 'create', 'finished')\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parent.parent)
    assert proc.returncode == -9
    assert [e["address"] for e in read_journal(str(path))] == [
        "volume.v0", "volume.v1", "volume.v2"]


def test_a_torn_last_line_is_skipped_and_the_next_writer_starts_a_new_line(
        tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    with Journal(str(path), "p") as j:
        j.event("volume.a", "create", "started")
    with open(path, "ab") as f:
        f.write(b'{"ts": "2026-01-01T00:00:00Z", "plan_id": "p", "addr')   # crash mid-write
    assert [e["event"] for e in read_journal(str(path))] == ["started"]
    with Journal(str(path), "p") as j:
        j.event("volume.a", "create", "finished")
    assert [e["event"] for e in read_journal(str(path))] == ["started", "finished"]


def test_concurrent_writers_never_interleave_lines(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    with Journal(str(path), "p") as j:
        def write(n: int) -> None:
            for i in range(25):
                j.event(f"volume.t{n}x{i}", "create", "finished", message="m" * 200)
        threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    events = read_journal(str(path))
    assert len(events) == 100 == len(path.read_text().splitlines())
