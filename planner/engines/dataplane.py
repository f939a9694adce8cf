"""The data plane every engine uses: mount, unmount, dataset sync and verify, dataset
upload, the digest tag, and the watchers installed at launch. Scripts run through the
SsmTransport (planner.dataplane.steps); anything but an "ok" result is a failed step,
with the output cut to a readable size. The prewarm steps are in planner.engines.prewarm.

Each step takes the apply's AwsOps and the change, reads what the diff decided
(`change.after`, `change.before`), and returns facts for the journal or raises
StepFailed. The guards (planner.guards: training, checkpoints, order) ran before.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Mapping
from typing import Any

from planner.dataplane import steps
from planner.engines.awsops import AwsOps, tags_of
from planner.engines.base import OUTPUT_LIMIT, StepFailed, payload_of
from planner.live import TAG_CREATED_EMPTY, TAG_DATASET_DIGEST, TAG_MOUNTED, TAG_PROJECT
from planner.payloads import DatasetPayload, MountPayload, PrewarmPayload, SyncPayload
from planner.plan import Change
from planner.spec import Instance, Strategy
from planner.tags import GIB, mounted_tag_value, parse_mounted_tag

MOUNT_TIMEOUT = 900.0
TAG_VALUE_LIMIT = 256


def why(result: Any) -> str:
    return str(result.message(OUTPUT_LIMIT))


def _names(change: Change) -> tuple[str, str]:
    first, _, second = change.name.partition(".")
    return first, second


# --- instances: the watchers installed at launch --------------------------------------


def install_spot_watcher(ops: AwsOps, change: Change, iid: str, path: str,
                         sync_to: str, facts: dict[str, str]) -> None:
    r = steps.install_spot_watcher(ops.ssm, iid, path=path, sync_to=sync_to)
    if not r.ok:
        raise StepFailed(f"{change.address}: {iid} runs, but its spot watcher was not "
                         f"installed: {why(r)}", facts=facts)
    mode = r.data.get("mode")
    facts["spot_watcher"] = (f"installed ({mode})" if mode != "none"
                             else f"not started: {r.data.get('reason')}")


def install_lifetime_watcher(ops: AwsOps, change: Change, ins: Instance, iid: str,
                             facts: dict[str, str]) -> None:
    """max_lifetime and idle_stop_minutes, enforced on the instance from its launch time."""
    deadline = None
    if ins.lifetime_seconds:
        desc = ops.ec2.describe_instances(InstanceIds=[iid])
        launched = desc["Reservations"][0]["Instances"][0]["LaunchTime"]
        deadline = int(launched.timestamp()) + ins.lifetime_seconds
    ck, tr = ins.checkpoints, ins.training
    r = steps.install_lifetime_watcher(
        ops.ssm, iid, deadline=deadline,
        idle_seconds=ins.idle_stop_minutes * 60 if ins.idle_stop_minutes else None,
        action=ins.idle_action, ckpt_path=ck.path if ck else None,
        sync_to=ck.sync_to if ck else None, pid_file=tr.pid_file if tr else None,
        patterns=tr.process_patterns if tr else (),
        interval=int(os.environ.get("TRAINCTL_WATCH_INTERVAL", "60")))
    if not r.ok:
        raise StepFailed(f"{change.address}: {iid} runs, but its lifetime watcher was not "
                         f"started: {why(r)}", facts=facts)
    facts["lifetime_watcher"] = f"started ({r.data.get('mode')})"


# --- mounts ---------------------------------------------------------------------------


def mount_create(ops: AwsOps, change: Change) -> dict[str, str]:
    i_name, v_name = _names(change)
    after = payload_of(change, MountPayload)
    iid = ops.instance_id_of(i_name, after.instance_id)
    vid = ops.volume_id_of(v_name, after.volume_id)
    path, device = after.path, after.device
    if not path or not device:
        raise StepFailed(f"{change.address}: no mount path or device")
    read_only = bool(after.read_only)
    filesystem = str(after.filesystem or "ext4")
    r = mount_volume(ops, change, iid, vid, v_name, str(device), str(path), read_only,
                     filesystem)
    fs_bytes = record_mount(ops, vid, iid, str(path), r)
    return {"instance_id": iid, "volume_id": vid, "path": str(path),
            **({"fs_bytes": str(fs_bytes)} if fs_bytes is not None else {}),
            **({"formatted": "true"} if r.data.get("formatted") is True else {}),
            **({"grown": "true"} if r.data.get("grown") is True else {})}


def record_mount(ops: AwsOps, vid: str, iid: str, path: str, result: Any) -> int | None:
    """trainctl:mounted = INSTANCE_ID:PATH plus the filesystem size the mount step made or
    grew, so a later plan sees a volume larger than its filesystem (a grow never lost)."""
    fs = result.data.get("fs_bytes")
    fs_bytes = fs if isinstance(fs, int) and not isinstance(fs, bool) and fs > 0 else None
    ops.set_tags(vid, {TAG_MOUNTED: mounted_tag_value(iid, path, fs_bytes)})
    return fs_bytes


def may_format(ops: AwsOps, raw_volume: Mapping[str, Any] | None, v_name: str) -> bool:
    """Only a volume this project's trainctl created empty may be formatted: tagged so at
    CreateVolume, made from no snapshot, and neither `snapshot_id` nor `import` in the spec."""
    if raw_volume is None:
        return False
    tags = tags_of(raw_volume)
    vs = ops.spec.volumes.get(v_name)
    return (tags.get(TAG_CREATED_EMPTY) == "true"
            and tags.get(TAG_PROJECT) == ops.spec.project
            and not raw_volume.get("SnapshotId")
            and vs is not None and not vs.snapshot_id and not vs.import_id)


def mount_delete(ops: AwsOps, change: Change) -> dict[str, str]:
    """Unmount (the guards checked training and synced the checkpoints first), then
    clear the volume's trainctl:mounted tag when it names this instance."""
    i_name, v_name = _names(change)
    before = payload_of(change, MountPayload, before=change.before is not None)
    vid = ops.volume_id_of(v_name, before.volume_id)
    iid = ops.instance_id_of(i_name, before.instance_id)
    raw_v = ops.describe_volume(vid)
    tag = parse_mounted_tag(tags_of(raw_v or {}).get(TAG_MOUNTED))
    here = tag is not None and tag.instance_id == iid
    path = before.path or (tag.path if tag is not None and here else "")
    facts = {"instance_id": iid, "volume_id": vid, "path": str(path)}
    raw_i = ops.describe_instance(iid)
    state = (raw_i or {}).get("State", {}).get("Name")
    if state in ("pending", "running") and path:
        r = steps.unmount(ops.ssm, iid, path=path, volume_id=vid)
        if not r.ok:
            raise StepFailed(f"{change.address}: unmount of {path} on {iid} failed: "
                             f"{why(r)}")
    else:
        facts["result"] = f"instance {state or 'gone'}: nothing to unmount"
    if raw_v is not None and here:
        ops.set_tags(vid, {TAG_MOUNTED: None})
    return facts


