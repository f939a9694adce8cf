"""Duplicates: two live resources carrying one address are both shown, both ids, and
everything at that address is blocked (`duplicate`) until one is adopted (`import:`) or
the other deleted (`--allow-delete ID`). Pure diff tests on hand-built live states."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from diffworld import (
    NOW,
    OLD,
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
from test_engine_direct import change as engine_change
from test_engine_direct import make_engine
from test_engine_direct import make_spec as engine_spec

from planner.engines import StepBlocked
from planner.live import TAG_PERSISTENT
from planner.plan import Action, Reason, Rule, plan_from_json, plan_to_json
from planner.render.markdown import render_markdown
from planner.render.text import render_text
from planner.rules import Overrides
from planner.spec import Mount, Volume

LATER = OLD + timedelta(hours=1)


def _two_folders():
    """The full set applied twice (two folders, local state): two volumes, two instances."""
    spec, state = scratch_world()
    dup_v = lvol("vol-2", "volume.scratch", 200, created=LATER,
                 attached_to=(("i-2", "/dev/sdg"),), extra_tags=mounted_tag("i-2", "/scratch"))
    dup_i = linst("i-2", "instance.trainer", launched=LATER)
    return spec, replace(state, volumes=(*state.volumes, dup_v),
                         instances=(*state.instances, dup_i))


def _rules(c):
    return [b.rule for b in c.blocked_by]


def test_two_volumes_at_one_address_are_both_shown_and_everything_there_is_blocked():
    spec, state = _two_folders()
    plan = plan_of(spec, state)
    dv = plan.change("volume.scratch@vol-2")
    assert dv.actions == (Action.DELETE,) and dv.id == "vol-2"
    assert dv.reason is Reason.DELETE_BECAUSE_DUPLICATE
    assert Rule.DUPLICATE in _rules(dv)
    assert "--allow-delete vol-2" in dv.blocked_by[-1].message
    di = plan.change("instance.trainer@i-2")
    assert Rule.DUPLICATE in _rules(di) and "--allow-delete i-2" in di.blocked_by[-1].message
    for addr in ("volume.scratch", "instance.trainer"):
        c = plan.change(addr)
        assert _rules(c) == [Rule.DUPLICATE], addr
        assert "import:" in c.blocked_by[0].message
    warned = {w.address: w.message for w in plan.warnings if w.rule is Rule.DUPLICATE}
    assert "vol-1" in warned["volume.scratch"] and "vol-2" in warned["volume.scratch"]
    assert "i-1" in warned["instance.trainer"] and "i-2" in warned["instance.trainer"]
    assert not plan.has_changes and plan.summary["blocked"] >= 2
    text = render_text(plan, color=False)
    assert "No changes" not in text
    assert "volume.scratch@vol-2 (vol-2)" in text and "vol-1" in text
    md = render_markdown(plan, None)
    assert "vol-2" in md and "duplicate" in md
    again = plan_from_json(plan_to_json(plan))
    assert again.change("volume.scratch@vol-2").blocked_by == dv.blocked_by


def test_a_duplicate_makes_the_plan_differ_from_no_changes():
    spec, state = scratch_world()
    assert not plan_of(spec, state).has_changes
    assert plan_of(spec, state).summary["blocked"] == 0
    _, doubled = _two_folders()
    assert plan_of(spec, doubled).summary["blocked"] > 0


def test_dependents_of_a_duplicated_volume_are_blocked():
    spec = make_spec([vol("scratch", 200)],
                     [inst(mounts=(Mount("scratch", "/dev/sdg", "/scratch"),))])
    state = live(
        volumes=(lvol("vol-1", "volume.scratch", 200),
                 lvol("vol-2", "volume.scratch", 200, created=LATER)),
        instances=(linst("i-1", "instance.trainer"),),
    )
    plan = plan_of(spec, state)
    att = plan.change("attachment.trainer.scratch")
    assert att.actions == (Action.CREATE,)
    assert Rule.DUPLICATE in _rules(att)
    assert Rule.DUPLICATE in _rules(plan.change("mount.trainer.scratch"))
    assert not plan.has_changes


def test_allow_delete_id_deletes_exactly_that_duplicate_and_unblocks_the_address():
    spec, state = _two_folders()
    plan = plan_of(spec, state, overrides=Overrides(allow_delete=frozenset({"vol-2", "i-2"})))
    dv, di = plan.change("volume.scratch@vol-2"), plan.change("instance.trainer@i-2")
    assert not dv.blocked and not di.blocked
    assert plan.change("volume.scratch").is_noop and not plan.change("volume.scratch").blocked
    assert plan.change("instance.trainer").is_noop
    assert plan.change("volume.scratch").id == "vol-1"
    # the duplicate volume goes after the instance it is attached to
    assert "volume.scratch@vol-2" in di.depends_on
    deletes = [c.address for c in plan.changes if c.deletes]
    assert sorted(deletes) == ["instance.trainer@i-2", "volume.scratch@vol-2"]


def test_naming_the_older_one_keeps_the_newer():
    spec, state = _two_folders()
    plan = plan_of(spec, state, overrides=Overrides(allow_delete=frozenset({"vol-1", "i-1"})))
    assert plan.change("volume.scratch").id == "vol-2"
    assert not plan.change("volume.scratch@vol-1").blocked


def test_a_persistent_duplicate_needs_the_usual_rules_too():
    spec, state = scratch_world()
    spec = replace(spec, volumes={"scratch": replace(spec.volumes["scratch"],
                                                     persistent=True)})
    keep = lvol("vol-1", "volume.scratch", 200, extra_tags={TAG_PERSISTENT: "true"})
    dup = lvol("vol-2", "volume.scratch", 200, created=LATER,
               extra_tags={TAG_PERSISTENT: "true"})
    state = replace(state, volumes=(keep, dup), instances=())
    spec = replace(spec, instances={})
    by_id = plan_of(spec, state, overrides=Overrides(allow_delete=frozenset({"vol-2"})))
    assert _rules(by_id.change("volume.scratch@vol-2")) == [Rule.PERSISTENT]
    assert "--allow-delete volume.scratch" in by_id.change(
        "volume.scratch@vol-2").blocked_by[0].message
    assert _rules(by_id.change("volume.scratch")) == [Rule.DUPLICATE]   # still unresolved
    both = plan_of(spec, state, overrides=Overrides(
        allow_delete=frozenset({"vol-2", "volume.scratch"})))
    assert not both.change("volume.scratch@vol-2").blocked
    assert not both.change("volume.scratch").blocked


def test_a_young_duplicate_needs_force():
    spec = make_spec([vol("scratch", 200)])
    state = live(volumes=(lvol("vol-1", "volume.scratch", 200),
                          lvol("vol-2", "volume.scratch", 200, created=NOW)))
    plan = plan_of(spec, state, overrides=Overrides(allow_delete=frozenset({"vol-2"})))
    assert _rules(plan.change("volume.scratch@vol-2")) == [Rule.MIN_AGE]
    forced = plan_of(spec, state, overrides=Overrides(allow_delete=frozenset({"vol-2"}),
                                                     force=True))
    assert not forced.change("volume.scratch@vol-2").blocked


def test_import_adopts_one_and_the_other_stays_shown_until_deleted_by_id():
    spec = make_spec([vol("scratch", 200, import_id="vol-2")])
    state = live(volumes=(lvol("vol-1", "volume.scratch", 200),
                          lvol("vol-2", "volume.scratch", 200, created=LATER)))
    plan = plan_of(spec, state)
    assert plan.change("volume.scratch").id == "vol-2"
    assert not plan.change("volume.scratch").blocked
    other = plan.change("volume.scratch@vol-1")
    assert other.deletes and _rules(other) == [Rule.DUPLICATE]
    assert "imports" in other.blocked_by[0].message
    done = plan_of(spec, state, overrides=Overrides(allow_delete=frozenset({"vol-1"})))
    assert not done.change("volume.scratch@vol-1").blocked


def test_three_copies_and_one_named_stay_blocked():
    spec = make_spec([vol("scratch", 200)])
    state = live(volumes=(lvol("vol-1", "volume.scratch", 200),
                          lvol("vol-2", "volume.scratch", 200, created=LATER),
                          lvol("vol-3", "volume.scratch", 200, created=LATER + timedelta(1))))
    plan = plan_of(spec, state, overrides=Overrides(allow_delete=frozenset({"vol-2"})))
    assert not plan.change("volume.scratch@vol-2").blocked
    assert plan.change("volume.scratch@vol-3").blocked
    assert _rules(plan.change("volume.scratch")) == [Rule.DUPLICATE]


def test_destroy_with_duplicates_plans_every_copy():
    spec, state = _two_folders()
    plan = plan_of(spec, state, destroy=True,
                   overrides=Overrides(allow_delete=frozenset({"vol-2", "i-2"})))
    deletes = sorted(c.address for c in plan.changes if c.deletes and not c.blocked)
    assert "volume.scratch@vol-2" in deletes and "instance.trainer@i-2" in deletes
    assert "volume.scratch" in deletes and "instance.trainer" in deletes


def test_live_digest_sees_the_duplicate():
    spec, state = scratch_world()
    _, doubled = _two_folders()
    assert plan_of(spec, state).live_digest != plan_of(spec, doubled).live_digest


# --- apply re-checks it just before acting (direct engine on moto) -------------------------


SCRATCH = Volume(name="scratch", size_gib=20, availability_zone="us-east-1a")


def _make_two(endpoint: str):
    first, aws = make_engine(engine_spec(volumes=(SCRATCH,)), endpoint, plan_id="folder-a")
    a = first.apply(engine_change("volume.scratch", Action.CREATE), Action.CREATE)["id"]
    # another folder's apply, with a plan made before `a` existed: refused
    second, _ = make_engine(engine_spec(volumes=(SCRATCH,)), endpoint, plan_id="folder-b")
    with pytest.raises(StepBlocked, match=rf"duplicate: volume.scratch exists already \({a}\)"):
        second.apply(engine_change("volume.scratch", Action.CREATE), Action.CREATE)
    assert len(aws.ec2.describe_volumes()["Volumes"]) == 1
    # a duplicate made anyway (a lost answer, another machine): by hand here
    b = aws.ec2.create_volume(AvailabilityZone="us-east-1a", Size=20, TagSpecifications=[
        {"ResourceType": "volume", "Tags": [{"Key": "trainctl:project", "Value": "proj"},
                                            {"Key": "trainctl:address",
                                             "Value": "volume.scratch"}]}])["VolumeId"]
    return aws, a, b


def test_apply_refuses_a_create_an_update_and_a_delete_at_a_duplicated_address(
        moto_endpoint: str) -> None:
    aws, a, b = _make_two(moto_endpoint)
    engine, _ = make_engine(engine_spec(volumes=(SCRATCH,)), moto_endpoint)
    with pytest.raises(StepBlocked, match=rf"duplicate: 2 live volumes carry volume.scratch "
                                          rf"\({a}, {b}\)"):
        engine.apply(engine_change("volume.scratch", Action.UPDATE, id=a,
                                   after={"id": a, "size_gib": 30}), Action.UPDATE)
    with pytest.raises(StepBlocked, match="duplicate"):
        engine.apply(engine_change("volume.scratch", Action.DELETE, id=a), Action.DELETE)
    # the duplicate's own delete needs its id named, even from an edited plan file
    with pytest.raises(StepBlocked, match=rf"--allow-delete {b}"):
        engine.apply(engine_change(f"volume.scratch@{b}", Action.DELETE, id=b), Action.DELETE)
    assert {v["VolumeId"] for v in aws.ec2.describe_volumes()["Volumes"]} == {a, b}
    assert aws.ec2.describe_volumes(VolumeIds=[a])["Volumes"][0]["Size"] == 20


def test_allow_delete_id_deletes_exactly_that_duplicate(moto_endpoint: str) -> None:
    aws, a, b = _make_two(moto_endpoint)
    engine, _ = make_engine(engine_spec(volumes=(SCRATCH,)), moto_endpoint,
                            overrides=Overrides(allow_delete=frozenset({b})))
    engine.apply(engine_change(f"volume.scratch@{b}", Action.DELETE, id=b), Action.DELETE)
    assert {v["VolumeId"] for v in aws.ec2.describe_volumes()["Volumes"]} == {a}
    # and the address is whole again
    engine.apply(engine_change("volume.scratch", Action.UPDATE, id=a,
                               after={"id": a, "size_gib": 30}), Action.UPDATE)
