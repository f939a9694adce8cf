"""Typed change payloads (issue 13): one frozen payload per resource type, the plan
file's JSON exactly, and Terraform's contract between a change's actions and payloads,
enforced when a Change is built and when a plan file is read (`show`, `apply`)."""

from __future__ import annotations

import copy
import dataclasses
import json
import re
import types
import typing
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli
from fuzzbase import PLAN_DOC
from hypothesis import given, settings
from hypothesis import strategies as st

from planner.payloads import (
    PAYLOADS,
    AttachmentPayload,
    DatasetPayload,
    FrozenMap,
    InstancePayload,
    MountPayload,
    Payload,
    PayloadError,
    PrewarmPayload,
    SyncPayload,
    VolumePayload,
    payload_from_json,
)
from planner.plan import (
    Action,
    Change,
    ChangeContractError,
    ChangeKind,
    Reason,
    ResourceType,
    plan_from_json,
    plan_to_json,
)

C, U, D, N = Action.CREATE, Action.UPDATE, Action.DELETE, Action.NOOP

# --- payloads ---------------------------------------------------------------------------


def test_one_payload_type_per_resource_type() -> None:
    assert set(PAYLOADS) == {t.value for t in ResourceType}
    for rtype, cls in PAYLOADS.items():
        assert rtype == cls.TYPE


def _values(hint: Any) -> st.SearchStrategy[Any]:
    if isinstance(hint, types.UnionType):
        return st.one_of(*(_values(a) for a in typing.get_args(hint)))
    if hint is type(None):
        return st.none()
    if hint is bool:
        return st.booleans()
    if hint is int:
        return st.integers(-(2**63), 2**63)
    if hint is float:
        return st.floats(allow_nan=False, allow_infinity=False)
    if hint is str:
        return st.text(max_size=12)
    if typing.get_origin(hint) is tuple:
        return st.lists(st.text(max_size=8), max_size=4).map(tuple)
    return st.dictionaries(st.text(max_size=8), st.none() | st.text(max_size=8), max_size=4)


@st.composite
def payloads(draw: st.DrawFn) -> Payload:
    cls = draw(st.sampled_from(sorted(PAYLOADS.values(), key=lambda c: c.TYPE)))
    keys = draw(st.permutations(cls.FIELDS))[:draw(st.integers(0, len(cls.FIELDS)))]
    return cls(**{k: draw(_values(cls.HINTS[k])) for k in keys})


@settings(max_examples=400, deadline=None)
@given(payloads())
def test_payload_json_round_trip(p: Payload) -> None:
    """to_json/from_json is the identity, through JSON text, keeping the keys' order;
    a payload is hashable and equal to its copy."""
    doc = p.to_json()
    back = payload_from_json(p.TYPE, json.loads(json.dumps(doc)))
    assert back == p and hash(back) == hash(p)
    assert list(back.to_json()) == list(doc) == list(p.given())
    assert json.dumps(back.to_json()) == json.dumps(doc)


def test_payloads_copy_and_pickle() -> None:
    import pickle

    p = VolumePayload(id="vol-1", tags={"a": "b"}, attached_to=("i-1",), iops=None)
    for q in (copy.copy(p), copy.deepcopy(p), pickle.loads(pickle.dumps(p))):
        assert q == p and list(q.to_json()) == list(p.to_json())
        assert isinstance(q.tags, FrozenMap) and q.has("iops")


def test_absent_is_not_null_and_reads_as_none() -> None:
    shown = VolumePayload(id="vol-1", iops=None)
    absent = VolumePayload(id="vol-1")
    assert shown.to_json() == {"id": "vol-1", "iops": None}
    assert absent.to_json() == {"id": "vol-1"}
    assert shown != absent and absent.iops is None
    assert shown.has("iops") and not absent.has("iops")


def test_payloads_are_frozen_with_frozen_collections() -> None:
    p = VolumePayload(id="vol-1", tags={"a": "b"}, attached_to=["i-1"])
    assert isinstance(p.tags, FrozenMap) and p.attached_to == ("i-1",)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.id = "vol-2"  # type: ignore[misc]
    with pytest.raises(TypeError):
        p.tags["a"] = "c"  # type: ignore[index]
    assert {p: 1}[VolumePayload(id="vol-1", tags={"a": "b"}, attached_to=("i-1",))] == 1


