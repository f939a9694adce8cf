"""Prewarm's temporary instances left by an interrupted apply: read with the project,
shown in the plan as a cleanup (`prewarm.D@i-...`, a delete that counts in the summary),
run before anything that needs the volume they hold, which is never deleted."""

from __future__ import annotations

from diffworld import OLD, inst, linst, live, lvol, make_spec, plan_of, vol

from planner.executor import phase_graph, step_order
from planner.live import TAG_PERSISTENT, TAG_TEMPORARY
from planner.plan import Action, Reason, Rule
from planner.render.text import render_text
from planner.spec import Mount

TEMP_TAGS = {TAG_TEMPORARY: "true"}


def _world(*, dataset_dropped: bool = True):
    spec = make_spec([vol("datasets", 50, persistent=True)],
                     [inst(mounts=(Mount("datasets", "/dev/sdf", "/data", read_only=True),))])
    state = live(
        volumes=(lvol("vol-p", "volume.datasets", 50, attached_to=(("i-temp", "/dev/sdf"),),
                      extra_tags={TAG_PERSISTENT: "true"}),),
        instances=(linst("i-1", "instance.trainer"),
                   linst("i-temp", "prewarm.tiny", instance_type="t3.small",
                         extra_tags=TEMP_TAGS)),
    )
    return spec, state


def test_a_leaked_temporary_instance_is_a_cleanup_in_the_plan():
    spec, state = _world()
    plan = plan_of(spec, state)
    c = plan.change("prewarm.tiny@i-temp")
    assert c.actions == (Action.DELETE,) and c.id == "i-temp" and not c.blocked
    assert c.reason is Reason.DELETE_BECAUSE_TEMPORARY
    assert c.before.volume_ids == ("vol-p",) and c.before.holds == ("volume.datasets",)
    assert plan.summary["delete"] == 1 and plan.has_changes
    assert plan.change("volume.datasets").is_noop           # the volume stays
    att = plan.change("attachment.trainer.datasets")
    assert att.actions == (Action.CREATE,) and "prewarm.tiny@i-temp" in att.depends_on
    order = step_order(phase_graph(plan.changes))
    assert order.index(("prewarm.tiny@i-temp", Action.DELETE)) < order.index(
        ("attachment.trainer.datasets", Action.CREATE))
    text = render_text(plan, color=False)
    assert "- prewarm.tiny@i-temp (i-temp)" in text
    assert "prewarm.tiny@i-temp will be deleted: a temporary prewarm instance" in text
    assert "1 to delete" in text


def test_destroy_plans_the_cleanup_before_the_volume_and_does_not_fail():
    spec, state = _world()
    plan = plan_of(spec, state, destroy=True)
    c = plan.change("prewarm.tiny@i-temp")
    assert c.deletes and not c.blocked
    v = plan.change("volume.datasets")
    assert [b.rule for b in v.blocked_by] == [Rule.PERSISTENT]   # not `attached`
    from planner.rules import Overrides

    allowed = plan_of(spec, state, destroy=True,
                      overrides=Overrides(allow_delete=frozenset({"volume.datasets"})))
    assert not allowed.change("volume.datasets").blocked
    order = step_order(phase_graph(allowed.changes))
    assert order.index(("prewarm.tiny@i-temp", Action.DELETE)) < order.index(
        ("volume.datasets", Action.DELETE))


def test_a_temporary_instance_is_never_an_instance_change_nor_a_duplicate():
    spec, state = _world()
    plan = plan_of(spec, state)
    assert not [c for c in plan.changes if c.address.startswith("instance.") and c.deletes]
    assert not [w for w in plan.warnings if w.rule is Rule.DUPLICATE]


def test_one_holding_nothing_is_still_cleaned():
    spec = make_spec([vol("datasets", 50)])
    state = live(volumes=(lvol("vol-p", "volume.datasets", 50),),
                 instances=(linst("i-t", "prewarm.tiny", extra_tags=TEMP_TAGS,
                                  launched=OLD),))
    c = plan_of(spec, state).change("prewarm.tiny@i-t")
    assert c.before.volume_ids == () and c.deletes
