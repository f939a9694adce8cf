"""check_preview: a preview's engine events (SDK JSON form, EngineEvent.from_json)
against trainctl's plan. One log per refusal and per warning, and a clean one."""

from __future__ import annotations

import pytest

pytest.importorskip("pulumi")

from planner.engines.pulumi import check_preview, review_preview
from tests.pulumi_fixtures import (
    events_of,
    read_log,
    step,
    storage_plan,
    summary,
)

PLAN = storage_plan()


def review(*docs):
    return review_preview(PLAN, events_of(list(docs)))


def refused(*docs):
    return check_preview(PLAN, events_of(list(docs)))


def test_clean_log_has_no_refusal_and_no_warning():
    events = events_of(read_log("preview_clean.jsonl"))
    out = review_preview(PLAN, events)
    assert out.refusals == () and out.warnings == ()
    assert out.ok
    assert check_preview(PLAN, events) == []


def test_the_clean_log_parses_to_every_kind_of_step():
    events = events_of(read_log("preview_clean.jsonl"))
    ops = {e.resource_pre_event.metadata.op.value for e in events if e.resource_pre_event}
    assert {"same", "create", "update", "replace", "create-replacement",
            "delete-replaced", "delete", "import"} <= ops


def test_delete_of_an_address_the_plan_keeps_is_refused():
    [r] = refused(step("delete", "volume.datasets"), summary(delete=1))
    assert r.address == "volume.datasets" and r.op == "delete"
    assert "the plan does not delete it (the plan says no-op)" in r.message


def test_delete_of_an_address_the_plan_does_not_have_is_refused():
    [r] = refused(step("delete", "volume.someone-elses"), summary(delete=1))
    assert r.address == "volume.someone-elses"
    assert "the plan does not have it" in r.message


def test_delete_the_plan_blocks_is_refused():
    [r] = refused(step("delete", "volume.old-cache"), summary(delete=1))
    assert r.address == "volume.old-cache" and "the plan does not" in r.message


def test_planned_unblocked_delete_passes():
    assert refused(step("delete", "volume.old-scratch"), summary(delete=1)) == []


@pytest.mark.parametrize("op", ["replace", "create-replacement", "delete-replaced"])
def test_replace_of_an_address_the_plan_only_updates_is_refused(op):
    [r] = refused(step(op, "volume.imagenet-cache"), summary(**{op: 1}))
    assert r.op == op and r.address == "volume.imagenet-cache"
    assert "does not replace it (the plan says update)" in r.message


@pytest.mark.parametrize("op", ["replace", "create-replacement", "delete-replaced"])
def test_replace_of_an_address_the_plan_only_deletes_is_refused(op):
    [r] = refused(step(op, "volume.old-scratch"), summary(**{op: 1}))
    assert "the plan says delete" in r.message


def test_replace_of_a_planned_replace_passes():
    assert refused(step("replace", "volume.checkpoints"),
                   step("create-replacement", "volume.checkpoints"),
                   step("delete-replaced", "volume.checkpoints"),
                   summary(replace=1)) == []


@pytest.mark.parametrize("op", ["import-replacement", "read-replacement", "discard",
                                "discard-replaced", "remove-pending-replace"])
def test_ops_trainctl_never_asks_for_are_refused_even_on_planned_addresses(op):
    # volume.checkpoints is a planned, unblocked replace: the op is refused anyway
    [r] = refused(step(op, "volume.checkpoints"), summary(**{op: 1}))
    assert r.op == op and "never runs this op" in r.message


def test_an_op_the_sdk_reads_but_trainctl_does_not_know_is_refused():
    events = events_of([step("create", "volume.scratch"), summary(create=1)])
    events[0].resource_pre_event.metadata.op = "teleport"   # a newer engine's op
    [r] = check_preview(PLAN, events)
    assert r.op == "teleport" and "does not know" in r.message


def test_an_unknown_op_the_sdk_dropped_is_refused_from_the_summary():
    # the SDK cannot parse an event with an op it does not know (OpType raises), so
    # only the summary counts it
    with pytest.raises(ValueError):
        events_of([step("teleport", "volume.datasets")])
    [r] = refused(summary(teleport=1))
    assert r.address is None and r.op == "teleport" and "does not know" in r.message


@pytest.mark.parametrize("op", ["delete", "replace", "delete-replaced", "discard"])
def test_a_destructive_op_counted_in_the_summary_but_never_shown_is_refused(op):
    [r] = refused(summary(**{op: 1}))
    assert r.address is None and r.op == op
    assert f"counts 1 {op} but its events showed 0" in r.message


def test_summary_counting_more_deletes_than_events_showed_is_refused():
    [r] = refused(step("delete", "volume.old-scratch"), summary(delete=2))
    assert "counts 2 delete but its events showed 1" in r.message


