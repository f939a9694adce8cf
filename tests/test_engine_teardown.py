"""Teardown safety of the direct engine: a mount delete (unmount) and an attachment delete
(detach) on a running instance ask whether training runs first, and the checkpoints that
live on a volume are synced before that volume is unmounted; the journal never says
"synced" when nothing was. And a prewarm clears the temporary instance an interrupted
prewarm left behind.

Engine tests run against the moto server with a fake SSM transport that records which
script ran, on which instance, in which order (like tests/test_engine_direct.py), and with
the real scripts through the local runner; one test goes through the real CLI."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli
from test_engine_direct import (
    CACHE,
    PREWARM_AFTER,
    PREWARM_DS,
    SCRATCH,
    TRAINER,
    FakeSsm,
    change,
    create_instance,
    create_volume,
    instances,
    make_engine,
    make_spec,
    script_kind,
    tags_of,
)

from planner.aws.session import AwsContext
from planner.dataplane import steps
from planner.dataplane.status import ScriptResult
from planner.engines import StepFailed
from planner.engines import prewarm as prewarm_module
from planner.engines.direct import DirectEngine
from planner.live import TAG_ADDRESS, TAG_DATASET_DIGEST, TAG_MOUNTED, TAG_PROJECT
from planner.plan import Action
from planner.rules import Overrides
from planner.spec import Mount, Spec, Training, Volume

DATA = Volume(name="data", size_gib=10, availability_zone="us-east-1a")
# checkpoints at /scratch/ckpt (on volume.scratch); volume.data holds no checkpoints
HOST = replace(TRAINER, mounts=(Mount(volume="data", device="/dev/sdf", path="/data",
                                      read_only=True),
                                Mount(volume="scratch", device="/dev/sdg", path="/scratch")))
MOUNTS = {"data": ("/dev/sdf", "/data"), "scratch": ("/dev/sdg", "/scratch")}
RUNNING = ScriptResult("ok", {"running": True, "evidence": "pid 42: python train.py"})
NOT_RUNNING = ScriptResult("ok", {"running": False})
CANNOT_TELL = [
    RUNNING,
    ScriptResult("unknown", {"reason": "no output"}),
    ScriptResult("failed", {"error": "pgrep is not installed"}),
    ScriptResult("ok", {}),                     # ok without an answer: cannot tell
]


def _param(script: str, name: str) -> str:
    m = re.search(rf"^{name}=(.*)$", script, re.M)
    assert m, f"no {name} in the script"
    return shlex.split(m[1])[0]


class Box(FakeSsm):
    """A fake SSM transport that models one instance's mounts: unless `fixed` says
    otherwise, checkpoint_sync finds the checkpoint folder only while the mount holding it
    is mounted, as on a real machine. `log` keeps (kind, detail) in order: the unmounted
    path, or what was mounted when the checkpoints were synced."""

    def __init__(self) -> None:
        super().__init__()
        self.mounted: set[str] = set()
        self.fixed: set[str] = set()
        self.log: list[tuple[str, str]] = []

    def fix(self, kind: str, result: ScriptResult) -> None:
        self.answers[kind] = result
        self.fixed.add(kind)

    def run(self, instance_id: str, script: str, *, timeout: float) -> ScriptResult:
        kind = script_kind(script)
        self.calls.append((kind, instance_id))
        result = self.answers[kind]
        detail = ""
        if kind == "unmount":
            detail = _param(script, "MOUNT_PATH")
            if result.ok:
                self.mounted.discard(detail)
        elif kind == "checkpoint_sync":
            detail = ",".join(sorted(self.mounted))
            if kind not in self.fixed:
                here = any(_param(script, "CKPT_PATH").startswith(m + "/")
                           for m in self.mounted)
                result = ScriptResult("ok", {"present": True, "objects": 3, "bytes": 30,
                                             "copied": 3} if here else
                                      {"present": False, "objects": 0, "copied": 0})
        self.log.append((kind, detail))
        return result


def _built(engine: DirectEngine, aws: AwsContext) -> tuple[str, dict[str, str]]:
    """instance.trainer with volume.data and volume.scratch attached and mounted."""
    iid = create_instance(engine)
    vids = {}
    for v in ("data", "scratch"):
        vids[v] = create_volume(engine, v)
        m = next(m for m in HOST.mounts if m.volume == v)    # what the diff writes
        engine.apply(change(f"attachment.trainer.{v}", Action.CREATE, after={
            "device": m.device}), Action.CREATE)
        engine.apply(change(f"mount.trainer.{v}", Action.CREATE, after={
            "device": m.device, "path": m.path, "read_only": m.read_only,
            "filesystem": "ext4"}), Action.CREATE)
    return iid, vids


def _ids(iid: str, vids: Mapping[str, str], v: str) -> dict[str, Any]:
    device, path = MOUNTS[v]
    return {"instance": "trainer", "volume": v, "instance_id": iid, "volume_id": vids[v],
            "device": device, "path": path}


def unmount(engine: DirectEngine, iid: str, vids: Mapping[str, str], v: str) -> dict[str, str]:
    return engine.apply(change(f"mount.trainer.{v}", Action.DELETE,
                               before=_ids(iid, vids, v)), Action.DELETE)


def detach(engine: DirectEngine, iid: str, vids: Mapping[str, str], v: str) -> dict[str, str]:
    before = {k: x for k, x in _ids(iid, vids, v).items() if k != "path"}
    return engine.apply(change(f"attachment.trainer.{v}", Action.DELETE, before=before),
                        Action.DELETE)


def terminate(engine: DirectEngine, iid: str) -> dict[str, str]:
    return engine.apply(change("instance.trainer", Action.DELETE, id=iid), Action.DELETE)


def _engine(endpoint: str, ssm: Any, **kw: Any) -> tuple[DirectEngine, AwsContext]:
    return make_engine(make_spec(volumes=(DATA, SCRATCH), instances=(HOST,)), endpoint, ssm,
                       **kw)


def _setup(endpoint: str, **answers: ScriptResult) -> tuple[
        Box, DirectEngine, AwsContext, str, dict[str, str]]:
    box = Box()
    engine, aws = _engine(endpoint, box)
    iid, vids = _built(engine, aws)
    box.mounted = {"/data", "/scratch"}
    box.calls.clear()
    box.log.clear()
    for kind, result in answers.items():
        box.fix(kind, result)
    return box, engine, aws, iid, vids


STOP_TRAINER = Overrides(stop_training=frozenset({"instance.trainer"}))


def _volume(aws: AwsContext, vid: str) -> dict[str, Any]:
    return dict(aws.ec2.describe_volumes(VolumeIds=[vid])["Volumes"][0])


# --- the teardown order -----------------------------------------------------------------


def test_teardown_syncs_checkpoints_before_the_unmount_and_checks_training_once(
        moto_endpoint: str) -> None:
    """The executor's order for a destroy: unmounts, detaches, terminate. The checkpoints
    on /scratch are synced while /scratch is still mounted; the terminate then finds the
    folder gone and says where they went; one training check serves the whole teardown."""
    box, engine, aws, iid, vids = _setup(moto_endpoint)
    facts = {
        "mount.data": unmount(engine, iid, vids, "data"),
        "mount.scratch": unmount(engine, iid, vids, "scratch"),
        "attachment.data": detach(engine, iid, vids, "data"),
        "attachment.scratch": detach(engine, iid, vids, "scratch"),
        "instance": terminate(engine, iid),
    }
    assert box.log == [
        ("training_check", ""),
        ("unmount", "/data"),                       # holds no checkpoints: no sync
        ("checkpoint_sync", "/scratch"),            # /scratch still mounted
        ("unmount", "/scratch"),
        ("checkpoint_sync", ""),                    # the terminate's: nothing left there
    ]
    assert {i for _, i in box.calls} == {iid}
    assert facts["mount.data"]["training"] == "not running"
    assert "checkpoints" not in facts["mount.data"]
    assert facts["mount.scratch"]["checkpoints"] == (
        "synced /scratch/ckpt to s3://ckpt/run/ (3 files, 3 copied now)")
    assert facts["attachment.scratch"]["training"] == "not running"
    assert facts["instance"]["training"] == "not running"
    assert facts["instance"]["checkpoints"] == (
        "synced at unmount of /scratch: synced /scratch/ckpt to s3://ckpt/run/ "
        "(3 files, 3 copied now)")
    assert instances(aws, "terminated")[0]["InstanceId"] == iid


@pytest.mark.parametrize("answer", CANNOT_TELL)
def test_unmount_refused_while_training_runs_or_unknown(moto_endpoint: str,
                                                        answer: ScriptResult) -> None:
    box, engine, aws, iid, vids = _setup(moto_endpoint, training_check=answer)
    with pytest.raises(StepFailed, match=r"^training-running: ") as err:
        unmount(engine, iid, vids, "scratch")
    assert ("--stop-training instance.trainer stops the job (SIGTERM, "
            "training.grace_seconds, SIGKILL, checkpoint sync), then unmounts /scratch"
            ) in str(err.value)
    assert box.kinds() == ["training_check"]          # no sync, no unmount
    assert box.mounted == {"/data", "/scratch"}
    assert tags_of(_volume(aws, vids["scratch"]))[TAG_MOUNTED] == f"{iid}:/scratch"
    # --force does not lift it any more
    forced, _ = _engine(moto_endpoint, box, overrides=Overrides(force=True))
    with pytest.raises(StepFailed, match=r"^training-running: "):
        unmount(forced, iid, vids, "scratch")
    assert box.mounted == {"/data", "/scratch"}
    # --stop-training stops the job, then saves the checkpoints, then unmounts
    stopping, _ = _engine(moto_endpoint, box, overrides=STOP_TRAINER)
    facts = unmount(stopping, iid, vids, "scratch")
    assert facts["training"].startswith("stopped by --stop-training")
    assert box.kinds()[-4:] == ["training_check", "stop_training", "checkpoint_sync",
                                "unmount"]
    assert facts["checkpoints"].startswith("synced /scratch/ckpt to s3://ckpt/run/")
    assert TAG_MOUNTED not in tags_of(_volume(aws, vids["scratch"]))


def test_a_running_answer_is_never_reused(moto_endpoint: str) -> None:
    box, engine, _, iid, vids = _setup(moto_endpoint, training_check=RUNNING)
    with pytest.raises(StepFailed, match=r"^training-running: "):
        unmount(engine, iid, vids, "data")
    box.fix("training_check", NOT_RUNNING)           # the job ended
    unmount(engine, iid, vids, "data")
    assert box.kinds() == ["training_check", "training_check", "unmount"]
    # "not running" is reused moments later (the detach) ...
    detach(engine, iid, vids, "data")
    assert box.kinds().count("training_check") == 2
    # ... but not once it is old
    box.fix("training_check", RUNNING)
    engine.guards.training_idle_ttl = 0.0
    with pytest.raises(StepFailed, match=r"^training-running: .*then detaches"):
        detach(engine, iid, vids, "scratch")
    assert box.kinds().count("training_check") == 3


def test_checkpoint_sync_failure_at_unmount_refuses_the_unmount(moto_endpoint: str) -> None:
    failed = ScriptResult("failed", {"error": "AccessDenied"})
    box, engine, _, iid, vids = _setup(moto_endpoint, checkpoint_sync=failed)
    with pytest.raises(StepFailed, match=r"^checkpoint-sync: .*AccessDenied.*nothing "
                                         r"unmounts /scratch until they are"):
        unmount(engine, iid, vids, "scratch")
    assert box.kinds() == ["training_check", "checkpoint_sync"]
    assert "/scratch" in box.mounted
    # an "ok" that does not say what it synced is no success either
    box.fix("checkpoint_sync", ScriptResult("ok", {}))
    with pytest.raises(StepFailed, match=r"^checkpoint-sync: .*did not say"):
        unmount(engine, iid, vids, "scratch")
    assert "/scratch" in box.mounted
    # --force no longer skips a failed checkpoint sync: checkpoints are never left behind
    forced, _ = _engine(moto_endpoint, box, overrides=Overrides(force=True))
    with pytest.raises(StepFailed, match=r"^checkpoint-sync: .*--force does not lift this"):
        unmount(forced, iid, vids, "scratch")
    assert "/scratch" in box.mounted


# --- detach -------------------------------------------------------------------------------


@pytest.mark.parametrize("answer", CANNOT_TELL)
def test_detach_on_a_running_instance_checks_training(moto_endpoint: str,
                                                      answer: ScriptResult) -> None:
    """Even where trainctl did not mount the volume (no mount delete ran before)."""
    box, engine, aws, iid, vids = _setup(moto_endpoint, training_check=answer)
    with pytest.raises(StepFailed, match=r"^training-running: .*then detaches"):
        detach(engine, iid, vids, "data")
    assert box.kinds() == ["training_check"]
    assert aws.calls["DetachVolume"] == 0
    assert _volume(aws, vids["data"])["State"] == "in-use"
    forced, _ = _engine(moto_endpoint, box, overrides=STOP_TRAINER)
    facts = detach(forced, iid, vids, "data")
    assert facts["training"].startswith("stopped by --stop-training")
    assert _volume(aws, vids["data"])["State"] == "available"


def test_detach_from_a_stopped_instance_needs_no_check(moto_endpoint: str) -> None:
    box, engine, aws, iid, vids = _setup(moto_endpoint, training_check=RUNNING)
    aws.ec2.stop_instances(InstanceIds=[iid])
    aws.ec2.get_waiter("instance_stopped").wait(InstanceIds=[iid],
                                                WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    detach(engine, iid, vids, "data")
    assert box.kinds() == []
    assert _volume(aws, vids["data"])["State"] == "available"


# --- honest journal at terminate -----------------------------------------------------------


@pytest.mark.parametrize(("answer", "fact"), [
    (ScriptResult("ok", {"present": False, "objects": 0, "copied": 0}),
     "path /scratch/ckpt absent, nothing to sync"),
    (ScriptResult("ok", {"present": True, "objects": 0, "bytes": 0, "copied": 0}),
     "path /scratch/ckpt empty, nothing to sync"),
    (ScriptResult("ok", {"present": True, "objects": 5, "bytes": 9, "copied": 0}),
     "synced /scratch/ckpt to s3://ckpt/run/ (5 files, 0 copied now)"),
])
def test_terminate_facts_say_what_the_checkpoint_sync_did(moto_endpoint: str,
                                                          answer: ScriptResult,
                                                          fact: str) -> None:
    ssm = FakeSsm({"checkpoint_sync": answer})
    engine, aws = make_engine(make_spec(instances=(TRAINER,)), moto_endpoint, ssm)
    iid = create_instance(engine)
    facts = terminate(engine, iid)
    assert facts["checkpoints"] == fact
    assert instances(aws, "terminated")[0]["InstanceId"] == iid


def test_terminate_refuses_an_answer_that_does_not_say(moto_endpoint: str) -> None:
    ssm = FakeSsm({"checkpoint_sync": ScriptResult("ok", {"copied": 0})})
    engine, aws = make_engine(make_spec(instances=(TRAINER,)), moto_endpoint, ssm)
    iid = create_instance(engine)
    with pytest.raises(StepFailed, match=r"^checkpoint-sync: "):
        terminate(engine, iid)
    assert instances(aws, "running")[0]["InstanceId"] == iid


def test_checkpoint_outcome_reads_the_status_line() -> None:
    ok = ScriptResult
    assert steps.checkpoint_outcome(ok("ok", {"present": True, "objects": 2})) == "synced"
    assert steps.checkpoint_outcome(ok("ok", {"present": True, "objects": 0})) == "empty"
    assert steps.checkpoint_outcome(ok("ok", {"present": False})) == "absent"
    for unsure in (ok("ok", {}), ok("ok", {"present": True}),
                   ok("ok", {"present": "true", "objects": 1}),
                   ok("ok", {"present": True, "objects": True}),
                   ok("failed", {"present": True, "objects": 1}),
                   ok("unknown", {})):
        assert steps.checkpoint_outcome(unsure) == "unknown", unsure


# --- the real scripts, through the local runner --------------------------------------------


@pytest.mark.slow
def test_teardown_with_the_real_scripts_saves_the_checkpoints(moto_endpoint: str,
                                                              tmp_path: Path) -> None:
    """mount.sh, training_check.sh, checkpoint_sync.sh and unmount.sh for real (sandbox
    mode): a live pid file refuses the unmount; once the job ends the checkpoint files
    reach S3 before the unmount, and the terminate says so."""
    from planner.ssm import LocalRunner

    host = replace(HOST, training=Training(pid_file="/run/train.pid"))
    runner = LocalRunner.for_endpoint(str(tmp_path / "sandbox"), moto_endpoint, "us-east-1")
    engine, aws = make_engine(make_spec(volumes=(DATA, SCRATCH), instances=(host,)),
                              moto_endpoint, runner)
    aws.s3.create_bucket(Bucket="ckpt")
    iid, vids = _built(engine, aws)
    box = Path(runner.sandbox(iid))
    ckpt = box / "scratch" / "ckpt"
    (ckpt / "step-7").mkdir(parents=True)
    (ckpt / "step-7" / "model.pt").write_bytes(b"w" * 1000)
    job = subprocess.Popen(["sleep", "300"])
    try:
        (box / "run").mkdir(parents=True, exist_ok=True)
        (box / "run" / "train.pid").write_text(f"{job.pid}\n")
        with pytest.raises(StepFailed, match=rf"^training-running: .*pid {job.pid}"):
            unmount(engine, iid, vids, "scratch")
        assert (ckpt / "step-7" / "model.pt").exists()
    finally:
        job.kill()
        job.wait()
    unmount(engine, iid, vids, "data")
    facts = unmount(engine, iid, vids, "scratch")
    assert facts["checkpoints"].startswith("synced /scratch/ckpt to s3://ckpt/run/ (1 files")
    keys = [o["Key"] for o in aws.s3.list_objects_v2(Bucket="ckpt")["Contents"]]
    assert keys == ["run/step-7/model.pt"]
    assert not (box / "scratch" / "ckpt").exists()       # unmounted
    detach(engine, iid, vids, "data")
    detach(engine, iid, vids, "scratch")
    done = terminate(engine, iid)
    assert done["checkpoints"].startswith("synced at unmount of /scratch: ")
    assert instances(aws, "terminated")[0]["InstanceId"] == iid


# --- prewarm: what an interrupted prewarm left behind ----------------------------------------


def _prewarm(engine: DirectEngine) -> dict[str, str]:
    return engine.apply(change("prewarm.imgs", Action.CREATE, after={
        **PREWARM_AFTER, "objects": 1, "bytes": 1, "digest": "sha256:" + "d" * 64}),
        Action.CREATE)


def _interrupted_prewarm(endpoint: str, spec: Spec, monkeypatch: pytest.MonkeyPatch,
                         plan_id: str) -> str:
    """A prewarm stopped as by kill -9 in the middle of its sync: the temporary instance
    stays running with the volume attached (its `finally` never ran)."""
    stuck = FakeSsm({"sync": ScriptResult("failed", {"error": "killed"})})
    old, _ = make_engine(spec, endpoint, stuck, plan_id=plan_id)
    with monkeypatch.context() as m:
        m.setattr(prewarm_module, "_terminate_temporary", lambda *a: None)
        with pytest.raises(StepFailed, match="killed"):
            _prewarm(old)
    return next(c[1] for c in stuck.calls if c[0] == "sync")


def _temporaries(aws: AwsContext) -> dict[str, str]:
    return {i["InstanceId"]: i["State"]["Name"] for i in instances(aws)
            if tags_of(i).get(TAG_ADDRESS) == "prewarm.imgs"}


@pytest.mark.parametrize("orphan_unmount", ["ok", "unknown"])
def test_prewarm_clears_the_temporary_instance_an_interrupted_prewarm_left(
        moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, orphan_unmount: str) -> None:
    spec = make_spec(volumes=(CACHE,), instances=(TRAINER,), datasets=(PREWARM_DS,))
    setup, aws = make_engine(spec, moto_endpoint, plan_id="plan-old")
    vid = create_volume(setup, "cache")
    orphan = _interrupted_prewarm(moto_endpoint, spec, monkeypatch, "plan-old")
    assert _temporaries(aws) == {orphan: "running"}
    vol = aws.ec2.describe_volumes(VolumeIds=[vid])["Volumes"][0]
    assert [a["InstanceId"] for a in vol["Attachments"]] == [orphan]
    inst = aws.ec2.describe_instances(InstanceIds=[orphan])["Reservations"][0]["Instances"][0]
    assert tags_of(inst)["trainctl:temporary"] == "true"
    assert tags_of(inst)[TAG_PROJECT] == "proj"

    # a later apply (another plan id, so another ClientToken): its plan lists the
    # cleanup, which runs first; the prewarm itself never terminates what it did not plan
    ssm = FakeSsm()
    if orphan_unmount != "ok":       # SSM cannot reach the orphan: terminate it attached
        def answer(kind: str, instance_id: str) -> None:
            ssm.answers["unmount"] = (ScriptResult("unknown", {"reason": "no output"})
                                      if instance_id == orphan else ScriptResult("ok"))
        ssm.hook = answer
    engine, aws2 = make_engine(spec, moto_endpoint, ssm, plan_id="plan-new")
    with pytest.raises(StepFailed, match=rf"{orphan} left by an interrupted prewarm appeared"):
        _prewarm(engine)
    assert _temporaries(aws) == {orphan: "running"} and aws2.calls["RunInstances"] == 0
    cleanup = change(f"prewarm.imgs@{orphan}", Action.DELETE, id=orphan,
                     before={"temporary_instance": orphan, "volume_ids": [vid]})
    done = engine.apply(cleanup, Action.DELETE)
    if orphan_unmount == "ok":
        assert done["detached"] == vid and done["left_attached"] == ""
    else:
        assert done["detached"] == "" and done["left_attached"] == vid
        assert aws2.calls["ModifyInstanceAttribute"] == 1
    assert _temporaries(aws) == {orphan: "terminated"}
    vol = aws.ec2.describe_volumes(VolumeIds=[vid])["Volumes"][0]
    assert vol["State"] == "available" and vol["Attachments"] == []
    facts = _prewarm(engine)
    temp = facts["temporary_instance"]
    assert _temporaries(aws) == {orphan: "terminated", temp: "terminated"}
    assert ssm.calls == [("unmount", orphan), ("mount", temp), ("sync", temp),
                         ("unmount", temp)]
    assert aws2.calls["DetachVolume"] == (2 if orphan_unmount == "ok" else 1)
    vol = aws.ec2.describe_volumes(VolumeIds=[vid])["Volumes"][0]
    assert vol["State"] == "available" and vol["Attachments"] == []
    assert tags_of(vol)[TAG_DATASET_DIGEST] == f"imgs=sha256:{'d' * 32}:1:1"  # 1 object, 1 byte


def test_cleanup_never_terminates_an_instance_that_is_not_temporary(
        moto_endpoint: str) -> None:
    spec = make_spec(volumes=(CACHE,), instances=(TRAINER,), datasets=(PREWARM_DS,))
    engine, aws = make_engine(spec, moto_endpoint)
    iid = create_instance(engine)
    edited = change(f"prewarm.imgs@{iid}", Action.DELETE, id=iid)
    with pytest.raises(StepFailed, match="is not a temporary instance"):
        engine.apply(edited, Action.DELETE)
    assert aws.calls["TerminateInstances"] == 0


def test_prewarm_retried_by_the_same_plan_reuses_its_own_instance(
        moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = make_spec(volumes=(CACHE,), instances=(TRAINER,), datasets=(PREWARM_DS,))
    setup, aws = make_engine(spec, moto_endpoint, plan_id="plan-same")
    vid = create_volume(setup, "cache")
    first = _interrupted_prewarm(moto_endpoint, spec, monkeypatch, "plan-same")
    ssm = FakeSsm()
    engine, aws2 = make_engine(spec, moto_endpoint, ssm, plan_id="plan-same")
    facts = _prewarm(engine)
    assert facts["temporary_instance"] == first and "orphans_terminated" not in facts
    assert aws2.calls["AttachVolume"] == 0 and aws2.calls["RunInstances"] == 0
    assert ssm.kinds() == ["mount", "sync", "unmount"]
    assert _temporaries(aws) == {first: "terminated"}
    assert aws.ec2.describe_volumes(VolumeIds=[vid])["Volumes"][0]["State"] == "available"


# --- through the CLI, on the emulator --------------------------------------------------------

QUICKSTART_LIKE = """\
version: 1
project: teardown
region: us-east-1
defaults:
  availability_zone: us-east-1a
  min_age_minutes: 0
