"""The direct engine's data plane: mount, sync, upload, prewarm, and the checks before an
unmount, a detach or a terminate (training job, checkpoint sync). Scripts run through the
engine's SsmTransport (planner.dataplane.steps); anything but an "ok" result is a failed
step, with the output cut to a readable size.
"""

from __future__ import annotations

import os
import posixpath
import re
from typing import TYPE_CHECKING, Any

from planner.engines.base import OUTPUT_LIMIT, StepFailed
from planner.live import (
    TAG_CREATED_EMPTY,
    TAG_DATASET_DIGEST,
    TAG_MOUNTED,
    TAG_PROJECT,
    TAG_TEMPORARY,
)
from planner.plan import Change
from planner.spec import DEFAULT_GRACE_SECONDS, Checkpoints, Instance, Training
from planner.tags import GIB, mounted_tag_value, parse_mounted_tag, safety_from_tags

if TYPE_CHECKING:
    from planner.engines.direct import DirectEngine

MOUNT_TIMEOUT = 900.0
PREWARM_INSTANCE_TYPE = "t3.small"
PREWARM_INSTANCE_TYPE_ARM = "t4g.small"
PREWARM_DEVICE = "/dev/sdf"
PREWARM_MOUNT = "/mnt/trainctl-prewarm"
TAG_VALUE_LIMIT = 256
GONE = ("shutting-down", "terminated")
ARM_FAMILY = re.compile(r"^[a-z]+\d+[a-z]*g[a-z]*\.")   # c7g, m6gd, g5g: Graviton


def _steps() -> Any:
    from planner.dataplane import steps

    return steps


def _why(result: Any) -> str:
    return str(result.message(OUTPUT_LIMIT))


def _names(change: Change) -> tuple[str, str]:
    first, _, second = change.name.partition(".")
    return first, second


# --- instances: spot watcher, checks before terminate --------------------------------


def install_spot_watcher(engine: DirectEngine, change: Change, iid: str, path: str,
                         sync_to: str, facts: dict[str, str]) -> None:
    r = _steps().install_spot_watcher(engine.ssm, iid, path=path, sync_to=sync_to)
    if not r.ok:
        raise StepFailed(f"{change.address}: {iid} runs, but its spot watcher was not "
                         f"installed: {_why(r)}", facts=facts)
    mode = r.data.get("mode")
    facts["spot_watcher"] = (f"installed ({mode})" if mode != "none"
                             else f"not started: {r.data.get('reason')}")


def install_lifetime_watcher(engine: DirectEngine, change: Change, ins: Instance, iid: str,
                             facts: dict[str, str]) -> None:
    """max_lifetime and idle_stop_minutes, enforced on the instance from its launch time."""
    deadline = None
    if ins.lifetime_seconds:
        desc = engine.ec2.describe_instances(InstanceIds=[iid])
        launched = desc["Reservations"][0]["Instances"][0]["LaunchTime"]
        deadline = int(launched.timestamp()) + ins.lifetime_seconds
    ck, tr = ins.checkpoints, ins.training
    r = _steps().install_lifetime_watcher(
        engine.ssm, iid, deadline=deadline,
        idle_seconds=ins.idle_stop_minutes * 60 if ins.idle_stop_minutes else None,
        action=ins.idle_action, ckpt_path=ck.path if ck else None,
        sync_to=ck.sync_to if ck else None, pid_file=tr.pid_file if tr else None,
        patterns=tr.process_patterns if tr else (),
        interval=int(os.environ.get("TRAINCTL_WATCH_INTERVAL", "60")))
    if not r.ok:
        raise StepFailed(f"{change.address}: {iid} runs, but its lifetime watcher was not "
                         f"started: {_why(r)}", facts=facts)
    facts["lifetime_watcher"] = f"started ({r.data.get('mode')})"


