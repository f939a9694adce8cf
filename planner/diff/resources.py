"""Volumes and instances: the spec's against the live ones (create, update in place,
replace, adopt), with DESIGN section 3's tags."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from planner.diff.base import CREATE, REPLACE, UPDATE, change, name_of, noop
from planner.diff.context import DiffContext
from planner.diff.work import WorkSet
from planner.errors import TrainctlError
from planner.live import (
    TAG_CREATED_EMPTY,
    TAG_ON_DELETE,
    TAG_PERSISTENT,
    TAG_PROTECTED,
    TAG_TEMPORARY,
    LiveInstance,
    LiveVolume,
)
from planner.payloads import InstancePayload, VolumePayload
from planner.plan import Change, Reason
from planner.rules import ATTACHED_STATES, GONE_INSTANCE_STATES
from planner.spec import Instance, Volume
from planner.tags import instance_safety_tags, owner_tags

# --- tags ----------------------------------------------------------------------------------


def desired_tags(ctx: DiffContext, addr: str, own: Mapping[str, str], *,
                 persistent: bool = False, protect: bool = False,
                 on_delete: str | None = None,
                 live_tags: Mapping[str, str] | None = None) -> dict[str, str]:
    """DESIGN section 3's tags; a protection tag no longer wanted is set to "false"."""
    tags = owner_tags(ctx.spec, addr, own, persistent=persistent, protect=protect,
                      on_delete=on_delete)
    for key, wanted in ((TAG_PERSISTENT, persistent), (TAG_PROTECTED, protect)):
        if not wanted and live_tags is not None and live_tags.get(key) == "true":
            tags[key] = "false"
    if on_delete is not None and live_tags is not None and TAG_ON_DELETE in live_tags:
        tags[TAG_ON_DELETE] = on_delete
    return tags


def tag_diff(desired: Mapping[str, str], live_tags: Mapping[str, str],
             before: dict[str, Any], after: dict[str, Any]) -> None:
    changed = {k: v for k, v in desired.items() if live_tags.get(k) != v}
    if changed:
        before["tags"] = {k: live_tags.get(k) for k in changed}
        after["tags"] = changed


# --- what live holds -----------------------------------------------------------------------


def volume_live(ctx: DiffContext, lv: LiveVolume) -> dict[str, Any]:
    """A live volume's fields (VolumePayload's keys): what a delete or replace shows."""
    before: dict[str, Any] = {
        "id": lv.id, "size_gib": lv.size_gib, "type": lv.type, "iops": lv.iops,
        "throughput_mibps": lv.throughput_mibps,
        "availability_zone": lv.availability_zone, "snapshot_id": lv.snapshot_id,
        "encrypted": lv.encrypted, "state": lv.state,
        "attached_to": tuple(a.instance_id for a in lv.attachments
                             if a.state in ATTACHED_STATES),
    }
    vs = ctx.spec.volumes.get(name_of(lv.address or "")) if lv.address else None
    on_delete = vs.on_delete if vs is not None else lv.tags.get(TAG_ON_DELETE)
    if on_delete is not None:
        before["on_delete"] = on_delete
    return before


def volume_before(ctx: DiffContext, lv: LiveVolume, **extra: Any) -> VolumePayload:
    return VolumePayload(**volume_live(ctx, lv), **extra)


def profile_name(arn: str | None) -> str | None:
    """An instance profile's name: `trainctl-ssm` for `arn:aws:iam::1:instance-profile/...`
    (the spec names profiles, EC2 reports ARNs: compare and show names)."""
    return arn.rsplit("/", 1)[-1] if arn else None


def profile_matches(spec_profile: str | None, live_arn: str | None) -> bool:
    if spec_profile is None:
        return True
    if live_arn is None:
        return False
    return live_arn == spec_profile or live_arn.endswith("/" + spec_profile)


def instance_live(li: LiveInstance) -> dict[str, Any]:
    """A live instance's fields (InstancePayload's keys): what a delete or replace shows."""
    return {
        "id": li.id, "instance_type": li.instance_type, "ami": li.ami, "market": li.market,
        "availability_zone": li.availability_zone, "subnet_id": li.subnet_id,
        "iam_instance_profile": profile_name(li.iam_instance_profile), "state": li.state,
    }


