"""What the plan says besides its changes: cost, digests, expiries, data locations."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

from planner.cost import plan_cost
from planner.diff.base import DATASET, INSTANCE, PREWARM, SYNC, VOLUME
from planner.diff.context import DiffContext
from planner.diff.work import WorkSet
from planner.digest import digest
from planner.graph import data_location, parse_address
from planner.live import iso, live_to_json
from planner.plan import Change, ChangeKind, DataLocation, Expiry
from planner.specdict import spec_to_dict


def cost(ctx: DiffContext, work: WorkSet) -> None:
    """work.cost and its warnings: hourly and daily cost before and after, spend so far."""
    work.cost, warnings = plan_cost(ctx.spec, ctx.live, work.ordered, ctx.now,
                                    ctx.removed_spend_usd)
    work.warnings += warnings


def _touched(ctx: DiffContext, changes: Iterable[Change]
             ) -> tuple[set[str], set[str], set[str]]:
    """(volume ids, instance ids, dataset keys) the changes read or act on."""
    vol_ids: set[str] = set()
    inst_ids: set[str] = set()
    datasets: set[str] = set()
    for c in changes:
        rtype, names = parse_address(c.address)
        res = ctx.live_resource(c.address) if rtype in (VOLUME, INSTANCE) else None
        if res is not None:
            (vol_ids if rtype is VOLUME else inst_ids).add(res.id)
        for side in (c.before, c.after):     # attachments, mounts, prewarms, syncs
            vid, iid = getattr(side, "volume_id", None), getattr(side, "instance_id", None)
            if vid:
                vol_ids.add(str(vid))
            if iid:
                inst_ids.add(str(iid))
        if rtype in (DATASET, PREWARM, SYNC):
            d = names[-1]
            datasets |= {d, f"{d}:local"}
    return vol_ids, inst_ids, datasets


def live_digest_of(ctx: DiffContext, changes: Iterable[Change]) -> str:
    """The digest of the live state the changes read (apply refuses a plan whose live
    part moved since)."""
    vol_ids, inst_ids, datasets = _touched(ctx, changes)
    live = ctx.live
    sub = replace(
        live,
        read_at=datetime(1970, 1, 1, tzinfo=UTC),
        volumes=tuple(v for v in live.volumes if v.id in vol_ids),
        instances=tuple(i for i in live.instances if i.id in inst_ids),
        modifications=tuple(sorted(
            (m for m in live.modifications if m.volume_id in vol_ids),
            key=lambda m: (m.volume_id, m.start_time))),
        snapshots=(),
        datasets=MappingProxyType({
            k: replace(v, list_calls=0) for k, v in live.datasets.items() if k in datasets}),
        stages=MappingProxyType({k: v for k, v in live.stages.items() if k in datasets}),
        spot_prices=MappingProxyType({}),
        api_calls=0,
    )
    doc: dict[str, Any] = live_to_json(sub)
    for key in ("read_at", "api_calls", "spot_prices", "snapshots", "image_roots"):
        doc.pop(key, None)
    doc["volumes"] = sorted(doc["volumes"], key=lambda v: v["id"])
    doc["instances"] = sorted(doc["instances"], key=lambda i: i["id"])
    return digest(doc)


def digests(ctx: DiffContext, work: WorkSet) -> None:
    """work.spec_digest and work.live_digest (of the live part the plan's changes read)."""
    work.spec_digest = digest(spec_to_dict(ctx.spec))
    work.live_digest = live_digest_of(ctx, work.ordered)


def expiries(ctx: DiffContext, work: WorkSet) -> None:
    """work.expiries: when each instance with a lifetime or idle stop expires."""
    if ctx.destroy:
        return
    out = []
    for i in ctx.spec.instances.values():
        if not (i.max_lifetime or i.idle_stop_minutes):
            continue
        addr = f"instance.{i.name}"
        live = ctx.instances.get(addr)
        change = work.changes.get(addr)
        relaunch = change is not None and change.kind in (ChangeKind.CREATE, ChangeKind.REPLACE)
        at = (iso(live.launch_time + timedelta(seconds=i.lifetime_seconds))
              if live is not None and i.lifetime_seconds and not relaunch else None)
        out.append(Expiry(i.name, i.max_lifetime, at, i.idle_stop_minutes, i.idle_action))
    work.expiries = tuple(out)


def data_locations(ctx: DiffContext, work: WorkSet) -> None:
    """work.data_locations: where each instance finds each of its datasets."""
    if ctx.destroy:
        return
    work.data_locations = tuple(
        DataLocation(d, i.name, ctx.spec.datasets[d].strategy, data_location(ctx.spec, i, d))
        for i in ctx.spec.instances.values() for d in i.datasets)