def instance_settings(engine: DirectEngine, i_name: str, iid: str
                      ) -> tuple[Training | None, Checkpoints | None] | None:
    """The training and checkpoint settings: from the spec, else from the tags recorded
    at launch (an instance dropped from the spec); None when neither knows."""
    ins = engine.spec.instances.get(i_name)
    if ins is not None:
        return ins.training, ins.checkpoints
    from planner.engines.direct_ec2 import tags_of  # direct_ec2 imports this module

    raw = engine.describe_instance(iid)
    return safety_from_tags(tags_of(raw)) if raw else None


def check_training(engine: DirectEngine, i_name: str, iid: str, verb: str) -> str:
    """The training-job check before a step that ends the job's access to its files (VERB:
    "terminates", "unmounts /scratch", ...). Returns the journal fact; raises StepFailed
    "training-running: ..." while a job runs or SSM cannot tell, unless
    `--stop-training instance.NAME` names the instance: the job is then stopped (SIGTERM,
    training.grace_seconds, SIGKILL) before the step goes on. --force never lifts this.

    A "not running" answer is reused for the same instance for a short while (one
    teardown unmounts, detaches and terminates); "running" and "cannot tell" never are."""
    address = f"instance.{i_name}"
    with engine.resource_lock(f"training-check:{iid}"):
        if engine.training_idle(iid):
            return "not running"
        settings = instance_settings(engine, i_name, iid)
        training = settings[0] if settings else None
        r = _steps().training_running(
            engine.ssm, iid,
            pid_file=training.pid_file if training else None,
            patterns=tuple(training.process_patterns) if training else (),
        )
        running = r.data.get("running") if r.ok and settings is not None else None
        engine.note_training_idle(iid, running is False)
        if running is False:
            return "not running"
        if running is True:
            seen = r.data.get("evidence") or r.data.get("pids")
            why = f"a training job runs on {address} ({iid})" + (f": {seen}" if seen else "")
        else:
            why = (f"cannot tell whether a training job runs on {address} ({iid}): " + (
                "it is not in the spec and its training settings were not recorded at launch"
                if settings is None else _why(r) if not r.ok else "the check gave no answer"))
        if address not in engine.overrides.stop_training:
            raise StepFailed(
                f"training-running: {why}; --stop-training {address} stops the job "
                f"(SIGTERM, training.grace_seconds, SIGKILL, checkpoint sync), then {verb}")
        return stop_training(engine, address, iid, training, why)


def stop_training(engine: DirectEngine, address: str, iid: str, training: Training | None,
                  why: str) -> str:
    """--stop-training: SIGTERM the job, wait its grace_seconds, SIGKILL what is left; the
    checkpoint sync that follows saves what it wrote on SIGTERM. Raises StepFailed when
    the stop cannot be confirmed (the job may still run)."""
    grace = training.grace_seconds if training else DEFAULT_GRACE_SECONDS
    r = _steps().stop_training(
        engine.ssm, iid, pid_file=training.pid_file if training else None,
        patterns=tuple(training.process_patterns) if training else (), grace_seconds=grace)
    if not r.ok or r.data.get("stopped") is not True:
        detail = _why(r) if not r.ok else "the stop script did not say it stopped the job"
        raise StepFailed(f"training-running: {why}; --stop-training {address} could not "
                         f"stop it: {detail}")
    engine.note_training_idle(iid, True)
    return (f"stopped by --stop-training: {r.data.get('result')} (SIGTERM to "
            f"{r.data.get('signalled', [])}, SIGKILL to {r.data.get('killed', [])}, "
            f"grace {grace}s)")


def save_checkpoints(engine: DirectEngine, address: str, iid: str, path: str, sync_to: str,
                     verb: str) -> tuple[str, str]:
    """Sync the checkpoint folder; (outcome, journal fact), outcome as
    steps.checkpoint_outcome. Raises StepFailed "checkpoint-sync: ..." when the sync
    failed or its answer does not say what it did (no flag overrides that)."""
    steps = _steps()
    r = steps.sync_checkpoints(engine.ssm, iid, path=path, sync_to=sync_to)
    outcome = steps.checkpoint_outcome(r)
    if outcome == "synced":
        return outcome, (f"synced {path} to {sync_to} ({r.data.get('objects')} files, "
                         f"{r.data.get('copied', 0)} copied now)")
    if outcome == "absent":
        return outcome, f"path {path} absent, nothing to sync"
    if outcome == "empty":
        return outcome, f"path {path} empty, nothing to sync"
    why = _why(r) if not r.ok else "the script did not say what it synced"
    raise StepFailed(f"checkpoint-sync: {address} ({iid}): checkpoints in {path} were not "
                     f"synced to {sync_to}: {why}; nothing {verb} until they are (fix the "
                     f"sync and apply again; --force does not lift this)")


