"""Attachments and mounts: the spec's instance mounts against live attachments and the
`trainctl:mounted` tag, and the deletes of live ones the spec no longer has."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from planner.diff.base import (
    ATTACHMENT,
    CREATE,
    DELETE,
    MOUNT,
    REPLACE,
    UPDATE,
    attachment_to,
    change,
    delete_reason,
    name_of,
    noop,
)
from planner.diff.context import DiffContext
from planner.diff.work import WorkSet
from planner.live import TAG_MOUNTED, LiveAttachment, LiveInstance, LiveVolume
from planner.payloads import AttachmentPayload, MountPayload, VolumePayload
from planner.plan import Change, ChangeKind, Reason, ResourceType
from planner.rules import ATTACHED_STATES
from planner.spec import Instance, Mount
from planner.tags import GIB, MountedTag, parse_mounted_tag


def spec_mounts(ctx: DiffContext, rtype: ResourceType) -> Iterable[tuple[Instance, Mount]]:
    """(instance, mount) for every attachment or mount node of the graph, sorted."""
    for _, (i_name, v_name) in ctx.nodes_of(rtype):
        ins = ctx.spec.instances[i_name]
        yield ins, next(m for m in ins.mounts if m.volume == v_name)


def attachment_change(ctx: DiffContext, work: WorkSet, ins: Instance, m: Mount) -> Change:
    addr = f"attachment.{ins.name}.{m.volume}"
    i_addr, v_addr = f"instance.{ins.name}", f"volume.{m.volume}"
    li, lv = ctx.instances.get(i_addr), ctx.volumes.get(v_addr)
    att = attachment_to(lv, li.id) if lv and li else None
    after = AttachmentPayload(
        instance=ins.name, volume=m.volume, device=m.device,
        instance_id=work.live_id(ctx, i_addr), volume_id=work.live_id(ctx, v_addr))
    renewed = [p for p, a in (("instance_id", i_addr), ("volume_id", v_addr))
               if work.fresh(a)]
    if att is None:
        reason = Reason.CREATE_BECAUSE_MISSING if renewed else (
            Reason.ATTACH_BECAUSE_NOT_ATTACHED)
        return change(addr, (CREATE,), reason, after=after)
    assert li is not None and lv is not None
    before = AttachmentPayload(instance=ins.name, volume=m.volume, device=att.device,
                               instance_id=li.id, volume_id=lv.id)
    if renewed:
        return change(addr, REPLACE, Reason.REPLACE_BECAUSE_DEPENDENCY_REPLACED,
                      before=before, after=after, replace_paths=renewed)
    if att.device != m.device:
        return change(addr, REPLACE, Reason.REPLACE_BECAUSE_CANNOT_UPDATE,
                      before=before, after=after, replace_paths=["device"])
    return noop(addr)


def attachments(ctx: DiffContext, work: WorkSet) -> None:
    """attachment.* changes for the spec's mounts (none under --destroy)."""
    if ctx.destroy:
        return
    for ins, m in spec_mounts(ctx, ATTACHMENT):
        work.add(attachment_change(ctx, work, ins, m))


def mount_change(ctx: DiffContext, work: WorkSet, ins: Instance, m: Mount) -> Change:
    addr = f"mount.{ins.name}.{m.volume}"
    v_addr = f"volume.{m.volume}"
    li, lv = ctx.instances.get(f"instance.{ins.name}"), ctx.volumes.get(v_addr)
    vs = ctx.spec.volumes[m.volume]
    att = work.changes[f"attachment.{ins.name}.{m.volume}"]
    after = MountPayload(instance=ins.name, volume=m.volume, device=m.device, path=m.path,
                         read_only=m.read_only, filesystem=vs.filesystem,
                         instance_id=work.live_id(ctx, f"instance.{ins.name}"),
                         volume_id=work.live_id(ctx, v_addr))
    tag = parse_mounted_tag(lv.tags.get(TAG_MOUNTED)) if lv else None
    mounted_here = bool(li and tag and tag.instance_id == li.id)
    before = None
    if mounted_here:
        assert li is not None and lv is not None and tag is not None
        live_att = attachment_to(lv, li.id)
        before = MountPayload(instance=ins.name, volume=m.volume, path=tag.path,
                              device=live_att.device if live_att else None,
                              instance_id=li.id, volume_id=lv.id)
    if att.kind is ChangeKind.CREATE or not mounted_here:
        return change(addr, (CREATE,), Reason.MOUNT_BECAUSE_NOT_MOUNTED, after=after)
    if att.kind is ChangeKind.REPLACE:
        return change(addr, REPLACE, Reason.REPLACE_BECAUSE_DEPENDENCY_REPLACED,
                      before=before, after=after, replace_paths=att.replace_paths)
    assert li is not None and lv is not None and tag is not None
    if tag.path != m.path:
        return change(addr, REPLACE, Reason.REPLACE_BECAUSE_CANNOT_UPDATE,
                      before=before, after=after, replace_paths=["path"])
    return grow_change(work, addr, v_addr, lv, tag, after)


