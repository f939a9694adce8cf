"""A stack a crash left locked or with pending operations: found, explained, and the
Pulumi lock removed by `trainctl lock release` once trainctl's lock shows its holder is
gone. The file backend folder is laid out as the CLI lays it (pkg/backend/diy)."""

from __future__ import annotations

import gzip
import json
import os
import socket
import subprocess
from pathlib import Path

from conftest import run_cli

from planner.engines.pulumi.backend import workspace_settings
from planner.engines.pulumi.recovery import (
    explain,
    find_trouble,
    local_troubles,
    pending_of,
    remove_dead_locks,
    stack_locks,
)
from planner.lock import LockInfo

URN = "urn:pulumi:demo::trainctl-storage::aws:ebs/volume:Volume::"


def dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def lay_lock(backend: Path, project: str, stack: str, pid: int,
             host: str | None = None, name: str = "5b1f0e0a-lock") -> Path:
    folder = backend / ".pulumi" / "locks" / "organization" / project / stack
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(json.dumps({"pid": pid, "username": "root",
                                "hostname": host or socket.gethostname(),
                                "timestamp": "2026-12-02T00:10:00.123456789Z"}))
    return path


def lay_checkpoint(backend: Path, project: str, stack: str, pending: list[tuple[str, str]],
                   gz: bool = False) -> Path:
    (backend / ".pulumi").mkdir(parents=True, exist_ok=True)
    (backend / ".pulumi" / "meta.yaml").write_text("version: 1\n")
    folder = backend / ".pulumi" / "stacks" / project
    folder.mkdir(parents=True, exist_ok=True)
    doc = {"version": 3, "checkpoint": {
        "stack": f"organization/{project}/{stack}",
        "latest": {"manifest": {"time": "2026-12-02T00:10:00Z", "magic": "x",
                                "version": "v3.200.0"},
                   "resources": [],
                   "pending_operations": [{"resource": {"urn": URN + addr,
                                                        "type": "aws:ebs/volume:Volume"},
                                           "type": kind} for kind, addr in pending]}}}
    raw = json.dumps(doc).encode()
    path = folder / (f"{stack}.json.gz" if gz else f"{stack}.json")
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


def settings(state_dir: Path, program: str = "storage", project: str = "demo"):
    return workspace_settings(program, project, str(state_dir), None, "us-east-1", {})


def test_a_clean_stack_has_no_trouble(tmp_path):
    ws = settings(tmp_path)
    lay_checkpoint(tmp_path / "pulumi", "trainctl-storage", "demo", [])
    assert not find_trouble(ws).found


def test_a_lock_left_by_a_killed_cli_is_found_and_explained(tmp_path):
    ws = settings(tmp_path)
    lay_lock(tmp_path / "pulumi", "trainctl-storage", "demo", dead_pid())
    trouble = find_trouble(ws)
    assert trouble.found and len(trouble.locks) == 1 and trouble.pending == ()
    assert trouble.locks[0].holder_gone()
    text = explain(trouble, ws.backend_url)
    assert "organization/trainctl-storage/demo is locked" in text
    assert "pulumi cancel --yes --stack organization/trainctl-storage/demo" in text
    assert "trainctl lock release" in text
    assert f"PULUMI_BACKEND_URL={ws.backend_url}" in text


def test_pending_operations_are_found_and_explained(tmp_path):
    ws = settings(tmp_path)
    lay_checkpoint(tmp_path / "pulumi", "trainctl-storage", "demo",
                   [("creating", "volume.scratch"), ("deleting", "volume.old")])
    trouble = find_trouble(ws)
    assert [(p.type, p.address) for p in trouble.pending] == [
        ("creating", "volume.scratch"), ("deleting", "volume.old")]
    text = explain(trouble, ws.backend_url)
    assert "2 pending operations from" in text
    assert "creating volume.scratch" in text and "deleting volume.old" in text
    assert "pulumi stack export --stack organization/trainctl-storage/demo" in text
    assert "pulumi stack import" in text and "--clear-pending-creates" in text


