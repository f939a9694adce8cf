"""Engines carry out a plan's changes: `direct` (boto3) now, `pulumi` beside it later.

Importing this package never imports boto3.
"""

from __future__ import annotations

import importlib
from typing import Any

from planner.engines.base import Engine, StepBlocked, StepFailed, cut

ENGINES = {
    "direct": "planner.engines.direct:DirectEngine",
}


def engine_class(name: str) -> Any:
    """The engine class registered as `name` (imported lazily). KeyError when unknown."""
    module, _, attr = ENGINES[name].partition(":")
    return getattr(importlib.import_module(module), attr)


__all__ = ["ENGINES", "Engine", "StepBlocked", "StepFailed", "cut", "engine_class"]
