"""Cost of a plan from the bundled, dated price table (`planner/data/prices.json`). Pure.

- Instances: on-demand Linux hourly list price. Spot: `live.spot_prices["TYPE/AZ"]`
  (from describe_spot_price_history), else the highest known spot price of that type
  in another AZ, else on-demand * `spot_fraction` (0.35, documented in the table).
- Volumes: per GiB-month by type and region, plus gp3 IOPS above 3,000 and throughput
  above 125 MiB/s, plus io1/io2 provisioned IOPS; a month is 730 hours. Every instance
  carries its root volume: the live one once it exists, before that the AMI's root size
  (`live.image_roots`), else DEFAULT_ROOT_GIB of DEFAULT_ROOT_TYPE.
- Fails closed: a type or region the table does not price is an UnknownPrice ("no price
  for p5en.48xlarge in eu-north-1"), never $0; every figure it is part of is unknown (the
  priced part is "at least"), a limit it could push over is not "met", and with
  `cost.enforce` the plan is not applyable (`--allow-cost` overrides).
Figures stay floats; round only for display.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from functools import lru_cache
from importlib import resources
from typing import Any

from planner.ledger import Kind
from planner.live import TAG_ADDRESS, TAG_PROJECT, LiveInstance, LiveState, LiveVolume
from planner.payloads import InstancePayload
from planner.plan import (
    Action,
    Change,
    CostSummary,
    PlanWarning,
    ResourceType,
    Rule,
    UnknownPrice,
)
from planner.spec import Market, Spec

CHARGED_INSTANCE_STATES = ("pending", "running")
# An instance's root volume when its AMI's is unknown (not described): large enough for
# the deep learning AMIs (their roots are 75-100+ GiB), so the figure errs high, not low.
DEFAULT_ROOT_GIB = 100
DEFAULT_ROOT_TYPE = "gp3"


@lru_cache(maxsize=1)
def price_table() -> Mapping[str, Any]:
    text = resources.files("planner").joinpath("data/prices.json").read_text("utf-8")
    doc: dict[str, Any] = json.loads(text)
    return doc


def as_of() -> str:
    return str(price_table()["as_of"])


# A spot price under 1% of on-demand is not a market price (moto answers 0.00001 for
# everything): it is ignored, so cost limits still mean something on the emulator.
SPOT_FLOOR = 0.01


def spot_fraction() -> float:
    return float(price_table()["spot_fraction"])


def hours_per_month() -> float:
    return float(price_table()["hours_per_month"])


def on_demand_hourly(instance_type: str, region: str) -> float | None:
    region_prices = price_table()["regions"].get(region)
    if region_prices is None:
        return None
    price = region_prices["instances"].get(instance_type)
    return None if price is None else float(price)


def instance_hourly(instance_type: str, market: str, region: str,
                    spot_prices: Mapping[str, float] | None = None,
                    az: str | None = None) -> float | None:
    """Hourly USD for one instance, or None when the table does not know the type/region
    (the caller warns). Spot prices are keyed `TYPE/AZ`."""
    if market != Market.SPOT:
        return on_demand_hourly(instance_type, region)
    od = on_demand_hourly(instance_type, region)
    floor = od * SPOT_FLOOR if od is not None else 0.0
    prices = {k: float(p) for k, p in (spot_prices or {}).items() if float(p) > floor}
    if az and f"{instance_type}/{az}" in prices:
        return prices[f"{instance_type}/{az}"]
    other_azs = [p for k, p in prices.items() if k.split("/", 1)[0] == instance_type]
    if other_azs:
        return max(other_azs)
    return None if od is None else od * spot_fraction()


def ebs_rates(volume_type: str, region: str) -> Mapping[str, float] | None:
    """The EBS rates of a type in a region, or None when the table has none (unknown)."""
    region_prices = price_table()["regions"].get(region)
    if region_prices is None:
        return None
    rates: Mapping[str, float] | None = region_prices.get("ebs", {}).get(volume_type)
    return rates


def volume_hourly(size_gib: int, volume_type: str, iops: int | None,
                  throughput_mibps: int | None, region: str) -> float | None:
    """Hourly USD for one EBS volume (month = 730 h); None when the table does not price
    that type in that region."""
    rates = ebs_rates(volume_type, region)
    if rates is None:
        return None
    monthly = size_gib * rates["gib_month"]
    if "iops_month" in rates:
        included = rates.get("iops_included", 0)
        provisioned = iops if iops is not None else included
        monthly += max(0, provisioned - included) * rates["iops_month"]
    if "throughput_mibps_month" in rates:
        included = rates.get("throughput_included_mibps", 0)
        provisioned = throughput_mibps if throughput_mibps is not None else included
        monthly += max(0, provisioned - included) * rates["throughput_mibps_month"]
    return float(monthly) / hours_per_month()


# --- plan cost --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Item:
    """One billable resource, before or after the plan."""

    kind: ResourceType               # VOLUME or INSTANCE
    label: str                       # address, or the AWS id when untagged
    id: str | None
    attrs: Mapping[str, Any]
    charged: bool                    # instances: running/pending; volumes: always
    since: datetime | None           # launch / create time of what exists now
    root_of: str | None = None       # a root volume: its instance's id (live) or address


_VOLUME_KEYS = ("size_gib", "type", "iops", "throughput_mibps", "availability_zone")
_INSTANCE_KEYS = ("instance_type", "market", "availability_zone")


def _root(live: LiveState, owner: str, label: str, ami: str | None,
          since: datetime | None) -> _Item:
    """The root volume an instance launched from AMI has: the AMI's size, else the
    documented default."""
    known = live.image_roots.get(ami or "") or {}
    attrs = {"size_gib": int(known.get("size_gib", DEFAULT_ROOT_GIB)),
             "type": str(known.get("type", DEFAULT_ROOT_TYPE)),
             "iops": None, "throughput_mibps": None}
    return _Item(ResourceType.VOLUME, f"{label} root volume", None, attrs, True, since,
                 root_of=owner)


def _ours(spec: Spec, live: LiveState) -> tuple[list[LiveVolume], list[LiveInstance]]:
    """The resources of this project in `live`: tagged with its name or named by the
    spec's `import:`, and the untagged volumes attached to one of its instances (their
    root volumes). Another project's or an untagged resource a snapshot holds is not
    billed to this plan."""
    project = spec.project
    imports = {v.import_id for v in spec.volumes.values() if v.import_id}
    imports |= {i.import_id for i in spec.instances.values() if i.import_id}
    instances = [i for i in live.instances
                 if i.tags.get(TAG_PROJECT) == project or i.id in imports]
    ids = {i.id for i in instances}
    volumes = [v for v in live.volumes
               if v.tags.get(TAG_PROJECT) == project or v.id in imports
               or (TAG_PROJECT not in v.tags
                   and any(a.instance_id in ids for a in v.attachments))]
    return volumes, instances


def _live_items(spec: Spec, live: LiveState) -> list[_Item]:
    volumes, instances = _ours(spec, live)
    instance_ids = {i.id for i in instances}
    roots: dict[str, str] = {}        # volume id -> instance id, for untagged attached volumes
    for v in volumes:
        if v.tags.get(TAG_ADDRESS):
            continue
        owner = next((a.instance_id for a in v.attachments
                      if a.instance_id in instance_ids and a.state != "detached"), None)
        if owner is not None:
            roots[v.id] = owner
    items = [
        _Item(ResourceType.VOLUME, v.address or v.id, v.id,
              {k: getattr(v, k) for k in _VOLUME_KEYS}, True, v.create_time,
              root_of=roots.get(v.id))
        for v in volumes
    ]
    with_root = set(roots.values())
    for i in instances:
        items.append(_Item(ResourceType.INSTANCE, i.address or i.id, i.id,
                           {k: getattr(i, k) for k in _INSTANCE_KEYS},
                           i.state in CHARGED_INSTANCE_STATES, i.launch_time))
        if i.id not in with_root and i.state not in ("shutting-down", "terminated"):
            items.append(_root(live, i.id, i.address or i.id, i.ami, i.launch_time))
    return items


def _spec_attrs(spec: Spec, change: Change) -> dict[str, Any]:
    name = change.name
    if change.type == ResourceType.VOLUME and name in spec.volumes:
        v = spec.volumes[name]
        return {k: getattr(v, k) for k in _VOLUME_KEYS}
    if change.type == ResourceType.INSTANCE and name in spec.instances:
        i = spec.instances[name]
        return {k: getattr(i, k) for k in _INSTANCE_KEYS}
    return {}


class _Slots:
    """`before` as a list whose positions never move (a deleted item leaves a hole), with
    indexes by (kind, id), (kind, label) and root owner: finding is O(1), not a scan."""

    def __init__(self, items: list[_Item]):
        self.items: list[_Item | None] = []
        self._by: dict[tuple[Any, ...], list[int]] = {}
        for it in items:
            self.put(None, it)

    def _index(self, n: int, it: _Item) -> None:
        if it.id:
            bisect.insort(self._by.setdefault((it.kind, "id", it.id), []), n)
        bisect.insort(self._by.setdefault((it.kind, "label", it.label), []), n)
        if it.root_of:
            self._by.setdefault(("root", it.root_of), []).append(n)

    def find(self, kind: ResourceType, rid: str | None, label: str) -> int | None:
        """The first position holding an item of `kind` with id `rid` or label `label`."""
        best: int | None = None
        for attr, value in (("id", rid), ("label", label)):
            if not value:
                continue
            for n in self._by.get((kind, attr, value), ()):
                it = self.items[n]      # entries of replaced or deleted items are stale
                if it is not None and getattr(it, attr) == value:
                    best = n if best is None else min(best, n)
                    break
        return best

    def drop_roots(self, owner: str | None) -> None:
        """Remove the root volume(s) of the instance `owner` (it is deleted or replaced)."""
        for n in self._by.pop(("root", owner), []) if owner else ():
            it = self.items[n]
            if it is not None and it.root_of == owner:
                self.items[n] = None

    def put(self, n: int | None, item: _Item | None) -> None:
        """Replace (item) or delete (None) position `n`; n None appends `item`."""
        if n is None:
            assert item is not None
            self.items.append(item)
            self._index(len(self.items) - 1, item)
            return
        self.items[n] = item
        if item is not None:
            self._index(n, item)

    def live(self) -> list[_Item]:
        return [it for it in self.items if it is not None]


def _drop_deleted(after: _Slots, c: Change) -> None:
    """A change of another type that deletes a live resource (a temporary prewarm
    instance, `prewarm.D@i-...`): whatever its type, what it names by id leaves the
    after-cost, an instance with its root volume."""
    if not c.id or Action.CREATE in c.actions or Action.DELETE not in c.actions:
        return
    for kind in (ResourceType.INSTANCE, ResourceType.VOLUME):
        idx = after.find(kind, c.id, "")
        if idx is None:
            continue
        current = after.items[idx]
        after.put(idx, None)
        if current is not None and kind == ResourceType.INSTANCE:
            after.drop_roots(current.id or current.label)


def _after_items(spec: Spec, live: LiveState, before: list[_Item],
                 changes: Iterable[Change], now: datetime) -> list[_Item]:
    after = _Slots(before)
    for c in changes:
        if c.blocked or c.is_noop:
            continue                  # stays as live
        if c.type not in (ResourceType.VOLUME, ResourceType.INSTANCE):
            _drop_deleted(after, c)
            continue
        idx = after.find(c.type, c.id, c.address)
        current = after.items[idx] if idx is not None else None
        if Action.CREATE not in c.actions and Action.UPDATE not in c.actions:
            if idx is not None:       # a plain delete (an instance takes its root along)
                after.put(idx, None)
                if current is not None and c.type == ResourceType.INSTANCE:
                    after.drop_roots(current.id or current.label)
            continue
        keys = _VOLUME_KEYS if c.type == ResourceType.VOLUME else _INSTANCE_KEYS
        attrs = dict(current.attrs) if current is not None else {}
        attrs.update(_spec_attrs(spec, c))
        attrs.update({k: v for k, v in (c.after.given() if c.after is not None else {}).items()
                      if k in keys})
        if current is None or Action.CREATE in c.actions:  # create or replace: new, running
            after.put(idx, _Item(c.type, c.address, None, attrs, True, now))
            if c.type == ResourceType.INSTANCE:
                if current is not None:
                    after.drop_roots(current.id or current.label)
                ins = spec.instances.get(c.name)
                ami = ins.ami if ins else (
                    c.after.ami if isinstance(c.after, InstancePayload) else None)
                after.put(None, _root(live, c.address, c.address, ami, now))
        else:                                               # update in place
            after.put(idx, replace(current, attrs=attrs))
    return after.live()


def _price(item: _Item, live: LiveState, region: str) -> float | UnknownPrice:
    """Hourly USD of an item, or what the table cannot price."""
    if not item.charged:
        return 0.0
    a = item.attrs
    address = item.label.split(" ", 1)[0] if "." in item.label else None
    if item.kind == ResourceType.INSTANCE:
        itype = str(a.get("instance_type"))
        price = instance_hourly(itype, str(a.get("market", "on-demand")), region,
                                live.spot_prices, a.get("availability_zone"))
        what = itype
    else:
        what = f"EBS {a.get('type', 'gp3')}"
        price = volume_hourly(int(a.get("size_gib") or 0), str(a.get("type", "gp3")),
                              a.get("iops"), a.get("throughput_mibps"), region)
    if price is None:
        return UnknownPrice(address, what, region, f"no price for {what} in {region}")
    return price


class _Pricer:
    """Sums of item prices, remembering each unknown price once (by resource and item)."""

    def __init__(self, live: LiveState, region: str):
        self.live, self.region = live, region
        self.unknown: dict[tuple[str, str], tuple[str, UnknownPrice]] = {}

    def hourly(self, item: _Item) -> float | None:
        p = _price(item, self.live, self.region)
        if isinstance(p, UnknownPrice):
            self.unknown.setdefault((item.label, p.item), (item.label, p))
            return None
        return p

    def total(self, items: Iterable[_Item], hours: Any = None) -> tuple[float, bool]:
        """(sum of the priced part, whether some part has no price)."""
        priced, incomplete = 0.0, False
        for it in items:
            h = self.hourly(it)
            if h is None:
                incomplete = True
                continue
            priced += h * (hours(it) if hours else 1.0)
        return priced, incomplete


def _limit_warnings(spec: Spec, figures: Mapping[str, tuple[float, bool]],
                    unknown: list[UnknownPrice]) -> tuple[list[str], list[PlanWarning]]:
    limits = spec.cost
    checks = [
        ("max_hourly_usd", limits.max_hourly_usd, "hourly_usd_after",
         "hourly cost after apply", "/h"),
        ("max_daily_usd", limits.max_daily_usd, "daily_usd_after",
         "daily cost after apply", "/day"),
        ("max_accumulated_usd", limits.max_accumulated_usd, "accumulated_usd",
         "spend so far of what is running", ""),
    ]
    exceeded: list[str] = []
    warnings: list[PlanWarning] = []
    suffix = " (enforced: apply refuses this plan without --allow-cost)" if limits.enforce else ""
    for key, limit, figure, what, unit in checks:
        if limit is None:
            continue
        value, incomplete = figures[figure]
        if value > limit:
            exceeded.append(key)
            warnings.append(PlanWarning(None, Rule.COST, (
                f"{what} is {'at least ' if incomplete else ''}${value:,.2f}{unit}, above "
                f"{key} ${limit:,.2f}{unit}{suffix}")))
        elif incomplete:
            names = ", ".join(sorted({u.item for u in unknown}))
            warnings.append(PlanWarning(None, Rule.COST, (
                f"{what} is unknown (at least ${value:,.2f}{unit}; no price for {names}): "
                f"{key} ${limit:,.2f}{unit} cannot be checked{suffix}")))
    return exceeded, warnings


def ledger_rate(region: str) -> Callable[[Kind, Mapping[str, Any]], float | None]:
    """$/h of a resource as the cost ledger records it (planner.ledger's attrs)."""
    def rate(kind: Kind, attrs: Mapping[str, Any]) -> float | None:
        if kind is Kind.INSTANCE:
            return instance_hourly(str(attrs.get("instance_type")),
                                   str(attrs.get("market", "on-demand")), region,
                                   az=attrs.get("availability_zone"))
        return volume_hourly(int(attrs.get("size_gib") or 0), str(attrs.get("type")),
                             attrs.get("iops"), attrs.get("throughput_mibps"), region)
    return rate


def plan_cost(spec: Spec, live: LiveState, changes: Iterable[Change],
              now: datetime, removed_spend_usd: float | None = 0.0
              ) -> tuple[CostSummary, list[PlanWarning]]:
    """Hourly cost before and after the changes, daily after, accumulated so far, and
    the spec's limits. Blocked and no-op changes leave the live resource as it is.
    `removed_spend_usd`: what resources already gone cost while they ran (the cost
    ledger; None when a price of theirs is unknown), so accumulated never falls."""
    region = live.region or spec.region
    warnings: list[PlanWarning] = []
    enforce = (" (cost.enforce: apply refuses this plan without --allow-cost)"
               if spec.cost.enforce else "")
    if region not in price_table()["regions"]:
        warnings.append(PlanWarning(None, Rule.COST, (
            f"region {region} is not in the price table (as of {as_of()}): every price "
            f"there is unknown{enforce}")))
    before = _live_items(spec, live)
    after = _after_items(spec, live, before, changes, now)
    pricer = _Pricer(live, region)
    figures = {
        "hourly_usd_before": pricer.total(before),
        "hourly_usd_after": pricer.total(after),
        "accumulated_usd": pricer.total(
            (it for it in before if it.since is not None),
            hours=lambda it: max(0.0, (now - it.since).total_seconds() / 3600)),
    }
    acc, acc_incomplete = figures["accumulated_usd"]
    figures["accumulated_usd"] = (acc + (removed_spend_usd or 0.0),
                                  acc_incomplete or removed_spend_usd is None)
    hourly_after, incomplete_after = figures["hourly_usd_after"]
    figures["daily_usd_after"] = (hourly_after * 24, incomplete_after)
    unknown = [u for _label, u in pricer.unknown.values()]
    for label, u in pricer.unknown.values():
        warnings.append(PlanWarning(u.address, Rule.COST, (
            f"$?/h: {u.message} in the price table (as of {as_of()}): the cost of {label} "
            f"is unknown, never $0{enforce}")))
    exceeded, limit_warnings = _limit_warnings(spec, figures, unknown)
    summary = CostSummary(
        hourly_usd_before=figures["hourly_usd_before"][0],
        hourly_usd_after=hourly_after,
        daily_usd_after=figures["daily_usd_after"][0],
        accumulated_usd=figures["accumulated_usd"][0],
        exceeded=tuple(exceeded),
        unknown_prices=tuple(unknown),
        incomplete=tuple(k for k in ("hourly_usd_before", "hourly_usd_after",
                                     "daily_usd_after", "accumulated_usd")
                         if figures[k][1]),
    )
    return summary, [*warnings, *limit_warnings]