# --- datasets ----------------------------------------------------------------------


def record_digest(ops: AwsOps, resource_id: str, dataset: str, digest: str,
                  objects: int | None = None, size: int | None = None) -> str:
    """Set this dataset's entry of the trainctl:dataset-digest tag (with its object count
    and bytes when they fit the tag), keeping the others."""
    from planner.digesttag import entry_value, format_digest_tag, parse_digest_tag

    with ops.resource_lock(resource_id):
        if resource_id.startswith("vol-"):
            raw = ops.describe_volume(resource_id)
        else:
            raw = ops.describe_instance(resource_id)
        if raw is None:
            raise StepFailed(f"{resource_id} is gone; dataset {dataset} not recorded")
        tags = tags_of(raw)
        entries = parse_digest_tag(tags.get(TAG_DATASET_DIGEST))
        entries[dataset] = entry_value(digest, objects, size)
        value = format_digest_tag(entries)
        if len(value) > TAG_VALUE_LIMIT:      # the counts are a courtesy: drop them first
            value = format_digest_tag(entries, counts=False)
        if len(value) > TAG_VALUE_LIMIT:
            raise StepFailed(f"{resource_id}: too many datasets for the "
                             f"{TAG_DATASET_DIGEST} tag ({len(value)} > {TAG_VALUE_LIMIT} "
                             f"characters)")
        ops.set_tags(resource_id, {TAG_DATASET_DIGEST: value})
        return value


def expected(ops: AwsOps, after: SyncPayload | PrewarmPayload,
             uri: str) -> tuple[int, int, str]:
    """(objects, bytes, digest): the plan's numbers, or a fresh listing when it has none."""
    objects, size, digest = after.objects, after.bytes, after.digest
    if objects is not None and size is not None and digest:
        return int(objects), int(size), str(digest)
    from planner.aws.datasets_read import s3_manifest

    m = s3_manifest(ops.aws, uri)
    return m.objects, m.bytes, m.digest


