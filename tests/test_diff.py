"""The diff as a pure function: hand-built specs and live states, a fixed clock."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

import pytest
from diffworld import (
    AZ,
    DIGEST_A,
    DIGEST_B,
    NOW,
    OLD,
    PROJECT,
    digest_tag,
    frozen,
    inst,
    linst,
    live,
    lvol,
    make_spec,
    manifest,
    mounted_tag,
    plan_of,
    scratch_world,
    tags,
    vol,
    with_volume,
)

from planner.digesttag import format_digest_tag, parse_digest_tag, short_digest
from planner.errors import TrainctlError
from planner.live import TAG_CREATED_EMPTY, TAG_DATASET_DIGEST, TAG_PERSISTENT, LiveModification
from planner.plan import Action, Reason, Rule, plan_from_json, plan_to_json
from planner.spec import CostLimits, Dataset, Mount

CREATE, UPDATE, DELETE, NOOP = (Action.CREATE,), (Action.UPDATE,), (Action.DELETE,), (
    Action.NOOP,)
REPLACE = (Action.DELETE, Action.CREATE)


def actions(plan) -> dict[str, tuple[Action, ...]]:
    return {c.address: c.actions for c in plan.changes}


# --- create / no-op -----------------------------------------------------------------------


def test_everything_missing_is_created_with_the_full_tag_set():
    spec, _ = scratch_world()
    plan = plan_of(spec, live())
    assert actions(plan) == {
        "instance.trainer": CREATE, "volume.scratch": CREATE,
        "attachment.trainer.scratch": CREATE, "mount.trainer.scratch": CREATE,
    }
    v = plan.change("volume.scratch")
    assert v.reason is Reason.CREATE_BECAUSE_MISSING and v.before is None and v.id is None
    assert v.after.size_gib == 200 and v.after.type == "gp3"
    assert v.after.availability_zone == AZ and v.after.encrypted is False
    assert v.after.tags == {"Name": "llm/volume.scratch", "trainctl:project": PROJECT,
                               "trainctl:address": "volume.scratch", "team": "ml"}
    i = plan.change("instance.trainer")
    assert i.after.instance_type == "g5.2xlarge" and i.after.market == "on-demand"
    assert i.after.tags["trainctl:address"] == "instance.trainer"
    m = plan.change("mount.trainer.scratch")
    assert m.reason is Reason.MOUNT_BECAUSE_NOT_MOUNTED
    assert m.after.path == "/scratch" and m.after.device == "/dev/sdg"
    assert m.after.has("volume_id") and m.after.volume_id is None and m.after.filesystem == "ext4"
    assert plan.change("attachment.trainer.scratch").reason is Reason.CREATE_BECAUSE_MISSING
    assert plan.summary == {"create": 4, "update": 0, "replace": 0, "delete": 0,
                            "no-op": 0, "blocked": 0}
    assert plan.has_changes
    assert plan.created_at == "2026-11-22T21:00:00Z"


def test_persistent_and_protected_volumes_carry_their_tags_on_create():
    spec = make_spec([vol("keep", persistent=True, protect=True, tags=frozen({"x": "1"}))])
    after = plan_of(spec, live()).change("volume.keep").after
    assert after.tags["trainctl:persistent"] == "true"
    assert after.tags["trainctl:protected"] == "true"
    assert after.tags["x"] == "1"


def test_a_matching_world_is_all_no_op_and_counted():
    spec, state = scratch_world()
    plan = plan_of(spec, state)
    assert set(actions(plan).values()) == {NOOP}
    assert all(c.reason is Reason.NO_CHANGE for c in plan.changes)
    assert plan.summary["no-op"] == 4
    assert not plan.has_changes
    assert plan.change("volume.scratch").id == "vol-1"


# --- update in place ------------------------------------------------------------------------


def test_size_grow_updates_in_place_and_grows_the_filesystem():
    spec, state = scratch_world()
    state = with_volume(state, size_gib=150)
    spec = replace(spec, volumes=frozen({"scratch": vol("scratch", 200)}))
    plan = plan_of(spec, state)
    v = plan.change("volume.scratch")
    assert v.actions == UPDATE and v.reason is Reason.UPDATE_BECAUSE_DRIFT
    assert v.before.to_json() == {"id": "vol-1", "size_gib": 150}
    assert v.after.to_json() == {"id": "vol-1", "size_gib": 200}
    m = plan.change("mount.trainer.scratch")
    assert m.actions == UPDATE and m.reason is Reason.MOUNT_BECAUSE_VOLUME_GREW
    assert (m.before.size_gib, m.after.size_gib) == (150, 200)
    assert m.after.volume_id == "vol-1" and m.after.instance_id == "i-1"
    assert plan.change("attachment.trainer.scratch").actions == NOOP


def test_type_iops_throughput_update_in_place():
    spec = make_spec([vol("data", type="gp3", iops=6000, throughput_mibps=500)])
    state = live(volumes=(lvol("vol-1", "volume.data", type="gp2", iops=300),))
    c = plan_of(spec, state).change("volume.data")
    assert c.actions == UPDATE
    assert c.before.to_json() == {"id": "vol-1", "type": "gp2", "iops": 300,
                                  "throughput_mibps": None}
    assert c.after.to_json() == {"id": "vol-1", "type": "gp3", "iops": 6000,
                                 "throughput_mibps": 500}


def test_tag_drift_updates_only_the_changed_tags():
    spec = make_spec([vol("data", tags=frozen({"owner": "ana"}))])
    state = live(volumes=(lvol("vol-1", "volume.data", extra_tags=frozen({"owner": "bob"})),))
    c = plan_of(spec, state).change("volume.data")
    assert c.actions == UPDATE
    assert c.before.to_json() == {"id": "vol-1", "tags": {"owner": "bob"}}
    assert c.after.to_json() == {"id": "vol-1", "tags": {"owner": "ana"}}


def test_dropping_persistent_sets_the_tag_to_false():
    spec = make_spec([vol("data")])
    state = live(volumes=(lvol("vol-1", "volume.data",
                               extra_tags=frozen({TAG_PERSISTENT: "true"})),))
    c = plan_of(spec, state).change("volume.data")
    assert c.after.to_json() == {"id": "vol-1", "tags": {TAG_PERSISTENT: "false"}}
    again = live(volumes=(lvol("vol-1", "volume.data",
                               extra_tags=frozen({TAG_PERSISTENT: "false"})),))
    assert plan_of(spec, again).change("volume.data").actions == NOOP


def test_instance_tags_update_in_place():
    spec = make_spec([], [inst(tags=frozen({"run": "7"}))])
    state = live(instances=(linst("i-1", "instance.trainer"),))
    c = plan_of(spec, state).change("instance.trainer")
    assert c.actions == UPDATE and c.after.to_json() == {"id": "i-1", "tags": {"run": "7"}}


def test_instance_profile_name_matches_its_arn():
    spec = make_spec([], [inst()])
    state = live(instances=(linst("i-1", "instance.trainer"),))
    assert plan_of(spec, state).change("instance.trainer").actions == NOOP


# --- replace ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("attr", "spec_kw", "live_kw"), [
    ("availability_zone", {"availability_zone": "us-east-1b"}, {}),
    ("snapshot_id", {"snapshot_id": "snap-2"}, {"snapshot_id": "snap-1"}),
    ("encrypted", {"encrypted": True}, {"encrypted": False}),
])
def test_volume_attributes_that_force_a_replace(attr, spec_kw, live_kw):
    spec = make_spec([vol("data", **spec_kw)])
    state = live(volumes=(lvol("vol-1", "volume.data", **live_kw),))
    c = plan_of(spec, state).change("volume.data")
    assert c.actions == REPLACE and c.reason is Reason.REPLACE_BECAUSE_CANNOT_UPDATE
    assert c.replace_paths == (attr,)
    assert c.id == "vol-1" and c.before.id == "vol-1"
    assert c.after.has(attr) and getattr(c.after, attr) == next(iter(spec_kw.values()))


def test_instance_replace_replaces_its_attachments_and_mounts():
    spec, state = scratch_world()
    spec = replace(spec, instances=frozen({"trainer": inst(
        instance_type="g5.12xlarge", mounts=(Mount("scratch", "/dev/sdg", "/scratch"),))}))
    plan = plan_of(spec, state)
    assert plan.change("instance.trainer").actions == REPLACE
    assert plan.change("volume.scratch").actions == NOOP
    att = plan.change("attachment.trainer.scratch")
    assert att.actions == REPLACE and att.reason is Reason.REPLACE_BECAUSE_DEPENDENCY_REPLACED
    assert att.replace_paths == ("instance_id",)
    assert att.before.instance_id == "i-1"
    assert att.after.has("instance_id") and att.after.instance_id is None
    assert att.after.volume_id == "vol-1"
    mnt = plan.change("mount.trainer.scratch")
    assert mnt.actions == REPLACE and mnt.before.path == "/scratch"
    assert mnt.reason is Reason.REPLACE_BECAUSE_DEPENDENCY_REPLACED


def test_volume_and_instance_replaced_together():
    spec, state = scratch_world()
    spec = make_spec([vol("scratch", 200, availability_zone="us-east-1b")],
                     [inst(availability_zone="us-east-1b",
                           mounts=(Mount("scratch", "/dev/sdg", "/scratch"),))])
    plan = plan_of(spec, state)
    assert {c.address: c.kind for c in plan.changes} == dict.fromkeys(
        ["instance.trainer", "volume.scratch", "attachment.trainer.scratch",
         "mount.trainer.scratch"], "replace")
    assert not any(c.blocked for c in plan.changes)
    att = plan.change("attachment.trainer.scratch")
    assert att.replace_paths == ("instance_id", "volume_id")


@pytest.mark.parametrize(("attr", "spec_kw"), [
    ("instance_type", {"instance_type": "g5.12xlarge"}),
    ("availability_zone", {"availability_zone": "us-east-1b"}),
    ("market", {"market": "spot"}),
    ("iam_instance_profile", {"iam_instance_profile": "other"}),
])
def test_instance_attributes_that_force_a_replace(attr, spec_kw):
    spec = make_spec([], [inst(**spec_kw)])
    state = live(instances=(linst("i-1", "instance.trainer"),))
    c = plan_of(spec, state).change("instance.trainer")
    assert c.actions == REPLACE and c.replace_paths == (attr,)


def test_changed_device_replaces_the_attachment():
    spec, state = scratch_world()
    spec = replace(spec, instances=frozen({"trainer": inst(
        mounts=(Mount("scratch", "/dev/sdh", "/scratch"),))}))
    c = plan_of(spec, state).change("attachment.trainer.scratch")
    assert c.actions == REPLACE and c.replace_paths == ("device",)


def test_mount_at_another_path_is_replaced_and_unmounted_elsewhere_is_created():
    spec, state = scratch_world()
    moved = with_volume(state, tags=frozen({**state.volumes[0].tags,
                                            **mounted_tag("i-1", "/old")}))
    c = plan_of(spec, moved).change("mount.trainer.scratch")
    assert c.actions == REPLACE and c.replace_paths == ("path",) and c.before.path == "/old"
    stale = with_volume(state, tags=frozen({**state.volumes[0].tags,
                                            **mounted_tag("i-9", "/scratch")}))
    c = plan_of(spec, stale).change("mount.trainer.scratch")
    assert c.actions == CREATE and c.reason is Reason.MOUNT_BECAUSE_NOT_MOUNTED


def test_detached_volume_gets_attached():
    spec, state = scratch_world()
    state = with_volume(state, attachments=())
    plan = plan_of(spec, state)
    att = plan.change("attachment.trainer.scratch")
    assert att.actions == CREATE and att.reason is Reason.ATTACH_BECAUSE_NOT_ATTACHED
    assert att.after.volume_id == "vol-1" and att.after.instance_id == "i-1"
    assert plan.change("mount.trainer.scratch").actions == CREATE


# --- shrink ------------------------------------------------------------------------------------


def test_shrink_blocks_that_volume_and_the_rest_of_the_plan_goes_on():
    spec = make_spec([vol("a", 100), vol("b", 50, type="gp2"), vol("c", 10), vol("d", 20)])
    state = live(volumes=(lvol("vol-a", "volume.a", 200), lvol("vol-b", "volume.b", 60),
                          lvol("vol-c", "volume.c", 10)))
    plan = plan_of(spec, state)
    a, b = plan.change("volume.a"), plan.change("volume.b")
    assert a.actions == UPDATE and a.before.size_gib == 200 and a.after.size_gib == 100
    assert [blk.rule for blk in a.blocked_by] == [Rule.SHRINK]
    msg = a.blocked_by[0].message
    assert "200 GiB live" in msg and "set volumes.a.size_gib to 200" in msg
    assert b.blocked and b.after.type == "gp2"       # the whole volume change waits
    assert "set volumes.b.size_gib to 60" in b.blocked_by[0].message
    assert plan.change("volume.c").is_noop
    assert plan.change("volume.d").actions == CREATE and not plan.change("volume.d").blocked
    assert plan.summary["blocked"] == 2


def test_a_replace_to_a_smaller_size_is_blocked_by_shrink_too():
    spec = make_spec([vol("a", 100, availability_zone="us-east-1b")])
    plan = plan_of(spec, live(volumes=(lvol("vol-a", "volume.a", 200),)))
    c = plan.change("volume.a")
    assert c.kind == "replace" and Rule.SHRINK in [blk.rule for blk in c.blocked_by]


def test_apply_rechecks_shrink_against_fresh_state():
    from planner.rules import Overrides, recheck

    spec = make_spec([vol("a", 300)])
    state = live(volumes=(lvol("vol-a", "volume.a", 200),))
    change = plan_of(spec, state).change("volume.a")
    assert change.actions == UPDATE and not change.blocked
    grown_meanwhile = live(volumes=(lvol("vol-a", "volume.a", 400),))
    blocks = recheck(change, grown_meanwhile, spec, NOW, Overrides())
    assert [blk.rule for blk in blocks] == [Rule.SHRINK]


# --- orphans, import, destroy, other projects --------------------------------------------


def test_orphans_are_deleted_after_everything_else():
    spec, state = scratch_world()
    state = replace(state, volumes=(
        *state.volumes,
        lvol("vol-9", "volume.old", 80, attached_to=(("i-1", "/dev/sdz"),),
             extra_tags=mounted_tag("i-1", "/old")),
    ), instances=(*state.instances, linst("i-9", "instance.old-box")))
    plan = plan_of(spec, state)
    deletes = [c for c in plan.changes if c.reason is Reason.DELETE_BECAUSE_NOT_IN_SPEC]
    assert [c.address for c in deletes] == [
        "instance.old-box", "volume.old", "attachment.trainer.old", "mount.trainer.old"]
    assert plan.changes[-4:] == tuple(deletes)
    assert all(c.actions == DELETE and c.after is None for c in deletes)
    vd = plan.change("volume.old")
    assert vd.id == "vol-9" and vd.before.size_gib == 80
    assert plan.change("attachment.trainer.old").depends_on == (
        "instance.trainer", "volume.old")
    mnt = plan.change("mount.trainer.old")
    assert mnt.depends_on == ("attachment.trainer.old",)
    assert mnt.before.to_json() == {"instance": "trainer", "volume": "old", "instance_id": "i-1",
                          "volume_id": "vol-9", "device": "/dev/sdz", "path": "/old"}


def test_resources_of_other_projects_and_untagged_ones_never_appear():
    spec, state = scratch_world()
    state = replace(state, volumes=(
        *state.volumes,
        lvol("vol-x", "volume.scratch", 500, project="other"),
        lvol("vol-y", None, 10),
    ), instances=(*state.instances, linst("i-x", "instance.trainer", project="other")))
    plan = plan_of(spec, state)
    assert set(actions(plan).values()) == {NOOP}
    text = json.dumps(plan_to_json(plan))
    for foreign in ("vol-x", "vol-y", "i-x"):
        assert foreign not in text
    destroy = plan_of(spec, state, destroy=True)
    assert {c.id for c in destroy.changes if c.id} == {"vol-1", "i-1"}


def test_terminated_instances_do_not_count():
    spec = make_spec([], [inst()])
    state = live(instances=(linst("i-old", "instance.trainer", state="terminated"),))
    plan = plan_of(spec, state)
    assert actions(plan) == {"instance.trainer": CREATE}


def test_import_adopts_an_untagged_volume_with_ownership_tags():
    spec = make_spec([vol("data", 100, import_id="vol-imp")])
    state = live(volumes=(lvol("vol-imp", None, 100),))
    c = plan_of(spec, state).change("volume.data")
    assert c.actions == UPDATE and c.reason is Reason.ADOPT_BECAUSE_IMPORT
    assert c.id == "vol-imp"
    assert c.after.tags == dict(tags("volume.data"))
    # adopted and tagged: a no-op from now on
    adopted = live(volumes=(lvol("vol-imp", "volume.data", 100),))
    assert plan_of(spec, adopted).change("volume.data").actions == NOOP


@pytest.mark.parametrize("project", [None, PROJECT])
def test_import_clears_a_created_empty_tag_it_did_not_write(project):
    """A volume tagged trainctl:created-empty by someone else (or by this project at
    another address) is not one trainctl created empty here: once adopted, dropping
    `import:` must not make mount.sh allowed to format it."""
    spec = make_spec([vol("data", 100, import_id="vol-imp")])
    extra = {TAG_CREATED_EMPTY: "true"}
    found = (lvol("vol-imp", "volume.old", 100, extra_tags=extra) if project
             else lvol("vol-imp", None, 100, extra_tags=extra))
    c = plan_of(spec, live(volumes=(found,))).change("volume.data")
    assert c.reason is Reason.ADOPT_BECAUSE_IMPORT
    assert c.after.tags[TAG_CREATED_EMPTY] == "false"
    assert c.before.tags[TAG_CREATED_EMPTY] == "true"


def test_a_volume_trainctl_created_keeps_its_created_empty_tag():
    spec = make_spec([vol("data", 100)])
    ours = lvol("vol-1", "volume.data", 100, extra_tags={TAG_CREATED_EMPTY: "true"})
    assert plan_of(spec, live(volumes=(ours,))).change("volume.data").actions == NOOP


def test_import_of_a_differently_placed_volume_is_an_error_not_a_replace():
    spec = make_spec([vol("data", import_id="vol-imp", availability_zone="us-east-1b")])
    with pytest.raises(TrainctlError, match="import: vol-imp differs in availability_zone"):
        plan_of(spec, live(volumes=(lvol("vol-imp", None),)))


def test_import_of_a_missing_id_is_an_error():
    spec = make_spec([vol("data", import_id="vol-gone")])
    with pytest.raises(TrainctlError, match="vol-gone"):
        plan_of(spec, live())


def test_import_adopts_an_instance():
    spec = make_spec([], [inst(import_id="i-imp")])
    state = live(instances=(linst("i-imp", None),))
    c = plan_of(spec, state).change("instance.trainer")
    assert c.reason is Reason.ADOPT_BECAUSE_IMPORT and c.id == "i-imp"
    assert c.after.tags["trainctl:address"] == "instance.trainer"


def test_destroy_deletes_every_managed_resource_but_never_data():
    spec = make_spec(
        [vol("scratch", 200), vol("cache", 500)],
        [inst(mounts=(Mount("scratch", "/dev/sdg", "/scratch"),
                      Mount("cache", "/dev/sdf", "/data", read_only=True)),
              datasets=("imagenet", "small"))],
        [Dataset("imagenet", "s3://ds/imagenet/", "prewarmed-ebs", volume="cache", path="/"),
         Dataset("small", "s3://ds/small/", "local-cache", path="/scratch/small")],
    )
    state = live(
        volumes=(
            lvol("vol-1", "volume.scratch", 200, attached_to=(("i-1", "/dev/sdg"),),
                 extra_tags=mounted_tag("i-1", "/scratch")),
            lvol("vol-2", "volume.cache", 500, attached_to=(("i-1", "/dev/sdf"),),
                 extra_tags=mounted_tag("i-1", "/data")),
            lvol("vol-9", "volume.old", 10),
        ),
        instances=(linst("i-1", "instance.trainer"),),
        datasets={"imagenet": manifest("s3://ds/imagenet/", DIGEST_A),
                  "small": manifest("s3://ds/small/", DIGEST_B)},
    )
    plan = plan_of(spec, state, destroy=True)
    assert all(c.actions == DELETE for c in plan.changes)
    assert {c.reason for c in plan.changes} == {Reason.DELETE_BECAUSE_DESTROY}
    assert sorted(actions(plan)) == sorted([
        "instance.trainer", "volume.scratch", "volume.cache", "volume.old",
        "attachment.trainer.scratch", "attachment.trainer.cache",
        "mount.trainer.scratch", "mount.trainer.cache",
    ])
    assert plan.options.destroy
    # deletion order: the executor reverses, but dependencies are what it needs
    assert plan.change("mount.trainer.cache").depends_on == ("attachment.trainer.cache",)


def test_destroy_with_nothing_live_is_empty():
    spec, _ = scratch_world()
    plan = plan_of(spec, live(), destroy=True)
    assert plan.changes == () and not plan.has_changes


# --- targets ------------------------------------------------------------------------------------


def test_target_brings_its_dependencies_only():
    spec = make_spec([vol("scratch"), vol("other")],
                     [inst(mounts=(Mount("scratch", "/dev/sdg", "/scratch"),))])
    plan = plan_of(spec, live(), targets=("mount.trainer.scratch",))
    assert sorted(actions(plan)) == sorted([
        "instance.trainer", "volume.scratch", "attachment.trainer.scratch",
        "mount.trainer.scratch"])
    assert plan.options.targets == ("mount.trainer.scratch",)


def test_target_of_an_orphan_volume_brings_the_deletes_that_must_run_first():
    spec, state = scratch_world()
    state = replace(state, volumes=(
        *state.volumes,
        lvol("vol-9", "volume.old", 80, attached_to=(("i-1", "/dev/sdz"),),
             extra_tags=mounted_tag("i-1", "/old"))))
    plan = plan_of(spec, state, targets=("volume.old",))
    assert sorted(actions(plan)) == ["attachment.trainer.old", "mount.trainer.old",
                                     "volume.old"]


def test_unknown_target_suggests_close_addresses():
    spec, state = scratch_world()
    with pytest.raises(TrainctlError, match=r"did you mean volume\.scratch"):
        plan_of(spec, state, targets=("volume.scrach",))
    with pytest.raises(TrainctlError, match=r"valid addresses: attachment\.trainer\.scratch"):
        plan_of(spec, state, targets=("zzz",))


# --- order and dependencies -------------------------------------------------------------------


def test_changes_follow_the_apply_order_and_name_their_dependencies():
    spec, _ = scratch_world()
    plan = plan_of(spec, live())
    assert [c.address for c in plan.changes] == [
        "instance.trainer", "volume.scratch", "attachment.trainer.scratch",
        "mount.trainer.scratch"]
    assert plan.change("instance.trainer").depends_on == ()
    assert plan.change("attachment.trainer.scratch").depends_on == (
        "instance.trainer", "volume.scratch")


# --- datasets: upload, prewarm, sync ----------------------------------------------------------


def dataset_world(strategy: str, *, source: str = "s3://ds/imagenet/"):
    stage = "s3://stage/imagenet/" if not source.startswith("s3://") else None
    if strategy == "local-cache":
        ds = Dataset("imagenet", source, strategy, stage=stage, path="/scratch/imagenet")
        mounts = (Mount("scratch", "/dev/sdg", "/scratch"),)
        volumes = [vol("scratch", 200)]
    else:
        ds = Dataset("imagenet", source, strategy, stage=stage, volume="cache", path="/")
        mounts = (Mount("cache", "/dev/sdf", "/data", read_only=True),)
        volumes = [vol("cache", 500)]
    spec = make_spec(volumes, [inst(mounts=mounts, datasets=("imagenet",))], [ds])
    return spec


def test_sync_is_needed_when_the_digest_tag_differs():
    spec = dataset_world("local-cache")
    base = dict(tags("volume.scratch"))
    datasets = {"imagenet": manifest("s3://ds/imagenet/", DIGEST_A)}

    def state(recorded: dict[str, str]):
        return live(
            volumes=(lvol("vol-1", "volume.scratch", 200, attached_to=(("i-1", "/dev/sdg"),),
                          extra_tags=frozen({**base, **mounted_tag("i-1", "/scratch"),
                                             **recorded})),),
            instances=(linst("i-1", "instance.trainer"),), datasets=datasets)

    c = plan_of(spec, state({})).change("sync.trainer.imagenet")
    assert c.actions == CREATE and c.reason is Reason.SYNC_BECAUSE_DATASET_CHANGED
    assert c.after.uri == "s3://ds/imagenet/" and c.after.path == "/scratch/imagenet"
    assert c.after.objects == 3 and c.after.bytes == 300
    assert c.after.digest == DIGEST_A
    assert c.after.record_on == "volume.scratch" and c.after.volume_id == "vol-1"
    assert c.after.digest_entry == "imagenet=sha256:" + "a" * 32
    assert c.depends_on == ("mount.trainer.scratch",)
    stale = plan_of(spec, state(dict(digest_tag(imagenet=DIGEST_B, other=DIGEST_A))))
    refill = stale.change("sync.trainer.imagenet")    # a refill updates what was synced
    assert refill.actions == UPDATE and refill.reason is Reason.SYNC_BECAUSE_DATASET_CHANGED
    assert refill.before.digest == "sha256:" + "b" * 32
    # an old tag without counts
    assert refill.before.has("objects") and refill.before.objects is None
    done = plan_of(spec, state(dict(digest_tag(other=DIGEST_B, imagenet=DIGEST_A))))
    assert done.change("sync.trainer.imagenet").actions == NOOP


def test_sync_onto_the_root_disk_records_on_the_instance():
    spec = make_spec([], [inst(datasets=("small",))],
                     [Dataset("small", "s3://ds/small/", "local-cache", path="/data/small")])
    datasets = {"small": manifest("s3://ds/small/", DIGEST_A)}
    plan = plan_of(spec, live(instances=(linst("i-1", "instance.trainer"),), datasets=datasets))
    c = plan.change("sync.trainer.small")
    assert c.actions == CREATE and c.after.record_on == "instance.trainer"
    assert c.depends_on == ("instance.trainer",)
    synced = live(instances=(linst("i-1", "instance.trainer",
                                   extra_tags=digest_tag(small=DIGEST_A)),), datasets=datasets)
    assert plan_of(spec, synced).change("sync.trainer.small").actions == NOOP
    # a new instance has nothing on its disk yet
    fresh = plan_of(spec, live(datasets=datasets)).change("sync.trainer.small")
    assert fresh.reason is Reason.CREATE_BECAUSE_MISSING


def test_existing_ebs_is_verified_once_per_digest():
    spec = dataset_world("existing-ebs")
    datasets = {"imagenet": manifest("s3://ds/imagenet/", DIGEST_A)}

    def state(recorded):
        return live(
            volumes=(lvol("vol-2", "volume.cache", 500, attached_to=(("i-1", "/dev/sdf"),),
                          extra_tags=frozen({**mounted_tag("i-1", "/data"), **recorded})),),
            instances=(linst("i-1", "instance.trainer"),), datasets=datasets)

    c = plan_of(spec, state({})).change("sync.trainer.imagenet")
    assert c.actions == CREATE and c.reason is Reason.VERIFY_BECAUSE_EXISTING_EBS
    assert c.after.path == "/data"
    assert plan_of(spec, state(digest_tag(imagenet=DIGEST_A))).change(
        "sync.trainer.imagenet").actions == NOOP


def test_prewarm_fills_a_new_volume_through_a_temporary_instance():
    spec = dataset_world("prewarmed-ebs")
    datasets = {"imagenet": manifest("s3://ds/imagenet/", DIGEST_A)}
    plan = plan_of(spec, live(datasets=datasets))
    c = plan.change("prewarm.imagenet")
    assert c.actions == CREATE and c.reason is Reason.CREATE_BECAUSE_MISSING
    assert c.after.via == "temporary-instance"
    assert c.after.volume == "cache" and c.after.dataset == "imagenet"
    assert c.after.uri == "s3://ds/imagenet/" and c.after.path == "/"
    assert c.after.digest == DIGEST_A and c.after.objects == 3
    assert c.depends_on == ("volume.cache",)
    assert "prewarm.imagenet" in plan.change("attachment.trainer.cache").depends_on
    assert "sync.trainer.imagenet" not in actions(plan)


def test_prewarm_of_an_attached_volume_goes_through_its_instance():
    spec = dataset_world("prewarmed-ebs")
    datasets = {"imagenet": manifest("s3://ds/imagenet/", DIGEST_B)}

    def state(recorded):
        return live(
            volumes=(lvol("vol-2", "volume.cache", 500, attached_to=(("i-1", "/dev/sdf"),),
                          extra_tags=frozen({**mounted_tag("i-1", "/data"), **recorded})),),
            instances=(linst("i-1", "instance.trainer"),), datasets=datasets)

    c = plan_of(spec, state(digest_tag(imagenet=DIGEST_A))).change("prewarm.imagenet")
    assert c.actions == UPDATE and c.reason is Reason.PREWARM_BECAUSE_DATASET_CHANGED
    assert c.after.via == "instance.trainer" and c.after.instance_id == "i-1"
    assert c.after.mount_path == "/data" and c.after.mounted is True
    assert c.after.volume_id == "vol-2"
    assert plan_of(spec, state(digest_tag(imagenet=DIGEST_B))).change(
        "prewarm.imagenet").actions == NOOP


def test_local_dataset_uploads_when_the_stage_differs():
    spec = dataset_world("local-cache", source="./data/imagenet")
    base = {"imagenet:local": manifest("file:///x/imagenet", DIGEST_A)}
    empty = plan_of(spec, live(datasets={
        **base, "imagenet": manifest("s3://stage/imagenet/", "sha256:e", 0, 0)}))
    c = empty.change("dataset.imagenet")
    assert c.actions == CREATE and c.reason is Reason.UPLOAD_BECAUSE_SOURCE_CHANGED
    assert c.after.stage == "s3://stage/imagenet/" and c.after.digest == DIGEST_A
    # the sync after the upload expects the local digest and reads from the stage
    s = empty.change("sync.trainer.imagenet")
    assert s.after.digest == DIGEST_A and s.after.uri == "s3://stage/imagenet/"
    assert "dataset.imagenet" in s.depends_on
    changed = plan_of(spec, live(datasets={
        **base, "imagenet": manifest("s3://stage/imagenet/", DIGEST_B)}))
    c = changed.change("dataset.imagenet")
    assert c.actions == UPDATE and c.before.digest == DIGEST_B
    same = plan_of(spec, live(datasets={
        **base, "imagenet": manifest("s3://stage/imagenet/", DIGEST_A)}))
    assert same.change("dataset.imagenet").actions == NOOP


def test_digest_tag_format_round_trips():
    value = format_digest_tag({"b": DIGEST_B, "a": DIGEST_A})
    assert value == f"a=sha256:{'a' * 32},b=sha256:{'b' * 32}"
    assert parse_digest_tag(value) == {"a": short_digest(DIGEST_A), "b": short_digest(DIGEST_B)}
    assert parse_digest_tag("junk,,x=") == {}
    assert len(format_digest_tag({f"dataset{i}": DIGEST_A for i in range(5)})) <= 256


# --- digests, cost, file format --------------------------------------------------------------


def test_digests_are_stable_for_an_unchanged_world_and_change_with_it():
    spec, state = scratch_world()
    a = plan_of(spec, state)
    reread = replace(state, read_at=NOW + timedelta(minutes=3), api_calls=99)
    b = plan_of(spec, reread, now=NOW + timedelta(minutes=3))
    assert (a.live_digest, a.spec_digest) == (b.live_digest, b.spec_digest)
    assert a.live_digest.startswith("sha256:") and a.spec_digest.startswith("sha256:")
    grown = plan_of(spec, with_volume(state, size_gib=150))
    assert grown.live_digest != a.live_digest
    mod = replace(state, modifications=(LiveModification("vol-1", "optimizing", OLD),))
    assert plan_of(spec, mod).live_digest != a.live_digest
    other_spec = replace(spec, volumes=frozen({"scratch": vol("scratch", 300)}))
    assert plan_of(other_spec, state).spec_digest != a.spec_digest


def test_live_digest_ignores_resources_the_plan_does_not_touch():
    spec, state = scratch_world()
    a = plan_of(spec, state)
    noise = replace(state, volumes=(*state.volumes, lvol("vol-x", "volume.a", project="x")))
    assert plan_of(spec, noise).live_digest == a.live_digest


def test_cost_is_computed_and_enforced_unless_allowed():
    from planner.rules import Overrides

    spec, _ = scratch_world()
    spec = replace(spec, cost=CostLimits(max_hourly_usd=0.01, enforce=True))
    plan = plan_of(spec, live())
    assert plan.cost.hourly_usd_after > 0 and plan.cost.hourly_usd_before == 0
    assert plan.cost.exceeded == ("max_hourly_usd",)
    assert plan.cost_enforced and not plan.applyable
    assert any(w.rule.value == "cost" for w in plan.warnings)
    allowed = plan_of(spec, live(), overrides=Overrides(allow_cost=True))
    assert not allowed.cost_enforced and allowed.applyable


def test_plan_round_trips_through_its_file_format():
    spec, state = scratch_world()
    state = replace(state, volumes=(*state.volumes, lvol("vol-9", "volume.old",
                                                         extra_tags=frozen({
                                                             TAG_PERSISTENT: "true"}))))
    plan = plan_of(spec, with_volume(state, size_gib=100))
    doc = json.loads(json.dumps(plan_to_json(plan)))
    again = plan_from_json(doc)
    assert plan_to_json(again) == doc
    assert again.change("volume.old").blocked


def test_import_of_another_projects_volume_is_an_error():
    spec = make_spec([vol("data", import_id="vol-x")])
    with pytest.raises(TrainctlError, match="belongs to trainctl project other"):
        plan_of(spec, live(volumes=(lvol("vol-x", "volume.data", project="other"),)))


def test_a_dropped_volume_keeps_its_on_delete_from_the_tag() -> None:
    from planner.live import TAG_ON_DELETE

    state = live(volumes=(lvol("vol-7", "volume.gone",
                               extra_tags=frozen({TAG_ON_DELETE: "snapshot"})),))
    c = plan_of(make_spec([]), state).change("volume.gone")
    assert c.deletes and c.before is not None and c.before.on_delete == "snapshot"


def test_new_volumes_record_on_delete_as_a_tag() -> None:
    spec = make_spec([vol("data", on_delete="snapshot")])
    c = plan_of(spec, live()).change("volume.data")
    assert c.after is not None and c.after.tags["trainctl:on-delete"] == "snapshot"


def test_the_plan_says_where_each_instance_reads_its_datasets() -> None:
    from planner.plan import DataLocation, plan_from_json, plan_to_json
    from planner.spec import Dataset

    spec = replace(make_spec([], [inst(datasets=("web",))]), datasets=frozen(
        {"web": Dataset("web", "s3://acme/web/", "direct-s3")}))
    plan = plan_of(spec, live())
    assert plan.data_locations == (
        DataLocation("web", "trainer", "direct-s3", "s3://acme/web/"),)
    assert plan_from_json(plan_to_json(plan)).data_locations == plan.data_locations
    assert plan_of(spec, live(), destroy=True).data_locations == ()


def test_an_empty_dataset_listing_is_a_warning() -> None:
    from planner.plan import Rule
    from planner.spec import Dataset

    spec = replace(make_spec([], [inst(datasets=("web",))]), datasets=frozen(
        {"web": Dataset("web", "s3://acme/web-typo/", "local-cache")}))
    state = replace(live(), datasets=frozen({"web": manifest("s3://acme/web-typo/", DIGEST_A,
                                                             objects=0, size=0)}))
    warnings = plan_of(spec, state).warnings
    assert [(w.address, w.rule) for w in warnings] == [("dataset.web", Rule.EMPTY_DATASET)]
    assert "s3://acme/web-typo/ lists no object" in warnings[0].message
    full = replace(live(), datasets=frozen({"web": manifest("s3://acme/web/", DIGEST_A)}))
    assert plan_of(spec, full).warnings == ()


def test_a_refill_is_an_update_that_says_what_changed():
    from planner.digesttag import entry_value
    from planner.render import attribute_diff

    spec = dataset_world("prewarmed-ebs")
    recorded = frozen({TAG_DATASET_DIGEST: "imagenet=" + entry_value(DIGEST_A, 6, 600)})
    state = live(
        volumes=(lvol("vol-2", "volume.cache", 500, attached_to=(("i-1", "/dev/sdf"),),
                      extra_tags=frozen({**mounted_tag("i-1", "/data"), **recorded})),),
        instances=(linst("i-1", "instance.trainer"),),
        datasets={"imagenet": manifest("s3://ds/imagenet/", DIGEST_B, objects=7, size=700)})
    c = plan_of(spec, state).change("prewarm.imagenet")
    assert c.actions == UPDATE and c.kind == "update"
    assert (c.before.objects, c.after.objects) == (6, 7)
    assert (c.before.bytes, c.after.bytes) == (600, 700)
    rows = {k: text for _op, k, text in attribute_diff(c)[0]}
    assert rows["objects"] == "6 -> 7" and rows["bytes"] == "600 -> 700"
    # the counts ride along in the tag; digest comparisons ignore them
    assert parse_digest_tag(format_digest_tag({"a": entry_value(DIGEST_A, 6, 600)})) == {
        "a": "sha256:" + "a" * 32 + ":6:600"}
    same = live(volumes=state.volumes, instances=state.instances,
                datasets={"imagenet": manifest("s3://ds/imagenet/", DIGEST_A, objects=6,
                                               size=600)})
    assert plan_of(spec, same).change("prewarm.imagenet").actions == NOOP


def test_a_replace_shows_only_what_changes():
    from planner.render.text import render_text

    spec, state = scratch_world()
    spec = replace(spec, instances=frozen({"trainer": inst(
        instance_type="g5.4xlarge", mounts=(Mount("scratch", "/dev/sdg", "/scratch"),))}))
    state = replace(state, instances=(linst("i-1", "instance.trainer", subnet_id="subnet-1"),))
    plan = plan_of(spec, state)
    c = plan.change("instance.trainer")
    assert c.actions == REPLACE and c.replace_paths == ("instance_type",)
    assert c.before.to_json() == {"id": "i-1", "instance_type": "g5.2xlarge"}
    assert c.after.to_json() == {"instance_type": "g5.4xlarge"}
    text = render_text(plan, color=False)
    block = text[text.index("-/+ instance.trainer"):].split("\n\n")[0]
    for absent in ("subnet_id", "arn:", "iam_instance_profile", "state", "- id", "+ name",
                   "tags"):
        assert absent not in block, block
    assert '~ instance_type = "g5.2xlarge" -> "g5.4xlarge"  # forces replacement' in block


def test_a_replace_compares_the_instance_profile_by_name():
    spec, state = scratch_world()
    spec = replace(spec, instances=frozen({"trainer": inst(
        iam_instance_profile="other-profile",
        mounts=(Mount("scratch", "/dev/sdg", "/scratch"),))}))
    c = plan_of(spec, state).change("instance.trainer")
    assert c.replace_paths == ("iam_instance_profile",)
    assert (c.before.iam_instance_profile, c.after.iam_instance_profile) == (
        "trainctl-ssm", "other-profile")


def test_a_volume_deleted_outside_trainctl_is_a_create_with_no_before():
    """The ledger saw vol-1 at volume.scratch and no live volume has it: a create whose
    reason says so; the gone id is the `deleted-outside` warning (a create has no
    before), which the header and the warnings name."""
    from planner.diff import diff
    from planner.graph import build_graph
    from planner.plan import PlanOptions
    from planner.render.markdown import render_markdown
    from planner.render.text import render_text

    spec, state = scratch_world()
    state = replace(state, volumes=())
    plan = diff(spec, build_graph(spec), state, now=NOW, options=PlanOptions(),
                known_volumes={"volume.scratch": "vol-1"})
    c = plan.change("volume.scratch")
    assert c.reason is Reason.CREATE_BECAUSE_DELETED_OUTSIDE and c.before is None
    assert [(w.address, w.rule, w.message) for w in plan.warnings] == [
        ("volume.scratch", Rule.DELETED_OUTSIDE, "vol-1 was deleted outside trainctl")]
    text = render_text(plan, color=False)
    assert "# volume.scratch will be created: vol-1 was deleted outside trainctl" in text
    assert "vol-1 was deleted outside trainctl" in render_markdown(plan)
    assert plan_from_json(plan_to_json(plan)) == plan
    # not in the ledger: merely missing, no warning
    plain = plan_of(spec, state)
    assert plain.change("volume.scratch").reason is Reason.CREATE_BECAUSE_MISSING
    assert not plain.warnings


def test_an_instance_terminated_outside_trainctl_reads_as_such():
    from planner.render.text import render_text

    spec, state = scratch_world()
    gone = linst("i-1", "instance.trainer", state="terminated")
    state = replace(state, instances=(gone,), volumes=(lvol("vol-1", "volume.scratch", 200),))
    plan = plan_of(spec, state)
    c = plan.change("instance.trainer")
    assert c.actions == CREATE and c.reason is Reason.CREATE_BECAUSE_DELETED_OUTSIDE
    # a create has no before (Terraform's contract): what it replaces is the plan's
    # `deleted-outside` warning, Terraform's drift
    assert c.before is None and c.id is None
    assert [(w.address, w.rule, w.message) for w in plan.warnings] == [
        ("instance.trainer", Rule.DELETED_OUTSIDE, "i-1 was terminated outside trainctl")]
    assert "# instance.trainer will be created: i-1 was terminated outside trainctl" in (
        render_text(plan, color=False))
    # nothing to act on: the terminated instance is never an attachment's target
    after = plan.change("attachment.trainer.scratch").after
    assert after.has("instance_id") and after.instance_id is None
    # a live instance at the address wins; none at all is "missing"
    alive = replace(state, instances=(gone, linst("i-2", "instance.trainer")))
    assert plan_of(spec, alive).change("instance.trainer").reason is not (
        Reason.CREATE_BECAUSE_DELETED_OUTSIDE)
    assert plan_of(spec, replace(state, instances=())).change(
        "instance.trainer").reason is Reason.CREATE_BECAUSE_MISSING
