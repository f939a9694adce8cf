"""Red team: the guards (training check, checkpoint sync, fresh re-check) hold whatever
the engine. With `--engine pulumi` an instance's terminate runs in the compute teardown
stack pass; nothing may reach that pass before the same checks the direct engine makes.

The stacks are a stand-in for the Automation API (no CLI here): its teardown pass
terminates what the checked plan deletes, as `pulumi up` would."""

from __future__ import annotations

import io
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest
from conftest import run_cli

from planner.options import Options
from planner.plan import Action
from planner.workflow import ApplyRequest, PlainConsole, apply_plan

pytestmark = pytest.mark.slow

JOB = """\
import os, pathlib, sys, time
ckpt, pid_file = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
ckpt.mkdir(parents=True, exist_ok=True)
(ckpt / "step-1.pt").write_bytes(b"step 1")
pid_file.parent.mkdir(parents=True, exist_ok=True)
pid_file.write_text(f"{os.getpid()}\\n")
while True:
    time.sleep(0.05)
"""

SPEC = """\
version: 1
project: atkguard
region: us-east-1
defaults:
  availability_zone: us-east-1a
  min_age_minutes: 0
instances:
  trainer:
    instance_type: t3.micro
    ami: ami-0123456789abcdef0
    checkpoints:
      path: /ckpt
      sync_to: s3://atkguard-ckpt/run-1/
    training:
      pid_file: /var/run/trainctl/training.pid
      process_patterns: ["{tag}"]
      grace_seconds: 5
"""

DROPPED = """\
version: 1
project: atkguard
region: us-east-1
defaults:
  availability_zone: us-east-1a
  min_age_minutes: 0
"""


class TerminatingStacks:
    """The stacks' interface (planner.engines.pulumi.engine.AutomationStacks): no stack
    state yet (the instance was made by --engine direct); a pass terminates every
    instance its checked plan deletes, as `pulumi up` of the teardown would."""

    def __init__(self, ctx: Any):
        from planner.engines.pulumi.schema import Deployed

        self.ctx = ctx
        self._deployed = Deployed()
        self._prepared: set[str] = set()
        self.terminated: list[str] = []

    def deployed(self) -> Any:
        return self._deployed

    def trouble(self, program: str) -> str:
        return ""

    def prepared(self, program: str) -> bool:
        return program in self._prepared

    def mark_prepared(self, program: str) -> None:
        self._prepared.add(program)

    def ids(self, program: str) -> dict[str, str]:
        return {}

    def volume_ids(self) -> dict[str, str]:
        return {}

    def run_pass(self, program: str, stack_inputs: Any, checked: Any,
                 tolerate_failure: bool = False) -> Any:
        from planner.engines.pulumi.engine import PassLog

        log = PassLog()
        ops = {"create": "create", "update": "update", "delete": "delete",
               "replace": "replace", "no-op": "same"}
        for c in checked.changes:
            if c.blocked:
                continue
            log.planned_ops.setdefault(c.address, set()).add(ops[c.kind])
            if c.type == "instance" and Action.DELETE in c.actions and c.id:
                self.ctx.aws.ec2.terminate_instances(InstanceIds=[c.id])
                self.terminated.append(c.id)
            log.done.add(c.address)
        return log


def _state(ec2: Any, iid: str) -> str:
    return str(ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0][
        "State"]["Name"])


@pytest.fixture
def pulumi_without_cli(monkeypatch: pytest.MonkeyPatch) -> list[TerminatingStacks]:
    """`--engine pulumi` built through the registry as apply builds it, its stacks the
    stand-in above (the CLI check passes: the stand-in needs no CLI)."""
    import planner.engines.pulumi.engine as pe

    made: list[TerminatingStacks] = []

    def stacks(ctx: Any) -> TerminatingStacks:
        made.append(TerminatingStacks(ctx))
        return made[-1]

    monkeypatch.setattr(pe.PulumiEngine, "check_available", classmethod(lambda cls: None))
    monkeypatch.setattr(pe, "AutomationStacks", stacks)
    return made


@pytest.mark.parametrize("engine", ["direct", "pulumi"])
def test_no_engine_terminates_while_training_runs(
        engine: str, tmp_path: Path, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch,
        pulumi_without_cli: list[TerminatingStacks]) -> None:
    from planner.aws.seed import seed

    monkeypatch.setenv("TRAINCTL_LOCK_DIR", str(tmp_path / "locks"))
    d = tmp_path / "proj"
    d.mkdir()
    tag = f"trainctl-attack-job-{uuid.uuid4().hex}"
    (d / "trainctl.yaml").write_text(SPEC.format(tag=tag))
    seed(moto_endpoint, "us-east-1", buckets=["atkguard-ckpt"])
    r = run_cli("--endpoint-url", moto_endpoint, "apply", "--auto-approve", cwd=d, input="",
                timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    ec2 = boto3.client("ec2", endpoint_url=moto_endpoint, region_name="us-east-1")
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    [res] = ec2.describe_instances(Filters=[
        {"Name": "tag:trainctl:address", "Values": ["instance.trainer"]},
        {"Name": "instance-state-name", "Values": ["running"]}])["Reservations"]
    iid = res["Instances"][0]["InstanceId"]
    box = d / ".trainctl" / "sandbox" / iid
    pid_file = box / "var" / "run" / "trainctl" / "training.pid"
    job = subprocess.Popen([sys.executable, "-c", JOB, str(box / "ckpt"), str(pid_file),
                            tag])
    try:
        deadline = time.monotonic() + 30
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pid_file.exists()
        (d / "trainctl.yaml").write_text(DROPPED)
        opts = Options(file=str(d / "trainctl.yaml"), region=None,
                       endpoint_url=moto_endpoint, no_color=True)
        out = apply_plan(ApplyRequest(opts, auto_approve=True, engine=engine),
                         PlainConsole(io.StringIO(), io.StringIO()))
        assert bool(pulumi_without_cli) == (engine == "pulumi")
        # the job still runs, its instance too, and the step says why
        assert job.poll() is None
        assert _state(ec2, iid) == "running", "terminated while a training job ran"
        assert out.result is not None
        step = out.result.step("instance.trainer", Action.DELETE)
        assert step.status == "failed" and "training-running" in step.message
        keys = {o["Key"] for o in s3.list_objects_v2(Bucket="atkguard-ckpt")
                .get("Contents", ())}
        assert keys == set() or "run-1/step-1.pt" in keys
    finally:
        if job.poll() is None:
            job.kill()
            job.wait()
