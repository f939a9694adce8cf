"""Pure parts of stage ownership and key safety: planner.keys, planner.stage, and what the
diff makes of them (delete counts in the plan, warnings, `unsafe-key` blocks)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from diffworld import DIGEST_A, DIGEST_B, frozen, inst, live, make_spec, manifest, plan_of, vol

from planner.errors import TrainctlError
from planner.live import DatasetManifest, StageState, live_from_json, live_to_json
from planner.manifest import manifest_from_entries
from planner.plan import Action, Rule, plan_from_json, plan_to_json
from planner.render.markdown import render_markdown
from planner.render.text import render_text
from planner.spec import Dataset, Mount
from planner.stage import (
    StageRecord,
    final_record,
    pending_record,
    record_from_bytes,
    record_to_bytes,
    relation,
    stage_work,
)

UNSAFE = {
    "../x": "'..'", "a/../../x": "'..'", "a/..": "'..'", "/abs": "leading",
    "a//b": "empty", "a/": None, "a//": "empty", "./x": "'.'", "a/./b": "'.'",
    "a\\b": "backslash", "nul\x00x": "NUL", "tab\tx": "control", "del\x7fx": "control",
    "nl\nx": "control", "..": "'..'", ".": "'.'",
}
SAFE = ["x", "a/b/c.bin", "..x", "x..", ".hidden", "a/.b/..c", "sp ace&<>.txt", "unié",
        "a...b", "", "a/b/"]


@pytest.mark.parametrize("key", sorted(UNSAFE))
def test_unsafe_keys_are_named_with_their_reason(key: str) -> None:
    from planner.keys import unsafe_reason

    want = UNSAFE[key]
    got = unsafe_reason(key)
    if want is None:
        assert got is None
    else:
        assert got is not None and want in got, (key, got)


@pytest.mark.parametrize("key", SAFE)
def test_safe_keys_pass(key: str) -> None:
    from planner.keys import unsafe_reason

    assert unsafe_reason(key) is None


def test_a_manifest_counts_unsafe_keys_and_markers() -> None:
    m = manifest_from_entries("s3://b/p/", [("ok", 1, "e"), ("../up", 1, "e"),
                                            ("a//b", 2, "e")], 1, markers=["x/../"])
    assert (m.objects, m.unsafe_objects) == (3, 3)
    assert m.unsafe_keys == ("../up", "a//b", "x/../")
    back = live_from_json(live_to_json(live(datasets={"d": m})))
    assert back.datasets["d"] == m


# --- stage work ---------------------------------------------------------------------------


def test_stage_work_deletes_only_what_the_record_holds() -> None:
    local = [("keep.bin", 10, "k"), ("new.bin", 5, "n"), ("changed.bin", 7, "c2")]
    stage = [("keep.bin", 10, '"k"'), ("changed.bin", 6, "c1"), ("stale.bin", 3, "s"),
             ("other-team/model.bin", 100, "o"), ("rewritten.bin", 4, "theirs")]
    record = StageRecord("demo", "d", {"keep.bin": (10, "k"), "changed.bin": (6, "c1"),
                                       "stale.bin": (3, "s"), "rewritten.bin": (4, "ours")})
    w = stage_work(local, stage, record, "demo")
    assert [k for k, _, _ in w.upload] == ["changed.bin", "new.bin"]
    assert w.replace == (("changed.bin", 6, "c1"),) and w.replace_foreign == 0
    assert w.delete == (("stale.bin", 3, "s"),)
    assert sorted(k for k, _, _ in w.kept) == ["other-team/model.bin", "rewritten.bin"]
    s = w.state()
    assert (s.delete_objects, s.delete_bytes, s.kept_objects, s.kept_bytes) == (1, 3, 2, 104)
    assert (s.upload_objects, s.upload_bytes) == (2, 12)
    # a record of another project owns nothing; no record owns nothing
    for rec in (None, replace(record, project="other")):
        w = stage_work(local, stage, rec, "demo")
        assert w.delete == () and len(w.kept) == 3 and w.replace_foreign == 1


def test_records_round_trip_and_bad_ones_are_refused() -> None:
    r = StageRecord("demo", "d", {"a": (1, "e"), "b/c": (2, "f-2")})
    assert record_from_bytes(record_to_bytes(r)) == r
    for bad in (b"{", b"[]", b'{"kind": "x"}', record_to_bytes(r).replace(b'"1"', b'"9"'),
                b'{"kind":"trainctl-stage-record","format":"1","project":"p","dataset":"d",'
                b'"objects":{"a":[-1,"e"]}}'):
        with pytest.raises(ValueError):
            record_from_bytes(bad)


def test_pending_and_final_records() -> None:
    w = stage_work([("a", 1, "x"), ("b", 2, "y")], [("a", 1, "x"), ("gone", 3, "g")],
                   StageRecord("p", "d", {"a": (1, "x"), "gone": (3, "g")}), "p")
    assert dict(pending_record(w, "p", "d").objects) == {
        "a": (1, "x"), "gone": (3, "g"), "b": (2, "y")}
    final = final_record([("a", 1, "x"), ("b", 2, "y")],
                         [("a", 1, '"x"'), ("b", 2, "y"), ("theirs", 1, "t")], "p", "d")
    assert dict(final.objects) == {"a": (1, "x"), "b": (2, "y")}


@pytest.mark.parametrize(("a", "b", "want"), [
    ("s3://b/a", "s3://b/a/", "equals"),
    ("s3://b/a/", "s3://b/", "lies inside"),
    ("s3://b/", "s3://b/a/x/", "contains"),
    ("s3://b/a/x", "s3://b/a", "lies inside"),
    ("s3://b/ab/", "s3://b/a/", None),
    ("s3://b/a/", "s3://b/ab", None),
    ("s3://b/a/", "s3://c/a/", None),
    ("s3://bb/a/", "s3://b/a/", None),
])
def test_prefix_relations(a: str, b: str, want: str | None) -> None:
    assert relation(a, b) == want


# --- the diff -----------------------------------------------------------------------------


STAGE = "s3://stage/imagenet/"


def local_world():  # type: ignore[no-untyped-def]
    ds = Dataset("imagenet", "./data/imagenet", "local-cache", stage=STAGE,
                 path="/scratch/imagenet")
    return make_spec([vol("scratch", 200)],
                     [inst(mounts=(Mount("scratch", "/dev/sdg", "/scratch"),),
                           datasets=("imagenet",))], [ds])


def state_with(stage_state: StageState | None, *, local_digest: str = DIGEST_A,
               stage_digest: str = DIGEST_B, local_m: DatasetManifest | None = None,
               stage_m: DatasetManifest | None = None):  # type: ignore[no-untyped-def]
    datasets = {"imagenet:local": local_m or manifest("file:///x/imagenet", local_digest),
                "imagenet": stage_m or manifest(STAGE, stage_digest)}
    s = live(datasets=datasets)
    return replace(s, stages=frozen({"imagenet": stage_state} if stage_state else {}))


STALE = StageState(delete_objects=2, delete_bytes=3000, delete_examples=("old/a", "old/b"),
                   kept_objects=1, kept_bytes=7, kept_examples=("other-team/m.bin",),
                   owner="llm")


def test_stale_objects_are_counted_in_the_plan_in_json_text_and_markdown() -> None:
    plan = plan_of(local_world(), state_with(STALE))
    c = plan.change("dataset.imagenet")
    assert c.actions == (Action.UPDATE,) and not c.blocked
    assert c.after.delete_objects == 2 and c.after.delete_bytes == 3000
    assert c.after.delete_examples == ("old/a", "old/b")
    assert c.after.kept_objects == 1 and c.deleted_objects == (2, 3000)
    doc = plan_to_json(plan)
    j = next(x for x in doc["changes"] if x["address"] == "dataset.imagenet")
    assert (j["after"]["delete_objects"], j["after"]["delete_bytes"]) == (2, 3000)
    assert plan_from_json(doc).change("dataset.imagenet").deleted_objects == (2, 3000)
    text = render_text(plan, color=False)
    assert "deletes 2 objects (2.9 KiB (3,000 bytes)) under s3://stage/imagenet/" in text
    assert "S3 objects to delete: 2 (2.9 KiB (3,000 bytes))" in text
    md = render_markdown(plan)
    warning = md.split("**Warning: this plan deletes", 1)[1].split("\n\n", 1)[0]
    assert "`dataset.imagenet`" in warning and "deletes 2 objects" in warning
    assert "old/a" in warning
    w = [x for x in plan.warnings if x.rule is Rule.FOREIGN_OBJECTS]
    assert len(w) == 1 and "other-team/m.bin" in w[0].message and "kept" in w[0].message


def test_nothing_to_send_or_delete_is_a_noop_even_with_foreign_objects() -> None:
    only_foreign = StageState(kept_objects=1, kept_bytes=7, kept_examples=("x",))
    plan = plan_of(local_world(), state_with(only_foreign))
    assert plan.change("dataset.imagenet").is_noop
    assert [w.rule for w in plan.warnings] == [Rule.FOREIGN_OBJECTS]
    assert "S3 objects to delete" not in render_text(plan, color=False)


def test_an_upload_without_deletions_says_zero() -> None:
    plan = plan_of(local_world(), state_with(StageState(upload_objects=3, upload_bytes=300)))
    c = plan.change("dataset.imagenet")
    assert c.after.delete_objects == 0 and c.after.upload_objects == 3
    assert "S3 objects to delete" not in render_text(plan, color=False)


def test_a_stage_recorded_by_another_project_is_a_plan_error() -> None:
    with pytest.raises(TrainctlError, match="names trainctl project 'someone-else'"):
        plan_of(local_world(), state_with(StageState(owner="someone-else")))


def test_an_unreadable_record_is_a_warning() -> None:
    plan = plan_of(local_world(), state_with(StageState(problem="record cannot be read")))
    assert any("record cannot be read" in w.message for w in plan.warnings)


def unsafe(uri: str, *keys: str) -> DatasetManifest:
    return replace(manifest(uri, DIGEST_A), unsafe_objects=len(keys), unsafe_keys=keys)


@pytest.mark.parametrize("strategy", ["local-cache", "prewarmed-ebs"])
def test_unsafe_keys_block_every_copy_of_an_s3_dataset(strategy: str) -> None:
    if strategy == "local-cache":
        ds = Dataset("imagenet", "s3://ds/imagenet/", strategy, path="/scratch/imagenet")
        mounts = (Mount("scratch", "/dev/sdg", "/scratch"),)
        volumes = [vol("scratch", 200)]
        copy = "sync.trainer.imagenet"
    else:
        ds = Dataset("imagenet", "s3://ds/imagenet/", strategy, volume="cache", path="/")
        mounts = (Mount("cache", "/dev/sdf", "/data", read_only=True),)
        volumes = [vol("cache", 500)]
        copy = "prewarm.imagenet"
    spec = make_spec(volumes, [inst(mounts=mounts, datasets=("imagenet",))], [ds])
    plan = plan_of(spec, live(datasets={"imagenet": unsafe("s3://ds/imagenet/", "../etc/x")}))
    c = plan.change(copy)
    assert [b.rule for b in c.blocked_by] == [Rule.UNSAFE_KEY]
    assert "'../etc/x'" in c.blocked_by[0].message and "'..' segment" in c.blocked_by[0].message
    assert plan_to_json(plan)["summary"]["blocked"] >= 1
    clean = plan_of(spec, live(datasets={"imagenet": manifest("s3://ds/imagenet/", DIGEST_A)}))
    assert not clean.change(copy).blocked


def test_unsafe_keys_in_a_local_folder_block_its_upload_and_sync() -> None:
    plan = plan_of(local_world(), state_with(
        StageState(upload_objects=1, upload_bytes=1),
        local_m=unsafe("file:///x/imagenet", "a\\b")))
    assert [b.rule for b in plan.change("dataset.imagenet").blocked_by] == [Rule.UNSAFE_KEY]
    assert [b.rule for b in plan.change("sync.trainer.imagenet").blocked_by] == [
        Rule.UNSAFE_KEY]


def test_unsafe_keys_kept_in_a_stage_block_the_sync_not_the_upload() -> None:
    plan = plan_of(local_world(), state_with(
        StageState(upload_objects=1, upload_bytes=1),
        stage_m=unsafe(STAGE, "x//y")))
    assert not plan.change("dataset.imagenet").blocked
    sync = plan.change("sync.trainer.imagenet")
    assert [b.rule for b in sync.blocked_by] == [Rule.UNSAFE_KEY]
    assert "'x//y' (an empty segment)" in sync.blocked_by[0].message
