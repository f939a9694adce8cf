"""Deletes of what live holds and the spec does not: resources no longer in the spec
(or all of them under --destroy), temporary prewarm instances left by an interrupted
apply, and duplicates of an address."""

from __future__ import annotations

from planner import leftovers
from planner.diff.base import DELETE, change, cleanup_address, delete_reason
from planner.diff.context import DiffContext
from planner.diff.resources import instance_before, volume_before
from planner.diff.work import WorkSet
from planner.live import LiveVolume, iso
from planner.payloads import PrewarmPayload
from planner.plan import Reason


def orphan_volumes(ctx: DiffContext, work: WorkSet) -> None:
    """Deletes of our live volumes the spec has no change for (or every one, --destroy)."""
    reason = delete_reason(ctx.destroy)
    for addr, lv in ctx.volumes.items():
        if addr not in work.changes and addr not in ctx.adopting:
            work.add(change(addr, (DELETE,), reason, id=lv.id, before=volume_before(ctx, lv)))


def orphan_instances(ctx: DiffContext, work: WorkSet) -> None:
    """Deletes of our live instances the spec has no change for (or every one, --destroy)."""
    reason = delete_reason(ctx.destroy)
    for addr, li in ctx.instances.items():
        if addr not in work.changes and addr not in ctx.adopting:
            work.add(change(addr, (DELETE,), reason, id=li.id, before=instance_before(li)))


def temporary_cleanups(ctx: DiffContext, work: WorkSet) -> None:
    """Deletes of temporary prewarm instances still live (left by an interrupted apply):
    apply unmounts and detaches what they hold (the volumes stay), then terminates them."""
    for t in ctx.temporaries:
        addr = cleanup_address(t)
        held = leftovers.held_volumes(ctx.live, t.id, ctx.volumes)
        work.add(change(addr, (DELETE,), Reason.DELETE_BECAUSE_TEMPORARY, id=t.id,
                        before=PrewarmPayload(
                            temporary_instance=t.id, instance_type=t.instance_type,
                            availability_zone=t.availability_zone, state=t.state,
                            launched=iso(t.launch_time), holds=tuple(ctx.cleanups[addr]),
                            volume_ids=tuple(v.id for v in held))))


def duplicate_deletes(ctx: DiffContext, work: WorkSet) -> None:
    """Deletes of every live resource carrying an address besides the one kept there."""
    for addr, dup in ctx.dups.items():
        r = dup.resource
        before = (volume_before(ctx, r, duplicate_of=dup.primary.id)
                  if isinstance(r, LiveVolume)
                  else instance_before(r, duplicate_of=dup.primary.id))
        work.add(change(addr, (DELETE,), Reason.DELETE_BECAUSE_DUPLICATE, id=r.id,
                        before=before))