def test_pre_and_outputs_events_of_one_step_count_once():
    assert refused(step("delete", "volume.old-scratch"),
                   step("delete", "volume.old-scratch", kind="resOutputsEvent"),
                   summary(delete=1)) == []
    assert refused(step("delete", "volume.old-scratch"),
                   step("delete", "volume.old-scratch", kind="resOutputsEvent"),
                   summary(delete=2)) != []


def test_a_preview_without_summary_is_refused():
    [r] = refused(step("create", "volume.scratch"))
    assert r.op == "summary" and "no summary event" in r.message


def test_summary_keys_as_op_types_are_read_as_their_wire_form():
    from pulumi.automation import OpType

    events = events_of([summary()])
    events[0].summary_event.resource_changes = {OpType.DELETE: 1}
    [r] = check_preview(PLAN, events)
    assert r.op == "delete"


def test_provider_replace_is_refused():
    [r] = refused(step("replace", "aws", type="pulumi:providers:aws"), summary(replace=1))
    assert r.address == "aws" and "pulumi:providers:aws" in r.message


def test_provider_delete_while_a_resource_stays_is_refused():
    [r] = refused(step("delete", "aws", type="pulumi:providers:aws"),
                  step("same", "volume.datasets"), summary(delete=1, same=1))
    assert r.address == "aws"


def test_stack_and_provider_delete_with_every_resource_deleted_passes():
    assert refused(step("delete", "volume.old-scratch"),
                   step("delete", "aws", type="pulumi:providers:aws"),
                   step("delete", "trainctl-storage-llm-finetune", type="pulumi:pulumi:Stack"),
                   summary(delete=3)) == []


def test_unplanned_create_is_a_warning_not_a_refusal():
    out = review(step("create", "volume.datasets"), summary(create=1))
    assert out.refusals == ()
    [w] = out.warnings
    assert w.address == "volume.datasets" and w.op == "create"
    assert "the plan says no-op" in w.message


def test_create_of_an_address_the_plan_does_not_have_is_a_warning():
    [w] = review(step("create", "volume.unknown"), summary(create=1)).warnings
    assert "the plan does not have it" in w.message


def test_unplanned_update_is_a_warning_not_a_refusal():
    out = review(step("update", "volume.datasets"), summary(update=1))
    assert out.refusals == ()
    [w] = out.warnings
    assert w.op == "update" and "no-op" in w.message


def test_update_of_a_blocked_change_is_a_warning_naming_the_block():
    [w] = review(step("update", "volume.frozen"), summary(update=1)).warnings
    assert "blocked in the plan" in w.message


def test_import_of_a_live_resource_the_plan_keeps_is_silent():
    out = review(step("import", "volume.datasets"), summary(import_=1))
    assert out.refusals == () and out.warnings == ()


def test_provider_create_and_stack_create_are_silent():
    out = review(step("create", "aws", type="pulumi:providers:aws"),
                 step("create", "trainctl-storage-llm-finetune", type="pulumi:pulumi:Stack"),
                 summary(create=2))
    assert out.refusals == () and out.warnings == ()


def test_every_refusal_is_listed_not_only_the_first():
    out = refused(step("delete", "volume.datasets"), step("discard", "volume.scratch"),
                  step("replace", "volume.imagenet-cache"),
                  summary(delete=1, discard=1, replace=1))
    assert {(r.address, r.op) for r in out} == {
        ("volume.datasets", "delete"), ("volume.scratch", "discard"),
        ("volume.imagenet-cache", "replace")}


def test_the_json_form_itself_is_read_too_an_unknown_op_included():
    from tests.pulumi_fixtures import read_log

    docs = read_log("preview_clean.jsonl")
    assert check_preview(PLAN, docs) == []          # raw JSON, no EngineEvent
    out = check_preview(PLAN, [step("teleport", "volume.datasets"), summary(teleport=1)])
    assert {(r.address, r.op) for r in out} == {("volume.datasets", "teleport"),
                                               (None, "teleport")}
    assert all("does not know" in r.message for r in out)


def test_raw_and_parsed_events_give_the_same_answer():
    docs = [step("delete", "volume.datasets"), step("update", "volume.scratch"),
            summary(delete=1, update=1)]
    raw, parsed = review_preview(PLAN, docs), review_preview(PLAN, events_of(docs))
    assert raw == parsed and raw.refusals and raw.warnings


def test_a_summary_saying_the_state_may_be_corrupt_is_refused():
    doc = summary(create=1)
    doc["summaryEvent"]["maybeCorrupt"] = True
    [r] = refused(step("create", "volume.scratch"), doc)
    assert r.op == "maybe-corrupt" and "corrupt" in r.message


def test_preview_warnings_lists_the_warnings_alone():
    from planner.engines.pulumi import preview_warnings

    [w] = preview_warnings(PLAN, events_of([step("create", "volume.datasets"),
                                            summary(create=1)]))
    assert w.op == "create"
