"""The preview cross-check: a stack pass's preview against trainctl's plan (pure).

`check_preview(plan, events)` returns the refusals: every destructive op the plan does
not carry, every op trainctl never asks for, every op it does not know, and every
destructive op the preview's summary counts that no event showed (the SDK drops the
events it cannot parse, so the summary is the only trace of them). `review_preview`
returns the refusals and the warnings (an unplanned create or update).

Resource names are trainctl addresses: a URN's last segment
(`urn:pulumi:STACK::PROJECT::aws:ebs/volume:Volume::volume.scratch`). Nothing here
imports pulumi: the events are read by attribute, as `pulumi.automation.EngineEvent`s.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from planner.engines.pulumi.state import TYPES
from planner.plan import Change, Plan

SILENT = frozenset({"same", "refresh"})
NON_DESTRUCTIVE = frozenset({"create", "update", "import", "read"})
DELETES = frozenset({"delete"})
REPLACES = frozenset({"replace", "create-replacement", "delete-replaced"})
DESTRUCTIVE = DELETES | REPLACES
# ops trainctl's programs never ask for: each one is refused wherever it appears
NEVER = frozenset({"import-replacement", "read-replacement", "discard", "discard-replaced",
                   "remove-pending-replace"})
KNOWN = SILENT | NON_DESTRUCTIVE | DESTRUCTIVE | NEVER
# counted in the summary: every op that removes or replaces something
SUMMARY_DESTRUCTIVE = DESTRUCTIVE | NEVER
ENGINE_TYPE_PREFIX = "pulumi:"      # the stack itself and its providers


@dataclass(frozen=True)
class Refusal:
    """An op of the preview that `up` must not carry out; the pass stops before `up`."""

    address: str | None     # None: the summary or the stream, not one resource
    op: str
    message: str


@dataclass(frozen=True)
class PreviewWarning:
    address: str | None
    op: str
    message: str


@dataclass(frozen=True)
class PreviewReview:
    refusals: tuple[Refusal, ...]
    warnings: tuple[PreviewWarning, ...]

    @property
    def ok(self) -> bool:
        return not self.refusals


@dataclass(frozen=True)
class PreviewStep:
    """One resource step of a preview: its op, its address and its Pulumi type."""

    op: str
    urn: str
    type: str

    @property
    def address(self) -> str:
        return address_of(self.urn)

    @property
    def engine_owned(self) -> bool:
        """The stack resource or a provider: not a trainctl resource."""
        return self.type.startswith(ENGINE_TYPE_PREFIX)


def address_of(urn: str) -> str:
    """A URN's resource name, which is the trainctl address."""
    return urn.rsplit("::", 1)[-1]


def op_name(op: Any) -> str:
    """An OpType (a str Enum) or a plain string as its wire form."""
    return str(op.value) if isinstance(op, Enum) else str(op)


RESOURCE_EVENTS = (("resource_pre_event", "resourcePreEvent"),
                   ("res_outputs_event", "resOutputsEvent"),
                   ("res_op_failed_event", "resOpFailedEvent"))
CORRUPT = "maybe-corrupt"          # a summary that says the state may be corrupt


def _summary_of(event: Any) -> Mapping[Any, int] | None:
    if isinstance(event, Mapping):       # the JSON form itself (an op the SDK rejects)
        raw = event.get("summaryEvent")
        if not isinstance(raw, Mapping):
            return None
        counts = dict(raw.get("resourceChanges") or {})
        return {**counts, CORRUPT: 1} if raw.get("maybeCorrupt") else counts
    summary = getattr(event, "summary_event", None)
    if summary is None:
        return None
    counts = dict(summary.resource_changes or {})
    return {**counts, CORRUPT: 1} if getattr(summary, "maybe_corrupt", False) else counts


def _metas_of(event: Any) -> list[tuple[Any, Any, Any]]:
    """(op, urn, type) of each resource event inside `event`."""
    out = []
    for attr, key in RESOURCE_EVENTS:
        if isinstance(event, Mapping):
            inner = event.get(key)
            meta = inner.get("metadata") if isinstance(inner, Mapping) else None
            if isinstance(meta, Mapping):
                out.append((meta.get("op", ""), meta.get("urn", ""), meta.get("type", "")))
            continue
        meta = getattr(getattr(event, attr, None), "metadata", None)
        if meta is not None:
            out.append((meta.op, meta.urn, meta.type))
    return out


def preview_steps(events: Iterable[Any]) -> tuple[list[PreviewStep], list[Mapping[Any, int]]]:
    """The distinct (op, urn) resource steps of the events, and every summary's counts.
    An event is a `pulumi.automation.EngineEvent` or its JSON form (a mapping)."""
    steps: dict[tuple[str, str], PreviewStep] = {}
    summaries: list[Mapping[Any, int]] = []
    for event in events:
        if (summary := _summary_of(event)) is not None:
            summaries.append(summary)
        for op, urn, rtype in _metas_of(event):
            step = PreviewStep(op_name(op), str(urn), str(rtype or ""))
            steps.setdefault((step.op, step.urn), step)
    return list(steps.values()), summaries


def _unblocked(plan: Plan) -> dict[str, Change]:
    return {c.address: c for c in plan.changes if not c.blocked}


