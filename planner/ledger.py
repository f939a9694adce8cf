"""The cost ledger: when each resource was launched, changed and removed. Pure.

`reconcile` turns what a live read observed into new events (a launch at the resource's
own create or launch time, a change or a removal at the time of the read), so spend so
far never falls when an instance is terminated. `spend` prices each resource's intervals
with a rate function the caller gives (planner.cost's table).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any

LEDGER_FORMAT = "1"


class Kind(StrEnum):
    INSTANCE = "instance"
    VOLUME = "volume"


class LedgerEventType(StrEnum):
    LAUNCH = "launch"
    CHANGE = "change"
    REMOVE = "remove"


@dataclass(frozen=True)
class Observed:
    """One billable resource as a live read saw it."""

    id: str
    address: str
    kind: Kind
    since: datetime                      # its create / launch time, from AWS
    charged: bool                        # instances: pending/running; volumes: always
    attrs: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    flags: tuple[str, ...] = ()          # persistent, protected, temporary (shown only)
    state: str = ""                      # as EC2 says (shown only: not a ledger change)


@dataclass(frozen=True)
class LedgerEvent:
    ts: datetime
    id: str
    address: str
    kind: Kind
    event: LedgerEventType
    charged: bool = False
    attrs: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


Rate = Callable[[Kind, Mapping[str, Any]], float | None]


def current(events: Iterable[LedgerEvent]) -> dict[str, LedgerEvent]:
    """The latest event of every resource the ledger still holds as existing."""
    out: dict[str, LedgerEvent] = {}
    for e in sorted(events, key=lambda e: e.ts):
        if e.event is LedgerEventType.REMOVE:
            out.pop(e.id, None)
        else:
            out[e.id] = e
    return out


def reconcile(events: Iterable[LedgerEvent], observed: Iterable[Observed],
              now: datetime, removed_by_trainctl: frozenset[str] = frozenset()
              ) -> list[LedgerEvent]:
    """The events that bring the ledger up to what was observed at NOW. A removal says
    who removed it: trainctl (an id in REMOVED_BY_TRAINCTL, deleted by this apply) or
    someone outside trainctl."""
    events = list(events)
    open_ = current(events)
    ever = {e.id for e in events}
    new: list[LedgerEvent] = []
    seen: set[str] = set()
    for o in observed:
        seen.add(o.id)
        last = open_.get(o.id)
        if last is None:
            ts = o.since if o.id not in ever and o.since <= now else now
            new.append(LedgerEvent(ts, o.id, o.address, o.kind, LedgerEventType.LAUNCH,
                                   o.charged, MappingProxyType(dict(o.attrs))))
        elif last.charged != o.charged or dict(last.attrs) != dict(o.attrs):
            new.append(LedgerEvent(now, o.id, o.address, o.kind, LedgerEventType.CHANGE,
                                   o.charged, MappingProxyType(dict(o.attrs))))
    for rid, last in open_.items():
        if rid not in seen:
            by = "trainctl" if rid in removed_by_trainctl else "outside"
            new.append(LedgerEvent(now, rid, last.address, last.kind,
                                   LedgerEventType.REMOVE, False,
                                   MappingProxyType({"by": by})))
    return new


@dataclass(frozen=True)
class Spend:
    id: str
    address: str
    kind: Kind
    usd: float | None                    # None: a rate is unknown
    removed: bool
    since: datetime


def spend(events: Iterable[LedgerEvent], now: datetime, rate: Rate) -> list[Spend]:
    """Spend so far of every resource the ledger knows, removed ones included."""
    by_id: dict[str, list[LedgerEvent]] = {}
    for e in sorted(events, key=lambda e: e.ts):
        by_id.setdefault(e.id, []).append(e)
    out = []
    for rid, evs in by_id.items():
        usd: float | None = 0.0
        for e, nxt in zip(evs, [*evs[1:], None], strict=True):
            if e.event is LedgerEventType.REMOVE or not e.charged:
                continue
            end = nxt.ts if nxt is not None else now
            hours = max(0.0, (end - e.ts).total_seconds() / 3600)
            r = rate(e.kind, e.attrs)
            usd = None if usd is None or r is None else usd + r * hours
        out.append(Spend(rid, evs[0].address, evs[0].kind, usd,
                         evs[-1].event is LedgerEventType.REMOVE, evs[0].ts))
    return out


def event_to_json(e: LedgerEvent) -> dict[str, Any]:
    from planner.live import iso

    return {"ts": iso(e.ts), "id": e.id, "address": e.address, "kind": e.kind.value,
            "event": e.event.value, "charged": e.charged, "attrs": dict(e.attrs)}


def event_from_json(doc: Mapping[str, Any]) -> LedgerEvent:
    """One ledger line; ValueError/TypeError/KeyError on a bad one (the reader names it)."""
    from planner.live import parse_iso

    if not isinstance(doc, Mapping):
        raise TypeError("a ledger line is not an object")
    for key in ("ts", "id", "address"):
        if not isinstance(doc[key], str):
            raise TypeError(f"{key} is not a string")
    if not isinstance(doc.get("charged", False), bool):
        raise TypeError("charged is not a boolean")
    attrs = doc.get("attrs", {})
    if not isinstance(attrs, Mapping):
        raise TypeError("attrs is not an object")
    return LedgerEvent(parse_iso(doc["ts"]), doc["id"], doc["address"], Kind(doc["kind"]),
                       LedgerEventType(doc["event"]), bool(doc.get("charged", False)),
                       MappingProxyType(dict(attrs)))


def removed_outside(events: Iterable[LedgerEvent], kind: Kind) -> dict[str, str]:
    """Address -> id of the resources of KIND the ledger last saw existing, or saw removed
    by someone outside trainctl: if one is gone now, it was not trainctl's doing."""
    last: dict[str, LedgerEvent] = {}
    for e in sorted(events, key=lambda e: e.ts):
        if e.kind is kind:
            last[e.address] = e
    return {a: e.id for a, e in last.items()
            if e.event is not LedgerEventType.REMOVE or e.attrs.get("by") == "outside"}
