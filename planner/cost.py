"""Cost of a plan from the bundled, dated price table (`planner/data/prices.json`). Pure.

- Instances: on-demand Linux hourly list price. Spot: `live.spot_prices["TYPE/AZ"]`
  (from describe_spot_price_history), else the highest known spot price of that type
  in another AZ, else on-demand * `spot_fraction` (0.35, documented in the table).
- Volumes: per GiB-month by type, plus gp3 IOPS above 3,000 and throughput above
  125 MiB/s, plus io1/io2 provisioned IOPS; a month is 730 hours.
- An unknown instance type or region gives a warning (rule `cost`), never a failure.
Figures stay floats; round only for display.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from functools import lru_cache
from importlib import resources
from typing import Any

from planner.live import LiveState
from planner.plan import Action, Change, CostSummary, PlanWarning, ResourceType, Rule
from planner.spec import Spec

FALLBACK_REGION = "us-east-1"    # EBS rates for a region missing from the table
CHARGED_INSTANCE_STATES = ("pending", "running")


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
    if market != "spot":
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


def _ebs_rates(volume_type: str, region: str) -> Mapping[str, float] | None:
    regions = price_table()["regions"]
    ebs = (regions.get(region) or regions[FALLBACK_REGION])["ebs"]
    rates: Mapping[str, float] | None = ebs.get(volume_type)
    return rates


def volume_hourly(size_gib: int, volume_type: str, iops: int | None,
                  throughput_mibps: int | None, region: str) -> float:
    """Hourly USD for one EBS volume (month = 730 h). A region missing from the table
    is priced at us-east-1 rates; an unknown type costs 0 (plan_cost warns for both)."""
    rates = _ebs_rates(volume_type, region)
    if rates is None:
        return 0.0
    monthly = size_gib * rates["gib_month"]
    if "iops_month" in rates:
        included = rates.get("iops_included", 0)
        provisioned = iops if iops is not None else included
        monthly += max(0, provisioned - included) * rates["iops_month"]
    if "throughput_mibps_month" in rates:
        included = rates.get("throughput_included_mibps", 0)
        provisioned = throughput_mibps if throughput_mibps is not None else included
        monthly += max(0, provisioned - included) * rates["throughput_mibps_month"]
    return monthly / hours_per_month()


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


_VOLUME_KEYS = ("size_gib", "type", "iops", "throughput_mibps", "availability_zone")
_INSTANCE_KEYS = ("instance_type", "market", "availability_zone")


def _live_items(live: LiveState) -> list[_Item]:
    items = [
        _Item(ResourceType.VOLUME, v.address or v.id, v.id,
              {k: getattr(v, k) for k in _VOLUME_KEYS}, True, v.create_time)
        for v in live.volumes
    ]
    items += [
        _Item(ResourceType.INSTANCE, i.address or i.id, i.id,
              {k: getattr(i, k) for k in _INSTANCE_KEYS},
              i.state in CHARGED_INSTANCE_STATES, i.launch_time)
        for i in live.instances
    ]
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
    indexes by (kind, id) and (kind, label): finding an item is O(1), not a scan."""

    def __init__(self, items: list[_Item]):
        self.items: list[_Item | None] = list(items)
        self._by: dict[tuple[Any, ...], list[int]] = {}
        for n, it in enumerate(items):
            self._index(n, it)

    def _index(self, n: int, it: _Item) -> None:
        if it.id:
            bisect.insort(self._by.setdefault((it.kind, "id", it.id), []), n)
        bisect.insort(self._by.setdefault((it.kind, "label", it.label), []), n)

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


def _after_items(spec: Spec, before: list[_Item], changes: Iterable[Change],
                 now: datetime) -> list[_Item]:
    after = _Slots(before)
    for c in changes:
        if c.type not in (ResourceType.VOLUME, ResourceType.INSTANCE):
            continue
        if c.blocked or c.is_noop:
            continue                  # stays as live
        idx = after.find(c.type, c.id, c.address)
        if Action.CREATE not in c.actions and Action.UPDATE not in c.actions:
            if idx is not None:       # a plain delete
                after.put(idx, None)
            continue
        keys = _VOLUME_KEYS if c.type == ResourceType.VOLUME else _INSTANCE_KEYS
        current = after.items[idx] if idx is not None else None
        attrs = dict(current.attrs) if current is not None else {}
        attrs.update(_spec_attrs(spec, c))
        attrs.update({k: v for k, v in (c.after or {}).items() if k in keys})
        if current is None or Action.CREATE in c.actions:  # create or replace: new, running
            after.put(idx, _Item(c.type, c.address, None, attrs, True, now))
        else:                                               # update in place
            after.put(idx, replace(current, attrs=attrs))
    return after.live()


