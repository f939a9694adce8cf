"""Where the cost ledger lives: `.trainctl/ledger.jsonl`, or `ledger.jsonl` under an
s3:// `state:` prefix (shared by a team). One JSON event per line, checked on read."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from planner.errors import TrainctlError
from planner.ledger import LedgerEvent, event_from_json, event_to_json, reconcile

LEDGER_FILE = "ledger.jsonl"


def _parse(text: str, where: str) -> list[LedgerEvent]:
    lines = text.split("\n")
    out = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line, parse_constant=_no_constant)
            out.append(event_from_json(doc))
        except json.JSONDecodeError:
            if n == len(lines):        # a line torn by a crash: the last one, unterminated
                continue
            raise TrainctlError(f"{where}:{n}: not a ledger line (invalid JSON)") from None
        except (KeyError, TypeError, ValueError, OverflowError) as e:
            raise TrainctlError(f"{where}:{n}: not a ledger line: "
                                f"{type(e).__name__}: {e}") from None
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number here")


class LedgerStore:
    def __init__(self, state_dir: str, state: str | None, s3: Any = None):
        self.s3_uri = state.rstrip("/") + "/" + LEDGER_FILE if (
            state and state.startswith("s3://")) else None
        self.path = os.path.join(state_dir, LEDGER_FILE)
        self.s3 = s3

    def _bucket_key(self) -> tuple[str, str]:
        assert self.s3_uri
        bucket, _, key = self.s3_uri[len("s3://"):].partition("/")
        return bucket, key

    def read(self) -> list[LedgerEvent]:
        if self.s3_uri:
            bucket, key = self._bucket_key()
            try:
                body = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            except self.s3.exceptions.NoSuchKey:
                return []
            return _parse(body.decode("utf-8", "replace"), self.s3_uri)
        try:
            with open(self.path, encoding="utf-8", errors="replace") as f:
                return _parse(f.read(), self.path)
        except FileNotFoundError:
            return []
        except OSError as e:
            raise TrainctlError(f"{self.path}: cannot read the cost ledger: "
                                f"{e.strerror or e}") from None

    def append(self, events: Iterable[LedgerEvent]) -> None:
        data = "".join(json.dumps(event_to_json(e)) + "\n" for e in events)
        if not data:
            return
        if self.s3_uri:
            bucket, key = self._bucket_key()
            try:
                old = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            except self.s3.exceptions.NoSuchKey:
                old = b""
            self.s3.put_object(Bucket=bucket, Key=key, Body=old + data.encode())
            return
        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            raise TrainctlError(f"{self.path}: cannot write the cost ledger: "
                                f"{e.strerror or e}") from None

    def update(self, ec2: Any, project: str, now: datetime,
               removed_by_trainctl: frozenset[str] = frozenset()) -> list[LedgerEvent]:
        """Observe the project, record what changed; every event, old and new."""
        from planner.aws.find import observe_project

        events = self.read()
        new = reconcile(events, observe_project(ec2, project), now, removed_by_trainctl)
        self.append(new)
        return [*events, *new]
