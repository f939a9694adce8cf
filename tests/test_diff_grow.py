"""Filesystem grows are never lost (issue 10, item 7): the mount records the filesystem
size it made or grew, and the plan grows whenever the live volume is larger than that."""

from __future__ import annotations

from dataclasses import replace

from diffworld import frozen, linst, live, lvol, plan_of, scratch_world, vol, with_volume

from planner.live import TAG_MOUNTED, LiveModification
from planner.plan import Action, Reason, Rule
from planner.tags import GIB, MountedTag, mounted_tag_value, parse_mounted_tag

UPDATE, NOOP = (Action.UPDATE,), (Action.NOOP,)


def _recorded(fs_bytes: int | None, path: str = "/scratch", iid: str = "i-1"):
    return frozen({TAG_MOUNTED: mounted_tag_value(iid, path, fs_bytes)})


def _world(live_gib: int, spec_gib: int, fs_bytes: int | None):
    spec, state = scratch_world()
    spec = replace(spec, volumes=frozen({"scratch": vol("scratch", spec_gib)}))
    v = state.volumes[0]
    state = with_volume(state, size_gib=live_gib, tags=frozen({**v.tags,
                                                               **_recorded(fs_bytes)}))
    return spec, state


# --- the tag ---------------------------------------------------------------------------------

def test_the_mounted_tag_keeps_the_filesystem_size_and_reads_old_values() -> None:
    assert mounted_tag_value("i-1", "/data", 150 * GIB) == f"i-1:/data fs={150 * GIB}"
    assert parse_mounted_tag(f"i-1:/data fs={150 * GIB}") == MountedTag("i-1", "/data",
                                                                        150 * GIB)
    assert parse_mounted_tag("i-1:/data") == MountedTag("i-1", "/data", None)   # before
    assert parse_mounted_tag("i-1:/a:b fs=7") == MountedTag("i-1", "/a:b", 7)
    assert parse_mounted_tag("i-1:/a fs=") == MountedTag("i-1", "/a fs=", None)
    assert parse_mounted_tag("i-1:/a fs=-5").fs_bytes is None
    assert parse_mounted_tag("i-1:/a fs=١٢") .fs_bytes is None      # not ASCII digits
    assert parse_mounted_tag("") is None and parse_mounted_tag(None) is None
    assert parse_mounted_tag("junk") is None


def test_needs_grow_uses_the_mount_scripts_slack() -> None:
    assert MountedTag("i", "/d", 100 * GIB - 2**20).needs_grow(100)
    assert not MountedTag("i", "/d", 100 * GIB - 2**20 + 1).needs_grow(100)
    assert not MountedTag("i", "/d", 100 * GIB).needs_grow(100)
    assert not MountedTag("i", "/d", None).needs_grow(100)


# --- the plan --------------------------------------------------------------------------------

def test_a_volume_larger_than_its_recorded_filesystem_plans_a_grow() -> None:
    # grown outside trainctl (or while the grow step was skipped), then written into the spec
    spec, state = _world(200, 200, 150 * GIB)
    plan = plan_of(spec, state)
    assert plan.change("volume.scratch").is_noop
    m = plan.change("mount.trainer.scratch")
    assert m.actions == UPDATE and m.reason is Reason.MOUNT_BECAUSE_VOLUME_GREW
    assert (m.before.size_gib, m.after.size_gib) == (150, 200)
    assert m.before.fs_bytes == 150 * GIB
    assert m.after.volume_id == "vol-1" and m.after.instance_id == "i-1"
    assert plan.has_changes


def test_a_filesystem_as_large_as_its_volume_is_no_change() -> None:
    spec, state = _world(200, 200, 200 * GIB)
    assert plan_of(spec, state).change("mount.trainer.scratch").actions == NOOP
    spec, state = _world(200, 200, 200 * GIB - 4096)                 # within the slack
    assert not plan_of(spec, state).has_changes


