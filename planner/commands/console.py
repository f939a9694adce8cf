"""The workflow's Console on a terminal: click's echo, confirm and prompt, rich progress."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import click

from planner.phases import Step


def stdin_is_terminal() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (ValueError, OSError):
        return False


class ClickConsole:
    def __init__(self, *, no_color: bool = False):
        self.color = not no_color and sys.stdout.isatty()

    def out(self, text: str, *, nl: bool = True) -> None:
        click.echo(text, nl=nl, color=self.color)

    def err(self, text: str) -> None:
        click.echo(text, err=True)

    def interactive(self) -> bool:
        return stdin_is_terminal()

    def confirm(self, question: str) -> bool:
        return click.confirm(question, default=False)

    def prompt(self, question: str) -> str:
        return str(click.prompt(question, default="", show_default=False))

    def progress(self, steps: Sequence[Step]) -> Any:
        from planner.progress import ApplyProgress

        return ApplyProgress(steps, color=self.color)