def instance_before(li: LiveInstance, **extra: Any) -> InstancePayload:
    return InstancePayload(**instance_live(li), **extra)


def volume_gone(ctx: DiffContext, addr: str) -> str | None:
    """The id of the volume the cost ledger last saw at ADDR, when no live volume has it
    any more: someone deleted it outside trainctl."""
    gone = ctx.known_volumes.get(addr)
    if gone is None or addr in ctx.volumes or any(v.id == gone for v in ctx.live.volumes):
        return None
    return gone


def terminated_outside(ctx: DiffContext, addr: str) -> LiveInstance | None:
    """The latest instance that carried ADDR and is terminated (or terminating) while
    no live one does: someone ended it outside trainctl (the console, a spot
    reclaim, a script)."""
    gone = [i for i in ctx.live.instances
            if ctx.ours(i.tags) and i.address == addr
            and i.state in GONE_INSTANCE_STATES and i.tags.get(TAG_TEMPORARY) != "true"]
    return max(gone, key=lambda i: (i.launch_time, i.id), default=None)


# --- update or replace ---------------------------------------------------------------------


def payload_type(addr: str) -> type[VolumePayload] | type[InstancePayload]:
    return VolumePayload if addr.startswith("volume.") else InstancePayload


def update_change(ctx: DiffContext, addr: str, live_id: str, before: dict[str, Any],
                  after: dict[str, Any], tags: Mapping[str, str],
                  live_tags: Mapping[str, str]) -> Change:
    """An in-place update with the tag drift added, or a no-op when nothing differs."""
    tag_diff(tags, live_tags, before, after)
    if len(after) == 1:
        return noop(addr, live_id)
    reason = Reason.ADOPT_BECAUSE_IMPORT if addr in ctx.adopting else (
        Reason.UPDATE_BECAUSE_DRIFT)
    cls = payload_type(addr)
    return change(addr, (UPDATE,), reason, id=live_id, before=cls(**before), after=cls(**after))


def replace_change(ctx: DiffContext, addr: str, live_id: str, paths: list[str],
                   live: dict[str, Any], create: dict[str, Any],
                   live_tags: Mapping[str, str]) -> Change:
    """A replace forced by PATHS, showing only what changes: attributes the spec sets
    that differ from LIVE (those it leaves to AWS, like an unnamed subnet, are not
    shown as null), and the tags that differ. An imported resource is adopted as it
    is, never replaced, so there it is an error."""
    if addr in ctx.adopting:
        kind = addr.split(".", 1)[0]
        raise TrainctlError(
            f"{addr}: import: {live_id} differs in {', '.join(paths)}; an imported "
            f"{kind} is adopted as it is, so make the spec match it")
    before: dict[str, Any] = {"id": live_id}
    after: dict[str, Any] = {}
    for key, want in create.items():
        if key in ("name", "tags") or key not in live:
            continue
        if key in paths or (want is not None and want != live[key]):
            before[key], after[key] = live[key], want
    tag_diff(create.get("tags") or {}, live_tags, before, after)
    cls = payload_type(addr)
    return change(addr, REPLACE, Reason.REPLACE_BECAUSE_CANNOT_UPDATE, id=live_id,
                  before=cls(**before), after=cls(**after), replace_paths=paths)


# --- volumes -------------------------------------------------------------------------------


