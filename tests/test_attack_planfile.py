"""Red team on saved plan files: a hand-edited file is refused, or apply re-derives
everything from a fresh plan; nothing apply hands the engine comes from the file."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from planner.errors import StalePlanError
from planner.plan import DataLocation, Expiry, Plan, plan_from_json
from planner.workflow.saved import check_saved_plan, with_fresh_changes

CASES = Path(__file__).parent / "cases"


def _case(name: str) -> Plan:
    return plan_from_json(json.loads((CASES / name / "plan.json").read_text()))


def _applied(saved: Plan, fresh: Plan) -> Plan | None:
    """What apply would hand the engine for SAVED (None: refused)."""
    try:
        check_saved_plan(saved, fresh)
    except StalePlanError:
        return None
    return with_fresh_changes(saved, fresh)


def _edits(plan: Plan) -> list[Plan]:
    out = []
    for e in plan.expiries:
        rest = tuple(x for x in plan.expiries if x is not e)
        for edit in (replace(e, action="terminate" if e.action == "stop" else "stop"),
                     replace(e, max_lifetime="999h"), replace(e, idle_stop_minutes=1),
                     replace(e, expires_at="2099-01-01T00:00:00Z")):
            out.append(replace(plan, expiries=(edit, *rest)))
    out.append(replace(plan, expiries=(*plan.expiries, Expiry(
        "ghost", "1h", None, 5, "terminate"))))
    for d in plan.data_locations:
        rest_d = tuple(x for x in plan.data_locations if x is not d)
        out.append(replace(plan, data_locations=(replace(d, location="/elsewhere"), *rest_d)))
    out.append(replace(plan, data_locations=(*plan.data_locations, DataLocation(
        "ghost", "trainer", "direct-s3", "s3://attacker/"))))
    return out


@pytest.mark.parametrize("case", ["expiry-of-a-running-instance", "data-locations-direct-s3"])
def test_edited_expiries_or_data_locations_never_reach_the_engine(case):
    """`plan.expiries` is read by the Pulumi engine (an instance's shutdown behaviour:
    stop or terminate); a file whose expiries say otherwise than a fresh plan is refused
    or replaced by the fresh plan's, never carried into apply."""
    fresh = _case(case)
    assert _applied(fresh, fresh) is not None          # the unedited file applies
    for saved in _edits(fresh):
        applied = _applied(saved, fresh)
        if applied is not None:
            assert applied.expiries == fresh.expiries
            assert applied.data_locations == fresh.data_locations


def test_an_edited_expiry_is_refused_as_an_edit():
    """Refused, not silently replaced: the file the user reviewed said otherwise."""
    fresh = _case("expiry-of-a-running-instance")
    [e] = fresh.expiries
    saved = replace(fresh, expiries=(replace(e, action="terminate"),))
    with pytest.raises(StalePlanError) as err:
        check_saved_plan(saved, fresh)
    assert "edited" in str(err.value) and "expiries" in str(err.value)
