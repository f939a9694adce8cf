"""DESIGN section 4's rules in the plan, and `recheck` for apply's last look."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from diffworld import (
    NOW,
    OLD,
    frozen,
    inst,
    linst,
    live,
    lvol,
    make_spec,
    mounted_tag,
    plan_of,
    scratch_world,
    vol,
)

from planner.live import TAG_PERSISTENT, TAG_PROTECTED, LiveModification
from planner.plan import Action, Rule
from planner.rules import Overrides, recheck
from planner.spec import Mount

PERSISTENT = frozen({TAG_PERSISTENT: "true"})
PROTECTED = frozen({TAG_PROTECTED: "true"})


def rules_of(change) -> list[Rule]:
    return [b.rule for b in change.blocked_by]


def orphan_world(extra_tags=PERSISTENT, created=OLD):
    """The spec no longer names volume.old-cache; it is still live."""
    spec = make_spec([vol("scratch")])
    state = live(volumes=(lvol("vol-s", "volume.scratch"),
                          lvol("vol-old", "volume.old-cache", extra_tags=extra_tags,
                               created=created)))
    return spec, state


# --- persistent --------------------------------------------------------------------------------


def test_persistent_volume_removed_from_the_yaml_is_kept():
    spec, state = orphan_world()
    plan = plan_of(spec, state)
    c = plan.change("volume.old-cache")
    assert c.actions == (Action.DELETE,) and rules_of(c) == [Rule.PERSISTENT]
    assert c.blocked_by[0].message == (
        "volume.old-cache is persistent; name it with --allow-delete volume.old-cache "
        "to delete it")
    assert plan.summary["blocked"] == 1 and plan.summary["delete"] == 0
    assert not plan.has_changes


def test_persistent_volume_is_kept_under_destroy():
    spec, state = orphan_world()
    plan = plan_of(spec, state, destroy=True)
    assert rules_of(plan.change("volume.old-cache")) == [Rule.PERSISTENT]
    assert not plan.change("volume.scratch").blocked


def test_allow_delete_lifts_persistent_but_force_does_not():
    spec, state = orphan_world()
    forced = plan_of(spec, state, overrides=Overrides(force=True))
    assert rules_of(forced.change("volume.old-cache")) == [Rule.PERSISTENT]
    allowed = plan_of(spec, state,
                      overrides=Overrides(allow_delete=frozenset({"volume.old-cache"})))
    assert not allowed.change("volume.old-cache").blocked
    other = plan_of(spec, state, overrides=Overrides(allow_delete=frozenset({"volume.x"})))
    assert other.change("volume.old-cache").blocked


def test_az_change_of_a_persistent_volume_is_a_blocked_replace():
    spec = make_spec([vol("cache", persistent=True, availability_zone="us-east-1b")])
    state = live(volumes=(lvol("vol-1", "volume.cache", extra_tags=PERSISTENT),))
    c = plan_of(spec, state).change("volume.cache")
    assert c.actions == (Action.DELETE, Action.CREATE)
    assert c.replace_paths == ("availability_zone",)
    assert rules_of(c) == [Rule.PERSISTENT]
    assert c.blocked_by[0].message.endswith("to replace it")
    # persistent in the spec counts even before the tag is on the volume
    untagged = live(volumes=(lvol("vol-1", "volume.cache"),))
    assert rules_of(plan_of(spec, untagged).change("volume.cache")) == [Rule.PERSISTENT]


# --- protected -----------------------------------------------------------------------------------


def test_protected_instance_and_volume_are_blocked_unless_allowed():
    spec = make_spec([], [])
    state = live(volumes=(lvol("vol-1", "volume.v", extra_tags=PROTECTED),),
                 instances=(linst("i-1", "instance.box", extra_tags=PROTECTED),))
    plan = plan_of(spec, state, overrides=Overrides(force=True))
    assert rules_of(plan.change("instance.box")) == [Rule.PROTECTED]
    assert rules_of(plan.change("volume.v")) == [Rule.PROTECTED]
    assert "--allow-delete instance.box" in plan.change("instance.box").blocked_by[0].message
    allowed = plan_of(spec, state, overrides=Overrides(
        allow_delete=frozenset({"instance.box"})))
    assert not allowed.change("instance.box").blocked
    assert allowed.change("volume.v").blocked


def test_protected_instance_replace_is_blocked():
    spec = make_spec([], [inst(instance_type="p5.48xlarge", protect=True)])
    state = live(instances=(linst("i-1", "instance.trainer", extra_tags=PROTECTED),))
    c = plan_of(spec, state).change("instance.trainer")
    assert c.kind == "replace" and rules_of(c) == [Rule.PROTECTED]


# --- min-age -------------------------------------------------------------------------------------


def test_min_age_blocks_young_resources_until_force():
    spec, state = orphan_world(extra_tags=frozen(), created=NOW - timedelta(minutes=2))
    c = plan_of(spec, state).change("volume.old-cache")
    assert rules_of(c) == [Rule.MIN_AGE]
    assert "in 3 minutes" in c.blocked_by[0].message
    assert "--force" in c.blocked_by[0].message
    assert not plan_of(spec, state, overrides=Overrides(force=True)).change(
        "volume.old-cache").blocked


def test_min_age_lets_older_resources_go():
    spec, state = orphan_world(extra_tags=frozen(), created=NOW - timedelta(minutes=5))
    assert not plan_of(spec, state).change("volume.old-cache").blocked
    young = live(instances=(linst("i-1", "instance.box", launched=NOW - timedelta(seconds=30)),))
    c = plan_of(spec, young).change("instance.box")
    assert rules_of(c) == [Rule.MIN_AGE] and "in 5 minutes" in c.blocked_by[0].message


def test_min_age_and_persistent_both_show():
    spec, state = orphan_world(created=NOW - timedelta(minutes=1))
    c = plan_of(spec, state).change("volume.old-cache")
    assert rules_of(c) == [Rule.PERSISTENT, Rule.MIN_AGE]


# --- attached --------------------------------------------------------------------------------


def test_a_volume_the_plan_detaches_first_is_not_blocked_by_attached():
    """Removing a mounted volume from the spec converges in one apply: the plan unmounts
    and detaches it (an attachment delete the volume delete waits for), then deletes it."""
    spec, state = scratch_world()
    state = replace(state, volumes=(*state.volumes, lvol(
        "vol-9", "volume.old", attached_to=(("i-1", "/dev/sdz"),),
        extra_tags=mounted_tag("i-1", "/old"))))
    plan = plan_of(spec, state)
    assert not plan.change("volume.old").blocked
    detach = plan.change("attachment.trainer.old")
    assert not detach.blocked and detach.deletes
    assert "volume.old" in detach.depends_on        # so the delete runs after the detach
    assert not plan.change("mount.trainer.old").blocked


def test_attached_to_a_managed_instance_that_stays_blocks_the_volume_delete():
    """Apply's fresh check: still attached to a running instance at delete time."""
    spec, state = scratch_world()
    state = replace(state, volumes=(*state.volumes, lvol(
        "vol-9", "volume.old", attached_to=(("i-1", "/dev/sdz"),))))
    change = plan_of(spec, state).change("volume.old")
    blocks = recheck(change, state, spec, NOW, Overrides())
    assert [b.rule for b in blocks] == [Rule.ATTACHED]
    assert "detach first" in blocks[0].message