def volume_change(ctx: DiffContext, vs: Volume) -> Change:
    addr = f"volume.{vs.name}"
    lv = ctx.volumes.get(addr)
    tags = desired_tags(ctx, addr, vs.tags, persistent=vs.persistent, protect=vs.protect,
                        on_delete=vs.on_delete, live_tags=lv.tags if lv else None)
    if lv is not None and addr in ctx.adopting and TAG_CREATED_EMPTY in lv.tags:
        # an adopted volume was not created empty here (the tag is its maker's word,
        # or anyone's): it may never be formatted, even once `import:` is dropped
        tags[TAG_CREATED_EMPTY] = "false"
    create: dict[str, Any] = {
        "name": vs.name, "size_gib": vs.size_gib, "type": vs.type, "iops": vs.iops,
        "throughput_mibps": vs.throughput_mibps, "availability_zone": vs.availability_zone,
        "snapshot_id": vs.snapshot_id, "encrypted": vs.encrypted, "on_delete": vs.on_delete,
        "tags": tags,
    }
    if lv is None:
        reason = Reason.CREATE_BECAUSE_DELETED_OUTSIDE if volume_gone(ctx, addr) else (
            Reason.CREATE_BECAUSE_MISSING)
        return change(addr, (CREATE,), reason, after=VolumePayload(**create))
    paths = []
    if vs.availability_zone != lv.availability_zone:
        paths.append("availability_zone")
    if vs.snapshot_id and vs.snapshot_id != lv.snapshot_id:
        paths.append("snapshot_id")
    if vs.encrypted and not lv.encrypted:
        paths.append("encrypted")
    if paths:
        return replace_change(ctx, addr, lv.id, paths, volume_live(ctx, lv), create, lv.tags)
    before: dict[str, Any] = {"id": lv.id}
    after: dict[str, Any] = {"id": lv.id}
    # A smaller size than live is drift on this volume, blocked by the `shrink` rule.
    wanted = {"size_gib": vs.size_gib if vs.size_gib != lv.size_gib else None,
              "type": vs.type, "iops": vs.iops, "throughput_mibps": vs.throughput_mibps}
    for key, want in wanted.items():
        have = getattr(lv, key)
        if want is not None and want != have:
            before[key], after[key] = have, want
    return update_change(ctx, addr, lv.id, before, after, tags, lv.tags)


def volumes(ctx: DiffContext, work: WorkSet) -> None:
    """volume.* changes for the spec's volumes (none under --destroy)."""
    if ctx.destroy:
        return
    for vs in ctx.spec.volumes.values():
        work.add(volume_change(ctx, vs))


# --- instances -----------------------------------------------------------------------------


def instance_change(ctx: DiffContext, ins: Instance) -> Change:
    addr = f"instance.{ins.name}"
    li = ctx.instances.get(addr)
    tags = {**desired_tags(ctx, addr, ins.tags, protect=ins.protect,
                           live_tags=li.tags if li else None),
            **instance_safety_tags(ins)}
    create: dict[str, Any] = {
        "name": ins.name, "instance_type": ins.instance_type, "ami": ins.ami,
        "market": ins.market, "availability_zone": ins.availability_zone,
        "subnet_id": ins.subnet_id, "iam_instance_profile": ins.iam_instance_profile,
        "tags": tags,
    }
    if li is None:
        reason = Reason.CREATE_BECAUSE_MISSING if terminated_outside(ctx, addr) is None else (
            Reason.CREATE_BECAUSE_DELETED_OUTSIDE)
        return change(addr, (CREATE,), reason, after=InstancePayload(**create))
    checks = [
        ("instance_type", ins.instance_type != li.instance_type),
        ("ami", li.ami is not None and ins.ami != li.ami),
        ("market", ins.market != li.market),
        ("subnet_id", ins.subnet_id is not None and ins.subnet_id != li.subnet_id),
        ("availability_zone", ins.availability_zone != li.availability_zone),
        ("iam_instance_profile",
         not profile_matches(ins.iam_instance_profile, li.iam_instance_profile)),
    ]
    paths = [k for k, differs in checks if differs]
    if paths:
        return replace_change(ctx, addr, li.id, paths, instance_live(li), create, li.tags)
    before: dict[str, Any] = {"id": li.id}
    after: dict[str, Any] = {"id": li.id}
    return update_change(ctx, addr, li.id, before, after, tags, li.tags)


def instances(ctx: DiffContext, work: WorkSet) -> None:
    """instance.* changes for the spec's instances (none under --destroy)."""
    if ctx.destroy:
        return
    for ins in ctx.spec.instances.values():
        work.add(instance_change(ctx, ins))