def test_a_gzipped_checkpoint_is_read(tmp_path):
    lay_checkpoint(tmp_path / "pulumi", "trainctl-storage", "demo",
                   [("updating", "volume.a")], gz=True)
    assert [p.address for p in find_trouble(settings(tmp_path)).pending] == ["volume.a"]


def test_pending_of_a_stack_export_and_of_its_deployment():
    export = {"version": 3, "deployment": {"pending_operations": [
        {"resource": {"urn": URN + "volume.x"}, "type": "creating"}]}}
    assert [p.address for p in pending_of(export)] == ["volume.x"]
    assert [p.type for p in pending_of(export["deployment"])] == ["creating"]
    assert pending_of({"version": 3, "deployment": {}}) == []


def test_an_unreadable_lock_is_a_lock_that_is_never_removed(tmp_path):
    path = lay_lock(tmp_path / "pulumi", "trainctl-storage", "demo", 1)
    path.write_text("{not json")
    trouble = find_trouble(settings(tmp_path))
    [lock] = trouble.locks
    assert not lock.readable and "unreadable" in lock.describe()
    assert remove_dead_locks([trouble]) == [] and path.exists()


def test_only_dead_holders_on_this_host_lose_their_lock(tmp_path):
    backend = tmp_path / "pulumi"
    dead = lay_lock(backend, "trainctl-storage", "demo", dead_pid(), name="a")
    alive = lay_lock(backend, "trainctl-storage", "demo", os.getpid(), name="b")
    foreign = lay_lock(backend, "trainctl-storage", "demo", dead_pid(),
                       host="another-host.example", name="c")
    removed = remove_dead_locks(local_troubles(str(backend)))
    assert removed == [str(dead)]
    assert not dead.exists() and alive.exists() and foreign.exists()


def test_local_troubles_cover_both_programs_and_keep_to_the_project(tmp_path):
    backend = tmp_path / "pulumi"
    lay_lock(backend, "trainctl-storage", "demo", dead_pid())
    lay_checkpoint(backend, "trainctl-compute", "demo", [("creating", "instance.t")])
    lay_lock(backend, "trainctl-compute", "other", dead_pid())
    found = {t.stack for t in local_troubles(str(backend), "demo")}
    assert found == {"organization/trainctl-storage/demo",
                     "organization/trainctl-compute/demo"}
    assert len(local_troubles(str(backend))) == 3
    assert stack_locks(str(backend), "trainctl-storage", "nothing") == []


SPEC = ("version: 1\nproject: demo\nregion: us-east-1\n"
        "defaults: {availability_zone: us-east-1a}\n")


def _trainctl_lock(state: Path, pid: int) -> LockInfo:
    info = LockInfo.new("apply")
    info = LockInfo(info.id, info.holder, info.host, pid, info.time, info.operation)
    state.mkdir(parents=True, exist_ok=True)
    (state / "lock").write_bytes(info.to_bytes())
    return info


