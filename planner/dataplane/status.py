"""The status line every data-plane script ends with, and how trainctl reads it.

A script prints `TRAINCTL_STATUS {"status": "ok"|"failed"|"refused", ...}` as its last
status line; "refused" is a safety refusal (e.g. mount.sh on a device that may hold data),
a failure like "failed". Anything else (no output, no status line, bad JSON, an unexpected
status, a non-zero exit after "ok") is never a success.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

STATUS_PREFIX = "TRAINCTL_STATUS "

State = Literal["ok", "failed", "refused", "unknown"]


@dataclass(frozen=True)
class ScriptResult:
    state: State
    data: dict[str, Any] = field(default_factory=dict)
    output: str = ""

    @property
    def ok(self) -> bool:
        return self.state == "ok"

    def message(self, limit: int = 4000) -> str:
        """One readable explanation for a failed or unknown result."""
        if self.ok:
            return "ok"
        reason = self.data.get("error") or self.data.get("reason") or self.state
        if self.state == "refused":
            detail = self.data.get("detail")
            reason = f"refused: {reason}" + (f" ({detail})" if detail else "")
        where = f" (line {self.data['line']}: {self.data['command']})" if (
            "line" in self.data and "command" in self.data) else ""
        out = truncate_output(self.output, limit).strip()
        return f"{reason}{where}" + (f"\n--- output ---\n{out}" if out else "")


def parse_status(output: str | None, exit_code: int | None = None) -> ScriptResult:
    """The result of a script from its output: the last `TRAINCTL_STATUS {json}` line wins.

    `exit_code`, when the transport knows it, turns an "ok" from a script that then
    exited non-zero into "failed".
    """
    text = output or ""
    line = None
    for raw in reversed(text.splitlines()):
        if raw.startswith(STATUS_PREFIX):
            line = raw[len(STATUS_PREFIX):]
            break
    if line is None:
        why = "no output" if not text.strip() else "no TRAINCTL_STATUS line in the output"
        return ScriptResult("unknown", {"reason": why}, text)
    try:
        doc = json.loads(line)
    except ValueError as e:
        return ScriptResult("unknown", {"reason": f"unparsable status line: {e}"}, text)
    if not isinstance(doc, dict):
        return ScriptResult("unknown", {"reason": "status line is not a JSON object"}, text)
    status = doc.get("status")
    if status not in ("ok", "failed", "refused"):
        return ScriptResult("unknown", {"reason": f"unexpected status {status!r}"}, text)
    data = {k: v for k, v in doc.items() if k != "status"}
    if status == "ok" and exit_code not in (None, 0):
        data.setdefault("error", f"script exited with code {exit_code} after reporting ok")
        return ScriptResult("failed", data, text)
    return ScriptResult(status, data, text)


def truncate_output(text: str, limit: int = 4000) -> str:
    """`text` cut to about `limit` characters, keeping its head and its tail."""
    if limit <= 0:
        return ""
    if len(text) <= limit:
        return text
    marker = f"\n... [{len(text) - limit} characters cut] ...\n"
    keep = max(limit - len(marker), 0)
    head = keep // 3
    tail = keep - head
    return text[:head] + marker + (text[-tail:] if tail else "")
