"""Rules on changes (planner.rules): blocks on volume and instance changes, duplicates,
and the dependents kept while what they hang off is blocked."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import networkx as nx

from planner import leftovers, rules
from planner.diff.base import ATTACHMENT, DELETE, INSTANCE, MOUNT, VOLUME
from planner.diff.context import DiffContext
from planner.diff.work import WorkSet
from planner.live import LiveInstance, LiveVolume
from planner.payloads import AttachmentPayload, PrewarmPayload, VolumePayload
from planner.plan import Block, Change, Rule, base_address, duplicate_address


def duplicate_blocks(ctx: DiffContext, work: WorkSet, addr: str) -> tuple[Block, ...]:
    """`duplicate`: a duplicate's delete needs `--allow-delete ID`; the address it
    duplicates is blocked until every duplicate is resolved (imported, or deleted by
    this apply)."""
    dup = ctx.dups.get(addr)
    if dup is not None:
        if dup.resource.id in ctx.overrides.allow_delete:
            return ()
        return (leftovers.duplicate_block(dup),)
    group = ctx.groups.get(addr)
    if not group:
        return ()
    primary = group[0]
    if any(d.imported for d in ctx.dups.values() if d.address == addr):
        return ()
    going = going_duplicates(work, addr, group)
    if all(r.id in going for r in group[1:]):
        return ()
    return (leftovers.primary_block(addr, group, primary, ctx.overrides.allow_delete,
                                    going),)


def going_duplicates(work: WorkSet, addr: str, group: Sequence[Any]) -> set[str]:
    """The ids of `addr`'s duplicates whose delete this plan carries out (not blocked)."""
    return {r.id for r in group[1:]
            if (c := work.changes.get(duplicate_address(addr, r.id))) is not None
            and not c.blocked}


def detached_by_volume(ctx: DiffContext, work: WorkSet) -> dict[str, set[str]]:
    """Volume id -> instance ids of the attachment deletes planned (not blocked)."""
    out: dict[str, set[str]] = {}
    for c in work.changes.values():
        if c.type is ATTACHMENT and c.deletes and not c.blocked and isinstance(
                c.before, AttachmentPayload):
            vid, iid = c.before.volume_id, c.before.instance_id
            if vid and iid:
                out.setdefault(vid, set()).add(iid)
        elif c.address in ctx.cleanups and not c.blocked and isinstance(
                c.before, PrewarmPayload):
            for vid in c.before.volume_ids or ():
                out.setdefault(vid, set()).add(str(c.id))
    return out


def detaching(volume: LiveVolume, change: Change,
              detached: dict[str, set[str]]) -> set[str]:
    """Instance ids this plan detaches a deleted volume from: apply detaches first, so
    removing a mounted volume from the spec converges in one apply. Replaces keep the
    conservative rule (their dependents were planned with the volume blocked).
    `detached`: detached_by_volume(), computed once for many volumes."""
    if change.actions != (DELETE,):
        return set()
    return set(detached.get(volume.id, ()))


def _instance_rules(ctx: DiffContext, work: WorkSet, order: list[str]) -> None:
    for addr in order:
        c = work.changes[addr]
        li = ctx.live_resource(addr) if c.type is INSTANCE else None
        if isinstance(li, LiveInstance):
            blocks = rules.instance_blocks(base_address(addr), c.actions, li, ctx.spec,
                                           ctx.now, ctx.overrides)
            work.set_blocks(addr, blocks + duplicate_blocks(ctx, work, addr))


def _volume_rules(ctx: DiffContext, work: WorkSet, order: list[str],
                  keep: set[str] | None) -> None:
    deleting = {
        res.id for a, c in work.changes.items()
        if c.type is INSTANCE and c.deletes and not c.blocked
        and (res := ctx.live_resource(a)) is not None and (keep is None or a in keep)
    }
    held = {
        res.id: ("is blocked (" + ", ".join(b.rule.value for b in c.blocked_by) + ")"
                 if c.blocked else "is left out by --target")
        for a, c in work.changes.items()
        if c.type is INSTANCE and c.deletes and (res := ctx.live_resource(a)) is not None
        and res.id not in deleting
    }
    detached = detached_by_volume(ctx, work)
    for addr in order:
        c = work.changes[addr]
        lv = ctx.live_resource(addr) if c.type is VOLUME else None
        if isinstance(lv, LiveVolume):
            after = c.after if isinstance(c.after, VolumePayload) else None
            blocks = rules.volume_blocks(base_address(addr), c.actions,
                                         tuple(after.given()) if after is not None else (), lv,
                                         ctx.live, ctx.spec, ctx.now, ctx.overrides,
                                         deleting, detaching(lv, c, detached),
                                         want_size=after.size_gib if after is not None else None,
                                         held=held)
            work.set_blocks(addr, blocks + duplicate_blocks(ctx, work, addr))


def block_resources(ctx: DiffContext, work: WorkSet, keep: set[str] | None = None) -> None:
    """Rules for volume/instance changes; `keep` restricts what counts as deleted.
    Duplicates first: an address stays blocked while one of its duplicates does."""
    order = sorted(work.changes, key=lambda a: a not in ctx.dups)
    _instance_rules(ctx, work, order)
    _volume_rules(ctx, work, order, keep)


def resource_rules(ctx: DiffContext, work: WorkSet) -> None:
    """Blocks on volume and instance changes (protection, age, training, duplicates...)."""
    block_resources(ctx, work)


def resource_rules_again(ctx: DiffContext, work: WorkSet) -> None:
    """The same rules again, now that the attachment deletes (detach first) are known."""
    block_resources(ctx, work)


def resource_rules_for_targets(ctx: DiffContext, work: WorkSet) -> None:
    """Under --target, the rules again with only the targeted deletes counted."""
    if work.keep is not None:
        block_resources(ctx, work, work.keep)


def keep_with_blocked_instances(ctx: DiffContext, work: WorkSet) -> None:
    """Blocks on the attachment and mount deletes of an instance whose delete is blocked:
    a half torn-down trainer would lose its disks while it stays."""
    for addr, c in list(work.changes.items()):
        if c.type not in (ATTACHMENT, MOUNT) or not c.deletes or c.blocked:
            continue
        i_addr = f"instance.{c.name.split('.')[0]}"
        ic = work.changes.get(i_addr)
        if ic is not None and ic.deletes and ic.blocked:
            work.set_blocks(addr, tuple(
                Block(b.rule, f"{addr} stays while {i_addr} is kept ({b.rule.value})")
                for b in ic.blocked_by))


def block_on_duplicates(ctx: DiffContext, work: WorkSet) -> None:
    """Blocks on everything that needs an address with unresolved duplicates
    (attachments, mounts, prewarms and syncs of it), naming the address."""
    g = work.graph
    assert g is not None, "full_graph runs before block_on_duplicates"
    stuck = {a for a in ctx.groups
             if a in work.changes
             and any(b.rule is Rule.DUPLICATE for b in work.changes[a].blocked_by)}
    if not stuck:
        return
    for addr, c in list(work.changes.items()):
        if c.is_noop or addr in stuck or addr in ctx.dups or addr not in g:
            continue
        hit = sorted(nx.ancestors(g, addr) & stuck)
        if hit:
            work.add_blocks(addr, tuple(
                Block(Rule.DUPLICATE, f"{addr} needs {a}, which more than one live "
                                      f"resource carries") for a in hit))
