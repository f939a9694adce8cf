"""Data: uploads of local datasets to their stage, prewarms of volumes, and syncs onto
instances, each a no-op exactly when the digest tag records the source's digest."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from planner.diff.base import (
    CREATE,
    DATASET,
    PREWARM,
    SYNC,
    TEMPORARY_INSTANCE,
    UPDATE,
    change,
    noop,
)
from planner.diff.context import DiffContext
from planner.diff.work import WorkSet
from planner.digesttag import digest_matches, entry_counts, parse_digest_tag, short_digest
from planner.errors import TrainctlError
from planner.graph import parse_address, sync_path
from planner.keys import describe as describe_keys
from planner.live import TAG_DATASET_DIGEST, DatasetManifest, LiveInstance, LiveVolume
from planner.payloads import DatasetPayload, PrewarmPayload, SyncPayload
from planner.plan import Block, Change, Reason, Rule
from planner.spec import Strategy
from planner.stage import as_json as stage_json
from planner.stage import owner_problem as stage_owner_problem
from planner.words import counted, plural


def source_manifest(ctx: DiffContext, name: str) -> DatasetManifest | None:
    """What the dataset's S3 side will hold after apply: the local folder for local
    sources (it is uploaded first), else the S3 listing."""
    ds = ctx.spec.datasets[name]
    if ds.is_local and f"{name}:local" in ctx.live.datasets:
        return ctx.live.datasets[f"{name}:local"]
    return ctx.live.datasets.get(name)


def manifest_fields(ctx: DiffContext, name: str) -> dict[str, Any]:
    m = source_manifest(ctx, name)
    d = m.digest if m else None
    return {"objects": m.objects if m else None, "bytes": m.bytes if m else None,
            "digest": d, "digest_entry": f"{name}={short_digest(d)}" if d else None}


def unsafe_blocks(ctx: DiffContext, name: str, *, local: bool = False) -> tuple[Block, ...]:
    """`unsafe-key`: a listing of dataset NAME holds keys that are not safe relative
    paths. LOCAL: only the local folder counts (what the upload sends)."""
    keys = [f"{name}:local"] if local else [f"{name}:local", name]
    out = []
    for key in keys:
        m = ctx.live.datasets.get(key)
        if m is None or not m.unsafe_objects:
            continue
        n = m.unsafe_objects
        out.append(Block(Rule.UNSAFE_KEY, (
            f"dataset {name}: {m.uri} holds {counted(n, 'key')} that "
            f"{'is not a safe relative path' if n == 1 else 'are not safe relative paths'}: "
            f"{describe_keys(m.unsafe_keys, m.unsafe_objects)}; copying "
            f"{plural(n, 'it', 'them')} could write outside the destination: rename or "
            f"remove {plural(n, 'it', 'them')}")))
    return tuple(out)


def with_unsafe_blocks(ctx: DiffContext, c: Change, name: str) -> Change:
    if c.is_noop:
        return c
    blocks = unsafe_blocks(ctx, name)
    return replace(c, blocked_by=c.blocked_by + blocks) if blocks else c


def refill_before(recorded: str | None, name: str) -> dict[str, Any] | None:
    """What a refill replaces: the dataset as last filled or synced (its digest, and
    its counts when the tag recorded them). None when nothing was filled yet: then
    the fill or sync is a create."""
    entry = parse_digest_tag(recorded).get(name)
    if entry is None:
        return None
    objects, size = entry_counts(entry)
    return {"objects": objects, "bytes": size, "digest": short_digest(entry),
            "digest_entry": f"{name}={short_digest(entry)}"}


# --- datasets ------------------------------------------------------------------------------


def dataset_change(ctx: DiffContext, name: str) -> Change:
    """The upload of a local folder to its stage. With the stage's work known
    (planner.stage), it is a no-op exactly when nothing is sent or deleted, and the
    change carries every count the upload will act on, deletions included."""
    addr = f"dataset.{name}"
    ds = ctx.spec.datasets[name]
    local = ctx.live.datasets.get(f"{name}:local")
    stage = ctx.live.datasets.get(name)
    staged = ctx.live.stages.get(name)
    owner = stage_owner_problem(staged, ctx.project)
    if owner is not None:
        raise TrainctlError(f"datasets.{name}.stage: {ds.stage}: {owner}; a stage is a "
                            f"prefix trainctl owns alone: give dataset {name} its own")
    after = DatasetPayload(dataset=name, source=ds.source, stage=ds.stage,
                           objects=local.objects if local else None,
                           bytes=local.bytes if local else None,
                           digest=local.digest if local else None,
                           **(stage_json(staged) if staged is not None else {}))
    if staged is not None and stage is not None:
        unchanged = staged.upload_objects == 0 and staged.delete_objects == 0
    else:
        unchanged = local is not None and stage is not None and local.digest == stage.digest
    if unchanged:
        return noop(addr)
    blocks = unsafe_blocks(ctx, name, local=True)
    if stage is None or stage.objects == 0:
        c = change(addr, (CREATE,), Reason.UPLOAD_BECAUSE_SOURCE_CHANGED, after=after)
    else:
        before = DatasetPayload(objects=stage.objects, bytes=stage.bytes, digest=stage.digest)
        c = change(addr, (UPDATE,), Reason.UPLOAD_BECAUSE_SOURCE_CHANGED,
                   before=before, after=after)
    return replace(c, blocked_by=blocks) if blocks else c


def datasets(ctx: DiffContext, work: WorkSet) -> None:
    """dataset.* changes: uploads of local folders to their stage (none under --destroy)."""
    if ctx.destroy:
        return
    for _, (name,) in ctx.nodes_of(DATASET):
        work.add(dataset_change(ctx, name))


# --- prewarms ------------------------------------------------------------------------------


def prewarm_via(ctx: DiffContext, work: WorkSet, v_name: str) -> dict[str, Any]:
    """Fill through the managed instance the volume stays attached to, else through a
    temporary instance in the volume's AZ (the volume is new or not attached)."""
    for ins in ctx.spec.instances.values():
        for m in ins.mounts:
            att = work.changes.get(f"attachment.{ins.name}.{v_name}")
            if m.volume != v_name or att is None or not att.is_noop:
                continue
            mnt = work.changes.get(f"mount.{ins.name}.{v_name}")
            return {"via": f"instance.{ins.name}",
                    "instance_id": ctx.instances[f"instance.{ins.name}"].id,
                    "device": m.device, "mount_path": m.path, "read_only": m.read_only,
                    "mounted": bool(mnt and mnt.is_noop)}
    return {"via": TEMPORARY_INSTANCE}