@pytest.mark.parametrize("rtype, data, says", [
    ("volume", {"volume_id": "vol-1"}, "unknown key 'volume_id' in a volume payload"),
    ("attachment", {"iops": 3}, "unknown key 'iops'"),
    ("volume", {"size_gib": "100"}, "size_gib: expected an integer or null, got '100'"),
    ("volume", {"size_gib": True}, "size_gib: expected an integer"),
    ("volume", {"encrypted": 1}, "encrypted: expected true/false"),
    ("volume", {"attached_to": ["i-1", 2]}, "attached_to: expected a list of a string"),
    ("volume", {"attached_to": "i-1"}, "attached_to: expected a list"),
    ("instance", {"tags": {"a": 1}}, "tags: expected an object"),
    ("instance", {"tags": ["a"]}, "tags: expected an object"),
    ("mount", {"size_gib": "1.5"}, "size_gib: expected an integer or a number"),
    ("dataset", {"delete_examples": [None]}, "delete_examples: expected a list"),
    ("sync", [1, 2], "a sync payload is an object, not list"),
    ("prewarm", "x", "a prewarm payload is an object"),
])
def test_from_json_refuses_unknown_keys_and_wrong_types(rtype: str, data: Any,
                                                        says: str) -> None:
    with pytest.raises(PayloadError, match="^" + re.escape(says)):
        payload_from_json(rtype, data)


def test_from_json_accepts_every_type_s_documented_keys() -> None:
    for cls, doc in [
        (VolumePayload, {"id": "vol-1", "size_gib": 10, "attached_to": [], "tags": {"a": None},
                         "on_delete": "snapshot", "duplicate_of": "vol-0"}),
        (InstancePayload, {"name": "t", "instance_type": "g5.xlarge", "tags": {}}),
        (AttachmentPayload, {"instance": "t", "volume": "v", "device": "/dev/sdf",
                             "instance_id": None, "volume_id": "vol-1"}),
        (MountPayload, {"path": "/data", "size_gib": 9.5, "fs_bytes": 1024}),
        (PrewarmPayload, {"via": "temporary-instance", "holds": ["volume.v"],
                          "volume_ids": ["vol-1"], "mounted": False}),
        (SyncPayload, {"strategy": "local-cache", "record_on": "volume.v", "objects": 3}),
        (DatasetPayload, {"delete_objects": 2, "delete_bytes": 10,
                          "delete_examples": ["a", "b"], "stage": "s3://b/p/"}),
    ]:
        p = payload_from_json(cls.TYPE, doc)
        assert isinstance(p, cls) and p.to_json() == doc


def test_a_payload_is_not_a_mapping_its_api_is_attributes_has_given_to_json() -> None:
    """The migration shim is gone: a payload answers no `p["k"]`, `.get`, `in`, `len`,
    iteration or `==` with a dict (each would hide an unconverted reader); an empty
    payload is truthy (test `is None`); fields, `has`, `given` and `to_json` remain."""
    p = VolumePayload(id="vol-1", tags={"a": "b"}, attached_to=("i-1",))
    for probe in (lambda: p["id"], lambda: "id" in p, lambda: len(p),  # type: ignore
                  lambda: list(p), lambda: dict(p)):                   # type: ignore
        with pytest.raises(TypeError):
            probe()
    for name in ("get", "keys", "items", "values"):
        assert not hasattr(p, name)
    assert p != {"id": "vol-1", "tags": {"a": "b"}, "attached_to": ["i-1"]}
    assert p == VolumePayload(id="vol-1", tags={"a": "b"}, attached_to=("i-1",))
    assert bool(VolumePayload()) is True and bool(MountPayload()) is True
    assert p.id == "vol-1" and p.attached_to == ("i-1",) and p.size_gib is None
    assert p.has("id") and not p.has("size_gib")
    assert p.given() == {"id": "vol-1", "tags": {"a": "b"}, "attached_to": ("i-1",)}
    assert p.to_json() == {"id": "vol-1", "tags": {"a": "b"}, "attached_to": ["i-1"]}
    c = Change("volume.v", ResourceType.VOLUME, (U,), Reason.UPDATE_BECAUSE_DRIFT,
               id="vol-1", before={}, after={"id": "vol-1"})
    assert c.before is not None and c.before.given() == {}


def test_a_change_coerces_a_mapping_into_its_type_s_payload() -> None:
    c = Change("volume.v", ResourceType.VOLUME, (U,), Reason.UPDATE_BECAUSE_DRIFT,
               id="vol-1", before={"id": "vol-1", "size_gib": 1},
               after={"id": "vol-1", "size_gib": 2})
    assert isinstance(c.after, VolumePayload) and c.after.size_gib == 2
    with pytest.raises(PayloadError, match="unknown key 'path' in a volume payload"):
        Change("volume.v", ResourceType.VOLUME, (C,), Reason.CREATE_BECAUSE_MISSING,
               after={"path": "/x"})
    with pytest.raises(PayloadError, match="a mount payload on a volume change"):
        Change("volume.v", ResourceType.VOLUME, (C,), Reason.CREATE_BECAUSE_MISSING,
               after=MountPayload(path="/x"))