def before_terminate(engine: DirectEngine, change: Change, iid: str) -> dict[str, str]:
    """The training-job check (and --stop-training's stop), then the checkpoint sync.

    The journal says what really happened: "synced" only when files were synced, here or
    before the unmount of the volume that held them (mount_delete), in this apply."""
    facts = {"training": check_training(engine, change.name, iid, "terminates")}
    settings = instance_settings(engine, change.name, iid)
    ckpt = settings[1] if settings else None
    if ckpt is not None and ckpt.sync_to:
        outcome, fact = save_checkpoints(engine, change.address, iid, ckpt.path,
                                         ckpt.sync_to, "terminates")
        earlier = engine.checkpoints_at_unmount.get(iid)
        if outcome in ("absent", "empty") and earlier:
            fact = earlier
        facts["checkpoints"] = fact
    return facts


def _on_mount(path: str, mount_path: str) -> bool:
    """PATH is MOUNT_PATH or below it."""
    p, m = posixpath.normpath(path), posixpath.normpath(mount_path)
    return p == m or p.startswith(m.rstrip("/") + "/")


# --- mounts ---------------------------------------------------------------------------


def _spec_mount(engine: DirectEngine, i_name: str, v_name: str) -> Any | None:
    ins = engine.spec.instances.get(i_name)
    return next((m for m in ins.mounts if m.volume == v_name), None) if ins else None


def mount_create(engine: DirectEngine, change: Change) -> dict[str, str]:
    i_name, v_name = _names(change)
    after = dict(change.after or {})
    iid = engine.instance_id_of(i_name, after.get("instance_id"))
    vid = engine.volume_id_of(v_name, after.get("volume_id"))
    m = _spec_mount(engine, i_name, v_name)
    vs = engine.spec.volumes.get(v_name)
    path = after.get("path") or (m.path if m else None)
    device = after.get("device") or (m.device if m else None)
    if not path or not device:
        raise StepFailed(f"{change.address}: no mount path or device")
    read_only = bool(after.get("read_only", m.read_only if m else False))
    filesystem = after.get("filesystem") or (vs.filesystem if vs else "ext4")
    r = _mount(engine, change, iid, vid, v_name, str(device), str(path), read_only, filesystem)
    fs_bytes = record_mount(engine, vid, iid, str(path), r)
    return {"instance_id": iid, "volume_id": vid, "path": str(path),
            **({"fs_bytes": str(fs_bytes)} if fs_bytes is not None else {}),
            **({"formatted": "true"} if r.data.get("formatted") is True else {}),
            **({"grown": "true"} if r.data.get("grown") is True else {})}


def record_mount(engine: DirectEngine, vid: str, iid: str, path: str, result: Any) -> int | None:
    """trainctl:mounted = INSTANCE_ID:PATH plus the filesystem size the mount step made or
    grew, so a later plan sees a volume larger than its filesystem (a grow never lost)."""
    fs = result.data.get("fs_bytes")
    fs_bytes = fs if isinstance(fs, int) and not isinstance(fs, bool) and fs > 0 else None
    engine.set_tags(vid, {TAG_MOUNTED: mounted_tag_value(iid, path, fs_bytes)})
    return fs_bytes


def may_format(engine: DirectEngine, raw_volume: dict[str, Any] | None, v_name: str) -> bool:
    """Only a volume this project's trainctl created empty may be formatted: tagged so at
    CreateVolume, made from no snapshot, and neither `snapshot_id` nor `import` in the spec."""
    if raw_volume is None:
        return False
    tags = {t["Key"]: t["Value"] for t in raw_volume.get("Tags", ()) or ()}
    vs = engine.spec.volumes.get(v_name)
    return (tags.get(TAG_CREATED_EMPTY) == "true"
            and tags.get(TAG_PROJECT) == engine.spec.project
            and not raw_volume.get("SnapshotId")
            and vs is not None and not vs.snapshot_id and not vs.import_id)


