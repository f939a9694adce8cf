"""What the workflow says and asks, as an interface: the click commands print through
`ClickConsole` (planner.commands), tests and the bench through `PlainConsole`."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, Protocol, TextIO

from planner.phases import Step


class Console(Protocol):
    color: bool

    def out(self, text: str, *, nl: bool = True) -> None:
        """Standard output (the plan, the summary)."""

    def err(self, text: str) -> None:
        """Standard error (warnings, the lock, the target)."""

    def interactive(self) -> bool:
        """True when a person can answer a question."""

    def confirm(self, question: str) -> bool:
        """y/N."""

    def prompt(self, question: str) -> str:
        """A typed answer (deleting or replacing needs the word yes)."""

    def progress(self, steps: Sequence[Step]) -> Any:
        """A context manager that is also the executor's `on_event`."""


class PlainConsole:
    """Writes to two streams, never asks (a person who is not there cannot answer)."""

    def __init__(self, out: TextIO | None = None, err: TextIO | None = None, *,
                 color: bool = False, answer: str | None = None):
        self.stdout = out or sys.stdout
        self.stderr = err or sys.stderr
        self.color = color
        self.answer = answer          # the one answer to every question; None: no person

    def out(self, text: str, *, nl: bool = True) -> None:
        self.stdout.write(text + ("\n" if nl else ""))

    def err(self, text: str) -> None:
        self.stderr.write(text + "\n")

    def interactive(self) -> bool:
        return self.answer is not None

    def confirm(self, question: str) -> bool:
        return (self.answer or "").strip().lower() in ("y", "yes")

    def prompt(self, question: str) -> str:
        return self.answer or ""

    def progress(self, steps: Sequence[Step]) -> Any:
        from planner.progress import ApplyProgress

        return ApplyProgress(steps, color=self.color, stream=self.stdout)