def test_attached_to_an_unmanaged_instance_blocks_even_under_destroy():
    spec, state = orphan_world(extra_tags=frozen())
    state = replace(state, volumes=(lvol("vol-old", "volume.old-cache",
                                         attached_to=(("i-foreign", "/dev/sdf"),)),))
    c = plan_of(spec, state, destroy=True).change("volume.old-cache")
    assert rules_of(c) == [Rule.ATTACHED]
    assert "i-foreign, which trainctl does not manage" in c.blocked_by[0].message


def test_attached_to_an_instance_being_deleted_is_fine_unless_that_delete_is_blocked():
    spec, state = scratch_world()
    plan = plan_of(spec, state, destroy=True)
    assert not any(c.blocked for c in plan.changes)
    young = replace(state, instances=(linst("i-1", "instance.trainer",
                                            launched=NOW - timedelta(minutes=1)),))
    plan = plan_of(spec, young, destroy=True)
    assert rules_of(plan.change("instance.trainer")) == [Rule.MIN_AGE]
    # the young instance stays whole: its volume stays mounted and attached, so it stays too
    assert rules_of(plan.change("attachment.trainer.scratch")) == [Rule.MIN_AGE]
    assert rules_of(plan.change("mount.trainer.scratch")) == [Rule.MIN_AGE]
    assert "stays while instance.trainer is kept" in plan.change(
        "mount.trainer.scratch").blocked_by[0].message
    assert rules_of(plan.change("volume.scratch")) == [Rule.ATTACHED]
    message = plan.change("volume.scratch").blocked_by[0].message
    assert "not being deleted" not in message
    assert "instance.trainer (i-1), whose delete is blocked (min-age)" in message


