"""inputs_for(plan): the Pulumi stacks' inputs from the plan's changes (never the spec)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from diffworld import (
    AMI,
    AZ,
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
    with_volume,
)

from planner.engines.pulumi import Deployed, InputsError, inputs_for, with_volume_ids
from planner.engines.pulumi.iam import ADDRESSES as IAM_ADDRESSES
from planner.engines.pulumi.props import IGNORED
from planner.engines.pulumi.schema import Inputs, StackInputs
from planner.live import TAG_CREATED_EMPTY, TAG_PERSISTENT, TAG_PROTECTED
from planner.plan import Action, Plan, Reason, change_to_json, plan_from_json, plan_to_json
from planner.rules import Overrides
from planner.spec import Mount

ACCOUNT = "123456789012"
MOUNT = Mount("scratch", "/dev/sdg", "/scratch")


def with_changes(plan: Plan, *changes: dict[str, Any]) -> Plan:
    """PLAN with these changes (their plan-file JSON), through the plan file's reader: the
    payloads get whatever type the reader gives them."""
    doc = plan_to_json(plan)
    doc.pop("plan_id")
    base = {"id": None, "before": None, "after": None, "replace_paths": [],
            "depends_on": [], "blocked_by": []}
    doc["changes"] = [{**base, **c} for c in changes]
    doc.pop("summary")
    return plan_from_json(doc)


def deployed_by(inputs: Inputs) -> Deployed:
    """What the stacks hold after an apply of INPUTS: every final resource, with the props
    its program exported."""
    resources = (*inputs.storage.resources, *inputs.compute.resources)
    return Deployed(frozenset(r.address for r in resources),
                    frozen({r.address: r.props for r in resources}))


def first_apply(spec) -> Deployed:
    return deployed_by(inputs_for(plan_of(spec, live()), account=ACCOUNT))


def res(stack: StackInputs | None, address: str):
    assert stack is not None
    got = stack.get(address)
    assert got is not None, f"{address} not in {stack.addresses()}"
    return got


# --- creates ----------------------------------------------------------------------------


def test_a_fresh_project_declares_every_resource_from_the_plans_after():
    spec, _ = scratch_world()
    inputs = inputs_for(plan_of(spec, live()), account=ACCOUNT)
    v = res(inputs.storage, "volume.scratch")
    assert v.kind == "volume"
    assert v.props["size_gib"] == 200 and v.props["availability_zone"] == AZ
    assert v.props["tags"]["trainctl:address"] == "volume.scratch"
    assert v.props["tags"]["trainctl:project"] == "llm"
    # created empty: the only kind of volume mount.sh may format
    assert v.props["tags"][TAG_CREATED_EMPTY] == "true"
    assert v.options.protect is False and v.options.retain_on_delete is False
    assert v.options.import_id is None
    assert set(v.options.ignore_changes) == set(IGNORED)
    i = res(inputs.compute, "instance.trainer")
    assert i.props["instance_type"] == "g5.2xlarge" and i.props["ami"]
    assert i.props["iam_instance_profile"] == "trainctl-ssm"      # the spec's own
    a = res(inputs.compute, "attachment.trainer.scratch")
    assert a.props["device"] == "/dev/sdg" and a.props.get("volume_id") is None
    assert a.options.ignore_changes == ()
    assert inputs.compute_teardown.resources == ()
    assert inputs.storage_prepare is None and inputs.compute_prepare is None
    assert inputs.unprotect == inputs.imports == inputs.unmanaged == ()
    # no IAM: the instance names its profile
    assert not set(IAM_ADDRESSES) & set(inputs.storage.addresses())
    # mounts are the data plane's: no stack declares them
    assert "mount.trainer.scratch" not in inputs.compute.addresses()
    filled = with_volume_ids(inputs.compute, {"volume.scratch": "vol-9"})
    assert res(filled, "attachment.trainer.scratch").props["volume_id"] == "vol-9"


def test_a_volume_from_a_snapshot_is_not_marked_created_empty():
    spec = make_spec([vol("restored", snapshot_id="snap-1")])
    v = res(inputs_for(plan_of(spec, live())).storage, "volume.restored")
    assert v.props["snapshot_id"] == "snap-1"
    assert TAG_CREATED_EMPTY not in v.props["tags"]


@pytest.mark.parametrize(("persistent", "protect", "want"), [
    (True, False, (True, True)), (False, True, (True, False)), (True, True, (True, True)),
    (False, False, (False, False))])
def test_persistent_protects_and_retains_protected_only_protects(persistent, protect, want):
    spec = make_spec([vol("keep", persistent=persistent, protect=protect)])
    v = res(inputs_for(plan_of(spec, live())).storage, "volume.keep")
    assert (v.options.protect, v.options.retain_on_delete) == want


def test_an_instance_without_a_profile_gets_the_project_role_as_direct_makes_it():
    spec = make_spec([], [inst(iam_instance_profile=None, max_lifetime="8h")])
    plan = plan_of(spec, live())
    inputs = inputs_for(plan, account=ACCOUNT)
    i = res(inputs.compute, "instance.trainer")
    assert i.props["iam_instance_profile"] == "trainctl-llm-ssm"
    assert i.props["shutdown_behavior"] == "stop"       # the lifetime watcher's shutdown
    role = res(inputs.storage, "iam.role")
    assert role.props["name"] == "trainctl-llm-ssm"
    assert role.props["tags"] == {"trainctl:project": "llm"}
    assert "ec2.amazonaws.com" in role.props["assume_role_policy"]
    arns = {res(inputs.storage, a).props["policy_arn"]
            for a in ("iam.role-policy.ssm-core", "iam.role-policy.data")}
    assert arns == {"arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore",
                    f"arn:aws:iam::{ACCOUNT}:policy/trainctl-llm-data"}
    profile = res(inputs.storage, "iam.instance-profile")
    assert profile.props["role"] == "trainctl-llm-ssm"
    # the plan never shows them: no pass may delete them
    assert all(res(inputs.storage, a).options.retain_on_delete for a in IAM_ADDRESSES)
    assert all(res(inputs.storage, a).options.import_id is None for a in IAM_ADDRESSES)
    live_role = inputs_for(plan, account=ACCOUNT, iam_live=True)
    assert res(live_role.storage, "iam.role").options.import_id == "trainctl-llm-ssm"
    assert (res(live_role.storage, "iam.role-policy.data").options.import_id
            == f"trainctl-llm-ssm/arn:aws:iam::{ACCOUNT}:policy/trainctl-llm-data")
    with pytest.raises(Exception, match="account"):
        inputs_for(plan)


# --- what stays -------------------------------------------------------------------------


def test_an_applied_project_is_declared_as_the_stack_holds_it():
    spec, state = scratch_world()
    deployed = first_apply(spec)
    inputs = inputs_for(plan_of(spec, state), deployed)
    for stack in (inputs.storage, inputs.compute):
        for r in stack.resources:
            assert r.props == deployed.props[r.address], r.address
            assert r.options.import_id is None       # in the stack already
    assert inputs.compute_teardown.addresses() == inputs.compute.addresses()
    assert inputs.storage_prepare is None and inputs.compute_prepare is None


def test_a_live_resource_outside_the_stacks_that_the_plan_leaves_alone_is_not_declared():
    spec, state = scratch_world()
    inputs = inputs_for(plan_of(spec, state))
    # the plan's no-ops carry no live fields: Pulumi must not touch what it cannot describe
    assert set(inputs.unmanaged) == {"volume.scratch", "instance.trainer",
                                     "attachment.trainer.scratch"}
    assert inputs.storage.resources == inputs.compute.resources == ()
    assert inputs.imports == ()


def test_a_noop_with_its_live_fields_is_imported_with_them():
    before = {"id": "vol-1", "size_gib": 200, "type": "gp3", "availability_zone": AZ,
              "encrypted": True, "tags": {"Name": "llm/volume.scratch",
                                          "trainctl:project": "llm",
                                          "trainctl:address": "volume.scratch"}}
    att = {"instance": "trainer", "volume": "scratch", "device": "/dev/sdg",
           "instance_id": "i-1", "volume_id": "vol-1"}
    plan = with_changes(
        plan_of(make_spec(), live()),
        {"address": "volume.scratch", "type": "volume", "actions": ["no-op"],
         "reason": "no_change", "id": "vol-1", "before": before, "after": before},
        {"address": "attachment.trainer.scratch", "type": "attachment",
         "actions": ["no-op"], "reason": "no_change", "before": att, "after": att})
    inputs = inputs_for(plan)
    v = res(inputs.storage, "volume.scratch")
    assert v.options.import_id == "vol-1"
    assert v.props["encrypted"] is True and v.props["size_gib"] == 200
    a = res(inputs.compute, "attachment.trainer.scratch")
    assert a.options.import_id == "/dev/sdg:vol-1:i-1"     # DEVICE:VOLUME:INSTANCE
    assert a.props["instance_id"] == "i-1"
    # a no-op import needs no first pass: its inputs are the live ones
    assert inputs.storage_prepare is None and inputs.imports == ()


def test_an_update_names_only_what_the_plan_changes_encrypted_stays_unset():
    spec = make_spec([vol("data", 100)])
    deployed = first_apply(spec)
    props = {k: v for k, v in deployed.props["volume.data"].items() if k != "encrypted"}
    deployed = Deployed(deployed.addresses, frozen({"volume.data": frozen(props)}))
    # live: encrypted (made so outside the spec); the spec says nothing, so False
    state = live(volumes=(lvol("vol-1", "volume.data", 100, encrypted=True),))
    grown = make_spec([vol("data", 150)])
    plan = plan_of(grown, state)
    assert plan.change("volume.data").actions == (Action.UPDATE,)
    v = res(inputs_for(plan, deployed).storage, "volume.data")
    assert v.props["size_gib"] == 150
    assert "encrypted" not in v.props      # never a replace the plan does not show
    assert v.options.replace_on_changes == () and not v.options.delete_before_replace


def test_an_update_of_a_resource_outside_the_stacks_is_refused_without_its_live_inputs():
    state = live(volumes=(lvol("vol-1", "volume.data", 100),))
    plan = plan_of(make_spec([vol("data", 150)]), state)
    with pytest.raises(InputsError, match=r"volume\.data \(availability_zone"):
        inputs_for(plan)


# --- replaces ---------------------------------------------------------------------------


def test_a_volume_replace_maps_replace_paths_and_deletes_first():
    spec, state = scratch_world()
    deployed = first_apply(spec)
    moved = make_spec([vol("scratch", 200, availability_zone="us-east-1b")],
                      [inst(availability_zone="us-east-1b", mounts=(MOUNT,))])
    plan = plan_of(moved, state, overrides=Overrides(force=True))
    c = plan.change("volume.scratch")
    assert c.actions == (Action.DELETE, Action.CREATE) and not c.blocked
    inputs = inputs_for(plan, deployed)
    v = res(inputs.storage, "volume.scratch")
    assert v.props["availability_zone"] == "us-east-1b"
    assert "availability_zone" in v.options.replace_on_changes
    assert v.options.delete_before_replace is True
    assert v.props["tags"][TAG_CREATED_EMPTY] == "true"     # a new, empty volume
    # compute: the instance and the attachment are replaced too: gone in the teardown,
    # back in the build, with the new ids left to Pulumi
    assert "instance.trainer" not in inputs.compute_teardown.addresses()
    assert "attachment.trainer.scratch" not in inputs.compute_teardown.addresses()
    a = res(inputs.compute, "attachment.trainer.scratch")
    assert a.props.get("volume_id") is None and a.props.get("instance_id") is None
    assert set(a.options.replace_on_changes) <= {"instance_id", "volume_id", "device_name"}
    i = res(inputs.compute, "instance.trainer")
    assert "availability_zone" in i.options.replace_on_changes
    assert i.options.delete_before_replace is True


def test_an_attachment_device_change_replaces_on_device_name():
    spec, state = scratch_world()
    deployed = first_apply(spec)
    deployed = Deployed(deployed.addresses, frozen({
        **deployed.props, "attachment.trainer.scratch": frozen({
            **deployed.props["attachment.trainer.scratch"], "instance_id": "i-1",
            "volume_id": "vol-1"})}))
    moved = make_spec([vol("scratch", 200)],
                      [inst(mounts=(Mount("scratch", "/dev/sdh", "/scratch"),))])
    plan = plan_of(moved, state)
    a = res(inputs_for(plan, deployed).compute, "attachment.trainer.scratch")
    assert a.options.replace_on_changes == ("device_name",)
    assert a.props["device"] == "/dev/sdh"
    assert a.props["volume_id"] == "vol-1" and a.props["instance_id"] == "i-1"


# --- deletes ----------------------------------------------------------------------------


def test_a_deleted_address_is_absent_and_a_protected_one_is_unprotected_first():
    spec = make_spec([vol("old", protect=True), vol("tmp")])
    deployed = first_apply(spec)
    state = live(volumes=(lvol("vol-1", "volume.old", extra_tags={TAG_PROTECTED: "true"}),
                          lvol("vol-2", "volume.tmp")))
    plan = plan_of(make_spec(), state,
                   overrides=Overrides(allow_delete=frozenset({"volume.old"})))
    assert plan.change("volume.old").deletes and not plan.change("volume.old").blocked
    inputs = inputs_for(plan, deployed)
    assert inputs.storage.addresses() == ()         # Pulumi deletes both
    assert inputs.unprotect == ("volume.old",)
    first = inputs.storage_prepare
    assert first is not None
    old = res(first, "volume.old")
    assert old.options.protect is False and old.options.retain_on_delete is False
    assert old.props == deployed.props["volume.old"]     # nothing else changes in it
    assert res(first, "volume.tmp").options.protect is False


def test_a_blocked_delete_stays_declared_as_it_is():
    spec = make_spec([vol("keep", persistent=True)])
    deployed = first_apply(spec)
    state = live(volumes=(lvol("vol-1", "volume.keep", extra_tags={TAG_PERSISTENT: "true"}),))
    plan = plan_of(make_spec(), state)
    assert plan.change("volume.keep").blocked
    inputs = inputs_for(plan, deployed)
    v = res(inputs.storage, "volume.keep")
    assert v.options.protect and v.options.retain_on_delete
    assert inputs.unprotect == () and inputs.storage_prepare is None


def test_a_delete_of_a_resource_made_by_direct_imports_it_first_then_removes_it():
    state = live(volumes=(lvol("vol-1", "volume.tmp"),))
    plan = plan_of(make_spec(), state)
    inputs = inputs_for(plan)
    assert inputs.storage.addresses() == ()
    assert inputs.imports == ("volume.tmp",)
    v = res(inputs.storage_prepare, "volume.tmp")
    assert v.options.import_id == "vol-1"
    assert v.props["availability_zone"] == AZ and v.props["size_gib"] == 100
    assert "tags" in v.options.ignore_changes      # imported only to go: tags unread


def test_destroy_tears_compute_down_and_keeps_persistent_volumes():
    spec = make_spec([vol("keep", persistent=True), vol("scratch", 200)],
                     [inst(mounts=(MOUNT,))])
    deployed = first_apply(spec)
    state = live(
        volumes=(lvol("vol-1", "volume.keep", extra_tags={TAG_PERSISTENT: "true"}),
                 lvol("vol-2", "volume.scratch", 200, attached_to=(("i-1", "/dev/sdg"),),
                      extra_tags=mounted_tag("i-1", "/scratch"))),
        instances=(linst("i-1", "instance.trainer"),))
    plan = plan_of(spec, state, destroy=True, overrides=Overrides(force=True))
    inputs = inputs_for(plan, deployed)
    assert inputs.compute.addresses() == inputs.compute_teardown.addresses() == ()
    assert inputs.storage.addresses() == ("volume.keep",)


def test_duplicates_and_temporaries_are_outside_the_stacks():
    state = live(volumes=(lvol("vol-1", "volume.data"), lvol("vol-2", "volume.data")))
    plan = plan_of(make_spec([vol("data")]), state)
    dup = [c.address for c in plan.changes if "@" in c.address]
    assert dup
    inputs = inputs_for(plan, first_apply(make_spec([vol("data")])))
    assert set(dup) <= set(inputs.outside)
    assert not any("@" in a for a in inputs.storage.addresses())


# --- plumbing ---------------------------------------------------------------------------


def test_deployed_reads_the_programs_exports_as_the_automation_api_returns_them():
    outputs = {"volume.a": SimpleNamespace(value={"id": "vol-1", "props": {"size_gib": 5}},
                                           secret=False),
               "trainctl:stack": SimpleNamespace(value={"stack": "storage"}, secret=False)}
    d = Deployed.from_outputs(outputs, {"instance.t": {"id": "i-1", "props": {"ami": "a"}}})
    assert d.addresses == {"volume.a", "instance.t"}
    assert d.props["volume.a"] == {"size_gib": 5}


def test_the_json_form_round_trips():
    spec, _ = scratch_world()
    inputs = inputs_for(plan_of(spec, live()))
    for stack in (inputs.storage, inputs.compute):
        assert StackInputs.from_json(stack.to_json()) == stack
    assert inputs.storage.provider["region"] == "us-east-1"
    assert inputs.storage.provider["default_tags"] == {"tags": {"trainctl:project": "llm"}}


def test_a_replacement_in_another_az_does_not_keep_the_subnet_aws_chose():
    spec = make_spec([], [inst()])
    state = live(instances=(linst("i-1", "instance.trainer", subnet_id="subnet-a"),))
    plan = plan_of(make_spec([], [inst(availability_zone="us-east-1b")]), state,
                   overrides=Overrides(force=True))
    c = plan.change("instance.trainer")
    assert c.actions == (Action.DELETE, Action.CREATE)
    # as a plan that shows the whole live instance would have it
    full = {"id": "i-1", "instance_type": "g5.2xlarge", "ami": AMI, "market": "on-demand",
            "availability_zone": AZ, "subnet_id": "subnet-a", "state": "running",
            "iam_instance_profile": "trainctl-ssm",
            "tags": dict(state.instances[0].tags)}
    plan = with_changes(plan, *({**change_to_json(x), "before": full} if x is c
                                else change_to_json(x) for x in plan.changes))
    inputs = inputs_for(plan, first_apply(spec))
    new = res(inputs.compute, "instance.trainer")
    assert new.props["availability_zone"] == "us-east-1b"
    assert "subnet_id" not in new.props
    assert new.props["instance_type"] == "g5.2xlarge" and new.props["ami"]
    # outside the stacks: the old one is imported as it is, the new one has no subnet
    outside = inputs_for(plan)
    replacement = res(outside.compute, "instance.trainer")
    assert "subnet_id" not in replacement.props
    # Pulumi refuses to replace a resource that still names an import ID: the new one
    # is none, the old one is imported in the first pass
    assert replacement.options.import_id is None
    assert replacement.options.delete_before_replace
    old = res(outside.compute_prepare, "instance.trainer")
    assert old.options.import_id == "i-1" and old.props["subnet_id"] == "subnet-a"


def test_a_replace_outside_the_stacks_without_the_live_fields_is_refused():
    state = live(instances=(linst("i-1", "instance.trainer", subnet_id="subnet-a"),))
    plan = plan_of(make_spec([], [inst(availability_zone="us-east-1b")]), state,
                   overrides=Overrides(force=True))
    # the replace's before shows only what differs: it cannot describe the old instance
    # for its import; refused, never guessed
    with pytest.raises(InputsError, match=r"instance\.trainer \(ami, instance_type, tags\)"):
        inputs_for(plan)


def test_the_passes_run_prepare_first_then_teardown_storage_build():
    state = live(volumes=(lvol("vol-1", "volume.tmp"),))
    inputs = inputs_for(plan_of(make_spec(), state))
    assert [n for n, _ in inputs.passes()] == [
        "prepare-storage", "compute-teardown", "storage", "compute"]
    spec, _ = scratch_world()
    fresh = inputs_for(plan_of(spec, live()))
    assert [n for n, _ in fresh.passes()] == ["compute-teardown", "storage", "compute"]


def test_a_replace_in_the_same_az_keeps_the_subnet_the_stack_declared():
    spec = make_spec([], [inst(subnet_id="subnet-a")])
    state = live(instances=(linst("i-1", "instance.trainer", subnet_id="subnet-a"),))
    plan = plan_of(make_spec([], [inst(subnet_id="subnet-a", instance_type="g5.4xlarge")]),
                   state, overrides=Overrides(force=True))
    c = plan.change("instance.trainer")
    assert c.actions == (Action.DELETE, Action.CREATE) and not c.after.has("subnet_id")
    new = res(inputs_for(plan, first_apply(spec)).compute, "instance.trainer")
    assert new.props["subnet_id"] == "subnet-a" and new.props["instance_type"] == "g5.4xlarge"
    assert new.options.replace_on_changes == ("instance_type",)


def test_after_the_import_pass_a_move_still_drops_the_old_subnet():
    """The engine plans again after the prepare pass: the stack then declares the
    imported instance with its live subnet, which must not follow it to another AZ."""
    state = live(instances=(linst("i-1", "instance.trainer", subnet_id="subnet-a"),))
    plan = plan_of(make_spec([], [inst(availability_zone="us-east-1b")]), state,
                   overrides=Overrides(force=True))
    imported = {"ami": AMI, "instance_type": "g5.2xlarge", "availability_zone": AZ,
                "subnet_id": "subnet-a", "market": "on-demand",
                "iam_instance_profile": "trainctl-ssm",
                "tags": dict(state.instances[0].tags)}
    deployed = Deployed(frozenset({"instance.trainer"}),
                        frozen({"instance.trainer": frozen(imported)}))
    new = res(inputs_for(plan, deployed).compute, "instance.trainer")
    assert new.props["availability_zone"] == "us-east-1b"
    assert "subnet_id" not in new.props


def test_what_a_targeted_plan_leaves_out_stays_as_the_stacks_hold_it():
    spec = make_spec([vol("scratch", 200), vol("other", 50)], [inst(mounts=(MOUNT,))])
    deployed = first_apply(spec)
    state = live(
        volumes=(lvol("vol-1", "volume.scratch", 200, attached_to=(("i-1", "/dev/sdg"),),
                      extra_tags=mounted_tag("i-1", "/scratch")),
                 lvol("vol-2", "volume.other", 50)),
        instances=(linst("i-1", "instance.trainer"),))
    grown = make_spec([vol("scratch", 200), vol("other", 80)], [inst(mounts=(MOUNT,))])
    plan = plan_of(grown, state, targets=("volume.other",))
    assert {c.address for c in plan.changes} == {"volume.other"}
    inputs = inputs_for(plan, deployed)
    # Pulumi removes what a program does not declare: everything the stacks hold is there
    assert set(inputs.storage.addresses()) == {"volume.scratch", "volume.other"}
    assert set(inputs.compute.addresses()) == {"instance.trainer", "attachment.trainer.scratch"}
    assert inputs.compute_teardown.addresses() == inputs.compute.addresses()
    assert res(inputs.storage, "volume.scratch").props == deployed.props["volume.scratch"]
    assert res(inputs.storage, "volume.other").props["size_gib"] == 80


def test_a_protected_resource_outside_the_stacks_is_imported_unprotected_to_be_deleted():
    tags = {"Name": "llm/volume.old", "trainctl:project": "llm",
            "trainctl:address": "volume.old", TAG_PERSISTENT: "true"}
    before = {"id": "vol-1", "size_gib": 100, "type": "gp3", "availability_zone": AZ,
              "tags": tags}
    plan = with_changes(plan_of(make_spec(), live()), {
        "address": "volume.old", "type": "volume", "actions": ["delete"],
        "reason": "delete_because_not_in_spec", "id": "vol-1", "before": before})
    inputs = inputs_for(plan)
    old = res(inputs.storage_prepare, "volume.old")
    assert old.options.import_id == "vol-1"
    assert old.options.protect is False and old.options.retain_on_delete is False
    assert inputs.unprotect == ("volume.old",) and inputs.storage.addresses() == ()


# --- moving from --engine direct: the live snapshot describes what no stack holds -------


def test_moving_from_direct_imports_every_live_resource_as_it_is():
    spec, state = scratch_world()
    state = with_volume(state, encrypted=True, iops=3000)
    plan = plan_of(spec, state)
    assert plan.summary["no-op"] == len(plan.changes)
    inputs = inputs_for(plan, live=state)
    assert inputs.unmanaged == () and inputs.imports == ()     # no-ops: one pass each
    v = res(inputs.storage, "volume.scratch")
    assert v.options.import_id == "vol-1"
    assert v.props["encrypted"] is True and v.props["iops"] == 3000    # as it is
    assert "trainctl:mounted" not in v.props["tags"]           # the data plane's, ignored
    i = res(inputs.compute, "instance.trainer")
    assert i.options.import_id == "i-1"
    assert i.props["iam_instance_profile"] == "trainctl-ssm"
    a = res(inputs.compute, "attachment.trainer.scratch")
    assert a.options.import_id == "/dev/sdg:vol-1:i-1"
    assert inputs.storage_prepare is None and inputs.compute_prepare is None


def test_a_change_to_a_resource_made_by_direct_imports_it_first_then_changes_it():
    state = live(volumes=(lvol("vol-1", "volume.data", 100),))
    plan = plan_of(make_spec([vol("data", 150)]), state)
    inputs = inputs_for(plan, live=state)
    assert inputs.imports == ("volume.data",)
    first = res(inputs.storage_prepare, "volume.data")
    assert first.options.import_id == "vol-1" and first.props["size_gib"] == 100
    final = res(inputs.storage, "volume.data")
    assert final.props["size_gib"] == 150 and final.props["availability_zone"] == AZ


def test_an_adopted_volume_is_imported_as_it_is_then_tagged():
    bare = lvol("vol-9", None, 100, extra_tags={"owner": "someone"})
    state = live(volumes=(bare,))
    plan = plan_of(make_spec([vol("data", 100, import_id="vol-9")]), state)
    c = plan.change("volume.data")
    assert c.reason is Reason.ADOPT_BECAUSE_IMPORT
    with pytest.raises(InputsError):
        inputs_for(plan)            # the plan alone does not describe it
    inputs = inputs_for(plan, live=state)
    first = res(inputs.storage_prepare, "volume.data")
    assert first.options.import_id == "vol-9"
    assert first.props["tags"] == {"owner": "someone"}        # untouched by the import
    final = res(inputs.storage, "volume.data")
    assert final.props["tags"]["trainctl:address"] == "volume.data"
    assert final.props["tags"]["owner"] == "someone"
    assert final.props["tags"].get(TAG_CREATED_EMPTY) != "true"   # never formatted


def test_the_live_snapshot_never_replaces_what_the_stack_declared():
    spec, state = scratch_world()
    deployed = first_apply(spec)
    state = with_volume(state, iops=3000)       # AWS's default, which the spec leaves out
    inputs = inputs_for(plan_of(spec, state), deployed, live=state)
    assert res(inputs.storage, "volume.scratch").props == deployed.props["volume.scratch"]
