"""Plan and apply as functions (the commands, the bench and the tests call them); the
exit code derives from the outcome. Click commands only parse options, call these and
print through a Console."""

from __future__ import annotations

from planner.workflow.applying import (
    EXIT_INTERRUPTED,
    ApplyOutcome,
    ApplyRefused,
    ApplyRequest,
    apply_plan,
)
from planner.workflow.console import Console, PlainConsole
from planner.workflow.planning import PlanOutcome, PlanRequest, make_plan

__all__ = ["EXIT_INTERRUPTED", "ApplyOutcome", "ApplyRefused", "ApplyRequest", "Console",
           "PlainConsole", "PlanOutcome", "PlanRequest", "apply_plan", "exit_code",
           "make_plan"]


def exit_code(outcome: PlanOutcome | ApplyOutcome) -> int:
    """plan: 2 with --detailed-exitcode when the plan shows any change (blocked ones
    included), else 0. apply: 0 when every step ran (or there was nothing to do), 1 when
    one failed or was blocked at the last check, 130 when interrupted."""
    if isinstance(outcome, PlanOutcome):
        return 2 if outcome.request.detailed_exitcode and outcome.plan.shows_changes else 0
    result = outcome.result
    if result is None:
        return 0
    if result.interrupted:
        return EXIT_INTERRUPTED
    return 0 if result.ok else 1