datasets:
  tiny:
    source: s3://teardown-datasets/tiny/
    strategy: prewarmed-ebs
    volume: datasets
volumes:
  datasets: {size_gib: 50, persistent: true}
  scratch: {size_gib: 100}
instances:
  trainer:
    instance_type: g5.xlarge
    ami: ami-0123456789abcdef0
    iam_instance_profile: trainctl-ssm
    mounts:
      - {volume: datasets, device: /dev/sdf, path: /data, read_only: true}
      - {volume: scratch, device: /dev/sdg, path: /scratch}
    datasets: [tiny]
    checkpoints:
      path: /scratch/checkpoints
      sync_to: s3://teardown-checkpoints/run-1/
    training:
      pid_file: /var/run/trainctl/training.pid
"""


def _cli(d: Path, endpoint: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("--endpoint-url", endpoint, *args, cwd=d, input="", timeout=300)


def _ok(r: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert r.returncode == 0, f"rc={r.returncode}\n{r.stdout}\n{r.stderr}"
    return r


def _events(d: Path, address: str) -> list[dict[str, Any]]:
    from planner.journal import read_journal

    files = (d / ".trainctl" / "journal").glob("*.jsonl")
    return [e for f in files for e in read_journal(str(f)) if e["address"] == address]


@pytest.mark.slow
def test_destroy_through_the_cli_saves_the_checkpoints(moto_endpoint: str,
                                                       tmp_path: Path) -> None:
    """The reported data loss: quickstart-like spec, a checkpoint file in the sandbox's
    /scratch/checkpoints, `plan --destroy -o d.json && apply d.json`. While a training
    job runs nothing is unmounted; once it ended the file is in the checkpoint bucket."""
    import boto3

    from planner.aws.seed import seed

    d = tmp_path / "proj"
    d.mkdir()
    (d / "trainctl.yaml").write_text(QUICKSTART_LIKE)
    seed(moto_endpoint, "us-east-1", buckets=["teardown-datasets", "teardown-checkpoints"])
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    s3.put_object(Bucket="teardown-datasets", Key="tiny/part-0.bin", Body=b"d" * 2048)
    _ok(_cli(d, moto_endpoint, "apply", "--auto-approve"))

    ec2 = boto3.client("ec2", endpoint_url=moto_endpoint, region_name="us-east-1")
    res = ec2.describe_instances(Filters=[
        {"Name": f"tag:{TAG_ADDRESS}", "Values": ["instance.trainer"]},
        {"Name": "instance-state-name", "Values": ["running"]}])["Reservations"]
    iid = res[0]["Instances"][0]["InstanceId"]
    box = d / ".trainctl" / "sandbox" / iid
    ckpt = box / "scratch" / "checkpoints"
    ckpt.mkdir(parents=True)
    (ckpt / "step-100.pt").write_bytes(b"w" * 4096)

    # a training job runs: the destroy unmounts, detaches and terminates nothing
    job = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    try:
        pid_file = box / "var" / "run" / "trainctl" / "training.pid"
        pid_file.parent.mkdir(parents=True, exist_ok=True)
        pid_file.write_text(f"{job.pid}\n")
        _ok(_cli(d, moto_endpoint, "plan", "--destroy", "-o", "d1.json"))
        r = _cli(d, moto_endpoint, "apply", "d1.json")
        assert r.returncode == 1, r.stdout + r.stderr
        assert "training-running" in r.stderr
        assert (ckpt / "step-100.pt").exists()
        assert ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0][
            "State"]["Name"] == "running"
    finally:
        job.kill()
        job.wait()
    pid_file.unlink()

    _ok(_cli(d, moto_endpoint, "plan", "--destroy", "-o", "d2.json"))
    r = _cli(d, moto_endpoint, "apply", "d2.json")
    assert r.returncode == 0, r.stdout + r.stderr       # volume.datasets: blocked, kept
    got = s3.get_object(Bucket="teardown-checkpoints", Key="run-1/step-100.pt")["Body"].read()
    assert got == b"w" * 4096
    assert ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0][
        "State"]["Name"] == "terminated"
    unmounted = [e for e in _events(d, "mount.trainer.scratch")
                 if e["event"] == "finished" and e["phase"] == "delete"]
    assert unmounted and unmounted[-1]["facts"]["checkpoints"].startswith(
        "synced /scratch/checkpoints to s3://teardown-checkpoints/run-1/ (1 files")
    ended = [e for e in _events(d, "instance.trainer")
             if e["event"] == "finished" and e["phase"] == "delete"]
    assert ended and ended[-1]["facts"]["checkpoints"].startswith(
        "synced at unmount of /scratch: ")
    shutil.rmtree(d / ".trainctl" / "sandbox", ignore_errors=True)
