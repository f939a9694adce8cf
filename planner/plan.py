"""The plan: frozen data; its string enums (planner.vocab) have the JSON form as values.

`plan_to_json` / `plan_from_json` are the versioned file format (DESIGN section 5);
the dataclasses are internal and may change without changing the format.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from planner.errors import PlanFileError
from planner.payloads import Payload, PayloadError, from_json, payload_from_json
from planner.vocab import (
    FORMAT_VERSION,
    SUMMARY_KEYS,
    Action,
    ChangeKind,
    Reason,
    ResourceType,
    Rule,
)

REPLACE_REASONS = frozenset({Reason.REPLACE_BECAUSE_CANNOT_UPDATE,
                             Reason.REPLACE_BECAUSE_DEPENDENCY_REPLACED})
REPLACE_ACTIONS = ((Action.DELETE, Action.CREATE), (Action.CREATE, Action.DELETE))

DUPLICATE_MARK = "@"     # `volume.V@vol-...`: a second live resource carrying volume.V


def duplicate_address(address: str, resource_id: str) -> str:
    """The address of the change that deletes a duplicate: `volume.V@vol-0123...`."""
    return f"{address}{DUPLICATE_MARK}{resource_id}"


def base_address(address: str) -> str:
    """`volume.V@vol-...` -> `volume.V`; any other address unchanged."""
    return address.split(DUPLICATE_MARK, 1)[0]


@dataclass(frozen=True)
class Block:
    rule: Rule
    message: str


@dataclass(frozen=True)
class PlanWarning:
    address: str | None
    rule: Rule
    message: str


@dataclass(frozen=True)
class Change:
    address: str
    type: ResourceType
    actions: tuple[Action, ...]
    reason: Reason
    id: str | None = None
    # a Payload (planner.payloads) or None; a plain mapping given here (tests, the plan
    # reader) is coerced to the type's payload by __post_init__ (checked by from_json)
    before: Payload | None = None
    after: Payload | None = None
    replace_paths: tuple[str, ...] = ()
    depends_on: tuple[str, ...] = ()
    blocked_by: tuple[Block, ...] = ()

    def __post_init__(self) -> None:
        # a plain mapping becomes the type's payload (payload_from_json checks it)
        for side in ("before", "after"):
            value = getattr(self, side)
            if value is not None and not isinstance(value, Payload):
                object.__setattr__(self, side, payload_from_json(self.type, value))
            elif value is not None and self.type != value.TYPE:
                raise PayloadError(f"{self.address}: {side}: a {value.TYPE} payload on a "
                                   f"{self.type} change")
        problem = contract_problem(self)
        if problem is not None:
            raise ChangeContractError(self.address, problem)

    @property
    def kind(self) -> ChangeKind:
        """One of create/update/replace/delete/no-op (the summary's keys)."""
        if len(self.actions) == 2:
            return ChangeKind.REPLACE
        return ChangeKind(self.actions[0].value)

    @property
    def blocked(self) -> bool:
        return bool(self.blocked_by)

    @property
    def is_noop(self) -> bool:
        return self.actions == (Action.NOOP,)

    @property
    def deletes(self) -> bool:
        return Action.DELETE in self.actions

    @property
    def deleted_objects(self) -> tuple[int, int]:
        """(objects, bytes) this change deletes under an S3 prefix: the stale objects an
        upload removes from a dataset's stage (`delete_objects`, `delete_bytes`)."""
        after = self.after
        n = getattr(after, "delete_objects", None)
        b = getattr(after, "delete_bytes", None)
        return (n if isinstance(n, int) else 0, b if isinstance(b, int) else 0)

    @property
    def name(self) -> str:
        """The address without its type: `trainer.scratch` for `attachment.trainer.scratch`."""
        return self.address.split(".", 1)[1]


class ChangeContractError(ValueError):
    """A change that breaks Terraform's contract between its actions and payloads."""

    def __init__(self, address: str, problem: str):
        super().__init__(f"{address}: {problem}")
        self.address, self.problem = address, problem


def contract_problem(c: Change) -> str | None:
    """What is wrong with C's actions, payloads and replace paths, or None: a create has
    no `before`, a delete no `after`, a no-op changes nothing (`before`, when shown,
    equals `after`), a replace (two actions) names its replace_paths or a replace
    reason."""
    actions = c.actions
    if not actions or len(actions) > 2:
        return f"{len(actions)} actions (a change has one, or two for a replace)"
    if len(actions) == 2:
        if actions not in REPLACE_ACTIONS:
            return (f"actions {'+'.join(a.value for a in actions)} are no replace "
                    f"(delete+create or create+delete)")
        if not c.replace_paths and c.reason not in REPLACE_REASONS:
            return (f"a replace names no replace_paths and its reason {c.reason.value} is "
                    f"not a replace reason")
        return None
    action = actions[0]
    if c.replace_paths:
        return f"a {action.value} has replace_paths ({', '.join(c.replace_paths)})"
    if action is Action.CREATE and c.before is not None:
        return "a create has no before (there is nothing yet)"
    if action is Action.DELETE and c.after is not None:
        return "a delete has no after (nothing is left)"
    if action is Action.NOOP and c.before is not None and c.before != c.after:
        return "a no-op changes nothing, yet its before and after differ"
    return None


@dataclass(frozen=True)
class UnknownPrice:
    """A billable resource the price table cannot price: its figures are unknown."""

    address: str | None          # the address, or None for an untagged live resource
    item: str                    # "p5en.48xlarge", "EBS gp3"
    region: str
    message: str                 # "no price for p5en.48xlarge in eu-north-1"


COST_FIGURES = ("hourly_usd_before", "hourly_usd_after", "daily_usd_after", "accumulated_usd")


@dataclass(frozen=True)
class CostSummary:
    """The figures hold the priced part; a figure named in `incomplete` also has a part
    with no price, so it is unknown ("at least" the figure), `null` in JSON, never $0."""

    hourly_usd_before: float = 0.0
    hourly_usd_after: float = 0.0
    daily_usd_after: float = 0.0
    accumulated_usd: float = 0.0
    exceeded: tuple[str, ...] = ()
    unknown_prices: tuple[UnknownPrice, ...] = ()
    incomplete: tuple[str, ...] = ()

    def figure(self, name: str) -> float | None:
        """A figure, or None when part of it has no price."""
        return None if name in self.incomplete else float(getattr(self, name))

    @property
    def unknown(self) -> bool:
        return bool(self.unknown_prices)


@dataclass(frozen=True)
class Expiry:
    """An instance's lifetime and idle limits, and when its lifetime ends (None until it
    is launched: then `max_lifetime` after launch)."""

    instance: str
    max_lifetime: str | None
    expires_at: str | None
    idle_stop_minutes: int | None
    action: str


@dataclass(frozen=True)
class DataLocation:
    """Where an instance reads a dataset: a path on it, or the S3 URI for direct-s3."""

    dataset: str
    instance: str
    strategy: str
    location: str


@dataclass(frozen=True)
class PlanOptions:
    destroy: bool = False
    targets: tuple[str, ...] = ()


@dataclass(frozen=True)
class Plan:
    project: str
    region: str
    created_at: str              # ISO 8601 UTC, `Z` suffix
    spec_digest: str
    live_digest: str
    changes: tuple[Change, ...]
    warnings: tuple[PlanWarning, ...] = ()
    cost: CostSummary = field(default_factory=CostSummary)
    options: PlanOptions = field(default_factory=PlanOptions)
    cost_enforced: bool = False
    data_locations: tuple[DataLocation, ...] = ()
    expiries: tuple[Expiry, ...] = ()
    format_version: str = FORMAT_VERSION

    @property
    def plan_id(self) -> str:
        """Stable id of this plan: used for the journal and ClientTokens."""
        import hashlib

        raw = f"{self.project}|{self.created_at}|{self.spec_digest}|{self.live_digest}"
        return hashlib.sha256(raw.encode()).hexdigest()[:16]

    @property
    def summary(self) -> dict[str, int]:
        counts = dict.fromkeys(SUMMARY_KEYS, 0)
        for c in self.changes:
            counts["blocked" if c.blocked else c.kind] += 1
        return counts

    @property
    def has_changes(self) -> bool:
        """True when apply would do something (blocked changes are never carried out)."""
        return any(not c.is_noop and not c.blocked for c in self.changes)

    @property
    def shows_changes(self) -> bool:
        """True when live state differs from the spec: any change that is not a no-op,
        blocked ones included (what `--detailed-exitcode` reports as 2)."""
        return any(not c.is_noop for c in self.changes)

    @property
    def applyable(self) -> bool:
        """Enforced cost limits: not applyable above a limit or with any unknown price."""
        return not (self.cost_enforced and (self.cost.exceeded or self.cost.unknown))

    def change(self, address: str) -> Change:
        for c in self.changes:
            if c.address == address:
                return c
        raise KeyError(address)


def change_to_json(c: Change) -> dict[str, Any]:
    return {
        "address": c.address,
        "type": c.type.value,
        "actions": [a.value for a in c.actions],
        "reason": c.reason.value,
        "id": c.id,
        "before": None if c.before is None else c.before.to_json(),
        "after": None if c.after is None else c.after.to_json(),
        "replace_paths": list(c.replace_paths),
        "depends_on": list(c.depends_on),
        "blocked_by": [{"rule": b.rule.value, "message": b.message} for b in c.blocked_by],
    }


def cost_to_json(plan: Plan) -> dict[str, Any]:
    """Unknown figures are null, with the priced part under `at_least`."""
    cost = plan.cost
    return {
        **{k: cost.figure(k) for k in COST_FIGURES},
        "at_least": {k: float(getattr(cost, k)) for k in COST_FIGURES if k in cost.incomplete},
        "unknown_prices": [
            {"address": u.address, "item": u.item, "region": u.region, "message": u.message}
            for u in cost.unknown_prices
        ],
        "exceeded": list(cost.exceeded),
        "enforce": plan.cost_enforced,
    }


def cost_from_json(cost: Mapping[str, Any]) -> CostSummary:
    at_least = cost.get("at_least") or {}
    figures = {k: float(at_least.get(k, 0.0)) if cost.get(k, 0.0) is None
               else float(cost.get(k, 0.0)) for k in COST_FIGURES}
    return CostSummary(
        **figures,
        exceeded=tuple(cost.get("exceeded", ())),
        unknown_prices=tuple(
            UnknownPrice(u.get("address"), str(u["item"]), str(u["region"]), str(u["message"]))
            for u in cost.get("unknown_prices", ())
        ),
        incomplete=tuple(k for k in COST_FIGURES if k in cost and cost[k] is None),
    )


def plan_to_json(plan: Plan) -> dict[str, Any]:
    """The plan file's JSON form (DESIGN section 5), keys in the documented order."""
    return {
        "format_version": plan.format_version,
        "plan_id": plan.plan_id,
        "project": plan.project,
        "region": plan.region,
        "created_at": plan.created_at,
        "spec_digest": plan.spec_digest,
        "live_digest": plan.live_digest,
        "options": {"destroy": plan.options.destroy, "targets": list(plan.options.targets)},
        "changes": [change_to_json(c) for c in plan.changes],
        "warnings": [
            {"address": w.address, "rule": w.rule.value, "message": w.message}
            for w in plan.warnings
        ],
        "cost": cost_to_json(plan),
        "data_locations": [
            {"dataset": d.dataset, "instance": d.instance, "strategy": d.strategy,
             "location": d.location}
            for d in plan.data_locations
        ],
        "expiries": [
            {"instance": e.instance, "max_lifetime": e.max_lifetime,
             "expires_at": e.expires_at, "idle_stop_minutes": e.idle_stop_minutes,
             "action": e.action}
            for e in plan.expiries
        ],
        "summary": plan.summary,
        "applyable": plan.applyable,
    }


def change_from_json(c: Mapping[str, Any], index: int = 0) -> Change:
    """One change of a plan file; PlanFileError names its address and what is wrong
    (a payload that does not fit its type, a change that breaks the contract)."""
    address = str(c["address"])
    where = f"changes[{index}] {address}"
    rtype = ResourceType(c["type"])
    sides: dict[str, Payload | None] = {}
    for side in ("before", "after"):
        try:
            sides[side] = from_json(rtype, c.get(side))
        except PayloadError as e:
            raise PlanFileError(f"{where}: {side}: {e}") from None
    try:
        return Change(
            address=address,
            type=rtype,
            actions=tuple(Action(a) for a in c["actions"]),
            reason=Reason(c["reason"]),
            id=c.get("id"),
            before=sides["before"],
            after=sides["after"],
            replace_paths=tuple(c.get("replace_paths", ())),
            depends_on=tuple(c.get("depends_on", ())),
            blocked_by=tuple(
                Block(Rule(b["rule"]), str(b["message"])) for b in c.get("blocked_by", ())
            ),
        )
    except ChangeContractError as e:
        raise PlanFileError(f"{where}: {e.problem}") from None


def plan_from_json(doc: Any) -> Plan:
    """Parse a plan file's JSON; raise PlanFileError on anything foreign or corrupt."""
    if not isinstance(doc, dict):
        raise PlanFileError("not a trainctl plan: the top level is not a JSON object")
    version = doc.get("format_version")
    if version is None:
        raise PlanFileError("not a trainctl plan: no format_version")
    if version != FORMAT_VERSION:
        raise PlanFileError(
            f"plan format_version {version!r} is not supported (this trainctl reads "
            f"{FORMAT_VERSION!r})"
        )
    from planner.filecheck import field_name, issues_of
    from planner.fileschemas import plan_schema

    issues = issues_of(doc, plan_schema())
    if issues:
        raise PlanFileError("not a valid plan file:\n" + "\n".join(
            f"{field_name(p)}: {m}" for p, m in issues[:20]))
    try:
        changes = tuple(change_from_json(c, i) for i, c in enumerate(doc["changes"]))
        cost = doc.get("cost", {})
        options = doc.get("options", {})
        plan = Plan(
            project=str(doc["project"]),
            region=str(doc["region"]),
            created_at=str(doc["created_at"]),
            spec_digest=str(doc["spec_digest"]),
            live_digest=str(doc["live_digest"]),
            changes=changes,
            warnings=tuple(
                PlanWarning(w.get("address"), Rule(w["rule"]), str(w["message"]))
                for w in doc.get("warnings", ())
            ),
            cost=cost_from_json(cost),
            options=PlanOptions(
                destroy=bool(options.get("destroy", False)),
                targets=tuple(options.get("targets", ())),
            ),
            cost_enforced=bool(cost.get("enforce", False)),
            data_locations=tuple(
                DataLocation(str(d["dataset"]), str(d["instance"]), str(d["strategy"]),
                             str(d["location"]))
                for d in doc.get("data_locations", ())
            ),
            expiries=tuple(
                Expiry(str(e["instance"]), e["max_lifetime"], e["expires_at"],
                       e["idle_stop_minutes"], str(e["action"]))
                for e in doc.get("expiries", ())
            ),
        )
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as e:
        raise PlanFileError(f"corrupt plan file: {type(e).__name__}: {e}") from None
    if "plan_id" in doc and doc["plan_id"] != plan.plan_id:
        raise PlanFileError("corrupt plan file: plan_id does not match its contents")
    return plan