def test_replace_of_an_attached_volume_is_blocked_and_leaves_its_mount_alone():
    spec, state = scratch_world()
    spec = replace(spec, volumes=frozen({"scratch": vol("scratch", 200, encrypted=True)}))
    plan = plan_of(spec, state)
    assert rules_of(plan.change("volume.scratch")) == [Rule.ATTACHED]
    assert plan.change("attachment.trainer.scratch").is_noop
    assert plan.change("mount.trainer.scratch").is_noop


# --- modify-pending ------------------------------------------------------------------------------


def grow_world(mods):
    spec = make_spec([vol("data", 200)])
    state = live(volumes=(lvol("vol-1", "volume.data", 100),), modifications=tuple(mods))
    return spec, state


@pytest.mark.parametrize("state", ["modifying", "optimizing"])
def test_modification_pending_blocks_an_update(state):
    spec, st = grow_world([LiveModification("vol-1", state, NOW - timedelta(minutes=20))])
    c = plan_of(spec, st).change("volume.data")
    assert c.actions == (Action.UPDATE,) and rules_of(c) == [Rule.MODIFY_PENDING]
    assert f"(previous modification still {state}; retry after it completes)" in (
        c.blocked_by[0].message)


def test_completed_modification_does_not_block():
    spec, st = grow_world([LiveModification("vol-1", "completed", NOW - timedelta(hours=1),
                                            NOW - timedelta(minutes=30))])
    assert not plan_of(spec, st).change("volume.data").blocked


def test_four_modifications_in_24_hours_block_until_the_oldest_ages_out():
    starts = [NOW - timedelta(hours=h) for h in (23, 12, 6, 1)]
    spec, st = grow_world([LiveModification("vol-1", "completed", t, t) for t in starts])
    c = plan_of(spec, st).change("volume.data")
    assert rules_of(c) == [Rule.MODIFY_PENDING]
    assert "2026-11-22T22:00:00Z" in c.blocked_by[0].message   # 23 h ago + 24 h
    three = [LiveModification("vol-1", "completed", t, t) for t in starts[1:]]
    old = LiveModification("vol-1", "completed", NOW - timedelta(hours=30),
                           NOW - timedelta(hours=29))
    spec, st = grow_world([old, *three])
    assert not plan_of(spec, st).change("volume.data").blocked


def test_tag_only_update_is_not_a_modification():
    spec = make_spec([vol("data", 100, tags=frozen({"owner": "ana"}))])
    state = live(volumes=(lvol("vol-1", "volume.data", 100),),
                 modifications=(LiveModification("vol-1", "modifying", NOW),))
    assert not plan_of(spec, state).change("volume.data").blocked


def test_blocked_grow_does_not_grow_the_filesystem():
    spec, state = scratch_world()
    state = replace(state, volumes=(replace(state.volumes[0], size_gib=100),),
                    modifications=(LiveModification("vol-1", "optimizing", NOW),))
    plan = plan_of(spec, state)
    assert plan.change("volume.scratch").blocked
    assert plan.change("mount.trainer.scratch").is_noop


# --- recheck: apply's fresh look ----------------------------------------------------------------


