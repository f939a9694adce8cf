"""The direct engine's EC2/EBS steps: volumes, instances, attachments.

Each function takes the apply's AwsOps (clients, waiters, tags, describes, ClientToken
idempotency) and the change; it returns facts for the journal or raises StepFailed.
The guards (planner.guards) ran before every delete: the fresh rule re-check, the
duplicate re-check, the training check and the checkpoint sync. A create or an update
checks `duplicate` itself once it knows the step is not a retry of its own earlier
attempt (ClientToken), and a volume modification re-checks its rules.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from planner.engines import dataplane
from planner.engines.awsops import EMULATOR_WAIT, AwsOps, tag_list, tags_of
from planner.engines.base import StepFailed, payload_of
from planner.live import (
    TAG_CLIENT_TOKEN,
    TAG_CREATED_EMPTY,
    TAG_MODIFIED,
    TAG_ON_DELETE,
    TAG_PROJECT,
)
from planner.payloads import AttachmentPayload, InstancePayload, VolumePayload
from planner.plan import Action, Change
from planner.spec import Market, OnDelete
from planner.tags import instance_safety_tags, modified_tag

GONE_INSTANCE_STATES = ("shutting-down", "terminated")
SNAPSHOT_WAIT = {"Delay": 15, "MaxAttempts": 480}   # final snapshots of big volumes: 2 h


def _names(change: Change) -> tuple[str, str]:
    first, _, second = change.name.partition(".")
    return first, second


# --- volumes ----------------------------------------------------------------------


def volume_create(engine: AwsOps, change: Change) -> dict[str, str]:
    vs = engine.spec.volumes.get(change.name)
    if vs is None:
        raise StepFailed(f"{change.address}: not in the spec")
    token = engine.client_token(change)
    existing = engine.volume_by_token(change.address, token)
    if existing is not None:    # this very step ran before (a retry): no second volume
        vid = str(existing["VolumeId"])
        engine.wait(engine.ec2, "volume_available", VolumeIds=[vid])
        engine.note_created(change.address, vid)
        return {"id": vid, "reused": "true"}
    engine.check_unique(change)
    tags = engine.owner_tags(change.address, vs.tags, persistent=vs.persistent,
                             protect=vs.protect, on_delete=vs.on_delete)
    tags[TAG_CLIENT_TOKEN] = token
    if not vs.snapshot_id and not vs.import_id:
        tags[TAG_CREATED_EMPTY] = "true"       # the only volumes mount.sh may format
    kwargs: dict[str, Any] = {
        "AvailabilityZone": vs.availability_zone, "Size": vs.size_gib,
        "VolumeType": vs.type, "Encrypted": vs.encrypted, "ClientToken": token,
        "TagSpecifications": [{"ResourceType": "volume", "Tags": tag_list(tags)}],
    }
    if vs.iops is not None and vs.type in ("gp3", "io1", "io2"):
        kwargs["Iops"] = vs.iops
    if vs.throughput_mibps is not None and vs.type == "gp3":
        kwargs["Throughput"] = vs.throughput_mibps
    if vs.snapshot_id:
        kwargs["SnapshotId"] = vs.snapshot_id
    created = engine.ec2.create_volume(**kwargs)
    if (created.get("ResponseMetadata") or {}).get("RetryAttempts"):
        engine.drop_lost_twins("volume", token, str(created["VolumeId"]))
    engine.remember_created("volume", change.address, token, created)
    vid = str(created["VolumeId"])
    if created.get("State") != "available":      # AWS answers "creating": wait for it
        engine.wait(engine.ec2, "volume_available", VolumeIds=[vid])
    engine.note_created(change.address, vid)
    return {"id": vid}


def volume_update(engine: AwsOps, change: Change) -> dict[str, str]:
    after = payload_of(change, VolumePayload)
    vid = str(change.id or after.id or engine.volume_id_of(change.name))
    raw = engine.describe_volume(vid)
    if raw is None:
        raise StepFailed(f"{change.address}: {vid} no longer exists")
    engine.check_unique(replace(change, id=vid))
    mods: dict[str, Any] = {}
    fields = (("size_gib", "Size"), ("type", "VolumeType"), ("iops", "Iops"),
              ("throughput_mibps", "Throughput"))
    for key, api in fields:
        want = getattr(after, key)
        if want is not None and want != raw.get(api):
            mods[api] = want
    if "Size" in mods and int(mods["Size"]) < int(raw["Size"]):
        raise StepFailed(f"{change.address}: {vid} is {raw['Size']} GiB; EBS volumes "
                         f"cannot shrink to {mods['Size']} GiB")
    if mods:
        resp = engine.ec2.describe_volumes_modifications(VolumeIds=[vid])
        live = engine.fresh_live(volumes=[raw],
                                 modifications=resp.get("VolumesModifications", ()))
        keys = {api: key for key, api in fields}
        probe = Change(address=change.address, type=change.type,
                       actions=(Action.UPDATE,), reason=change.reason, id=vid,
                       after=VolumePayload(**{keys[k]: v for k, v in mods.items()}))
        engine.recheck(probe, live)
        resp = engine.ec2.modify_volume(VolumeId=vid, **mods)
        started = resp.get("VolumeModification", {}).get("StartTime") or engine.now()
        engine.set_tags(vid, {TAG_MODIFIED: modified_tag(
            tags_of(raw).get(TAG_MODIFIED), started, engine.now())})
        wait_modified(engine, vid)
    if after.tags:
        engine.set_tags(vid, after.tags)
    return {"id": vid, **({"modified": ",".join(sorted(mods))} if mods else {})}


def wait_modified(engine: AwsOps, volume_id: str) -> None:
    """Until the modification is usable (optimizing/completed); fails on failed."""
    from botocore.waiter import WaiterModel, create_waiter_with_client

    model = WaiterModel({"version": 2, "waiters": {"VolumeModified": {
        "operation": "DescribeVolumesModifications", "delay": 15, "maxAttempts": 240,
        "acceptors": [
            {"state": "success", "matcher": "path", "expected": True,
             "argument": "length(VolumesModifications[?ModificationState=='modifying'])"
                         " == `0`"},
            {"state": "failure", "matcher": "pathAny", "expected": "failed",
             "argument": "VolumesModifications[].ModificationState"},
        ],
    }}})
    waiter = create_waiter_with_client("VolumeModified", model, engine.ec2)
    kwargs: dict[str, Any] = {"VolumeIds": [volume_id]}
    if engine.emulated:
        kwargs["WaiterConfig"] = dict(EMULATOR_WAIT)
    waiter.wait(**kwargs)


def volume_delete(engine: AwsOps, change: Change) -> dict[str, str]:
    before = payload_of(change, VolumePayload, before=True)
    vid = str(change.id or before.id or "")
    if not vid:
        raise StepFailed(f"{change.address}: no volume id to delete")
    raw = engine.describe_volume(vid)
    if raw is None or raw.get("State") in ("deleting", "deleted"):
        return {"id": vid, "result": "already gone"}
    facts = {"id": vid}
    if raw.get("State") == "in-use":      # attached to an instance that is going away
        engine.wait(engine.ec2, "volume_available", VolumeIds=[vid])
    vs = engine.spec.volumes.get(change.name)
    if vs is not None:
        on_delete = vs.on_delete
    else:   # dropped from the spec: the creation-time tag or the plan, whichever is safer
        wanted = (tags_of(raw).get(TAG_ON_DELETE), before.on_delete)
        on_delete = OnDelete.SNAPSHOT if OnDelete.SNAPSHOT in wanted else OnDelete.DELETE
    if on_delete == OnDelete.SNAPSHOT:
        own = {k: v for k, v in tags_of(raw).items()
               if k != "Name" and not k.startswith(("trainctl:", "aws:"))}
        tags = engine.owner_tags(change.address, own)
        snap = engine.ec2.create_snapshot(
            VolumeId=vid, Description=f"trainctl final snapshot of {change.address}",
            TagSpecifications=[{"ResourceType": "snapshot", "Tags": tag_list(tags)}],
        )
        facts["snapshot_id"] = str(snap["SnapshotId"])
        engine.wait(engine.ec2, "snapshot_completed", config=SNAPSHOT_WAIT,
                    SnapshotIds=[facts["snapshot_id"]])
    engine.ec2.delete_volume(VolumeId=vid)
    engine.wait(engine.ec2, "volume_deleted", VolumeIds=[vid])
    return facts


# --- instances --------------------------------------------------------------------


def instance_create(engine: AwsOps, change: Change) -> dict[str, str]:
    ins = engine.spec.instances.get(change.name)
    if ins is None:
        raise StepFailed(f"{change.address}: not in the spec")
    token = engine.client_token(change)
    existing = engine.instance_by_token(change.address, token)
    if existing is not None:
        iid = str(existing["InstanceId"])
        reused = True
    else:
        engine.check_unique(change)
        tags = {**engine.owner_tags(change.address, ins.tags, protect=ins.protect),
                **instance_safety_tags(ins)}
        root_tags = {**engine.spec.defaults.tags, **ins.tags,
                     "Name": f"{engine.spec.project}/{change.address}/root",
                     TAG_PROJECT: engine.spec.project}
        kwargs: dict[str, Any] = {
            "ImageId": ins.ami, "InstanceType": ins.instance_type,
            "MinCount": 1, "MaxCount": 1, "ClientToken": token,
            "Placement": {"AvailabilityZone": ins.availability_zone},
            "IamInstanceProfile": {"Name": ins.iam_instance_profile
                                   or engine.project_profile()},
            "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled",
                                "HttpPutResponseHopLimit": 2},
            "TagSpecifications": [
                {"ResourceType": "instance", "Tags": tag_list(tags)},
                {"ResourceType": "volume", "Tags": tag_list(root_tags)},
            ],
        }
        if ins.max_lifetime or ins.idle_stop_minutes:
            # the lifetime watcher shuts the instance down: stop, or terminate
            kwargs["InstanceInitiatedShutdownBehavior"] = str(ins.idle_action)
        if ins.subnet_id:
            kwargs["SubnetId"] = ins.subnet_id
        if ins.market == Market.SPOT:
            kwargs["InstanceMarketOptions"] = {
                "MarketType": "spot",
                "SpotOptions": {"SpotInstanceType": "one-time",
                                "InstanceInterruptionBehavior": "terminate"},
            }
        iid = str(engine.run_instance(kwargs)["InstanceId"])
        reused = False
    facts = {"id": iid, **({"reused": "true"} if reused else {})}
    try:
        engine.wait(engine.ec2, "instance_running", InstanceIds=[iid])
    except Exception as e:
        raise StepFailed(f"{change.address}: {iid} did not reach running: {e}",
                         facts=facts) from e
    engine.note_created(change.address, iid)
    ckpt = ins.checkpoints
    if ins.market == Market.SPOT and ckpt is not None and ckpt.sync_to:
        dataplane.install_spot_watcher(engine, change, iid, ckpt.path, ckpt.sync_to, facts)
    if ins.max_lifetime or ins.idle_stop_minutes:
        dataplane.install_lifetime_watcher(engine, change, ins, iid, facts)
    return facts


def instance_update(engine: AwsOps, change: Change) -> dict[str, str]:
    after = payload_of(change, InstancePayload)
    iid = str(change.id or after.id or engine.instance_id_of(change.name))
    engine.check_unique(replace(change, id=iid))
    if after.tags:
        engine.set_tags(iid, after.tags)
    return {"id": iid}


def instance_delete(engine: AwsOps, change: Change) -> dict[str, str]:
    before = payload_of(change, InstancePayload, before=True)
    iid = str(change.id or before.id or "")
    if not iid:
        raise StepFailed(f"{change.address}: no instance id to terminate")
    raw = engine.describe_instance(iid)
    state = (raw or {}).get("State", {}).get("Name")
    if raw is None or state in GONE_INSTANCE_STATES:
        if raw is not None and state == "shutting-down":
            engine.wait(engine.ec2, "instance_terminated", InstanceIds=[iid])
        return {"id": iid, "result": "already gone"}
    facts = {"id": iid}
    engine.ec2.terminate_instances(InstanceIds=[iid])
    engine.wait(engine.ec2, "instance_terminated", InstanceIds=[iid])
    return facts


# --- attachments ------------------------------------------------------------------


def attachment_create(engine: AwsOps, change: Change) -> dict[str, str]:
    i_name, v_name = _names(change)
    after = payload_of(change, AttachmentPayload)
    # One describe each, by id when the plan knew it, else by address tag.
    raw_i = engine.instance_at(i_name, after.instance_id)
    raw_v = engine.volume_at(v_name, after.volume_id)
    iid = str(raw_i["InstanceId"]) if raw_i else str(after.instance_id)
    vid = str(raw_v["VolumeId"]) if raw_v else str(after.volume_id)
    device = after.device
    if not device:
        raise StepFailed(f"{change.address}: no device name for the attachment")
    if raw_i is None or raw_i.get("State", {}).get("Name") in GONE_INSTANCE_STATES:
        raise StepFailed(f"{change.address}: instance {iid} is not there")
    if raw_v is None:
        raise StepFailed(f"{change.address}: volume {vid} is not there")
    i_az = raw_i.get("Placement", {}).get("AvailabilityZone")
    v_az = raw_v.get("AvailabilityZone")
    if i_az != v_az:
        raise StepFailed(f"az-mismatch: volume.{v_name} ({vid}) is in {v_az} but "
                         f"instance.{i_name} ({iid}) is in {i_az}; EBS volumes attach "
                         f"only within their availability zone")
    facts = {"instance_id": iid, "volume_id": vid, "device": str(device)}
    live_atts = [a for a in raw_v.get("Attachments", ())
                 if a.get("State") in ("attaching", "attached")]
    if any(a["InstanceId"] == iid for a in live_atts):
        engine.wait(engine.ec2, "volume_in_use", VolumeIds=[vid])
        return {**facts, "result": "already attached"}
    if live_atts:
        raise StepFailed(f"{change.address}: volume {vid} is attached to "
                         f"{live_atts[0]['InstanceId']}; detach it first")
    engine.ec2.attach_volume(Device=str(device), InstanceId=iid, VolumeId=vid)
    engine.wait(engine.ec2, "volume_in_use", VolumeIds=[vid])
    return facts


def attachment_delete(engine: AwsOps, change: Change) -> dict[str, str]:
    i_name, v_name = _names(change)
    before = payload_of(change, AttachmentPayload, before=True)
    vid = engine.volume_id_of(v_name, before.volume_id)
    iid = engine.instance_id_of(i_name, before.instance_id)
    facts = {"instance_id": iid, "volume_id": vid}
    raw_v = engine.describe_volume(vid)
    attached = [a for a in (raw_v or {}).get("Attachments", ())
                if a.get("InstanceId") == iid and a.get("State") != "detached"]
    if not attached:
        return {**facts, "result": "already detached"}
    engine.ec2.detach_volume(VolumeId=vid, InstanceId=iid)
    engine.wait(engine.ec2, "volume_available", VolumeIds=[vid])
    return facts

