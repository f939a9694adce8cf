"""What an apply did: per-step results and their counts in the plan's terms (the
executor's output; string enums whose values are the wire form)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from planner.journal import JournalEvent
from planner.plan import Action


class StepStatus(StrEnum):
    """A step's outcome (the value is the wire form)."""

    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"
    NOT_STARTED = "not-started"
    BLOCKED = "blocked"


DONE = StepStatus.DONE
FAILED = StepStatus.FAILED
SKIPPED = StepStatus.SKIPPED
NOT_STARTED = StepStatus.NOT_STARTED
BLOCKED = StepStatus.BLOCKED
STATUSES = tuple(StepStatus)


@dataclass(frozen=True)
class StepEvent:
    """What on_event receives. `event` is a journal event name."""

    address: str
    action: Action
    event: JournalEvent
    message: str = ""
    elapsed: float | None = None
    facts: Mapping[str, str] = field(default_factory=dict)


@dataclass
class StepResult:
    address: str
    action: Action
    status: StepStatus = NOT_STARTED
    message: str = ""
    elapsed: float | None = None
    facts: dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.action.value} {self.address}"


KIND_DONE = {"create": "created", "update": "updated", "replace": "replaced",
             "delete": "deleted"}


@dataclass
class ExecutionResult:
    steps: list[StepResult]
    interrupted: bool = False
    kinds: dict[str, str] = field(default_factory=dict)    # address -> Change.kind
    refused: set[str] = field(default_factory=set)         # blocked by apply's re-check

    def by_status(self, status: StepStatus | str) -> list[StepResult]:
        return [s for s in self.steps if s.status == status]

    def step(self, address: str, action: Action | str) -> StepResult:
        for s in self.steps:
            if s.address == address and s.action == action:
                return s
        raise KeyError((address, action))

    def change_status(self, address: str) -> StepStatus:
        """One status per change: blocked, failed, not started, skipped or done."""
        mine = {s.status for s in self.steps if s.address == address}
        for status in (BLOCKED, FAILED, NOT_STARTED, SKIPPED):
            if status in mine:
                return status
        return DONE

    @property
    def counts(self) -> dict[str, int]:
        """Steps per status; `blocked` counts blocked changes (one per change)."""
        counts: dict[str, int] = dict.fromkeys(STATUSES, 0)
        blocked: set[str] = set()
        for s in self.steps:
            if s.status == BLOCKED:
                blocked.add(s.address)
            else:
                counts[s.status] += 1
        counts[BLOCKED] = len(blocked)
        return counts

    @property
    def change_counts(self) -> dict[str, int]:
        """Changes per status (a replace's two steps count once), as the plan counts."""
        counts: dict[str, int] = dict.fromkeys(STATUSES, 0)
        for addr in dict.fromkeys(s.address for s in self.steps):
            counts[self.change_status(addr)] += 1
        return counts

    def done_by_kind(self) -> dict[str, int]:
        out = dict.fromkeys(KIND_DONE, 0)
        for addr in dict.fromkeys(s.address for s in self.steps):
            kind = self.kinds.get(addr)
            if kind in out and self.change_status(addr) == DONE:
                out[kind] += 1
        return out

    @property
    def ok(self) -> bool:
        return not self.interrupted and not self.by_status(FAILED) and not self.refused

    def summary_line(self) -> str:
        """In the plan's terms: `Apply: 3 created, ... 2 blocked; 0 failed, 0 skipped.`"""
        c = self.change_counts
        done = self.done_by_kind()
        line = ("Apply: " + ", ".join(f"{n} {KIND_DONE[k]}" for k, n in done.items())
                + f", {c[BLOCKED]} blocked; {c[FAILED]} failed, {c[SKIPPED]} skipped.")
        if self.refused:
            line += f" {len(self.refused)} blocked by the re-check at apply time."
        if c[NOT_STARTED]:
            line += f" {c[NOT_STARTED]} not started (interrupted)."
        return line