def mount_delete(engine: DirectEngine, change: Change) -> dict[str, str]:
    i_name, v_name = _names(change)
    before = dict(change.before or change.after or {})
    vid = engine.volume_id_of(v_name, before.get("volume_id"))
    iid = engine.instance_id_of(i_name, before.get("instance_id"))
    raw_v = engine.describe_volume(vid)
    tag = parse_mounted_tag(
        {t["Key"]: t["Value"] for t in (raw_v or {}).get("Tags", ())}.get(TAG_MOUNTED))
    here = tag is not None and tag.instance_id == iid
    path = before.get("path") or (tag.path if tag is not None and here else "")
    facts = {"instance_id": iid, "volume_id": vid, "path": str(path)}
    raw_i = engine.describe_instance(iid)
    state = (raw_i or {}).get("State", {}).get("Name")
    if state in ("pending", "running") and path:
        # The job's files go away with the mount: ask first, and save the checkpoints
        # that live on this volume while they can still be read.
        facts["training"] = check_training(engine, i_name, iid, f"unmounts {path}")
        settings = instance_settings(engine, i_name, iid)
        ckpt = settings[1] if settings else None
        if ckpt is not None and ckpt.sync_to and _on_mount(ckpt.path, str(path)):
            outcome, fact = save_checkpoints(engine, change.address, iid, ckpt.path,
                                             ckpt.sync_to, f"unmounts {path}")
            facts["checkpoints"] = fact
            if outcome == "synced":
                engine.checkpoints_at_unmount[iid] = f"synced at unmount of {path}: {fact}"
        r = _steps().unmount(engine.ssm, iid, path=path, volume_id=vid)
        if not r.ok:
            raise StepFailed(f"{change.address}: unmount of {path} on {iid} failed: "
                             f"{_why(r)}")
    else:
        facts["result"] = f"instance {state or 'gone'}: nothing to unmount"
    if raw_v is not None and here:
        engine.set_tags(vid, {TAG_MOUNTED: None})
    return facts


# --- datasets ----------------------------------------------------------------------


def record_digest(engine: DirectEngine, resource_id: str, dataset: str, digest: str,
                  objects: int | None = None, size: int | None = None) -> str:
    """Set this dataset's entry of the trainctl:dataset-digest tag (with its object count
    and bytes when they fit the tag), keeping the others."""
    from planner.digesttag import entry_value, format_digest_tag, parse_digest_tag

    with engine.resource_lock(resource_id):
        if resource_id.startswith("vol-"):
            raw = engine.describe_volume(resource_id)
        else:
            raw = engine.describe_instance(resource_id)
        if raw is None:
            raise StepFailed(f"{resource_id} is gone; dataset {dataset} not recorded")
        tags = {t["Key"]: t["Value"] for t in raw.get("Tags", ())}
        entries = parse_digest_tag(tags.get(TAG_DATASET_DIGEST))
        entries[dataset] = entry_value(digest, objects, size)
        value = format_digest_tag(entries)
        if len(value) > TAG_VALUE_LIMIT:      # the counts are a courtesy: drop them first
            value = format_digest_tag(entries, counts=False)
        if len(value) > TAG_VALUE_LIMIT:
            raise StepFailed(f"{resource_id}: too many datasets for the "
                             f"{TAG_DATASET_DIGEST} tag ({len(value)} > {TAG_VALUE_LIMIT} "
                             f"characters)")
        engine.set_tags(resource_id, {TAG_DATASET_DIGEST: value})
        return value


def _expected(engine: DirectEngine, after: dict[str, Any], uri: str) -> tuple[int, int, str]:
    """(objects, bytes, digest): the plan's numbers, or a fresh listing when it has none."""
    if after.get("objects") is not None and after.get("bytes") is not None and after.get(
            "digest"):
        return int(after["objects"]), int(after["bytes"]), str(after["digest"])
    from planner.aws.read import s3_manifest

    m = s3_manifest(engine.aws, uri)
    return m.objects, m.bytes, m.digest


