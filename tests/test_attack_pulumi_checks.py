"""Red team on the Pulumi engine's checks (pure, no CLI): the preview cross-check and the
stack state against trainctl's plan. A pass may act only on the resource the plan (and
the guards' fresh re-check) names."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from planner.engines import EngineContext
from planner.engines.pulumi.preview import check_preview
from tests.pulumi_fixtures import VOL_A, change, plan_of, step, summary

pytest.importorskip("pulumi")

INSTANCE_TYPE = "aws:ec2/instance:Instance"
ATTACHMENT_TYPE = "aws:ec2/volumeAttachment:VolumeAttachment"


def _events(*docs: dict[str, Any]) -> list[Any]:
    from pulumi.automation import EngineEvent

    return [EngineEvent.from_json(d) for d in docs]


def _delete_old_plan() -> Any:
    return plan_of(change("volume.old", ["delete"], "delete_because_not_in_spec",
                          id="vol-0aaaaaaaaaaaaaaa1", before=VOL_A))


def test_a_planned_delete_lets_the_preview_delete_that_volume():
    events = _events(step("delete", "volume.old"), summary(delete=1))
    assert check_preview(_delete_old_plan(), events) == []


@pytest.mark.parametrize("rtype", [INSTANCE_TYPE, ATTACHMENT_TYPE, "aws:iam/role:Role"])
def test_a_delete_of_another_type_under_a_planned_address_is_refused(rtype):
    """The plan deletes volume.old; a preview deleting an instance (or anything but an EBS
    volume) whose resource name is `volume.old` is not that delete."""
    events = _events(step("delete", "volume.old", type=rtype), summary(delete=1))
    refusals = check_preview(_delete_old_plan(), events)
    assert refusals and refusals[0].address == "volume.old"


@pytest.mark.parametrize("op", ["Delete", "delete ", "deleted", "DELETE", "remove"])
def test_an_op_spelled_differently_is_refused(op):
    events = _events(step("same", "volume.data"), summary(same=1))
    from planner.engines.pulumi.preview import review_preview

    doc = step(op, "volume.data")             # the SDK cannot parse it: the JSON form
    plan = plan_of(change("volume.data", ["no-op"], "no_change", id="vol-1", before=VOL_A,
                          after=VOL_A))
    review = review_preview(plan, [*events, doc, summary(**{op: 1})])
    assert review.refusals


def test_a_summary_count_not_an_int_is_still_checked():
    """A summary whose destructive count is not a plain int (the JSON form as text) is
    no proof that nothing was deleted: it is refused, not skipped."""
    plan = plan_of(change("volume.data", ["no-op"], "no_change", id="vol-1", before=VOL_A,
                          after=VOL_A))
    from planner.engines.pulumi.preview import review_preview

    bad = summary()
    bad["summaryEvent"]["resourceChanges"] = {"delete": "1"}
    review = review_preview(plan, [step("same", "volume.data"), bad])
    assert review.refusals


class StateStacks:
    """The stacks' interface holding volume.old as the resource STATE_ID."""

    def __init__(self, state_id: str):
        from planner.engines.pulumi.schema import Deployed
        from planner.engines.pulumi.state import from_deployment

        res = {"urn": "urn:pulumi:p::trainctl-storage::aws:ebs/volume:Volume::volume.old",
               "type": "aws:ebs/volume:Volume", "id": state_id, "custom": True,
               "inputs": {"size": 100, "type": "gp3", "availabilityZone": "us-east-1a",
                          "tags": {"trainctl:project": "llm-finetune",
                                   "trainctl:address": "volume.old"}}}
        deployed = from_deployment({"resources": [res]})
        assert "volume.old" in deployed.addresses, "fixture: the state names volume.old"
        self._deployed = deployed if deployed.ids else Deployed(
            deployed.addresses, deployed.props, {"volume.old": state_id})
        self.passes: list[tuple[str, tuple[str, ...]]] = []

    def deployed(self) -> Any:
        return self._deployed

    def trouble(self, program: str) -> str:
        return ""

    def prepared(self, program: str) -> bool:
        return True

    def mark_prepared(self, program: str) -> None:
        pass

    def ids(self, program: str) -> dict[str, str]:
        return dict(self._deployed.ids)

    def volume_ids(self) -> dict[str, str]:
        return dict(self._deployed.ids)

    def run_pass(self, program: str, stack_inputs: Any, checked: Any,
                 tolerate_failure: bool = False) -> Any:
        from planner.engines.pulumi.engine import PassLog

        self.passes.append((program, stack_inputs.addresses()))
        log = PassLog()
        for c in checked.changes:
            log.planned_ops.setdefault(c.address, set()).add(
                "delete" if c.deletes else "same")
            log.done.add(c.address)
        return log