def test_recheck_ignores_a_plan_whose_blocked_by_was_removed():
    spec, state = orphan_world()
    change = plan_of(spec, state).change("volume.old-cache")
    edited = replace(change, blocked_by=())
    blocks = recheck(edited, state, spec, NOW, Overrides(force=True))
    assert [b.rule for b in blocks] == [Rule.PERSISTENT]
    assert recheck(edited, state, spec, NOW, Overrides(
        allow_delete=frozenset({"volume.old-cache"}))) == ()


def test_recheck_uses_the_fresh_state():
    spec, state = orphan_world(extra_tags=frozen())
    change = plan_of(spec, state).change("volume.old-cache")
    assert not change.blocked
    # between plan and apply someone protected it and attached it elsewhere
    fresh = replace(state, volumes=(lvol("vol-old", "volume.old-cache", extra_tags=PROTECTED,
                                         attached_to=(("i-foreign", "/dev/sdf"),)),))
    rules = [b.rule for b in recheck(change, fresh, spec, NOW, Overrides())]
    assert rules == [Rule.PROTECTED, Rule.ATTACHED]
    # gone already: nothing to check
    assert recheck(change, live(), spec, NOW, Overrides()) == ()


def test_recheck_of_a_terminating_instance_lets_its_volume_go():
    spec, state = scratch_world()
    change = plan_of(spec, state, destroy=True).change("volume.scratch")
    running = recheck(change, state, spec, NOW, Overrides())
    assert [b.rule for b in running] == [Rule.ATTACHED]
    ending = replace(state, instances=(linst("i-1", "instance.trainer", state="shutting-down"),))
    assert recheck(change, ending, spec, NOW, Overrides()) == ()


def test_recheck_min_age_and_modify_pending():
    spec, state = grow_world([])
    change = plan_of(spec, state).change("volume.data")
    assert recheck(change, state, spec, NOW, Overrides()) == ()
    busy = replace(state, modifications=(LiveModification("vol-1", "modifying", NOW),))
    assert [b.rule for b in recheck(change, busy, spec, NOW, Overrides())] == [
        Rule.MODIFY_PENDING]
    box = live(instances=(linst("i-1", "instance.box"),))
    gone = plan_of(make_spec(), box).change("instance.box")
    assert recheck(gone, box, make_spec(), OLD + timedelta(minutes=1), Overrides()) != ()
    assert recheck(gone, box, make_spec(), OLD + timedelta(minutes=1),
                   Overrides(force=True)) == ()


def test_mount_points_are_data_and_never_blocked():
    spec = make_spec([vol("data")], [inst(mounts=(Mount("data", "/dev/sdf", "/d"),))])
    plan = plan_of(spec, live())
    assert recheck(plan.change("mount.trainer.data"), live(), spec, NOW, Overrides()) == ()


# --- lowering protection -------------------------------------------------------------------


def test_turning_persistent_off_in_the_spec_needs_allow_delete():
    """Otherwise: persistent: false, apply (tag becomes "false"), drop the volume, apply:
    a persistent volume deleted with nobody ever naming it."""
    spec = make_spec([vol("data", persistent=False)])
    state = live(volumes=(lvol("vol-1", "volume.data",
                               extra_tags=frozen({TAG_PERSISTENT: "true"})),))
    c = plan_of(spec, state).change("volume.data")
    assert c.actions == (Action.UPDATE,) and rules_of(c) == [Rule.PERSISTENT]
    assert "--allow-delete volume.data" in c.blocked_by[0].message
    assert recheck(c, state, spec, NOW, Overrides(force=True))          # --force is not enough
    allowed = Overrides(allow_delete=frozenset({"volume.data"}))
    assert not plan_of(spec, state, overrides=allowed).change("volume.data").blocked
    assert not recheck(c, state, spec, NOW, allowed)


def test_turning_protect_off_on_an_instance_needs_allow_delete():
    spec = make_spec([], [inst(protect=False)])
    state = live(instances=(linst("i-1", "instance.trainer",
                                  extra_tags=frozen({TAG_PROTECTED: "true"})),))
    c = plan_of(spec, state).change("instance.trainer")
    assert c.actions == (Action.UPDATE,) and rules_of(c) == [Rule.PROTECTED]
