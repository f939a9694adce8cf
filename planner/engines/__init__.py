"""Engines carry out a plan's changes; this is their registry.

`ENGINES` maps an engine's name (`--engine NAME`) to `"module:attr"`, imported only
when that engine is built: a factory taking an `EngineContext` and returning an Engine
(planner.engines.base), or a class whose `from_context(ctx)` is that factory. A factory
that cannot run on this machine raises `EngineUnavailable` (what to install), before
any change.

Importing this package never imports boto3.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from planner.engines.base import (
    Engine,
    StepBlocked,
    StepEngine,
    StepFailed,
    Unit,
    cut,
    step_key,
)
from planner.errors import TrainctlError

ENGINES: dict[str, str] = {
    "direct": "planner.engines.direct:DirectEngine",
    "pulumi": "planner.engines.pulumi.engine:PulumiEngine",
}


class EngineUnavailable(TrainctlError):
    """The engine cannot run here (e.g. a CLI it needs is missing); nothing was changed."""


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class EngineContext:
    """What an engine factory may use. `aws` is an AwsContext, `ssm` an SsmTransport,
    `plan` the Plan being applied, `overrides` a rules.Overrides, `live` the LiveState
    the plan's changes were diffed against (this apply's fresh read, under the lock;
    None when there is none): what the Pulumi engine imports a resource no stack holds
    yet with (a no-op change carries no fields)."""

    spec: Any
    aws: Any
    ssm: Any
    plan: Any
    overrides: Any
    clock: Callable[[], datetime] = field(default=_now)
    endpoint_url: str | None = None
    state_dir: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    live: Any = None

    @property
    def plan_id(self) -> str:
        return str(getattr(self.plan, "plan_id", "") or "")


def engine_class(name: str) -> Any:
    """What `name` is registered as (a class or a factory), imported. KeyError when
    unknown."""
    module, _, attr = ENGINES[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def build_engine(name: str, ctx: EngineContext) -> Engine:
    """The engine registered as `name`, built for `ctx`. EngineUnavailable when it is
    unknown or cannot run here (raised before any change)."""
    if name not in ENGINES:
        known = ", ".join(sorted(ENGINES))
        raise EngineUnavailable(f"unknown engine {name!r} (known: {known})")
    target = engine_class(name)
    factory: Callable[[EngineContext], Engine] = getattr(target, "from_context", target)
    return factory(ctx)


__all__ = ["ENGINES", "Engine", "EngineContext", "EngineUnavailable", "StepBlocked",
           "StepEngine", "StepFailed", "Unit", "build_engine", "cut", "engine_class",
           "step_key"]
