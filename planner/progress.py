"""Apply progress: a rich live table of steps on a terminal, one plain line per event elsewhere.

On a terminal the table is transient: once the run stops, one plain line per step that
ended (with its facts, e.g. `id=vol-...`) is printed instead, so a run taller than the
terminal is never cut and the ids are kept in the scrollback.
rich.progress is imported lazily (the CLI's help must stay cheap).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TextIO

from planner.executor import Step, StepEvent

if TYPE_CHECKING:
    from rich.console import Console

STATUS_WIDTH = 11          # "not started", the longest status label
ADDRESS_MAX_WIDTH = 60     # the address column never needs more than this to stay whole
_ENDED = ("finished", "failed", "skipped", "interrupted")

_STATUS = {  # journal event -> (label, rich style)
    "started": ("running", "cyan"),
    "finished": ("done", "green"),
    "failed": ("failed", "bold red"),
    "skipped": ("skipped", "yellow"),
    "interrupted": ("not started", "dim"),
}


def _styled(label: str, style: str) -> str:
    from rich.markup import escape

    return f"[{style}]{escape(label):<11}[/]"


def _plain_line(e: StepEvent) -> str:
    head = f"{e.action.value} {e.address}: "
    if e.event in ("skipped", "interrupted") and e.message:
        return head + e.message          # "skipped (upstream ...)", "blocked: ...", ...
    line = head + _STATUS[e.event][0]
    if e.elapsed is not None:
        line += f" ({e.elapsed:.1f}s)"
    if e.facts:
        line += " " + " ".join(f"{k}={v}" for k, v in sorted(e.facts.items()))
    if e.message:
        line += f": {e.message}"
    return line


class ApplyProgress:
    """Callable as the executor's `on_event`; a context manager around the run."""

    def __init__(self, steps: Sequence[Step], *, color: bool = True,
                 console: Console | None = None, stream: TextIO | None = None):
        from rich.console import Console

        self.console = console or Console(file=stream, no_color=not color,
                                          highlight=False, stderr=False)
        self.live = self.console.is_terminal
        self.steps = list(steps)
        self._lock = threading.Lock()
        self._progress: Any = None
        self._tasks: dict[Step, Any] = {}
        self._ended: dict[Step, StepEvent] = {}     # the last end event of each step

    def __enter__(self) -> ApplyProgress:
        if self.live and self.steps:
            from rich.progress import Progress, ProgressColumn, SpinnerColumn, TextColumn
            from rich.table import Column
            from rich.text import Text

            class RunningSpinner(SpinnerColumn):
                def render(self, task: Any) -> Any:
                    return super().render(task) if task.started else Text(" ")

            class Elapsed(ProgressColumn):
                def render(self, task: Any) -> Any:
                    t = task.finished_time if task.finished else task.elapsed
                    return Text("-" if t is None else f"{t:.1f}s", style="yellow",
                                justify="right")

            # Status and address stay whole; the message takes what is left and is cut.
            label_width = min(ADDRESS_MAX_WIDTH,
                              max(len(f"{a.value} {addr}") for addr, a in self.steps))
            self._progress = Progress(
                RunningSpinner(finished_text=" "),
                TextColumn("{task.fields[status]}",
                           table_column=Column(no_wrap=True, min_width=STATUS_WIDTH)),
                TextColumn("{task.description}", markup=False,
                           table_column=Column(no_wrap=True, min_width=label_width)),
                Elapsed(table_column=Column(no_wrap=True, min_width=6)),
                TextColumn("{task.fields[message]}", markup=False, style="dim",
                           table_column=Column(ratio=1, no_wrap=True, overflow="ellipsis")),
                console=self.console,
                auto_refresh=True,
                transient=True,
                expand=True,
            )
            for step in self.steps:
                self._tasks[step] = self._progress.add_task(
                    f"{step[1].value} {step[0]}", start=False, total=1,
                    status=_styled("pending", "dim"), message="")
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            progress, self._progress = self._progress, None
        if progress is None:
            return
        progress.stop()
        order = {step: k for k, step in enumerate(self.steps)}
        for step in sorted(self._ended, key=lambda s: order.get(s, len(order))):
            self.console.print(_plain_line(self._ended[step]), markup=False,
                               highlight=False, soft_wrap=True)

    def __call__(self, e: StepEvent) -> None:
        with self._lock:
            if self._progress is None:
                self.console.print(_plain_line(e), markup=False, highlight=False,
                                   soft_wrap=True)
                return
            step = (e.address, e.action)
            if e.event in _ENDED:
                self._ended[step] = e
            task = self._tasks.get(step)
            if task is None:
                task = self._tasks[step] = self._progress.add_task(
                    f"{e.action.value} {e.address}", start=False, total=1,
                    status=_styled("pending", "dim"), message="")
            label, style = _STATUS[e.event]
            message = e.message
            if e.event == "skipped" and message.startswith("blocked: "):
                label, style, message = "blocked", "magenta", message[len("blocked: "):]
            elif e.event == "skipped":
                message = message.removeprefix("skipped ")
            if e.event == "started":
                self._progress.start_task(task)
                self._progress.update(task, status=_styled(label, style))
            else:
                self._progress.update(task, status=_styled(label, style),
                                      message=message[:100], completed=1)