def _hourly(item: _Item, live: LiveState, region: str,
            warnings: dict[str, PlanWarning]) -> float:
    if not item.charged:
        return 0.0
    a = item.attrs
    if item.kind == ResourceType.INSTANCE:
        price = instance_hourly(str(a.get("instance_type")), str(a.get("market", "on-demand")),
                                region, live.spot_prices, a.get("availability_zone"))
        if price is None:
            key = f"{item.label}|{a.get('instance_type')}"
            warnings.setdefault(key, PlanWarning(
                item.label if "." in item.label else None, Rule.COST,
                f"no price for {a.get('instance_type')} in {region} in the price table "
                f"(as of {as_of()}): {item.label} is left out of the cost",
            ))
            return 0.0
        return price
    vtype = str(a.get("type", "gp3"))
    if _ebs_rates(vtype, region) is None:
        warnings.setdefault(f"{item.label}|{vtype}", PlanWarning(
            item.label if "." in item.label else None, Rule.COST,
            f"no price for EBS volume type {vtype}: {item.label} is left out of the cost",
        ))
    return volume_hourly(int(a.get("size_gib") or 0), vtype, a.get("iops"),
                         a.get("throughput_mibps"), region)


def _limit_warnings(spec: Spec, hourly: float, daily: float,
                    accumulated: float) -> tuple[list[str], list[PlanWarning]]:
    limits = spec.cost
    checks = [
        ("max_hourly_usd", limits.max_hourly_usd, hourly, "hourly cost after apply", "/h"),
        ("max_daily_usd", limits.max_daily_usd, daily, "daily cost after apply", "/day"),
        ("max_accumulated_usd", limits.max_accumulated_usd, accumulated,
         "spend so far of what is running", ""),
    ]
    exceeded: list[str] = []
    warnings: list[PlanWarning] = []
    suffix = " (enforced: apply refuses this plan without --allow-cost)" if limits.enforce else ""
    for key, limit, value, what, unit in checks:
        if limit is not None and value > limit:
            exceeded.append(key)
            warnings.append(PlanWarning(None, Rule.COST, (
                f"{what} is ${value:,.2f}{unit}, above {key} ${limit:,.2f}{unit}{suffix}"
            )))
    return exceeded, warnings


def plan_cost(spec: Spec, live: LiveState, changes: Iterable[Change],
              now: datetime) -> tuple[CostSummary, list[PlanWarning]]:
    """Hourly cost before and after the changes, daily after, accumulated so far, and
    the spec's limits. Blocked and no-op changes leave the live resource as it is."""
    region = live.region or spec.region
    warnings: dict[str, PlanWarning] = {}
    if region not in price_table()["regions"]:
        warnings["|region"] = PlanWarning(None, Rule.COST, (
            f"region {region} is not in the price table (as of {as_of()}): instances "
            f"are left out of the cost and EBS is priced at {FALLBACK_REGION} rates"
        ))
    before = _live_items(live)
    after = _after_items(spec, before, changes, now)
    hourly_before = sum(_hourly(it, live, region, warnings) for it in before)
    hourly_after = sum(_hourly(it, live, region, warnings) for it in after)
    accumulated = sum(
        _hourly(it, live, region, warnings)
        * max(0.0, (now - it.since).total_seconds() / 3600)
        for it in before if it.since is not None
    )
    daily = hourly_after * 24
    exceeded, limit_warnings = _limit_warnings(spec, hourly_after, daily, accumulated)
    summary = CostSummary(
        hourly_usd_before=hourly_before, hourly_usd_after=hourly_after,
        daily_usd_after=daily, accumulated_usd=accumulated, exceeded=tuple(exceeded),
    )
    return summary, [*warnings.values(), *limit_warnings]