def _join(base: str, rel: str | None) -> str:
    return posixpath.normpath(posixpath.join(base, (rel or "/").lstrip("/")))


def sync_create(engine: DirectEngine, change: Change) -> dict[str, str]:
    from planner.graph import sync_path

    i_name, d_name = _names(change)
    after = dict(change.after or {})
    ds = engine.spec.datasets.get(d_name)
    ins = engine.spec.instances.get(i_name)
    iid = engine.instance_id_of(i_name, after.get("instance_id"))
    strategy = after.get("strategy") or (ds.strategy if ds else None)
    uri = after.get("uri") or (ds.s3_uri if ds else None)
    path = after.get("path") or (sync_path(engine.spec, ins, d_name) if ds and ins else None)
    if not path or not uri:
        raise StepFailed(f"{change.address}: no dataset path or URI")
    steps = _steps()
    if strategy == "existing-ebs":
        r = steps.verify_dataset(engine.ssm, iid, path=path)
        digest = after.get("digest")
        counts: tuple[Any, Any] = (after.get("objects"), after.get("bytes"))
        what = "verify"
    else:
        objects, size, digest = _expected(engine, after, uri)
        counts = (objects, size)
        r = steps.sync_dataset(engine.ssm, iid, uri=uri, path=path, expect_objects=objects,
                               expect_bytes=size)
        what = "sync"
    if not r.ok:
        raise StepFailed(f"{change.address}: {what} of {uri} at {path} on {iid} failed: "
                         f"{_why(r)}")
    facts = {"instance_id": iid, "path": str(path)}
    record_on = str(after.get("record_on") or f"instance.{i_name}")
    if digest:
        if record_on.startswith("volume."):
            target = engine.volume_id_of(record_on.split(".", 1)[1], after.get("volume_id"))
        else:
            target = iid
        facts["digest_tag"] = record_digest(engine, target, d_name, str(digest), *counts)
        facts["recorded_on"] = target
    return facts


def dataset_upload(engine: DirectEngine, change: Change) -> dict[str, str]:
    """Upload the folder to its stage; delete no more than the plan says (its counts of
    stale objects trainctl wrote), keep what trainctl did not write."""
    from planner.aws.upload import upload_dataset

    ds = engine.spec.datasets.get(change.name)
    if ds is None or not ds.is_local or not ds.stage:
        raise StepFailed(f"{change.address}: not a local dataset with a stage")
    source = ds.source
    if not os.path.isabs(source):
        source = os.path.join(os.path.dirname(os.path.abspath(engine.spec.source_file)), source)
    after = dict(change.after or {})
    planned = (_count(after.get("delete_objects")), _count(after.get("delete_bytes")))
    up = upload_dataset(engine.aws, source, ds.stage, project=engine.spec.project,
                        dataset=ds.name, max_delete=planned, progress=engine.upload_progress)
    m, w = up.manifest, up.work
    return {"stage": ds.stage, "objects": str(m.objects), "bytes": str(m.bytes),
            "digest": m.digest, "uploaded": str(len(w.upload)),
            "deleted": str(len(w.delete)), "kept": str(len(w.kept))}