def join(base: str, rel: str | None) -> str:
    return posixpath.normpath(posixpath.join(base, (rel or "/").lstrip("/")))


def sync_create(ops: AwsOps, change: Change) -> dict[str, str]:
    i_name, d_name = _names(change)
    after = payload_of(change, SyncPayload)
    iid = ops.instance_id_of(i_name, after.instance_id)
    strategy, uri, path = after.strategy, after.uri, after.path
    if not path or not uri:
        raise StepFailed(f"{change.address}: no dataset path or URI")
    if strategy == Strategy.EXISTING_EBS:
        r = steps.verify_dataset(ops.ssm, iid, path=path)
        digest = after.digest
        counts: tuple[Any, Any] = (after.objects, after.bytes)
        what = "verify"
    else:
        objects, size, digest = expected(ops, after, uri)
        counts = (objects, size)
        r = steps.sync_dataset(ops.ssm, iid, uri=uri, path=path, expect_objects=objects,
                               expect_bytes=size)
        what = "sync"
    if not r.ok:
        raise StepFailed(f"{change.address}: {what} of {uri} at {path} on {iid} failed: "
                         f"{why(r)}")
    facts = {"instance_id": iid, "path": str(path)}
    record_on = str(after.record_on or f"instance.{i_name}")
    if digest:
        if record_on.startswith("volume."):
            target = ops.volume_id_of(record_on.split(".", 1)[1], after.volume_id)
        else:
            target = iid
        facts["digest_tag"] = record_digest(ops, target, d_name, str(digest), *counts)
        facts["recorded_on"] = target
    return facts


def dataset_upload(ops: AwsOps, change: Change) -> dict[str, str]:
    """Upload the folder to its stage; delete no more than the plan says (its counts of
    stale objects trainctl wrote), keep what trainctl did not write."""
    from planner.aws.upload import upload_dataset

    ds = ops.spec.datasets.get(change.name)
    if ds is None or not ds.is_local or not ds.stage:
        raise StepFailed(f"{change.address}: not a local dataset with a stage")
    source = ds.source
    if not os.path.isabs(source):
        source = os.path.join(os.path.dirname(os.path.abspath(ops.spec.source_file)), source)
    after = payload_of(change, DatasetPayload)
    planned = (_count(after.delete_objects), _count(after.delete_bytes))
    up = upload_dataset(ops.aws, source, ds.stage, project=ops.spec.project,
                        dataset=ds.name, max_delete=planned, progress=ops.upload_progress)
    m, w = up.manifest, up.work
    return {"stage": ds.stage, "objects": str(m.objects), "bytes": str(m.bytes),
            "digest": m.digest, "uploaded": str(len(w.upload)),
            "deleted": str(len(w.delete)), "kept": str(len(w.kept))}


def _count(value: Any) -> int:
    """A count from the plan; a plan without one allows nothing (0)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def sync_to_path(ops: AwsOps, change: Change, iid: str, uri: str, path: str,
          expected: tuple[int, int, str]) -> None:
    r = steps.sync_dataset(ops.ssm, iid, uri=uri, path=path, expect_objects=expected[0],
                              expect_bytes=expected[1])
    if not r.ok:
        raise StepFailed(f"{change.address}: sync of {uri} to {path} on {iid} failed: "
                         f"{why(r)}")


def mount_volume(ops: AwsOps, change: Change, iid: str, vid: str, v_name: str, device: str,
           path: str, read_only: bool, filesystem: str) -> Any:
    """The mount step, told whether the volume may be formatted (trainctl made it empty)
    and its size as EC2 reports it. A refusal is a failed step, never a success."""
    raw = ops.describe_volume(vid)
    size = (raw or {}).get("Size")
    r = steps.mount(ops.ssm, iid, volume_id=vid, device=device, path=path,
                       read_only=read_only, filesystem=filesystem,
                       may_format=may_format(ops, raw, v_name),
                       volume_bytes=int(size) * GIB if isinstance(size, int) else None,
                       timeout=MOUNT_TIMEOUT)
    if not r.ok:
        raise StepFailed(f"{change.address}: mount of {vid} at {path} on {iid} "
                         f"{'refused' if r.state == 'refused' else 'failed'}: {why(r)}")
    return r
