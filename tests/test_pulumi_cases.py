"""inputs_for on every plan of tests/cases/: the invariants the stacks' inputs keep,
whatever the plan. Two stack states per case: the stacks hold what is live (every live
trainctl resource, as a refresh would record it), and the stacks hold nothing (a project
applied with `--engine direct`): then inputs_for either refuses (InputsError) or imports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from planner.engines.pulumi import Deployed, InputsError, inputs_for
from planner.engines.pulumi.iam import ADDRESSES as IAM_ADDRESSES
from planner.engines.pulumi.props import FIELDS, IGNORED, OUTSIDE_TAGS, REQUIRED, value
from planner.engines.pulumi.schema import Inputs, StackInputs
from planner.live import (
    TAG_ADDRESS,
    TAG_ON_DELETE,
    TAG_PERSISTENT,
    TAG_PROJECT,
    TAG_PROTECTED,
    LiveState,
    live_from_json,
)
from planner.plan import Action, Change, Plan, plan_from_json

CASES = Path(__file__).resolve().parent / "cases"
NAMES = sorted(p.parent.name for p in CASES.glob("*/plan.json"))
ACCOUNT = "123456789012"
GONE = ("shutting-down", "terminated", "deleting", "deleted")


def load(name: str) -> tuple[Plan, LiveState]:
    folder = CASES / name
    plan = plan_from_json(json.loads((folder / "plan.json").read_text()))
    return plan, live_from_json(json.loads((folder / "live.json").read_text()))


def _tags(tags: Any) -> dict[str, str]:
    return {k: v for k, v in tags.items() if k not in OUTSIDE_TAGS}


def deployed_from_live(state: LiveState, project: str) -> Deployed:
    """The stacks holding every live trainctl resource of PROJECT as it is."""
    props: dict[str, dict[str, Any]] = {}
    by_id: dict[str, str] = {}
    for i in state.instances:
        addr = i.tags.get(TAG_ADDRESS)
        if (i.tags.get(TAG_PROJECT) != project or not addr or i.state in GONE
                or addr in props or not addr.startswith("instance.")):
            continue                    # prewarm's temporary instances are no stack's
        by_id[i.id] = addr
        props[addr] = {"ami": i.ami, "instance_type": i.instance_type,
                       "availability_zone": i.availability_zone, "subnet_id": i.subnet_id,
                       "iam_instance_profile": (i.iam_instance_profile or "").rsplit("/")[-1]
                       or None, "market": i.market, "tags": _tags(i.tags)}
    for v in state.volumes:
        addr = v.tags.get(TAG_ADDRESS)
        if v.tags.get(TAG_PROJECT) != project or not addr or v.state in GONE or addr in props:
            continue
        props[addr] = {"availability_zone": v.availability_zone, "size_gib": v.size_gib,
                       "type": v.type, "iops": v.iops, "throughput_mibps": v.throughput_mibps,
                       "encrypted": v.encrypted, "snapshot_id": v.snapshot_id,
                       "on_delete": v.tags.get(TAG_ON_DELETE, "delete"), "tags": _tags(v.tags)}
        for a in v.attachments:
            if a.instance_id in by_id and a.state in ("attaching", "attached"):
                i_name, v_name = by_id[a.instance_id].split(".", 1)[1], addr.split(".", 1)[1]
                props[f"attachment.{i_name}.{v_name}"] = {
                    "instance": i_name, "volume": v_name, "device": a.device,
                    "instance_id": a.instance_id, "volume_id": v.id}
    clean = {a: {k: x for k, x in p.items() if x is not None} for a, p in props.items()}
    return Deployed(frozenset(clean), clean)


def resources(inputs: Inputs) -> dict[str, Any]:
    return {r.address: r for r in (*inputs.storage.resources, *inputs.compute.resources)}


def stacks(inputs: Inputs) -> list[StackInputs]:
    return [s for s in (inputs.storage, inputs.compute, inputs.compute_teardown,
                        inputs.storage_prepare, inputs.compute_prepare) if s is not None]


def changed(change: Change) -> dict[str, Any]:
    """The fields a change sets to another value than its before."""
    return {k: value(change.after, k) for k in FIELDS.get(change.type.value, ())
            if value(change.after, k) is not None
            and value(change.after, k) != value(change.before, k)}


def check(plan: Plan, inputs: Inputs, deployed: Deployed) -> None:
    final = resources(inputs)
    ours = {c.address for c in plan.changes
            if c.type.value in FIELDS and "@" not in c.address}
    assert set(final) <= ours | set(deployed.addresses) | set(IAM_ADDRESSES)
    # Pulumi removes what a program leaves out: only what the plan deletes may be left out
    for address in deployed.addresses - set(final):
        c = plan.change(address)
        assert c.actions == (Action.DELETE,) and not c.blocked, address
    for address in set(deployed.addresses) - set(inputs.compute_teardown.addresses()):
        if not address.startswith("volume."):
            c = plan.change(address)
            assert Action.DELETE in c.actions and not c.blocked, address
    assert set(inputs.compute_teardown.addresses()) <= set(inputs.compute.addresses())
    for stack in stacks(inputs):
        assert StackInputs.from_json(json.loads(json.dumps(stack.to_json()))) == stack
        for r in stack.resources:
            if r.kind in ("volume", "instance", "attachment"):
                missing = [k for k in REQUIRED[r.kind] if r.props.get(k) is None]
                assert not missing, (stack.stack, r.address, missing)
            if r.kind in ("volume", "instance"):
                tags = r.props.get("tags") or {}
                written = stack is inputs.storage or stack is inputs.compute
                if written and "tags" not in r.options.ignore_changes:
                    assert tags.get(TAG_ADDRESS) == r.address, (r.address, tags)
                    assert tags.get(TAG_PROJECT) == plan.project
                assert not set(tags) & set(OUTSIDE_TAGS)        # the data plane's own
                assert set(IGNORED) <= set(r.options.ignore_changes)
                if tags.get(TAG_PERSISTENT) == "true" and r.address not in inputs.unprotect:
                    assert r.options.protect and r.options.retain_on_delete, r.address
                if tags.get(TAG_PROTECTED) == "true" and r.address not in inputs.unprotect:
                    assert r.options.protect, r.address
            if r.address in deployed.addresses:
                assert r.options.import_id is None, r.address     # never a second import
    for c in plan.changes:
        r = final.get(c.address)
        if c.blocked:
            if r is not None:           # not carried out: nothing the plan wanted is set
                for k, v in changed(c).items():
                    assert r.props.get(k) != v, (c.address, k)
            continue
        if c.actions == (Action.DELETE,):
            assert r is None, c.address
            assert c.address not in inputs.compute_teardown.addresses()
        if len(c.actions) == 2 and r is not None:
            assert r.options.delete_before_replace == (c.actions[0] is Action.DELETE)
            assert len(r.options.replace_on_changes) == len(c.replace_paths)
            assert r.options.import_id is None    # Pulumi never replaces an import
            assert c.address not in inputs.compute_teardown.addresses()
        if Action.CREATE in c.actions and r is not None:
            for k, v in changed(c).items():
                if v is not None and k not in c.replace_paths:
                    assert r.props.get(k) == v, (c.address, k)


@pytest.mark.parametrize("name", NAMES)
def test_inputs_keep_their_invariants_when_the_stacks_hold_what_is_live(name):
    plan, state = load(name)
    deployed = deployed_from_live(state, plan.project)
    outside = [c.address for c in plan.changes
               if c.type.value in FIELDS and "@" not in c.address and not c.blocked
               and not c.is_noop and c.actions != (Action.CREATE,)
               and c.address not in deployed.addresses]
    try:
        inputs = inputs_for(plan, deployed, account=ACCOUNT)
    except InputsError as e:      # only for what the stacks do not hold (`import:`)
        assert outside and all(a in str(e) for a in outside[:1]), (outside, str(e))
        return
    check(plan, inputs, deployed)
    assert inputs.unmanaged == ()        # the stacks describe every live resource


@pytest.mark.parametrize("name", NAMES)
def test_inputs_import_or_refuse_when_the_stacks_hold_nothing(name):
    plan, _ = load(name)
    try:
        inputs = inputs_for(plan, account=ACCOUNT)
    except InputsError as e:
        assert "--engine direct" in str(e)
        return
    check(plan, inputs, Deployed())
    for r in resources(inputs).values():
        c = plan.change(r.address) if r.address not in IAM_ADDRESSES else None
        if c is not None and c.actions != (Action.CREATE,) and r.kind != "attachment":
            assert r.options.import_id == c.id, r.address
        if r.kind == "volume" and "encrypted" in r.props:     # only where the plan names it
            assert c is not None and (value(c.after, "encrypted") is not None
                                      or value(c.before, "encrypted") is not None)


def test_there_are_cases():
    assert len(NAMES) >= 50


@pytest.mark.parametrize("name", NAMES)
def test_moving_from_direct_with_the_live_snapshot_imports_everything_it_changes(name):
    plan, state = load(name)
    inputs = inputs_for(plan, account=ACCOUNT, live=state)    # never refused
    check(plan, inputs, Deployed())
    first = {r.address: r for s in (inputs.storage_prepare, inputs.compute_prepare)
             if s is not None for r in s.resources}
    for c in plan.changes:
        if c.type.value not in FIELDS or "@" in c.address or c.blocked or c.is_noop:
            continue
        if c.actions != (Action.CREATE,):       # live, changed: imported first, as it is
            assert c.address in inputs.imports, c.address
            assert first[c.address].options.import_id, c.address