def test_change_kind_is_a_string_enum_of_the_summary_keys() -> None:
    def kind(*actions: Action) -> ChangeKind:
        reason = Reason.REPLACE_BECAUSE_CANNOT_UPDATE if len(actions) == 2 else (
            Reason.NO_CHANGE)
        return Change("volume.v", ResourceType.VOLUME, actions, reason).kind

    assert [kind(C), kind(U), kind(D, C), kind(C, D), kind(D), kind(N)] == [
        ChangeKind.CREATE, ChangeKind.UPDATE, ChangeKind.REPLACE, ChangeKind.REPLACE,
        ChangeKind.DELETE, ChangeKind.NOOP]
    assert kind(N) == "no-op" and json.dumps(kind(D, C)) == '"replace"'


# --- the contract at construction ---------------------------------------------------------

VOL = {"id": "vol-1", "size_gib": 10}
BAD_CHANGES: list[tuple[str, dict[str, Any], str]] = [
    ("create with a before",
     {"actions": (C,), "reason": Reason.CREATE_BECAUSE_MISSING, "before": VOL,
      "after": VOL}, "a create has no before"),
    ("delete with an after",
     {"actions": (D,), "reason": Reason.DELETE_BECAUSE_NOT_IN_SPEC, "before": VOL,
      "after": VOL}, "a delete has no after"),
    ("no-op with different sides",
     {"actions": (N,), "reason": Reason.NO_CHANGE, "before": VOL,
      "after": {**VOL, "size_gib": 20}}, "a no-op changes nothing"),
    ("no-op with a before only",
     {"actions": (N,), "reason": Reason.NO_CHANGE, "before": VOL},
     "a no-op changes nothing"),
    ("replace without paths or reason",
     {"actions": (D, C), "reason": Reason.UPDATE_BECAUSE_DRIFT, "before": VOL,
      "after": VOL}, "a replace names no replace_paths"),
    ("two deletes",
     {"actions": (D, D), "reason": Reason.REPLACE_BECAUSE_CANNOT_UPDATE,
      "replace_paths": ("size_gib",)}, "actions delete+delete are no replace"),
    ("no action", {"actions": (), "reason": Reason.NO_CHANGE}, "0 actions"),
    ("replace paths on an update",
     {"actions": (U,), "reason": Reason.UPDATE_BECAUSE_DRIFT, "before": VOL, "after": VOL,
      "replace_paths": ("size_gib",)}, "a update has replace_paths"),
]


@pytest.mark.parametrize("kw, says", [(kw, says) for _, kw, says in BAD_CHANGES],
                         ids=[name for name, _, _ in BAD_CHANGES])
def test_a_change_that_breaks_the_contract_is_refused_when_built(kw: dict[str, Any],
                                                                 says: str) -> None:
    with pytest.raises(ChangeContractError, match="^" + re.escape(f"volume.v: {says}")):
        Change("volume.v", ResourceType.VOLUME, **kw)
    typed = {k: VolumePayload(**v) if k in ("before", "after") else v for k, v in kw.items()}
    with pytest.raises(ChangeContractError):
        Change("volume.v", ResourceType.VOLUME, **typed)


def test_changes_that_keep_the_contract() -> None:
    v = VolumePayload(**VOL)
    for kw in [
        {"actions": (C,), "reason": Reason.CREATE_BECAUSE_MISSING, "after": v},
        {"actions": (D,), "reason": Reason.DELETE_BECAUSE_NOT_IN_SPEC, "before": v},
        {"actions": (N,), "reason": Reason.NO_CHANGE},
        {"actions": (N,), "reason": Reason.NO_CHANGE, "before": v, "after": VolumePayload(
            size_gib=10, id="vol-1")},
        {"actions": (N,), "reason": Reason.NO_CHANGE, "after": v},   # context only
        {"actions": (D, C), "reason": Reason.REPLACE_BECAUSE_DEPENDENCY_REPLACED,
         "before": v, "after": v},
        {"actions": (C, D), "reason": Reason.UPDATE_BECAUSE_DRIFT,
         "replace_paths": ("availability_zone",), "before": v, "after": v},
    ]:
        Change("volume.v", ResourceType.VOLUME, **kw)  # type: ignore[arg-type]


def test_the_contract_holds_on_replace_too() -> None:
    """dataclasses.replace builds a new Change: an edit that breaks it is refused."""
    c = Change("volume.v", ResourceType.VOLUME, (D,), Reason.DELETE_BECAUSE_NOT_IN_SPEC,
               before=VOL)
    with pytest.raises(ChangeContractError, match="a delete has no after"):
        dataclasses.replace(c, after=VOL)


