"""Every file trainctl reads is checked before use (issue 12, item 1): a bad one is one
clean error naming the file and the field, exit 1, no traceback, nothing changed."""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fuzzbase import PLAN_DOC, SPEC_TEXT, live_doc
from inproc import invoke

# --- plan files --------------------------------------------------------------------------


def _set(path: tuple[Any, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def f(doc: dict[str, Any]) -> None:
        target = doc
        for p in path[:-1]:
            target = target[p]
        target[path[-1]] = value
    return f


PLAN_TRIGGERS = [
    ("changes[0].actions", _set(("changes", 0, "actions"), [])),
    ("changes[0].actions", _set(("changes", 0, "actions"), ["delete", "delete"])),
    ("changes[0].after", _set(("changes", 0, "after"), "size_gib: 5")),
    ("changes[1].before", _set(("changes", 1, "before"), [1, 2])),
    ("options.targets", _set(("options", "targets"), "volume.scratch")),
    ("options.targets[0]", _set(("options", "targets"), [1, 2])),
    ("options.destroy", _set(("options", "destroy"), "no")),
    ("cost.hourly_usd_after", _set(("cost", "hourly_usd_after"), 10**400)),
    ("changes[1].after.size_gib", _set(("changes", 1, "after", "size_gib"), 10**400)),
    ("changes[0].type", _set(("changes", 0, "type"), "bucket")),
    ("changes[0].blocked_by", _set(("changes", 0, "blocked_by"), {"rule": "persistent"})),
    ("changes[0].depends_on[0]", _set(("changes", 0, "depends_on"), [None])),
    ("created_at", _set(("created_at",), "yesterday")),
    ("changes", _set(("changes",), {"volume.x": {}})),
    ("warnings[0]", _set(("warnings",), ["cost"])),
]


@pytest.mark.parametrize("field, mutate", PLAN_TRIGGERS, ids=[f for f, _ in PLAN_TRIGGERS])
def test_bad_plan_file_names_the_field(tmp_path: Path, field: str,
                                       mutate: Callable[[dict[str, Any]], None]) -> None:
    doc = copy.deepcopy(PLAN_DOC)
    doc.pop("plan_id")
    mutate(doc)
    (tmp_path / "plan.json").write_text(json.dumps(doc))
    for cmd in (["show", "plan.json"], ["show", "--json", "plan.json"]):
        o = invoke(*cmd, cwd=tmp_path)
        assert o.code == 1 and not o.traceback, o
        assert f"plan.json: {field}:" in o.stderr, o.stderr


@pytest.mark.parametrize("text, says", [
    ('{"format_version": "1", "changes": [], "x": NaN}', "NaN is not a JSON number"),
    ('{"format_version": "1", "changes": [], "x": 1e400}', "x: number too large"),
    ("[" * 100_000, "nested too deeply"),
    ('{"format_version": "1", "changes": [], "x": ' + "9" * 5000 + "}", "not a plan file"),
])
def test_plan_file_json_edge_cases(tmp_path: Path, text: str, says: str) -> None:
    (tmp_path / "plan.json").write_text(text)
    o = invoke("show", "plan.json", cwd=tmp_path)
    assert o.code == 1 and not o.traceback and says in o.stderr, o


def test_apply_of_a_bad_plan_file_changes_nothing(tmp_path: Path) -> None:
    (tmp_path / "trainctl.yaml").write_text(SPEC_TEXT)
    doc = copy.deepcopy(PLAN_DOC)
    doc["options"]["destroy"] = "no"
    (tmp_path / "plan.json").write_text(json.dumps(doc))
    o = invoke("apply", "plan.json", cwd=tmp_path)
    assert o.code == 1 and "plan.json: options.destroy:" in o.stderr
    assert not (tmp_path / ".trainctl").exists()        # no lock, no journal, nothing


# --- live snapshots -----------------------------------------------------------------------


def _live_leaves(doc: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(doc, dict):
        return [p for k, v in doc.items() for p in _live_leaves(v, (*path, k))] or [path]
    if isinstance(doc, list):
        return [p for i, v in enumerate(doc) for p in _live_leaves(v, (*path, i))] or [path]
    return [path]


def _field(path: tuple[Any, ...]) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else ("." if out else "") + str(p)
    return out


def _wrong(value: Any) -> list[Any]:
    """Values of other JSON types than `value`'s."""
    pool = ["x", 7, 1.5, True, None, [1], {"a": 1}]
    return [v for v in pool if type(v) is not type(value) and not (
        value is None and v is None)]


def test_every_live_snapshot_field_of_the_wrong_type_names_it(tmp_path: Path) -> None:
    """Every leaf of a full snapshot, set to every other JSON type: exit 0 (a type the
    field allows, e.g. null for an optional id) or 1 naming that field; never a traceback."""
    (tmp_path / "trainctl.yaml").write_text(SPEC_TEXT)
    base = live_doc()
    named = cases = 0
    for path in _live_leaves(base):
        target = base
        for p in path[:-1]:
            target = target[p]
        for bad in _wrong(target[path[-1]]):
            doc = copy.deepcopy(base)
            t = doc
            for p in path[:-1]:
                t = t[p]
            t[path[-1]] = bad
            (tmp_path / "live.json").write_text(json.dumps(doc))
            o = invoke("plan", "--live-snapshot", "live.json", cwd=tmp_path)
            cases += 1
            assert o.clean, (path, bad, o)
            if o.code == 1:
                assert "live.json" in o.stderr
                if path[-1] != "project":   # a string project of another name: says so
                    assert _field(path) in o.stderr or _field(path[:-1]) in o.stderr, \
                        (path, bad, o.stderr)
                named += 1
    print(f"\nlive snapshot field types: {cases} cases, {named} refused naming the field")
    assert named > cases * 0.8


@pytest.mark.parametrize("mutate, field", [
    (_set(("volumes", 0, "size_gib"), 10**400), "volumes[0].size_gib: number too large"),
    (_set(("spot_prices", "g5.xlarge/us-east-1a"), "=1e400"),
     "spot_prices.g5.xlarge/us-east-1a: number too large or not finite"),
    (_set(("volumes", 0, "create_time"), "2026-13-01T00:00:00Z"), "volumes[0].create_time"),
    (_set(("volumes", 0, "attachments", 0, "extra"), 1), "volumes[0].attachments[0]"),
    (_set(("datasets", "tiny-imagenet", "bytes"), -1), "datasets.tiny-imagenet.bytes"),
    (_set(("format",), "2"), "format"),
])
def test_bad_live_snapshot_values(tmp_path: Path, mutate: Callable[[dict[str, Any]], None],
                                  field: str) -> None:
    (tmp_path / "trainctl.yaml").write_text(SPEC_TEXT)
    doc = live_doc()
    mutate(doc)
    (tmp_path / "live.json").write_text(json.dumps(doc).replace('"=1e400"', "1e400"))
    o = invoke("plan", "--live-snapshot", "live.json", cwd=tmp_path)
    assert o.code == 1 and not o.traceback and field in o.stderr, o


def test_the_full_snapshot_plans(tmp_path: Path) -> None:
    (tmp_path / "trainctl.yaml").write_text(SPEC_TEXT)
    (tmp_path / "live.json").write_text(json.dumps(live_doc()))
    o = invoke("plan", "--live-snapshot", "live.json", cwd=tmp_path)
    assert o.code == 0, o


def test_written_files_pass_their_schemas() -> None:
    """What trainctl writes, it reads back: the schemas cover the writers' fields."""
    from planner.filecheck import issues_of
    from planner.fileschemas import live_schema, plan_schema

    assert issues_of(PLAN_DOC, plan_schema()) == []
    assert issues_of(live_doc(), live_schema()) == []


def test_live_schema_covers_every_snapshot_field() -> None:
    """A field added to planner.live's records must get a type in the schema."""
    from dataclasses import fields

    from planner import live
    from planner.fileschemas import live_schema

    s = live_schema()["properties"]
    items = {live.LiveVolume: s["volumes"]["items"], live.LiveInstance: s["instances"]["items"],
             live.LiveModification: s["modifications"]["items"],
             live.LiveEbsSnapshot: s["snapshots"]["items"],
             live.LiveAttachment: s["volumes"]["items"]["properties"]["attachments"]["items"],
             live.DatasetManifest: s["datasets"]["additionalProperties"],
             live.StageState: s["stages"]["additionalProperties"]}
    for cls, schema in items.items():
        assert {f.name for f in fields(cls)} == set(schema["properties"]), cls
    assert {f.name for f in fields(live.LiveState)} | {"format"} == set(s)


# --- endpoint URLs -------------------------------------------------------------------------

BAD_URLS = ["not a url", "http://", "://x", "http://[::1", "http://127.0.0.1:99999",
            "http://127.0.0.1:0", "ftp://127.0.0.1:21", "http://h:port", "", "http://a b"]


@pytest.mark.parametrize("url", BAD_URLS)
def test_bad_endpoint_url_is_named(tmp_path: Path, url: str) -> None:
    (tmp_path / "trainctl.yaml").write_text(SPEC_TEXT)
    o = invoke("--endpoint-url", url, "plan", cwd=tmp_path)
    assert o.code == 1 and not o.traceback, o
    assert "--endpoint-url: invalid endpoint URL" in o.stderr, o.stderr
    assert "credentials" not in o.stderr


@pytest.mark.parametrize("url", ["http://[::1", "http://127.0.0.1:99999", "not a url"])
def test_bad_aws_endpoint_url_variable_is_named(tmp_path: Path, url: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "trainctl.yaml").write_text(SPEC_TEXT)
    monkeypatch.setenv("AWS_ENDPOINT_URL", url)
    o = invoke("plan", cwd=tmp_path)
    assert o.code == 1 and "AWS_ENDPOINT_URL: invalid endpoint URL" in o.stderr, o


@pytest.mark.parametrize("record, field", [
    ({"endpoint": "http://[::1", "pid": os.getpid()}, "endpoint:"),
    ({"endpoint": "http://127.0.0.1:99999", "pid": os.getpid()}, "endpoint:"),
    ({"endpoint": "http://127.0.0.1:5000", "pid": "12"}, "pid: expected an integer"),
    ({"endpoint": "http://127.0.0.1:5000", "pid": 10**400}, "pid: number too large"),
    ({"endpoint": 5000, "pid": os.getpid()}, "endpoint: expected a string"),
    ({"pid": os.getpid()}, "missing required key 'endpoint'"),
    ([], "expected an object"),
])
def test_bad_local_json_is_named_never_skipped(tmp_path: Path, record: Any,
                                               field: str) -> None:
    (tmp_path / "trainctl.yaml").write_text(SPEC_TEXT)
    (tmp_path / ".trainctl").mkdir()
    (tmp_path / ".trainctl" / "local.json").write_text(json.dumps(record))
    for args in (["plan"], ["local", "status"], ["lock", "status"]):
        o = invoke(*args, cwd=tmp_path)
        if args == ["lock", "status"] and o.code == 0:
            continue      # the local lock needs no endpoint
        assert o.code == 1 and not o.traceback, (args, o)
        assert "local.json: " + field in o.stderr or f"local.json: (document): {field}" \
            in o.stderr, (args, o.stderr)


# --- .trainctl of the wrong type -----------------------------------------------------------


def _file(p: Path) -> None:
    p.write_text("x")


def _folder(p: Path) -> None:
    p.mkdir()


def _dangling(p: Path) -> None:
    p.symlink_to(p.parent / "nowhere")


@pytest.mark.parametrize("entry, make", [
    ("", _file), ("", _dangling), ("lock", _folder), ("lock", _dangling),
    ("local.json", _folder), ("local.json", _dangling), ("journal", _file),
    ("plans", _file), ("sandbox", _file), ("journal/abc.jsonl", _folder),
    ("plans/abc.json", _dangling),
])
@pytest.mark.parametrize("args", [("plan",), ("apply", "--auto-approve"), ("lock", "status"),
                                  ("local", "status")])
def test_state_folder_of_the_wrong_type(tmp_path: Path, entry: str,
                                        make: Callable[[Path], None],
                                        args: tuple[str, ...]) -> None:
    (tmp_path / "trainctl.yaml").write_text(SPEC_TEXT)
    state = tmp_path / ".trainctl"
    target = state / entry if entry else state
    if entry:
        target.parent.mkdir(parents=True, exist_ok=True)
    make(target)
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    o = invoke("--endpoint-url", "http://127.0.0.1:9", *args, cwd=tmp_path)
    assert o.code == 1 and not o.traceback, o
    assert str(target) in o.stderr and "trainctl's state folder" in o.stderr, o.stderr
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before     # nothing changed


def test_invalid_journal_line_names_file_and_line(tmp_path: Path) -> None:
    from planner.filecheck import FileCheckError
    from planner.journal import read_journal

    p = tmp_path / "j.jsonl"
    p.write_text('{"ts": "t", "plan_id": "p", "event": "started"}\n'
                 '{"ts": "t", "plan_id": "p", "event": "started", "facts": {"a": 1}}\n')
    with pytest.raises(FileCheckError, match=r"j.jsonl:2: facts.a: expected a string"):
        read_journal(str(p))