def _count(value: Any) -> int:
    """A count from the plan; a plan without one allows nothing (0)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


# --- prewarm -------------------------------------------------------------------------


def prewarm_create(engine: DirectEngine, change: Change) -> dict[str, str]:
    after = dict(change.after or {})
    d_name = change.name
    ds = engine.spec.datasets.get(d_name)
    v_name = after.get("volume") or (ds.volume if ds else None)
    uri = after.get("uri") or (ds.s3_uri if ds else None)
    if not v_name or not uri:
        raise StepFailed(f"{change.address}: no volume or dataset URI")
    vid = engine.volume_id_of(str(v_name), after.get("volume_id"))
    rel = after.get("path") or (ds.path if ds else None) or "/"
    expected = _expected(engine, after, uri)
    via = str(after.get("via") or "temporary-instance")
    if via.startswith("instance."):
        facts = _prewarm_on_instance(engine, change, via.split(".", 1)[1], str(v_name), vid,
                                     uri, rel, expected, after)
    else:
        facts = _prewarm_on_temporary(engine, change, str(v_name), vid, uri, rel, expected,
                                      after)
    facts["digest_tag"] = record_digest(engine, vid, d_name, expected[2], expected[0],
                                        expected[1])
    return facts


def _sync(engine: DirectEngine, change: Change, iid: str, uri: str, path: str,
          expected: tuple[int, int, str]) -> None:
    r = _steps().sync_dataset(engine.ssm, iid, uri=uri, path=path, expect_objects=expected[0],
                              expect_bytes=expected[1])
    if not r.ok:
        raise StepFailed(f"{change.address}: sync of {uri} to {path} on {iid} failed: "
                         f"{_why(r)}")


def _mount(engine: DirectEngine, change: Change, iid: str, vid: str, v_name: str, device: str,
           path: str, read_only: bool, filesystem: str) -> Any:
    """The mount step, told whether the volume may be formatted (trainctl made it empty)
    and its size as EC2 reports it. A refusal is a failed step, never a success."""
    raw = engine.describe_volume(vid)
    size = (raw or {}).get("Size")
    r = _steps().mount(engine.ssm, iid, volume_id=vid, device=device, path=path,
                       read_only=read_only, filesystem=filesystem,
                       may_format=may_format(engine, raw, v_name),
                       volume_bytes=int(size) * GIB if isinstance(size, int) else None,
                       timeout=MOUNT_TIMEOUT)
    if not r.ok:
        raise StepFailed(f"{change.address}: mount of {vid} at {path} on {iid} "
                         f"{'refused' if r.state == 'refused' else 'failed'}: {_why(r)}")
    return r


def _prewarm_on_instance(engine: DirectEngine, change: Change, i_name: str, v_name: str,
                         vid: str, uri: str, rel: str, expected: tuple[int, int, str],
                         after: dict[str, Any]) -> dict[str, str]:
    """The volume stays attached and mounted on a managed instance: sync there. A
    read-only mount is remounted read-write for the sync and read-only again after.
    Files change under the mount, so not while a training job runs there (unless
    --stop-training names the instance: the job is stopped first)."""
    iid = engine.instance_id_of(i_name, after.get("instance_id"))
    m = _spec_mount(engine, i_name, v_name)
    mount_path = after.get("mount_path") or (m.path if m else None)
    if not mount_path:
        raise StepFailed(f"{change.address}: no mount path of volume.{v_name} on {iid}")
    read_only = bool(after.get("read_only", m.read_only if m else False))
    target = _join(str(mount_path), rel)
    facts = {"via": f"instance.{i_name}", "instance_id": iid, "path": target,
             "training": check_training(engine, i_name, iid, f"rewrites {target}")}
    if not read_only:
        _sync(engine, change, iid, uri, target, expected)
        return facts
    vs = engine.spec.volumes.get(v_name)
    device = m.device if m else PREWARM_DEVICE
    filesystem = after.get("filesystem") or (vs.filesystem if vs else "ext4")
    _mount(engine, change, iid, vid, v_name, device, str(mount_path), False, filesystem)
    try:
        _sync(engine, change, iid, uri, target, expected)
    finally:
        r = _mount(engine, change, iid, vid, v_name, device, str(mount_path), True, filesystem)
    record_mount(engine, vid, iid, str(mount_path), r)
    return facts


def _prewarm_image(engine: DirectEngine, az: str, after: dict[str, Any]) -> tuple[str, str]:
    """(AMI, instance type) for the temporary instance: the spec's first instance in the
    volume's AZ, else its first instance, unless the plan names them."""
    candidates = sorted(engine.spec.instances.values(),
                        key=lambda i: i.availability_zone != az)
    ami = after.get("ami") or (candidates[0].ami if candidates else None)
    if not ami:
        raise StepFailed("prewarm needs an AMI for its temporary instance, and the spec "
                         "has no instance to borrow one from")
    arm = bool(candidates and ARM_FAMILY.match(candidates[0].instance_type))
    itype = after.get("instance_type") or (PREWARM_INSTANCE_TYPE_ARM if arm
                                           else PREWARM_INSTANCE_TYPE)
    return str(ami), str(itype)