def test_an_odd_filesystem_size_is_shown_in_gib_with_decimals() -> None:
    spec, state = _world(200, 200, 150 * GIB + GIB // 2)
    m = plan_of(spec, state).change("mount.trainer.scratch")
    assert m.before.size_gib == 150.5


def test_old_tags_without_a_size_still_grow_with_the_volume() -> None:
    spec, state = _world(150, 200, None)
    plan = plan_of(spec, state)
    m = plan.change("mount.trainer.scratch")
    assert m.actions == UPDATE and (m.before.size_gib, m.after.size_gib) == (150, 200)
    assert not m.before.has("fs_bytes")
    spec, state = _world(200, 200, None)                             # unknown size: as before
    assert not plan_of(spec, state).has_changes


def test_a_grow_in_this_plan_grows_to_the_spec_size() -> None:
    spec, state = _world(150, 300, 150 * GIB)
    plan = plan_of(spec, state)
    assert plan.change("volume.scratch").after.size_gib == 300
    m = plan.change("mount.trainer.scratch")
    assert (m.before.size_gib, m.after.size_gib) == (150, 300)


def test_a_blocked_volume_grow_still_grows_the_filesystem_to_the_live_size() -> None:
    # the volume's own modification waits (previous one still optimizing), yet the volume is
    # already larger than the filesystem: that part of the grow is not left behind
    spec, state = _world(200, 300, 100 * GIB)
    state = replace(state, modifications=(LiveModification("vol-1", "optimizing",
                                                           state.read_at),))
    plan = plan_of(spec, state)
    v = plan.change("volume.scratch")
    assert v.blocked and v.blocked_by[0].rule is Rule.MODIFY_PENDING
    m = plan.change("mount.trainer.scratch")
    assert m.actions == UPDATE and not m.blocked
    assert (m.before.size_gib, m.after.size_gib) == (100, 200)


def test_a_volume_larger_than_the_spec_is_blocked_drift_and_the_plan_goes_on() -> None:
    spec, state = _world(300, 200, 300 * GIB)
    spec = replace(spec, volumes=frozen({**spec.volumes, "extra": vol("extra", 10)}))
    plan = plan_of(spec, state)
    v = plan.change("volume.scratch")
    assert v.actions == UPDATE and [b.rule for b in v.blocked_by] == [Rule.SHRINK]
    assert "300 GiB live" in v.blocked_by[0].message
    assert "set volumes.scratch.size_gib to 300" in v.blocked_by[0].message
    assert plan.change("volume.extra").actions == (Action.CREATE,)
    assert plan.change("mount.trainer.scratch").actions == NOOP


def test_a_mount_elsewhere_or_on_another_path_is_read_from_the_new_tag() -> None:
    spec, state = _world(200, 200, 200 * GIB)
    v = state.volumes[0]
    moved = with_volume(state, tags=frozen({**v.tags, **_recorded(200 * GIB, "/old")}))
    m = plan_of(spec, moved).change("mount.trainer.scratch")
    assert m.kind == "replace" and m.replace_paths == ("path",) and m.before.path == "/old"
    other = with_volume(state, tags=frozen({**v.tags, **_recorded(200 * GIB, iid="i-9")}))
    assert plan_of(spec, other).change("mount.trainer.scratch").actions == (Action.CREATE,)


def test_an_orphan_mount_deletes_the_recorded_path_not_the_size() -> None:
    spec, state = scratch_world()
    state = replace(state, volumes=(*state.volumes, lvol(
        "vol-9", "volume.old", 80, attached_to=(("i-1", "/dev/sdz"),),
        extra_tags=_recorded(80 * GIB, "/old"))),
        instances=(*state.instances, linst("i-9", "instance.other")))
    mnt = plan_of(spec, state).change("mount.trainer.old")
    assert mnt.deletes and mnt.before.path == "/old"


def test_no_volume_no_grow() -> None:
    spec, _ = scratch_world()
    assert plan_of(spec, live()).change("mount.trainer.scratch").actions == (Action.CREATE,)


def test_a_grow_skipped_behind_a_blocked_replace_is_planned_once_unblocked() -> None:
    spec, state = _world(150, 200, 150 * GIB)
    trainer = spec.instances["trainer"]
    blocked_spec = replace(spec, instances=frozen({"trainer": replace(
        trainer, instance_type="g5.4xlarge", protect=True)}))
    first = plan_of(blocked_spec, state)
    assert first.change("volume.scratch").after.size_gib == 200      # the volume grows
    assert first.change("instance.trainer").blocked                     # ...its trainer waits
    # apply grew the volume only; the mount (behind the blocked trainer) never ran, so its
    # tag still says 150 GiB
    after_apply = with_volume(state, size_gib=200)
    # the operator drops the instance change: nothing else differs, yet the grow is due
    m = plan_of(spec, after_apply).change("mount.trainer.scratch")
    assert m.actions == UPDATE and (m.before.size_gib, m.after.size_gib) == (150, 200)
