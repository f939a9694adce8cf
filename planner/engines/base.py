"""The engine boundary: the executor calls `Engine.apply(change, action)` once per phase.

An engine looks only at `change.type`, the phase's `action`, `change.id` and
`change.after` (data the diff decided), never at `change.reason`. It returns facts for
the journal (e.g. `{"id": "vol-..."}`) or raises `StepFailed`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

from planner.plan import Action, Block, Change

OUTPUT_LIMIT = 2000     # characters of script output kept in a failure message


@runtime_checkable
class Engine(Protocol):
    name: str

    def apply(self, change: Change, action: Action) -> dict[str, str]:
        """Carry out one phase (CREATE, UPDATE or DELETE) of `change`; return facts."""
        ...


class StepFailed(Exception):
    """A step did not complete. `facts` holds what was done anyway (e.g. a created id)."""

    def __init__(self, message: str, *, facts: Mapping[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.facts: dict[str, str] = dict(facts or {})

    def __str__(self) -> str:
        return self.message


class StepBlocked(StepFailed):
    """The fresh rule check just before a destructive call refused the step."""

    def __init__(self, address: str, blocks: tuple[Block, ...]):
        self.blocks = tuple(blocks)
        detail = "; ".join(f"{b.rule.value}: {b.message}" for b in self.blocks)
        super().__init__(f"blocked at apply time ({address}): {detail}")


def cut(text: str, limit: int = OUTPUT_LIMIT) -> str:
    """`text` shortened to about `limit` characters, keeping its head and its tail."""
    text = text.strip()
    if len(text) <= limit:
        return text
    head = limit // 3
    tail = limit - head
    skipped = len(text) - head - tail
    return f"{text[:head]}\n... ({skipped} characters left out) ...\n{text[-tail:]}"