def _prewarm_on_temporary(engine: DirectEngine, change: Change, v_name: str, vid: str,
                          uri: str, rel: str, expected: tuple[int, int, str],
                          after: dict[str, Any]) -> dict[str, str]:
    """A small tagged instance in the volume's AZ: attach, mount, sync, unmount, detach.
    It is terminated in every case, failure included."""
    raw_v = engine.describe_volume(vid)
    if raw_v is None:
        raise StepFailed(f"{change.address}: volume {vid} is not there")
    token = engine.client_token(change, "temporary-instance")
    temporaries = engine.instances_at(change.address,
                                      {"Name": f"tag:{TAG_TEMPORARY}", "Values": ["true"]})
    existing = next((i for i in temporaries if i.get("ClientToken") == token), None)
    orphans = [str(i["InstanceId"]) for i in temporaries if i is not existing]
    if orphans:
        # The plan lists such instances as cleanups, run before this step: one here was
        # left since the plan was made, so it is not terminated unseen.
        raise StepFailed(f"{change.address}: temporary instance(s) {', '.join(orphans)} left "
                         f"by an interrupted prewarm appeared since the plan; run "
                         f"`trainctl plan` again (it shows their cleanup)")
    own = str(existing["InstanceId"]) if existing is not None else None
    holders = [a["InstanceId"] for a in raw_v.get("Attachments", ())
               if a.get("State") in ("attaching", "attached")]
    busy = [h for h in holders if h != own]
    if busy:
        raise StepFailed(f"{change.address}: volume {vid} is attached to {busy[0]}; a "
                         f"temporary instance can only fill a detached volume")
    az = str(raw_v["AvailabilityZone"])
    ami, itype = _prewarm_image(engine, az, after)
    subnet = next((i.subnet_id for i in engine.spec.instances.values()
                   if i.availability_zone == az and i.subnet_id), None)
    vs = engine.spec.volumes.get(v_name)
    filesystem = after.get("filesystem") or (vs.filesystem if vs else "ext4")
    if own is not None:         # this very step ran before (a retry of the same plan)
        iid = own
    else:
        tags = engine.owner_tags(change.address)
        tags["Name"] = f"{engine.spec.project}/{change.address} (temporary)"
        tags[TAG_TEMPORARY] = "true"
        kwargs: dict[str, Any] = {
            "ImageId": ami, "InstanceType": itype, "MinCount": 1, "MaxCount": 1,
            "ClientToken": token, "Placement": {"AvailabilityZone": az},
            "IamInstanceProfile": {"Name": engine.project_profile()},
            "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled"},
            "InstanceInitiatedShutdownBehavior": "terminate",
            "TagSpecifications": [
                {"ResourceType": "instance", "Tags": _tag_list(tags)},
                {"ResourceType": "volume", "Tags": _tag_list(tags)},
            ],
        }
        if subnet:
            kwargs["SubnetId"] = subnet
        iid = str(engine.run_instance(kwargs)["InstanceId"])
    target = _join(PREWARM_MOUNT, rel)
    failure: StepFailed | None = None
    try:
        engine.wait(engine.ec2, "instance_running", InstanceIds=[iid])
        if iid not in holders:
            engine.ec2.attach_volume(Device=PREWARM_DEVICE, InstanceId=iid, VolumeId=vid)
        engine.wait(engine.ec2, "volume_in_use", VolumeIds=[vid])
        _mount(engine, change, iid, vid, v_name, PREWARM_DEVICE, PREWARM_MOUNT, False,
               filesystem)
        _sync(engine, change, iid, uri, target, expected)
        r = _steps().unmount(engine.ssm, iid, path=PREWARM_MOUNT, volume_id=vid)
        if not r.ok:
            raise StepFailed(f"{change.address}: unmount on {iid} failed: {_why(r)}")
        engine.ec2.detach_volume(VolumeId=vid, InstanceId=iid)
        engine.wait(engine.ec2, "volume_available", VolumeIds=[vid])
    except StepFailed as e:
        failure = e
        raise
    except Exception as e:
        failure = StepFailed(f"{change.address}: on temporary instance {iid}: {e}")
        raise failure from e
    finally:
        _terminate_temporary(engine, iid, failure)
    return {"via": "temporary-instance", "temporary_instance": iid, "path": target}