def _planned(changes: Mapping[str, Change], step: PreviewStep) -> bool:
    """Does the plan carry this destructive op, unblocked, for the resource of this
    address and of this type (an instance named `volume.old` is not volume.old)?"""
    change, op = changes.get(step.address), step.op
    if change is None or TYPES.get(step.type) != change.type.value:
        return False
    if op in REPLACES:
        return change.kind == "replace"
    return change.deletes


def _engine_step(step: PreviewStep, steps: list[PreviewStep]) -> Refusal | None:
    """The stack or a provider: deleted only with every resource of the stack; replaced
    never (a provider replace means another region or account)."""
    if step.op in SILENT or step.op in NON_DESTRUCTIVE:
        return None
    if step.op in DELETES and all(s.op in DELETES for s in steps if not s.engine_owned):
        return None
    return Refusal(step.address, step.op,
                   f"the preview would {step.op} {step.type} {step.address!r}, which "
                   "trainctl never asks for while the stack keeps resources")


def _step_refusal(plan: Mapping[str, Change], step: PreviewStep,
                  steps: list[PreviewStep]) -> Refusal | None:
    addr, op = step.address, step.op
    if op not in KNOWN:
        return Refusal(addr, op, f"the preview has an op trainctl does not know: {op} "
                                 f"{addr} ({step.type})")
    if op in NEVER:
        return Refusal(addr, op, f"the preview would {op} {addr}: trainctl never runs "
                                 "this op (a pending or discarded replacement); "
                                 "see docs/pulumi.md, recovery")
    if step.engine_owned:
        return _engine_step(step, steps)
    if op in DESTRUCTIVE and not _planned(plan, step):
        what = "replace" if op in REPLACES else "delete"
        change = plan.get(addr)
        why = ("the plan does not have it" if change is None
               else f"the plan says {change.kind}" if TYPES.get(step.type) == change.type.value
               else f"it is a {step.type}, the plan's {addr} a {change.type.value}")
        return Refusal(addr, op, f"the preview would {op} {addr} but the plan does not "
                                 f"{what} it ({why})")
    return None


OK_WHEN = {"create": ("create", "replace"), "update": ("update",),
           "import": ("no-op", "update"), "read": ()}


def _step_warning(plan: Mapping[str, Change], all_changes: Mapping[str, Change],
                  step: PreviewStep) -> PreviewWarning | None:
    """An unplanned create, update, import or read (nothing is removed by it)."""
    if step.engine_owned or step.op not in NON_DESTRUCTIVE:
        return None
    change = plan.get(step.address)
    if change is not None and change.kind in OK_WHEN[step.op]:
        return None
    said = ("it is blocked in the plan" if step.address in all_changes and change is None
            else "the plan does not have it" if change is None
            else f"the plan says {change.kind}")
    return PreviewWarning(step.address, step.op,
                          f"the preview would {step.op} {step.address}, which the plan "
                          f"does not ({said})")


def _summary_refusals(steps: list[PreviewStep],
                      summaries: list[Mapping[Any, int]]) -> list[Refusal]:
    if not summaries:
        return [Refusal(None, "summary", "the preview sent no summary event: its changes "
                                         "cannot be checked")]
    seen: dict[str, int] = {}
    for s in steps:
        seen[s.op] = seen.get(s.op, 0) + 1
    out = []
    for op, count in summaries[-1].items():
        name = op_name(op)
        if isinstance(count, bool) or not isinstance(count, int):
            out.append(Refusal(None, name, f"the preview's summary counts {count!r} {name}, "
                                           "not a number of resources"))
            continue
        if count <= 0:
            continue
        if name == CORRUPT:
            out.append(Refusal(None, name, "the preview's summary says the stack's state "
                                           "may be corrupt; see docs/pulumi.md, recovery"))
        elif name not in KNOWN:
            out.append(Refusal(None, name, f"the preview's summary counts {count} {name}, "
                                           "an op trainctl does not know"))
        elif name in SUMMARY_DESTRUCTIVE and count > seen.get(name, 0):
            out.append(Refusal(None, name, f"the preview's summary counts {count} {name} "
                                           f"but its events showed {seen.get(name, 0)} "
                                           "(an event the SDK could not read)"))
    return out


def review_preview(plan: Plan, events: Iterable[Any]) -> PreviewReview:
    """Refusals and warnings of one stack pass's preview against `plan`."""
    steps, summaries = preview_steps(events)
    unblocked = _unblocked(plan)
    everything = {c.address: c for c in plan.changes}
    refusals: list[Refusal] = []
    warnings: list[PreviewWarning] = []
    for step in steps:
        if (refusal := _step_refusal(unblocked, step, steps)) is not None:
            refusals.append(refusal)
        elif (warning := _step_warning(unblocked, everything, step)) is not None:
            warnings.append(warning)
    refusals.extend(_summary_refusals(steps, summaries))
    return PreviewReview(tuple(refusals), tuple(warnings))


def check_preview(plan: Plan, events: Iterable[Any]) -> list[Refusal]:
    """The refusals of a preview against `plan` (empty: `up` may run)."""
    return list(review_preview(plan, events).refusals)


def preview_warnings(plan: Plan, events: Iterable[Any]) -> list[PreviewWarning]:
    """The warnings of a preview against `plan` (an unplanned create, update, import)."""
    return list(review_preview(plan, events).warnings)


def describe_refusals(refusals: Iterable[Refusal]) -> str:
    """One message for a refused pass: every refusal on its own line."""
    lines = [r.message for r in refusals]
    return "the Pulumi preview was refused, nothing was changed:\n  " + "\n  ".join(lines)
