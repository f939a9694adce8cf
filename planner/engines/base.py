"""The engine boundary: units of steps, run by the executor.

A *step* is one phase of one change, `(address, action)` (planner.phases.Step). An
engine has a `name` and two methods:

- `units(steps, changes) -> list[Unit]`: a partition of `steps` (every step in exactly
  one unit). The executor contracts the phase graph by unit and refuses a grouping
  that makes a cycle. The direct engine makes one unit per step; a stack engine makes
  one unit per stack pass.
- `run(unit, changes, report)`: carry out the unit. `report(step, outcome)` is called
  once per step of the unit, `outcome` being the step's facts for the journal
  (e.g. `{"id": "vol-..."}`) or a `StepFailed` (a `StepBlocked` when a rule refused it).
  A step the engine never reports counts as failed ("not reported"), or as skipped when
  a step it depends on in the same unit failed. An exception out of `run` fails every
  step not yet reported.

The unit `run` receives holds only the steps that may run: the executor has dropped
those skipped, blocked or refused by a guard (planner.guards runs before the unit, for
every engine). An engine looks at `change.type`, the action, `change.id`,
`change.before` and `change.after` (data the diff decided), never at `change.reason`.
Engines create, update and delete; they do not guard.

`StepEngine` is the base for engines that act one step at a time: it implements
`units` (one per step) and `run` on top of `apply(change, action) -> facts`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar, runtime_checkable

from planner.payloads import Payload
from planner.phases import Step
from planner.plan import Action, Block, Change

OUTPUT_LIMIT = 2000     # characters of script output kept in a failure message


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


Outcome = Mapping[str, str] | StepFailed
Report = Callable[[Step, Outcome], None]


def step_key(step: Step) -> str:
    """`ACTION ADDRESS`, e.g. `delete volume.data`: a one-step unit's key."""
    return f"{step[1].value} {step[0]}"


@dataclass(frozen=True)
class Unit:
    """Steps an engine runs together; `key` names the unit (unique per apply)."""

    key: str
    steps: tuple[Step, ...]


@runtime_checkable
class Engine(Protocol):
    name: str

    def units(self, steps: Sequence[Step], changes: Mapping[str, Change]) -> list[Unit]:
        """A partition of `steps` into units."""
        ...

    def run(self, unit: Unit, changes: Mapping[str, Change], report: Report) -> None:
        """Carry out `unit`, calling `report` once per step."""
        ...


class StepEngine:
    """An engine that acts one step at a time: one unit per step, `apply` per step."""

    name = "step"

    def apply(self, change: Change, action: Action) -> Mapping[str, str]:
        """Carry out one phase (CREATE, UPDATE or DELETE) of `change`; return facts."""
        raise NotImplementedError

    def units(self, steps: Sequence[Step], changes: Mapping[str, Change]) -> list[Unit]:
        return [Unit(step_key(s), (s,)) for s in steps]

    def run(self, unit: Unit, changes: Mapping[str, Change], report: Report) -> None:
        for step in unit.steps:
            try:
                facts = self.apply(changes[step[0]], step[1])
            except StepFailed as e:
                report(step, e)
            else:
                report(step, facts or {})


P = TypeVar("P", bound=Payload)


def payload_of(change: Change, cls: type[P], *, before: bool = False) -> P:
    """`change.after` (or `change.before`) as the typed payload `cls` (fields the diff
    did not write read as None; an absent payload is an empty one). StepFailed when the
    change carries a payload of another type."""
    p = change.before if before else change.after
    if p is None:
        return cls()
    if not isinstance(p, cls):
        raise StepFailed(f"{change.address}: a {type(p).__name__} where a {cls.__name__} "
                         f"belongs")
    return p


def cut(text: str, limit: int = OUTPUT_LIMIT) -> str:
    """`text` shortened to about `limit` characters, keeping its head and its tail."""
    text = text.strip()
    if len(text) <= limit:
        return text
    head = limit // 3
    tail = limit - head
    skipped = len(text) - head - tail
    return f"{text[:head]}\n... ({skipped} characters left out) ...\n{text[-tail:]}"