# --- plan files that break it: refused by show and apply ----------------------------------


def _golden_with(index: int, **edit: Any) -> dict[str, Any]:
    doc = copy.deepcopy(PLAN_DOC)
    doc.pop("plan_id")
    doc["changes"][index].update(edit)
    return doc


# (golden change index, edit, what the message says); index 1 is volume.scratch (create),
# 2 volume.imagenet-cache (update), 3 volume.checkpoints (replace), 7 volume.old-cache
# (delete), 0 dataset.imagenet (no-op)
BAD_FILES: list[tuple[str, int, dict[str, Any], str]] = [
    ("create-with-before", 1, {"before": {"size_gib": 1}}, "a create has no before"),
    ("delete-with-after", 7, {"after": {"size_gib": 1}}, "a delete has no after"),
    ("noop-differs", 0, {"before": {"stage": "s3://other/"}}, "a no-op changes nothing"),
    ("replace-unnamed", 3, {"replace_paths": [], "reason": "update_because_drift"},
     "a replace names no replace_paths"),
    ("unknown-key", 2, {"after": {"size_gib": 800, "colour": "red"}},
     "after: unknown key 'colour' in a volume payload"),
    ("wrong-type", 2, {"before": {"size_gib": "500"}},
     "before: size_gib: expected an integer or null, got '500'"),
    ("payload-of-another-type", 1, {"after": {"path": "/scratch"}},
     "after: unknown key 'path' in a volume payload"),
]


def test_the_golden_plan_file_keeps_the_contract() -> None:
    plan = plan_from_json(PLAN_DOC)
    assert plan_to_json(plan) == PLAN_DOC


@pytest.mark.parametrize("index, edit, says", [b[1:] for b in BAD_FILES],
                         ids=[b[0] for b in BAD_FILES])
def test_show_refuses_a_plan_file_that_breaks_the_contract(tmp_path: Path, index: int,
                                                           edit: dict[str, Any],
                                                           says: str) -> None:
    doc = _golden_with(index, **edit)
    address = doc["changes"][index]["address"]
    (tmp_path / "plan.json").write_text(json.dumps(doc))
    for args in (["show", "plan.json"], ["show", "--json", "plan.json"]):
        r = run_cli(*args, cwd=tmp_path)
        assert r.returncode == 1, r
        assert "Traceback" not in r.stderr and not r.stdout, r.stderr
        assert f"plan.json: changes[{index}] {address}: {says}" in r.stderr, r.stderr


APPLY_SPEC = """\
version: 1
project: itest
region: us-east-1
defaults: {availability_zone: us-east-1a, min_age_minutes: 0}
volumes:
  scratch: {size_gib: 10, type: gp3}
  data: {size_gib: 20, type: gp3}
"""


@pytest.mark.parametrize("name, edit, says", [
    ("create-with-before", {"before": {"size_gib": 1}}, "a create has no before"),
    ("create-as-noop-differs", {"actions": ["no-op"], "before": {"size_gib": 1}},
     "a no-op changes nothing"),
    ("create-as-replace-unnamed", {"actions": ["delete", "create"]},
     "a replace names no replace_paths"),
    ("create-with-bad-payload", {"after": {"size_gib": "10"}},
     "after: size_gib: expected an integer"),
    ("create-as-delete-with-after", {"actions": ["delete"], "reason": "delete_because_destroy"},
     "a delete has no after"),
])
def test_apply_refuses_a_plan_file_that_breaks_the_contract(tmp_path: Path,
                                                            moto_endpoint: str, name: str,
                                                            edit: dict[str, Any],
                                                            says: str) -> None:
    import boto3

    (tmp_path / "trainctl.yaml").write_text(APPLY_SPEC)
    base = ("--endpoint-url", moto_endpoint)
    r = run_cli(*base, "plan", "-o", "plan.json", cwd=tmp_path, input="")
    assert r.returncode == 0, r.stderr
    doc = json.loads((tmp_path / "plan.json").read_text())
    doc.pop("plan_id")
    index, change = next((i, c) for i, c in enumerate(doc["changes"])
                         if c["address"] == "volume.scratch")
    assert change["actions"] == ["create"]
    change.update(edit)
    (tmp_path / "plan.json").write_text(json.dumps(doc))
    r = run_cli(*base, "apply", "--auto-approve", "plan.json", cwd=tmp_path, input="")
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    assert f"changes[{index}] volume.scratch: {says}" in r.stderr, r.stderr
    ec2 = boto3.client("ec2", endpoint_url=moto_endpoint, region_name="us-east-1")
    assert ec2.describe_volumes()["Volumes"] == []            # nothing applied
    assert not (tmp_path / ".trainctl" / "journal").exists()
