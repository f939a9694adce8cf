"""The global options every command gets (`ctx.obj`); plain data, no click, so the
workflow (planner.workflow) takes them without importing the command line."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Options:
    file: str
    region: str | None
    endpoint_url: str | None
    no_color: bool = False

    @property
    def state_dir(self) -> str:
        """`.trainctl/` beside the spec file."""
        return os.path.join(os.path.dirname(os.path.abspath(self.file)), ".trainctl")