def grow_change(work: WorkSet, addr: str, v_addr: str, lv: LiveVolume, tag: MountedTag,
                after: MountPayload) -> Change:
    """The mount grows its filesystem when this plan grows the volume, or when the live
    volume is already larger than the filesystem size the last mount recorded (a grow
    skipped behind a blocked change, or a volume grown outside trainctl)."""
    growing = work.grew(v_addr)
    if not growing and not tag.needs_grow(lv.size_gib):
        return noop(addr)
    grown = work.changes[v_addr].after
    target = max(lv.size_gib, int(grown.size_gib) if growing and isinstance(
        grown, VolumePayload) and grown.size_gib is not None else lv.size_gib)
    if tag.fs_bytes is not None:
        old: float = tag.fs_bytes // GIB if tag.fs_bytes % GIB == 0 else round(
            tag.fs_bytes / GIB, 2)
    else:
        old = lv.size_gib
    extra: dict[str, Any] = {} if tag.fs_bytes is None else {"fs_bytes": tag.fs_bytes}
    return change(addr, (UPDATE,), Reason.MOUNT_BECAUSE_VOLUME_GREW,
                  before=MountPayload(**after.given(), size_gib=old, **extra),
                  after=MountPayload(**after.given(), size_gib=target))


def mounts(ctx: DiffContext, work: WorkSet) -> None:
    """mount.* changes for the spec's mounts, read against their attachment's change."""
    if ctx.destroy:
        return
    for ins, m in spec_mounts(ctx, MOUNT):
        work.add(mount_change(ctx, work, ins, m))


def live_pairs(ctx: DiffContext
               ) -> Iterable[tuple[str, str, LiveVolume, LiveInstance, LiveAttachment]]:
    """(instance name, volume name, ...) for every live attachment between ours."""
    by_id = ctx.instances_by_id
    for v_addr, lv in ctx.volumes.items():
        if v_addr in ctx.adopting:
            continue
        for a in lv.attachments:
            i_addr = by_id.get(a.instance_id)
            if i_addr is not None and a.state in ATTACHED_STATES:
                yield name_of(i_addr), name_of(v_addr), lv, ctx.instances[i_addr], a


def orphan_attachments_and_mounts(ctx: DiffContext, work: WorkSet) -> None:
    """Deletes of live attachments and mounts between ours that the spec has no change for."""
    reason = delete_reason(ctx.destroy)
    for i_name, v_name, lv, li, a in live_pairs(ctx):
        att_addr, mnt_addr = f"attachment.{i_name}.{v_name}", f"mount.{i_name}.{v_name}"
        if att_addr not in work.changes:
            work.add(change(att_addr, (DELETE,), reason, before=AttachmentPayload(
                instance=i_name, volume=v_name, instance_id=li.id, volume_id=lv.id,
                device=a.device)))
        tag = parse_mounted_tag(lv.tags.get(TAG_MOUNTED))
        if tag is not None and tag.instance_id == li.id and mnt_addr not in work.changes:
            work.add(change(mnt_addr, (DELETE,), reason, before=MountPayload(
                instance=i_name, volume=v_name, instance_id=li.id, volume_id=lv.id,
                device=a.device, path=tag.path)))
