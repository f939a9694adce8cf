"""sync.sh, verify.sh and checkpoint_sync.sh against the moto server's S3, with s5cmd and
with the aws CLI (each forced through PATH)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from test_dataplane_support import BashTransport, s3_client, s3_env, tool_path

from planner.dataplane import steps

BUCKET = "h7-datasets"
IID = "i-0sync"
OBJECTS = {
    "train/a.bin": b"a" * 1000,
    "train/b.bin": b"b" * 2000,
    "val/c with space.txt": b"hello",
    "labels.csv": b"x,y\n1,2\n",
}


def _put(s3, objects: dict[str, bytes], prefix: str = "imagenet/") -> None:  # type: ignore[no-untyped-def]
    for k, v in objects.items():
        s3.put_object(Bucket=BUCKET, Key=prefix + k, Body=v)


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def s3(moto_endpoint: str):  # type: ignore[no-untyped-def]
    c = s3_client(moto_endpoint)
    c.create_bucket(Bucket=BUCKET)
    return c


@pytest.mark.parametrize("tool", ["s5cmd", "aws"])
def test_sync_copies_only_what_changed(tool: str, s3, moto_endpoint: str,  # type: ignore[no-untyped-def]
                                       tmp_path: Path) -> None:
    _put(s3, OBJECTS)
    t = BashTransport(tmp_path / "sandbox",
                      {**s3_env(moto_endpoint), "PATH": tool_path(tmp_path, tool)})
    dest = t.sandbox(IID) / "data" / "imagenet"

    def sync(objects: dict[str, bytes]):  # type: ignore[no-untyped-def]
        r = steps.sync_dataset(t, IID, uri=f"s3://{BUCKET}/imagenet/", path="/data/imagenet",
                               expect_objects=len(objects),
                               expect_bytes=sum(map(len, objects.values())))
        assert r.ok, r.output
        assert r.data["tool"] == tool
        return r

    r = sync(OBJECTS)
    assert r.data["copied"] == len(OBJECTS)
    # tool chatter stays off stdout (SSM keeps only its first 24,000 characters)
    stdout = r.output.split("\n--- stderr ---\n")[0]
    assert [ln for ln in stdout.splitlines() if ln.strip()] == [stdout.strip()]
    assert r.data["objects"] == len(OBJECTS)
    assert r.data["bytes"] == sum(map(len, OBJECTS.values()))
    assert _files(dest) == OBJECTS

    r = sync(OBJECTS)
    assert r.data["copied"] == 0

    changed = {**OBJECTS, "train/a.bin": b"A" * 1500}
    _put(s3, {"train/a.bin": changed["train/a.bin"]})
    r = sync(changed)
    assert r.data["copied"] == 1
    assert _files(dest) == changed

    (dest / "val" / "c with space.txt").unlink()
    r = sync(changed)
    assert r.data["copied"] == 1
    assert _files(dest) == changed

    # a file of the user's on the instance is never deleted
    (dest / "notes.txt").write_text("mine")
    r = sync(changed)
    assert r.data["copied"] == 0 and r.data["extra_objects"] == 1
    assert (dest / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize(("tool", "first", "then"), [
    ("s5cmd", "cp", "sync"), ("aws", "s3 cp --recursive", "s3 sync")])
def test_sync_into_an_empty_folder_copies_without_comparing(
        tool: str, first: str, then: str, s3, moto_endpoint: str,  # type: ignore[no-untyped-def]
        tmp_path: Path) -> None:
    """An empty destination has nothing to compare: `cp` (s5cmd's sync takes 1.8x as long
    there, docs/benchmarks.md B6); a folder holding files is synced (only what changed)."""
    _put(s3, OBJECTS)
    calls = tmp_path / "calls.log"
    wrap = tmp_path / "wrap"
    wrap.mkdir()
    real = Path(tool_path(tmp_path, tool).split(":")[0]) / tool
    (wrap / tool).write_text(f'#!/bin/sh\necho "$*" >> {calls}\nexec {real} "$@"\n')
    (wrap / tool).chmod(0o755)
    t = BashTransport(tmp_path / "sandbox", {**s3_env(moto_endpoint),
                                             "PATH": f"{wrap}:{tool_path(tmp_path, tool)}"})
    for _ in range(2):
        r = steps.sync_dataset(t, IID, uri=f"s3://{BUCKET}/imagenet/", path="/data/imagenet",
                               expect_objects=len(OBJECTS), expect_bytes=None)
        assert r.ok, r.output
    assert r.data["copied"] == 0
    used = [c for c in calls.read_text().splitlines()      # the key checks list first
            if " ls " not in f" {c} " and " list-objects-v2 " not in f" {c} "]
    assert len(used) == 2
    assert f" {first} " in f" {used[0]} " and f" {then} " not in f" {used[0]} "
    assert f" {then} " in f" {used[1]} "
    assert _files(t.sandbox(IID) / "data" / "imagenet") == OBJECTS


def test_sync_fails_when_files_are_missing(s3, moto_endpoint: str,  # type: ignore[no-untyped-def]
                                           tmp_path: Path) -> None:
    _put(s3, OBJECTS)
    t = BashTransport(tmp_path / "sandbox",
                      {**s3_env(moto_endpoint), "PATH": tool_path(tmp_path, "s5cmd")})
    r = steps.sync_dataset(t, IID, uri=f"s3://{BUCKET}/imagenet/", path="/data/imagenet",
                           expect_objects=len(OBJECTS) + 1, expect_bytes=0)
    assert r.state == "failed"
    assert "files after the sync" in r.data["error"]
    r = steps.sync_dataset(t, IID, uri=f"s3://{BUCKET}/imagenet/", path="/data/imagenet",
                           expect_objects=0, expect_bytes=10**9)
    assert r.state == "failed" and "bytes" in r.data["error"]


def test_sync_errors_are_failed_with_the_tool_output(moto_endpoint: str,
                                                     tmp_path: Path) -> None:
    t = BashTransport(tmp_path / "sandbox",
                      {**s3_env(moto_endpoint), "PATH": tool_path(tmp_path, "aws")})
    r = steps.sync_dataset(t, IID, uri="s3://no-such-bucket-h7/x/", path="/data/x",
                           expect_objects=1, expect_bytes=1)
    assert r.state == "failed"
    assert "NoSuchBucket" in r.data["detail"]


def test_no_sync_tool_is_a_clear_failure(tmp_path: Path) -> None:
    t = BashTransport(tmp_path / "sandbox", {"PATH": tool_path(tmp_path)})
    r = steps.sync_dataset(t, IID, uri="s3://b/x/", path="/data/x", expect_objects=1,
                           expect_bytes=1)
    assert r.state == "failed" and "neither s5cmd nor the aws CLI" in r.data["error"]


def test_verify_existing_ebs(tmp_path: Path) -> None:
    t = BashTransport(tmp_path / "sandbox")
    r = steps.verify_dataset(t, IID, path="/data/set")
    assert r.state == "failed" and "does not exist" in r.data["error"]
    d = t.sandbox(IID) / "data" / "set"
    (d / "lost+found").mkdir(parents=True)
    r = steps.verify_dataset(t, IID, path="/data/set")
    assert r.state == "failed" and "empty" in r.data["error"]
    (d / "part-0").write_bytes(b"x" * 10)
    r = steps.verify_dataset(t, IID, path="/data/set")
    assert r.ok and r.data["objects"] == 1 and r.data["bytes"] == 10


@pytest.mark.parametrize("tool", ["s5cmd", "aws"])
def test_checkpoint_sync(tool: str, s3, moto_endpoint: str,  # type: ignore[no-untyped-def]
                         tmp_path: Path) -> None:
    t = BashTransport(tmp_path / "sandbox",
                      {**s3_env(moto_endpoint), "PATH": tool_path(tmp_path, tool)})
    uri = f"s3://{BUCKET}/ckpt/run-7/"
    r = steps.sync_checkpoints(t, IID, path="/scratch/checkpoints", sync_to=uri)
    assert r.ok and r.data["present"] is False and r.data["copied"] == 0

    ck = t.sandbox(IID) / "scratch" / "checkpoints"
    (ck / "step-100").mkdir(parents=True)
    (ck / "step-100" / "model.pt").write_bytes(b"w" * 4096)
    (ck / "latest").write_text("step-100")
    (ck / ".trainctl-spot-notice").write_text("{}")
    # written a minute ago: both tools re-send a file modified in the second of its upload
    # (S3 times have whole seconds), which is harmless but would make the count vary
    past = time.time() - 60
    for f in ck.rglob("*"):
        os.utime(f, (past, past))
    r = steps.sync_checkpoints(t, IID, path="/scratch/checkpoints", sync_to=uri)
    assert r.ok, r.output
    assert r.data["copied"] == 2 and r.data["objects"] == 2 and r.data["bytes"] == 4096 + 8
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="ckpt/")["Contents"]}
    assert keys == {"ckpt/run-7/step-100/model.pt", "ckpt/run-7/latest"}
    r = steps.sync_checkpoints(t, IID, path="/scratch/checkpoints", sync_to=uri)
    assert r.ok and r.data["copied"] == 0


@pytest.mark.parametrize("what", ["file", "dangling link"])
def test_checkpoint_sync_calls_a_non_directory_an_error_not_absent(
        what: str, moto_endpoint: str, tmp_path: Path) -> None:
    """`present: false` means nothing at all is at the path (the engine then journals
    "nothing to sync"); anything else there is a failed sync, never "nothing to sync"."""
    t = BashTransport(tmp_path / "sandbox", s3_env(moto_endpoint))
    ck = t.sandbox(IID) / "scratch" / "checkpoints"
    ck.parent.mkdir(parents=True)
    if what == "file":
        ck.write_bytes(b"not a folder")
    else:
        ck.symlink_to(tmp_path / "gone")
    r = steps.sync_checkpoints(t, IID, path="/scratch/checkpoints",
                               sync_to=f"s3://{BUCKET}/ckpt/")
    assert r.state == "failed" and "not a directory" in r.data["error"], r.output
    assert steps.checkpoint_outcome(r) == "unknown"
    ck.unlink()
    r = steps.sync_checkpoints(t, IID, path="/scratch/checkpoints",
                               sync_to=f"s3://{BUCKET}/ckpt/")
    assert r.ok and r.data["present"] is False
    assert steps.checkpoint_outcome(r) == "absent"