def prewarm_delete(engine: DirectEngine, change: Change) -> dict[str, str]:
    """A prewarm leaves nothing to delete (the bytes stay on the volume), except a
    temporary instance an interrupted apply left (the plan's `prewarm.D@i-...` cleanup)."""
    before = dict(change.before or {})
    iid = change.id or before.get("temporary_instance")
    if not iid:
        return engine.delete_nothing(change)
    return clear_temporary(engine, change, str(iid))


def clear_temporary(engine: DirectEngine, change: Change, iid: str) -> dict[str, str]:
    """Unmount (best effort) and detach every volume the temporary instance holds but its
    root, then terminate it. The volumes are never deleted: one that cannot be detached
    (its unmount failed) is marked DeleteOnTermination=false and the instance terminated
    with it attached, as its shutdown unmounts cleanly, which a forced detach would not."""
    from planner.engines.direct_ec2 import tags_of

    raw = engine.describe_instance(iid)
    state = (raw or {}).get("State", {}).get("Name")
    if raw is None or state in GONE:
        return {"id": iid, "result": "already gone"}
    tags = tags_of(raw)
    if tags.get(TAG_TEMPORARY) != "true" or tags.get(TAG_PROJECT) != engine.spec.project:
        raise StepFailed(f"{change.address}: {iid} is not a temporary instance of project "
                         f"{engine.spec.project}; not terminated")
    root = raw.get("RootDeviceName")
    held = [(str(b["Ebs"]["VolumeId"]), str(b.get("DeviceName", "")))
            for b in raw.get("BlockDeviceMappings", ())
            if b.get("Ebs", {}).get("VolumeId") and b.get("DeviceName") != root]
    facts = {"id": iid, "detached": "", "left_attached": ""}
    detached, left = [], []
    try:
        for vid, device in held:
            if state == "running":
                r = _steps().unmount(engine.ssm, iid, path=PREWARM_MOUNT, volume_id=vid)
                if not r.ok:
                    left.append((vid, device))
                    continue
            engine.ec2.detach_volume(VolumeId=vid, InstanceId=iid)
            engine.wait(engine.ec2, "volume_available", VolumeIds=[vid])
            detached.append(vid)
        if left:
            engine.ec2.modify_instance_attribute(InstanceId=iid, BlockDeviceMappings=[
                {"DeviceName": device, "Ebs": {"DeleteOnTermination": False}}
                for _, device in left])
        engine.ec2.terminate_instances(InstanceIds=[iid])
        engine.wait(engine.ec2, "instance_terminated", InstanceIds=[iid])
        if left:
            engine.wait(engine.ec2, "volume_available", VolumeIds=[v for v, _ in left])
    except StepFailed:
        raise
    except Exception as e:
        raise StepFailed(f"{change.address}: the temporary instance {iid} left by an "
                         f"interrupted prewarm could not be cleared: {e}") from e
    facts["detached"] = ",".join(detached)
    facts["left_attached"] = ",".join(v for v, _ in left)
    return facts


def _terminate_temporary(engine: DirectEngine, iid: str, failure: StepFailed | None) -> None:
    try:
        engine.ec2.terminate_instances(InstanceIds=[iid])
        engine.wait(engine.ec2, "instance_terminated", InstanceIds=[iid])
    except Exception as e:
        note = (f"the temporary instance {iid} (tag {TAG_TEMPORARY}=true) could not be "
                f"terminated: {e}; terminate it by hand")
        if failure is None:
            raise StepFailed(note) from e
        failure.message += f"; also: {note}"
        failure.args = (failure.message,)


def _tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]