def prewarm_change(ctx: DiffContext, work: WorkSet, name: str) -> Change:
    addr = f"prewarm.{name}"
    ds = ctx.spec.datasets[name]
    v_name = str(ds.volume)
    v_addr = f"volume.{v_name}"
    vs = ctx.spec.volumes[v_name]
    lv = ctx.volumes.get(v_addr)
    fields = manifest_fields(ctx, name)
    new_volume = lv is None or work.fresh(v_addr)
    recorded = None if new_volume or lv is None else lv.tags.get(TAG_DATASET_DIGEST)
    if digest_matches(recorded, name, fields["digest"]):
        return noop(addr)
    after = PrewarmPayload(volume=v_name, dataset=name, uri=ds.s3_uri, path=ds.path or "/",
                           **fields, volume_id=work.live_id(ctx, v_addr),
                           availability_zone=vs.availability_zone, filesystem=vs.filesystem,
                           **prewarm_via(ctx, work, v_name))
    reason = Reason.CREATE_BECAUSE_MISSING if new_volume else (
        Reason.PREWARM_BECAUSE_DATASET_CHANGED)
    before = refill_before(recorded, name)
    return with_unsafe_blocks(
        ctx, change(addr, (UPDATE,) if before else (CREATE,), reason,
                    before=None if before is None else PrewarmPayload(**before),
                    after=after), name)


def prewarms(ctx: DiffContext, work: WorkSet) -> None:
    """prewarm.* changes: fills of volumes whose digest tag is not the dataset's."""
    if ctx.destroy:
        return
    for _, (name,) in ctx.nodes_of(PREWARM):
        work.add(prewarm_change(ctx, work, name))


# --- syncs ---------------------------------------------------------------------------------


def sync_change(ctx: DiffContext, work: WorkSet, addr: str) -> Change:
    _, (i_name, d_name) = parse_address(addr)
    ins = ctx.spec.instances[i_name]
    ds = ctx.spec.datasets[d_name]
    landing = sorted(p for p in ctx.graph.predecessors(addr) if p.startswith("mount."))
    if landing:
        record_on = f"volume.{landing[0].split('.')[2]}"
        res: LiveVolume | LiveInstance | None = ctx.volumes.get(record_on)
    else:
        record_on = f"instance.{i_name}"
        res = ctx.instances.get(record_on)
    fields = manifest_fields(ctx, d_name)
    fresh = res is None or work.fresh(record_on)
    recorded = None if fresh or res is None else res.tags.get(TAG_DATASET_DIGEST)
    if digest_matches(recorded, d_name, fields["digest"]):
        return noop(addr)
    after = SyncPayload(instance=i_name, dataset=d_name, strategy=ds.strategy,
                        uri=ds.s3_uri, path=sync_path(ctx.spec, ins, d_name), **fields,
                        record_on=record_on,
                        instance_id=work.live_id(ctx, f"instance.{i_name}"),
                        volume_id=work.live_id(ctx, record_on) if landing else None)
    if ds.strategy == Strategy.EXISTING_EBS:
        reason = Reason.VERIFY_BECAUSE_EXISTING_EBS
    elif fresh:
        reason = Reason.CREATE_BECAUSE_MISSING
    else:
        reason = Reason.SYNC_BECAUSE_DATASET_CHANGED
    before = refill_before(recorded, d_name)
    c = change(addr, (UPDATE,) if before else (CREATE,), reason,
               before=None if before is None else SyncPayload(**before), after=after)
    if ds.strategy == Strategy.EXISTING_EBS:
        return c          # a check of the volume's files: nothing is copied
    return with_unsafe_blocks(ctx, c, d_name)


def syncs(ctx: DiffContext, work: WorkSet) -> None:
    """sync.* changes: copies of datasets onto instances whose digest tag is stale."""
    if ctx.destroy:
        return
    for addr, _ in ctx.nodes_of(SYNC):
        work.add(sync_change(ctx, work, addr))