def _removing_passes(state_id: str) -> list[tuple[str, tuple[str, ...]]]:
    """Build the engine on a plan deleting volume.old (vol-...a1: the resource the guards
    re-check) over a stack holding volume.old as STATE_ID; run what preflight allows;
    the passes whose declared stack leaves volume.old out (so `up` deletes STATE_ID)."""
    import networkx as nx

    from planner.engines.pulumi.engine import PulumiEngine, PulumiRefused
    from planner.executor import unit_graph
    from planner.phases import phase_graph, step_order

    plan = _delete_old_plan()
    ctx = EngineContext(spec=None, aws=SimpleNamespace(account="123456789012", iam=None),
                        ssm=None, plan=plan, overrides=None)
    stacks = StateStacks(state_id)
    engine = PulumiEngine(ctx, data_plane=None, stacks=stacks)
    engine._iam_live = lambda: False          # type: ignore[method-assign]
    try:
        engine.preflight()
    except PulumiRefused:
        return []
    steps = step_order(phase_graph(plan.changes))
    changes = {c.address: c for c in plan.changes}
    g = unit_graph(phase_graph(plan.changes), engine.units(steps, changes))
    for key in nx.topological_sort(g):
        engine.run(g.nodes[key]["unit"], changes, lambda s, o: None)
    return [p for p in stacks.passes if "volume.old" not in p[1]]


def test_the_stack_removes_the_volume_the_plan_deletes():
    assert _removing_passes("vol-0aaaaaaaaaaaaaaa1")      # the fixture does reach `up`


def test_a_stack_holding_another_resource_at_the_address_is_refused():
    assert _removing_passes("vol-0bbbbbbbbbbbbbbb2") == []


@pytest.mark.parametrize("ops", [("replace",), ("create-replacement", "delete-replaced"),
                                 ("delete", "create")])
@pytest.mark.parametrize("kind", ["update", "blocked-replace", "blocked-delete"])
def test_a_persistent_volume_delete_hidden_as_a_replace_is_refused(ops, kind):
    """The plan updates volume.keep, or replaces or deletes it blocked (persistent): no
    spelling of a replace in the preview gets its old volume removed."""
    if kind == "update":
        c = change("volume.keep", ["update"], "update_because_drift", id="vol-1",
                   before=VOL_A, after={**VOL_A, "size_gib": 200})
    elif kind == "blocked-replace":
        c = change("volume.keep", ["delete", "create"], "replace_because_cannot_update",
                   id="vol-1", before=VOL_A, after={**VOL_A, "availability_zone": "b"},
                   replace_paths=("availability_zone",), blocked="persistent")
    else:
        c = change("volume.keep", ["delete"], "delete_because_not_in_spec", id="vol-1",
                   before=VOL_A, blocked="persistent")
    counts = {op.replace("-", "_"): 1 for op in ops}
    events = _events(*(step(op, "volume.keep") for op in ops), summary(**counts))
    refusals = check_preview(plan_of(c), events)
    assert any(r.address == "volume.keep" and r.op in ("replace", "delete-replaced",
                                                        "delete", "create-replacement")
               for r in refusals), refusals


@pytest.mark.parametrize("name", ["volume.old-2", "old", "volume.old$child", "VOLUME.old",
                                  "volume.old@vol-0aaaaaaaaaaaaaaa1"])
def test_a_delete_of_a_name_that_is_not_the_planned_address_is_refused(name):
    events = _events(step("delete", "volume.old"), step("delete", name),
                     summary(delete=2))
    refusals = check_preview(_delete_old_plan(), events)
    assert [r.address for r in refusals] == [name]
