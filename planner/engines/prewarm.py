"""Prewarm: fill a volume with a dataset before training, through the managed instance
it stays mounted on, else through a temporary instance (tagged trainctl:temporary,
terminated in every case). Engine-neutral: the Pulumi engine runs it too (the temporary
instance is never in a stack's state). Also clears what an interrupted prewarm left.
"""

from __future__ import annotations

from typing import Any

from planner.dataplane import steps
from planner.engines import dataplane
from planner.engines.awsops import AwsOps, tag_list, tags_of
from planner.engines.base import StepFailed, payload_of
from planner.live import TAG_PROJECT, TAG_TEMPORARY
from planner.payloads import PrewarmPayload
from planner.plan import Change
from planner.prewarmtypes import prewarm_image

PREWARM_DEVICE = "/dev/sdf"
PREWARM_MOUNT = "/mnt/trainctl-prewarm"
GONE = ("shutting-down", "terminated")


def prewarm_create(ops: AwsOps, change: Change) -> dict[str, str]:
    after = payload_of(change, PrewarmPayload)
    d_name = change.name
    v_name, uri = after.volume, after.uri
    if not v_name or not uri:
        raise StepFailed(f"{change.address}: no volume or dataset URI")
    vid = ops.volume_id_of(str(v_name), after.volume_id)
    rel = str(after.path or "/")
    expected = dataplane.expected(ops, after, str(uri))
    via = str(after.via or "temporary-instance")
    if via.startswith("instance."):
        facts = _prewarm_on_instance(ops, change, via.split(".", 1)[1], str(v_name), vid,
                                     str(uri), rel, expected)
    else:
        facts = _prewarm_on_temporary(ops, change, str(v_name), vid, str(uri), rel,
                                      expected)
    facts["digest_tag"] = dataplane.record_digest(ops, vid, d_name, expected[2],
                                                  expected[0], expected[1])
    return facts


def _prewarm_on_instance(ops: AwsOps, change: Change, i_name: str, v_name: str,
                         vid: str, uri: str, rel: str,
                         expected: tuple[int, int, str]) -> dict[str, str]:
    """The volume stays attached and mounted on a managed instance: sync there. A
    read-only mount is remounted read-write for the sync and read-only again after.
    Files change under the mount: the guards made sure no training job runs there."""
    after = payload_of(change, PrewarmPayload)
    iid = ops.instance_id_of(i_name, after.instance_id)
    mount_path = after.mount_path
    if not mount_path:
        raise StepFailed(f"{change.address}: no mount path of volume.{v_name} on {iid}")
    read_only = bool(after.read_only)
    target = dataplane.join(str(mount_path), rel)
    facts = {"via": f"instance.{i_name}", "instance_id": iid, "path": target}
    if not read_only:
        dataplane.sync_to_path(ops, change, iid, uri, target, expected)
        return facts
    device = str(after.device or PREWARM_DEVICE)
    filesystem = str(after.filesystem or "ext4")
    dataplane.mount_volume(ops, change, iid, vid, v_name, device, str(mount_path), False,
                           filesystem)
    try:
        dataplane.sync_to_path(ops, change, iid, uri, target, expected)
    finally:
        r = dataplane.mount_volume(ops, change, iid, vid, v_name, device, str(mount_path),
                                   True, filesystem)
    dataplane.record_mount(ops, vid, iid, str(mount_path), r)
    return facts


def _prewarm_image(ops: AwsOps, az: str) -> tuple[str, str]:
    """(AMI, instance type) for the temporary instance (planner.prewarmtypes: the rule
    the plan's instance-type check uses too)."""
    ami, itype = prewarm_image(ops.spec, az)
    if not ami:
        raise StepFailed("prewarm needs an AMI for its temporary instance, and the spec "
                         "has no instance to borrow one from")
    return ami, itype


