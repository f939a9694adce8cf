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


# --- `trainctl show` and `apply` on broken files: exit 1, a clear message, no traceback --

def _doc(case: str = "replace-volume-and-instance-together") -> dict:
    doc = json.loads((CASES / case / "plan.json").read_text())
    doc.pop("plan_id", None)
    return doc


def _first(doc: dict, kind: str) -> dict:
    return next(c for c in doc["changes"] if c["actions"] == kind.split("+"))


def _broken() -> dict[str, tuple[str, str]]:
    """name -> (file text, what the message must name)."""
    out: dict[str, tuple[str, str]] = {}

    def add(name: str, doc: dict, needle: str) -> None:
        out[name] = (json.dumps(doc), needle)

    d = _doc("delete-not-in-spec")
    c = _first(d, "delete")
    c["after"] = c["before"]
    add("delete-with-after", d, "a delete has no after")
    d = _doc("create-from-nothing")
    c = _first(d, "create")
    c["before"] = c["after"]
    add("create-with-before", d, "a create has no before")
    d = _doc("noop-matching-world")
    c = _first(d, "no-op")
    c["before"], c["after"] = {"instance_type": "t3.micro"}, {"instance_type": "p5.48xlarge"}
    add("noop-that-changes", d, "before and after differ")
    d = _doc("replace-volume-cannot-update")
    c = _first(d, "delete+create")
    c["replace_paths"], c["reason"] = [], "update_because_drift"
    add("replace-without-paths-or-reason", d, "names no replace_paths")
    d = _doc("create-from-nothing")
    _first(d, "create")["actions"] = ["delete", "delete"]
    add("two-deletes", d, "must be one of")
    d = _doc("create-from-nothing")
    _first(d, "create")["after"] = {"size_gib": "lots"}
    add("payload-of-the-wrong-kind", d, "size_gib")
    d = _doc("create-from-nothing")
    d["plan_id"] = "0" * 16
    add("plan-id-mismatch", d, "plan_id does not match")
    out["not-json"] = ("{\"format_version\": \"1\", ", "")
    out["empty"] = ("", "")
    out["binary"] = ("\x00\xff\xfe garbage", "")
    out["nested"] = ("[" * 100000 + "]" * 100000, "")
    out["array"] = ("[1, 2, 3]", "")
    return out


BROKEN = _broken()


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_show_refuses_a_broken_plan_file_clearly(name, tmp_path):
    from conftest import run_cli

    text, needle = BROKEN[name]
    path = tmp_path / "plan.json"
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    r = run_cli("show", str(path), cwd=tmp_path)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and r.stdout == ""
    assert "plan.json" in r.stderr
    assert needle in r.stderr, r.stderr


# --- `apply PLANFILE` on the emulator: an edit is refused, a rule is never lifted --------

APPLY_V1 = """\
version: 1
project: atkplan
region: us-east-1
defaults:
  availability_zone: us-east-1a
  min_age_minutes: 0
volumes:
  keep: {size_gib: 10, persistent: true}
  data: {size_gib: 10}
"""
APPLY_V2 = """\
version: 1
project: atkplan
region: us-east-1
defaults:
  availability_zone: us-east-1a
  min_age_minutes: 0
volumes:
  data: {size_gib: 20}
"""


def _volumes(endpoint: str) -> dict[str, tuple[str, int]]:
    import boto3

    ec2 = boto3.client("ec2", endpoint_url=endpoint, region_name="us-east-1")
    vols = ec2.describe_volumes(Filters=[{"Name": "tag:trainctl:project",
                                          "Values": ["atkplan"]}])["Volumes"]
    return {next(t["Value"] for t in v["Tags"] if t["Key"] == "trainctl:address"):
            (v["VolumeId"], v["Size"]) for v in vols if v["State"] != "deleted"}


@pytest.mark.slow
def test_hand_edited_plan_files_never_act_on_their_payloads(tmp_path, moto_endpoint):
    from conftest import run_cli

    def cli(*args: str):
        return run_cli("--endpoint-url", moto_endpoint, *args, cwd=tmp_path, input="",
                       timeout=300)

    (tmp_path / "trainctl.yaml").write_text(APPLY_V1)
    r = cli("apply", "--auto-approve")
    assert r.returncode == 0, r.stderr
    (tmp_path / "trainctl.yaml").write_text(APPLY_V2)
    r = cli("plan", "-o", "plan.json")
    assert r.returncode in (0, 2), r.stderr
    doc = json.loads((tmp_path / "plan.json").read_text())
    by = {c["address"]: c for c in doc["changes"]}
    assert by["volume.keep"]["actions"] == ["delete"] and by["volume.keep"]["blocked_by"]
    assert by["volume.data"]["actions"] == ["update"]
    live = _volumes(moto_endpoint)

    def edited(edit) -> dict:
        d = json.loads(json.dumps(doc))
        d.pop("plan_id")
        edit({c["address"]: c for c in d["changes"]}, d)
        return d

    edits = {
        "a volume id": lambda c, d: c["volume.data"].update(id=live["volume.keep"][0]),
        "a size": lambda c, d: c["volume.data"]["after"].update(size_gib=2000),
        "an update made a delete": lambda c, d: c["volume.data"].update(
            actions=["delete"], after=None, reason="delete_because_not_in_spec"),
        "a change the spec has not": lambda c, d: d["changes"].append(
            {**c["volume.keep"], "address": "volume.ghost", "blocked_by": []}),
        "a change left out": lambda c, d: d["changes"].remove(c["volume.data"]),
        "depends_on": lambda c, d: c["volume.data"].update(depends_on=["volume.keep"]),
        "an expiry": lambda c, d: d["expiries"].append(
            {"instance": "x", "max_lifetime": "1h", "expires_at": None,
             "idle_stop_minutes": 5, "action": "terminate"}),
    }
    for what, edit in edits.items():
        d = edited(edit)
        (tmp_path / "edited.json").write_text(json.dumps(d))
        r = cli("apply", "edited.json")
        assert r.returncode == 1, (what, r.stdout, r.stderr)
        assert "Traceback" not in r.stderr
        assert _volumes(moto_endpoint) == live, what
    # blocked_by removed (and the summary made to agree): the persistent volume's delete
    # stays blocked at apply time; the rest of the plan goes
    d = edited(lambda c, d: (c["volume.keep"].update(blocked_by=[]),
                             d["summary"].update(delete=1, blocked=0)))
    (tmp_path / "edited.json").write_text(json.dumps(d))
    r = cli("apply", "edited.json")
    assert "Traceback" not in r.stderr
    after = _volumes(moto_endpoint)
    assert after.get("volume.keep") == live["volume.keep"], (r.stdout, r.stderr)
    assert after["volume.data"] == (live["volume.data"][0], 20), (r.stdout, r.stderr)
