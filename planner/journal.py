"""The apply journal: `.trainctl/journal/PLAN_ID.jsonl`, one fsync'd JSON line per step event.

A crashed apply leaves at most one torn line at the end; the reader skips it, and the
writer starts a fresh line when it reopens such a file.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


class JournalEvent(StrEnum):
    """A journal line's `event` (the value is the wire form)."""

    STARTED = "started"
    FINISHED = "finished"
    FAILED = "failed"
    SKIPPED = "skipped"
    INTERRUPTED = "interrupted"


EVENTS = tuple(e.value for e in JournalEvent)


def journal_path(state_dir: str, plan_id: str) -> str:
    return os.path.join(state_dir, "journal", f"{plan_id}.jsonl")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Journal:
    """Append-only, thread-safe writer. Every line is flushed and fsync'd before returning."""

    def __init__(self, path: str, plan_id: str):
        self.path = path
        self.plan_id = plan_id
        self._lock = threading.Lock()
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self._f = open(path, "a+b")  # noqa: SIM115 - closed by close()
        self._terminate_torn_line()

    def _terminate_torn_line(self) -> None:
        size = self._f.seek(0, os.SEEK_END)
        if size:
            self._f.seek(size - 1)
            if self._f.read(1) != b"\n":
                self._write(b"\n")

    def _write(self, data: bytes) -> None:
        self._f.write(data)
        self._f.flush()
        os.fsync(self._f.fileno())

    def event(self, address: str | None, phase: str | None, event: JournalEvent | str,
              message: str = "", facts: Mapping[str, str] | None = None) -> dict[str, Any]:
        if event not in EVENTS:
            raise ValueError(f"unknown journal event {event!r}")
        line = {
            "ts": _now(),
            "plan_id": self.plan_id,
            "address": address,
            "phase": phase,
            "event": str(event),
            "message": message,
            "facts": dict(facts or {}),
        }
        data = (json.dumps(line, sort_keys=False, separators=(",", ":")) + "\n").encode()
        with self._lock:
            self._write(data)
        return line

    def close(self) -> None:
        with self._lock:
            if not self._f.closed:
                self._f.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_journal(path: str) -> list[dict[str, Any]]:
    """Every complete event in the journal, in order, each checked against
    planner.fileschemas.JOURNAL_LINE_SCHEMA. A line torn by a crash (not JSON: a prefix of
    an object never is) is skipped; a JSON line of the wrong shape is a FileCheckError
    naming the file, line and field."""
    from planner.filecheck import FileCheckError, field_name, issues_of, loads_strict
    from planner.fileschemas import JOURNAL_LINE_SCHEMA

    try:
        with open(path, "rb") as f:
            lines = f.read().split(b"\n")
    except IsADirectoryError:
        raise FileCheckError(f"{path}: is a directory, not a journal") from None
    except OSError as e:
        raise FileCheckError(f"{path}: cannot read the journal: {e.strerror or e}") from None
    events: list[dict[str, Any]] = []
    for n, raw in enumerate(lines):
        if not raw.strip():
            continue
        try:
            doc = loads_strict(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError, RecursionError):
            continue  # a line cut short by a crash (the next writer ended it)
        issues = issues_of(doc, JOURNAL_LINE_SCHEMA)
        if issues:
            p, m = issues[0]
            raise FileCheckError(f"{path}:{n + 1}: {field_name(p)}: {m}")
        events.append(doc)
    return events
