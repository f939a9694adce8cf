"""sync.sh refuses a dataset whose S3 listing holds a key that is not a safe relative path,
on the instance and before copying anything, with s5cmd and with the aws CLI (real tools,
forced through PATH, against the moto server's S3). Defence in depth: the plan refuses
such a dataset too (`unsafe-key`), but the instance may list a newer state."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from test_dataplane_support import BashTransport, s3_client, s3_env, tool_path

from planner.dataplane import steps
from planner.dataplane.scripts import sync_script
from planner.keys import unsafe_reason
from planner.manifest import RECORD_NAME

BUCKET = "keys-bucket"
IID = "i-0keys"
PREFIX = "imagenet/"
GOOD = {"train/a.bin": b"a" * 10, "labels.csv": b"x,y\n"}
UNSAFE = [
    "../escape.txt",
    "a/../../escape.txt",
    "../../../../../../tmp/trainctl-escape.txt",
    "/abs.txt",                # the key imagenet//abs.txt
    "a//b.txt",
    "./dot.txt",
    "a/./b.txt",
    "back\\slash.txt",
    "ctl\x01x.txt",
    "del\x7fx.txt",
    "nul\x00x.txt",
    "x/../",                   # a folder marker
    "..",
]
ODD_BUT_SAFE = {"sp ace&<>.txt": b"1", "unié/ü.bin": b"2", "..x": b"3", "x../y": b"4",
                ".hidden": b"5", 'quo"te.txt': b"6"}


@pytest.fixture
def s3(moto_endpoint: str):  # type: ignore[no-untyped-def]
    c = s3_client(moto_endpoint)
    c.create_bucket(Bucket=BUCKET)
    return c


def files_under(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def sync(t: BashTransport, objects: int):  # type: ignore[no-untyped-def]
    return steps.sync_dataset(t, IID, uri=f"s3://{BUCKET}/{PREFIX}", path="/data/imagenet",
                              expect_objects=objects, expect_bytes=0)


def test_every_unsafe_key_here_is_unsafe_in_the_plan_too() -> None:
    assert all(unsafe_reason(k) for k in UNSAFE)
    assert not any(unsafe_reason(k) for k in ODD_BUT_SAFE)


@pytest.mark.parametrize("tool", ["s5cmd", "aws"])
@pytest.mark.parametrize("key", UNSAFE)
def test_an_unsafe_key_refuses_the_sync_and_nothing_is_written(
        tool: str, key: str, s3, moto_endpoint: str,  # type: ignore[no-untyped-def]
        tmp_path: Path) -> None:
    for k, body in GOOD.items():
        s3.put_object(Bucket=BUCKET, Key=PREFIX + k, Body=body)
    s3.put_object(Bucket=BUCKET, Key=PREFIX + key, Body=b"evil")
    world = tmp_path / "world"              # the sandbox and the scripts' TMPDIR
    (world / "tmp").mkdir(parents=True)
    box = world / "sandbox"
    t = BashTransport(box, {**s3_env(moto_endpoint), "PATH": tool_path(tmp_path, tool),
                            "TMPDIR": str(world / "tmp")})
    dest = box / IID / "data" / "imagenet"
    r = sync(t, len(GOOD) + 1)
    error = r.data["error"]
    assert "nothing was copied" in error, r.output
    if tool == "s5cmd" and re.search(r"[\x00-\x1f]", key):
        # s5cmd cannot even list a key with a control character (its XML parser refuses
        # moto's answer): then the failed listing is the refusal
        assert r.state == "failed" and "listing" in error, r.output
    else:
        assert r.state == "refused", r.output
        assert "1 key under " in error and "is not a safe relative path" in error, r.output
    assert files_under(world) == set(), files_under(world)           # nothing at all
    assert not dest.exists()
    escaped = Path(os.path.normpath(dest / key.replace("\x00", "")))
    assert not escaped.is_file(), escaped


@pytest.mark.parametrize("tool", ["s5cmd", "aws"])
def test_the_refusal_names_the_keys(tool: str, s3, moto_endpoint: str,  # type: ignore[no-untyped-def]
                                    tmp_path: Path) -> None:
    for k in ("../up.txt", "a//b.txt", "back\\slash.txt", "ok.txt"):
        s3.put_object(Bucket=BUCKET, Key=PREFIX + k, Body=b"x")
    t = BashTransport(tmp_path / "sandbox",
                      {**s3_env(moto_endpoint), "PATH": tool_path(tmp_path, tool)})
    r = sync(t, 4)
    error = r.data["error"]
    assert r.state == "refused" and error.startswith(
        "3 keys under s3://keys-bucket/imagenet/ are not safe relative paths")
    assert "imagenet/../up.txt" in error and "(a .. segment)" in error
    assert "imagenet/a//b.txt" in error and "(an empty segment)" in error
    assert "back\\\\slash.txt" in error and "(a backslash)" in error       # as JSON shows it
    assert "ok.txt" not in error
    assert r.data["detail"].count("\n") == 2


@pytest.mark.parametrize("tool", ["s5cmd", "aws"])
def test_odd_but_safe_keys_sync_and_the_stage_record_stays_in_s3(
        tool: str, s3, moto_endpoint: str,  # type: ignore[no-untyped-def]
        tmp_path: Path) -> None:
    objects = {**GOOD, **ODD_BUT_SAFE}
    for k, body in objects.items():
        s3.put_object(Bucket=BUCKET, Key=PREFIX + k, Body=body)
    s3.put_object(Bucket=BUCKET, Key=PREFIX + RECORD_NAME, Body=b"{}")
    s3.put_object(Bucket=BUCKET, Key=PREFIX + "sub/" + RECORD_NAME, Body=b"data")
    objects["sub/" + RECORD_NAME] = b"data"      # only the top-level one is trainctl's
    box = tmp_path / "sandbox"
    t = BashTransport(box, {**s3_env(moto_endpoint), "PATH": tool_path(tmp_path, tool)})
    dest = box / IID / "data" / "imagenet"
    for _ in range(2):              # into an empty folder (cp), then into a full one (sync)
        r = sync(t, len(objects))
        assert r.ok, r.output
        assert r.data["keys_checked"] == len(objects) + 1 and r.data["extra_objects"] == 0
        assert files_under(dest) == set(objects)
        assert files_under(box) == {f"{IID}/data/imagenet/{k}" for k in objects}
    s3.put_object(Bucket=BUCKET, Key=PREFIX + "later.txt", Body=b"new")
    r = sync(t, len(objects) + 1)
    assert r.ok and r.data["copied"] == 1, r.output
    assert files_under(dest) == {*objects, "later.txt"}


@pytest.mark.parametrize("tool", ["s5cmd", "aws"])
def test_an_empty_prefix_is_checked_and_synced_as_before(
        tool: str, s3, moto_endpoint: str,  # type: ignore[no-untyped-def]
        tmp_path: Path) -> None:
    s3.put_object(Bucket=BUCKET, Key="elsewhere/../x", Body=b"x")   # not below the prefix
    t = BashTransport(tmp_path / "sandbox",
                      {**s3_env(moto_endpoint), "PATH": tool_path(tmp_path, tool)})
    r = t.run(IID, sync_script(uri=f"s3://{BUCKET}/{PREFIX}", path="/data/imagenet",
                               expect_objects=0, expect_bytes=0), timeout=60)
    assert "not safe" not in r.output
    if r.ok:
        assert r.data["keys_checked"] == 0


def test_a_listing_it_cannot_read_refuses(s3, moto_endpoint: str,  # type: ignore[no-untyped-def]
                                          tmp_path: Path) -> None:
    """A tool whose output changed shape is not read as "no unsafe key"."""
    fake = tmp_path / "fakebin"
    fake.mkdir()
    (fake / "s5cmd").write_text("#!/bin/sh\necho 'not json'\n")
    (fake / "s5cmd").chmod(0o755)
    t = BashTransport(tmp_path / "sandbox",
                      {**s3_env(moto_endpoint),
                       "PATH": f"{fake}:{tool_path(tmp_path)}"})
    r = sync(t, 1)
    assert r.state == "failed" and "could not be read" in r.data["error"], r.output