def test_lock_release_removes_the_pulumi_lock_once_the_holder_is_gone(tmp_path):
    (tmp_path / "trainctl.yaml").write_text(SPEC)
    state = tmp_path / ".trainctl"
    info = _trainctl_lock(state, dead_pid())
    left = lay_lock(state / "pulumi", "trainctl-storage", "demo", dead_pid())
    r = run_cli("lock", "status", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "organization/trainctl-storage/demo is locked" in r.stdout
    r = run_cli("lock", "release", info.id, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert not (state / "lock").exists() and not left.exists()
    assert f"removed the Pulumi lock {left}" in r.stdout


def test_lock_release_keeps_the_pulumi_lock_of_a_live_holder(tmp_path):
    (tmp_path / "trainctl.yaml").write_text(SPEC)
    state = tmp_path / ".trainctl"
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        info = _trainctl_lock(state, sleeper.pid)
        left = lay_lock(state / "pulumi", "trainctl-compute", "demo", dead_pid())
        r = run_cli("lock", "release", info.id, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        # trainctl's holder runs: the Pulumi lock stays, explained
        assert left.exists()
        assert "organization/trainctl-compute/demo is locked" in r.stdout
    finally:
        sleeper.kill()
        sleeper.wait()


def test_lock_release_with_a_wrong_id_touches_no_pulumi_lock(tmp_path):
    (tmp_path / "trainctl.yaml").write_text(SPEC)
    state = tmp_path / ".trainctl"
    _trainctl_lock(state, dead_pid())
    left = lay_lock(state / "pulumi", "trainctl-storage", "demo", dead_pid())
    r = run_cli("lock", "release", "deadbeef", cwd=tmp_path)
    assert r.returncode == 1 and left.exists()


# --- under the `state:` S3 prefix (moto server) -----------------------------------------

S3_SPEC = ("version: 1\nproject: demo\nregion: us-east-1\nstate: s3://team-state/demo/\n"
           "defaults: {availability_zone: us-east-1a}\n")
S3_LOCKS = "demo/pulumi/.pulumi/locks/organization/trainctl-storage/demo/"


def _s3(endpoint: str):
    from planner.aws.session import connect

    client = connect("us-east-1", endpoint).s3
    client.create_bucket(Bucket="team-state")
    return client


def _s3_lock(s3, pid: int, name: str, host: str | None = None) -> str:
    key = f"{S3_LOCKS}{name}.json"
    s3.put_object(Bucket="team-state", Key=key, Body=json.dumps(
        {"pid": pid, "username": "root", "hostname": host or socket.gethostname(),
         "timestamp": "2026-12-02T00:10:00Z"}).encode())
    return key


def _s3_keys(s3) -> set[str]:
    return {o["Key"] for o in s3.list_objects_v2(Bucket="team-state").get("Contents", ())}


def test_s3_backend_locks_and_pending_operations_are_found(moto_endpoint):
    from planner.engines.pulumi.recovery import s3_troubles

    s3 = _s3(moto_endpoint)
    _s3_lock(s3, dead_pid(), "a")
    s3.put_object(Bucket="team-state",
                  Key="demo/pulumi/.pulumi/stacks/trainctl-compute/demo.json",
                  Body=json.dumps({"version": 3, "checkpoint": {"latest": {
                      "pending_operations": [{"resource": {"urn": URN + "instance.t"},
                                              "type": "creating"}]}}}).encode())
    found = {t.stack: t for t in s3_troubles(s3, "s3://team-state/demo/", "demo")}
    assert set(found) == {"organization/trainctl-storage/demo",
                          "organization/trainctl-compute/demo"}
    [lock] = found["organization/trainctl-storage/demo"].locks
    assert lock.path == f"s3://team-state/{S3_LOCKS}a.json" and lock.holder_gone()
    assert [p.address for p in found["organization/trainctl-compute/demo"].pending] == \
        ["instance.t"]


def test_lock_release_removes_a_dead_pulumi_lock_under_the_s3_state(tmp_path, moto_endpoint):
    s3 = _s3(moto_endpoint)
    (tmp_path / "trainctl.yaml").write_text(S3_SPEC)
    info = LockInfo.new("apply")
    info = LockInfo(info.id, info.holder, info.host, dead_pid(), info.time, info.operation)
    s3.put_object(Bucket="team-state", Key="demo/lock", Body=info.to_bytes())
    dead = _s3_lock(s3, dead_pid(), "dead")
    foreign = _s3_lock(s3, dead_pid(), "foreign", host="another-host.example")
    r = run_cli("--endpoint-url", moto_endpoint, "lock", "status", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "organization/trainctl-storage/demo is locked" in r.stdout
    r = run_cli("--endpoint-url", moto_endpoint, "lock", "release", info.id, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    keys = _s3_keys(s3)
    assert "demo/lock" not in keys and dead not in keys and foreign in keys
    assert f"removed the Pulumi lock s3://team-state/{dead}" in r.stdout
