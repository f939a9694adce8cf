"""Run the `trainctl` CLI in-process (click's CliRunner isolation around planner.cli.main)
and classify the outcome: a clean exit (0/1/2 with a message) or a traceback."""

from __future__ import annotations

import os
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Outcome:
    code: int | str
    stdout: str
    stderr: str
    traceback: str = ""

    @property
    def clean(self) -> bool:
        """Exit 0, 1 or 2 with no traceback; a failure (1) says why on stderr."""
        if self.traceback or self.code not in (0, 1, 2):
            return False
        return self.code != 1 or bool(self.stderr.strip())


@contextmanager
def _cwd(path: Path | str | None) -> Iterator[None]:
    old = os.getcwd()
    if path is not None:
        os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def invoke(*args: str, cwd: Path | str | None = None) -> Outcome:
    from click.testing import CliRunner

    from planner.cli import main

    runner = CliRunner()
    with _cwd(cwd), runner.isolation() as streams:
        out, err = streams[0], streams[1]
        tb = ""
        try:
            main(list(args))
            code: int | str = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except BaseException:   # the point: any escape is a defect
            code, tb = "traceback", traceback.format_exc()
        return Outcome(code, out.getvalue().decode("utf-8", "replace"),
                       err.getvalue().decode("utf-8", "replace"), tb)