def _prewarm_on_temporary(ops: AwsOps, change: Change, v_name: str, vid: str,
                          uri: str, rel: str,
                          expected: tuple[int, int, str]) -> dict[str, str]:
    """A small tagged instance in the volume's AZ: attach, mount, sync, unmount, detach.
    It is terminated in every case, failure included."""
    raw_v = ops.describe_volume(vid)
    if raw_v is None:
        raise StepFailed(f"{change.address}: volume {vid} is not there")
    token = ops.client_token(change, "temporary-instance")
    temporaries = ops.instances_at(change.address,
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
    ami, itype = _prewarm_image(ops, az)
    subnet = next((i.subnet_id for i in ops.spec.instances.values()
                   if i.availability_zone == az and i.subnet_id), None)
    filesystem = str(payload_of(change, PrewarmPayload).filesystem or "ext4")
    if own is not None:         # this very step ran before (a retry of the same plan)
        iid = own
    else:
        tags = ops.owner_tags(change.address)
        tags["Name"] = f"{ops.spec.project}/{change.address} (temporary)"
        tags[TAG_TEMPORARY] = "true"
        kwargs: dict[str, Any] = {
            "ImageId": ami, "InstanceType": itype, "MinCount": 1, "MaxCount": 1,
            "ClientToken": token, "Placement": {"AvailabilityZone": az},
            "IamInstanceProfile": {"Name": ops.project_profile()},
            "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled"},
            "InstanceInitiatedShutdownBehavior": "terminate",
            "TagSpecifications": [
                {"ResourceType": "instance", "Tags": tag_list(tags)},
                {"ResourceType": "volume", "Tags": tag_list(tags)},
            ],
        }
        if subnet:
            kwargs["SubnetId"] = subnet
        iid = str(ops.run_instance(kwargs)["InstanceId"])
    target = dataplane.join(PREWARM_MOUNT, rel)
    failure: StepFailed | None = None
    try:
        ops.wait(ops.ec2, "instance_running", InstanceIds=[iid])
        if iid not in holders:
            ops.ec2.attach_volume(Device=PREWARM_DEVICE, InstanceId=iid, VolumeId=vid)
        ops.wait(ops.ec2, "volume_in_use", VolumeIds=[vid])
        dataplane.mount_volume(ops, change, iid, vid, v_name, PREWARM_DEVICE, PREWARM_MOUNT, False,
               filesystem)
        dataplane.sync_to_path(ops, change, iid, uri, target, expected)
        r = steps.unmount(ops.ssm, iid, path=PREWARM_MOUNT, volume_id=vid)
        if not r.ok:
            raise StepFailed(f"{change.address}: unmount on {iid} failed: {dataplane.why(r)}")
        ops.ec2.detach_volume(VolumeId=vid, InstanceId=iid)
        ops.wait(ops.ec2, "volume_available", VolumeIds=[vid])
    except StepFailed as e:
        failure = e
        raise
    except Exception as e:
        failure = StepFailed(f"{change.address}: on temporary instance {iid}: {e}")
        raise failure from e
    finally:
        _terminate_temporary(ops, iid, failure)
    return {"via": "temporary-instance", "temporary_instance": iid, "path": target}


def prewarm_delete(ops: AwsOps, change: Change) -> dict[str, str]:
    """A prewarm leaves nothing to delete (the bytes stay on the volume), except a
    temporary instance an interrupted apply left (the plan's `prewarm.D@i-...` cleanup)."""
    iid = change.id or payload_of(change, PrewarmPayload, before=True).temporary_instance
    if not iid:
        return ops.delete_nothing(change)
    return clear_temporary(ops, change, str(iid))


def clear_temporary(ops: AwsOps, change: Change, iid: str) -> dict[str, str]:
    """Unmount (best effort) and detach every volume the temporary instance holds but its
    root, then terminate it. The volumes are never deleted: one that cannot be detached
    (its unmount failed) is marked DeleteOnTermination=false and the instance terminated
    with it attached, as its shutdown unmounts cleanly, which a forced detach would not."""
    raw = ops.describe_instance(iid)
    state = (raw or {}).get("State", {}).get("Name")
    if raw is None or state in GONE:
        return {"id": iid, "result": "already gone"}
    tags = tags_of(raw)
    if tags.get(TAG_TEMPORARY) != "true" or tags.get(TAG_PROJECT) != ops.spec.project:
        raise StepFailed(f"{change.address}: {iid} is not a temporary instance of project "
                         f"{ops.spec.project}; not terminated")
    root = raw.get("RootDeviceName")
    held = [(str(b["Ebs"]["VolumeId"]), str(b.get("DeviceName", "")))
            for b in raw.get("BlockDeviceMappings", ())
            if b.get("Ebs", {}).get("VolumeId") and b.get("DeviceName") != root]
    facts = {"id": iid, "detached": "", "left_attached": ""}
    detached, left = [], []
    try:
        for vid, device in held:
            if state == "running":
                r = steps.unmount(ops.ssm, iid, path=PREWARM_MOUNT, volume_id=vid)
                if not r.ok:
                    left.append((vid, device))
                    continue
            ops.ec2.detach_volume(VolumeId=vid, InstanceId=iid)
            ops.wait(ops.ec2, "volume_available", VolumeIds=[vid])
            detached.append(vid)
        if left:
            ops.ec2.modify_instance_attribute(InstanceId=iid, BlockDeviceMappings=[
                {"DeviceName": device, "Ebs": {"DeleteOnTermination": False}}
                for _, device in left])
        ops.ec2.terminate_instances(InstanceIds=[iid])
        ops.wait(ops.ec2, "instance_terminated", InstanceIds=[iid])
        if left:
            ops.wait(ops.ec2, "volume_available", VolumeIds=[v for v, _ in left])
    except StepFailed:
        raise
    except Exception as e:
        raise StepFailed(f"{change.address}: the temporary instance {iid} left by an "
                         f"interrupted prewarm could not be cleared: {e}") from e
    facts["detached"] = ",".join(detached)
    facts["left_attached"] = ",".join(v for v, _ in left)
    return facts


def _terminate_temporary(ops: AwsOps, iid: str, failure: StepFailed | None) -> None:
    try:
        ops.ec2.terminate_instances(InstanceIds=[iid])
        ops.wait(ops.ec2, "instance_terminated", InstanceIds=[iid])
    except Exception as e:
        note = (f"the temporary instance {iid} (tag {TAG_TEMPORARY}=true) could not be "
                f"terminated: {e}; terminate it by hand")
        if failure is None:
            raise StepFailed(note) from e
        failure.message += f"; also: {note}"
        failure.args = (failure.message,)
