"""`trainctl local up|status|env|down` in real subprocesses, and `trainctl iam-policy`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from planner import emulator
from planner.aws.seed import connect as seed_connect
from tests.conftest import run_cli

SPEC = textwrap.dedent("""\
    version: 1
    project: emu
    region: us-east-1
    defaults:
      availability_zone: us-east-1a
    datasets:
      imgs:
        source: s3://emu-datasets/imgs/
        strategy: local-cache
    volumes:
      scratch:
        size_gib: 10
    instances:
      trainer:
        instance_type: g5.xlarge
        ami: ami-0123456789abcdef0
        iam_instance_profile: trainctl-ssm
        mounts:
          - {volume: scratch, device: /dev/sdg, path: /scratch}
        datasets: [imgs]
        checkpoints:
          path: /scratch/ckpt
          sync_to: s3://emu-checkpoints/run/
    """)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    (tmp_path / "trainctl.yaml").write_text(SPEC)
    yield tmp_path
    # never leave an emulator behind, whatever the test did
    doc = emulator.read_state(str(tmp_path / ".trainctl"))
    if doc:
        emulator.stop(str(tmp_path / ".trainctl"))


@pytest.mark.slow
def test_local_up_status_env_down(project: Path) -> None:
    up = run_cli("local", "up", cwd=project)
    assert up.returncode == 0, up.stderr
    assert "emulator started at http://127.0.0.1:" in up.stdout
    state = json.loads((project / ".trainctl" / "local.json").read_text())
    endpoint, pid = state["endpoint"], state["pid"]
    assert endpoint.startswith("http://127.0.0.1:")
    assert state["sandbox"] == str(project / ".trainctl" / "sandbox")
    assert os.path.isdir(state["sandbox"])
    assert _alive(pid)

    status = run_cli("local", "status", cwd=project)
    assert status.returncode == 0
    assert status.stdout.startswith(f"running at {endpoint} (pid {pid}")

    env = run_cli("local", "env", cwd=project)
    assert env.returncode == 0
    assert f"export AWS_ENDPOINT_URL={endpoint}" in env.stdout.splitlines()
    assert "export AWS_ACCESS_KEY_ID=testing" in env.stdout.splitlines()

    again = run_cli("local", "up", cwd=project)          # idempotent: the same server
    assert again.returncode == 0 and "already running" in again.stdout
    assert json.loads((project / ".trainctl" / "local.json").read_text())["pid"] == pid

    # The emulator answers boto3, holds the seeded profile and the spec's buckets, and
    # accepts the examples' AMI id.
    aws = seed_connect(endpoint, "us-east-1")
    profile = aws.iam.get_instance_profile(InstanceProfileName="trainctl-ssm")
    assert [r["RoleName"] for r in profile["InstanceProfile"]["Roles"]] == ["trainctl-ssm"]
    attached = aws.iam.list_attached_role_policies(RoleName="trainctl-ssm")
    assert [p["PolicyName"] for p in attached["AttachedPolicies"]] == [
        "AmazonSSMManagedInstanceCore"]
    buckets = {b["Name"] for b in aws.s3.list_buckets()["Buckets"]}
    assert {"emu-datasets", "emu-checkpoints"} <= buckets
    run = aws.ec2.run_instances(ImageId="ami-0123456789abcdef0", InstanceType="g5.xlarge",
                                MinCount=1, MaxCount=1,
                                IamInstanceProfile={"Name": "trainctl-ssm"})
    assert run["Instances"][0]["ImageId"] == "ami-0123456789abcdef0"
    # trainctl's launcher of moto's server; request lines are not logged, errors would be.
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert cmdline[1:3] == [b"-m", b"planner.emulator_server"]
    assert "POST / HTTP" not in Path(state["log"]).read_text(errors="replace")

    # Other commands find it through local.json.
    from planner.aws.session import resolve_endpoint

    found, how = resolve_endpoint(None, str(project / ".trainctl"))
    assert found == endpoint and "local emulator" in how

    down = run_cli("local", "down", cwd=project)
    assert down.returncode == 0, down.stderr
    assert "emulator stopped" in down.stdout
    assert not (project / ".trainctl" / "local.json").exists()
    assert not _alive(pid)
    assert run_cli("local", "status", cwd=project).stdout.strip() == "not running"
    assert resolve_endpoint(None, str(project / ".trainctl"))[0] is None
    gone = run_cli("local", "env", cwd=project)
    assert gone.returncode == 1 and "not running" in gone.stderr
    assert "Traceback" not in gone.stderr


def test_down_without_an_emulator(project: Path) -> None:
    down = run_cli("local", "down", cwd=project)
    assert down.returncode == 0 and "not running" in down.stdout


def test_stale_record_is_not_running_and_not_killed(project: Path) -> None:
    """A local.json whose pid is not moto's server is never signalled."""
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        state_dir = project / ".trainctl"
        state_dir.mkdir()
        (state_dir / "local.json").write_text(json.dumps(
            {"endpoint": "http://127.0.0.1:9", "pid": sleeper.pid}))
        assert emulator.running(str(state_dir)) is None
        status = run_cli("local", "status", cwd=project)
        assert status.stdout.startswith("not running (stale record")
        assert run_cli("local", "down", cwd=project).returncode == 0
        assert sleeper.poll() is None                 # still alive: not ours to stop
        assert not (state_dir / "local.json").exists()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_spec_buckets() -> None:
    from planner.loader import loads_spec

    spec = loads_spec(SPEC)
    assert emulator.spec_buckets(spec) == ["emu-checkpoints", "emu-datasets"]


# --- iam-policy ------------------------------------------------------------------------


def test_iam_policy_is_scoped_and_never_imports_boto3(project: Path) -> None:
    code = textwrap.dedent("""\
        import sys
        from planner.cli import main
        try:
            main(["iam-policy"])
        except SystemExit as e:
            assert e.code in (0, None), e.code
        assert "boto3" not in sys.modules and "botocore" not in sys.modules, "imported"
        """)
    proc = subprocess.run([sys.executable, "-c", code], cwd=project, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    policy = json.loads(proc.stdout)
    assert policy["Version"] == "2012-10-17"
    by_sid = {s["Sid"]: s for s in policy["Statement"]}
    creates = by_sid["CreateTaggedVolumesInstancesSnapshots"]
    assert creates["Condition"] == {"StringEquals": {"aws:RequestTag/trainctl:project": "emu"}}
    changes = by_sid["ChangeOwnedResources"]
    assert "ec2:DeleteVolume" in changes["Action"]
    assert "ec2:TerminateInstances" in changes["Action"]
    assert changes["Condition"] == {
        "StringEquals": {"aws:ResourceTag/trainctl:project": "emu"}}
    # every mutating EC2 action is conditioned on the project tag or the create action
    for s in policy["Statement"]:
        actions = [s["Action"]] if isinstance(s["Action"], str) else s["Action"]
        mutating = [a for a in actions if a.startswith("ec2:") and not a.startswith(
            "ec2:Describe")]
        if mutating and s["Sid"] not in ("RunInstancesWith", "CreateVolumeFromSnapshot"):
            assert "Condition" in s, s["Sid"]
    # S3 only for the buckets the spec names, never everything
    s3 = [s for s in policy["Statement"] if "s3:" in json.dumps(s["Action"])]
    assert s3
    for s in s3:
        resources = [s["Resource"]] if isinstance(s["Resource"], str) else s["Resource"]
        assert all(r.startswith("arn:aws:s3:::emu-datasets") for r in resources), resources
    # PassRole only on the role the spec's profile names: no wildcard a user could use to
    # pass an admin role named trainctl-anything to an instance
    passes = [s for s in policy["Statement"] if s["Action"] == "iam:PassRole"]
    assert [p["Resource"] for p in passes] == [["arn:aws:iam::*:role/trainctl-ssm"]]
    assert "iam:PutRolePolicy" not in json.dumps(policy)   # every instance names a profile
    assert "ec2:DescribeAvailabilityZones" in json.dumps(policy)


def test_iam_policy_scopes_the_project_role_to_the_project() -> None:
    from planner.commands.iam_policy import build_policy

    policy = build_policy("llm", None)
    role = next(s for s in policy["Statement"] if s["Sid"] == "ProjectInstanceRole")
    assert role["Resource"] == ["arn:aws:iam::*:role/trainctl-llm-ssm",
                                "arn:aws:iam::*:instance-profile/trainctl-llm-ssm"]


def test_iam_policy_without_a_spec(tmp_path: Path) -> None:
    proc = run_cli("iam-policy", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    policy = json.loads(proc.stdout)
    assert not any("s3:" in json.dumps(s["Action"]) for s in policy["Statement"])
    assert "note: no spec found" in proc.stderr


@pytest.mark.slow
def test_commands_reach_the_emulator_without_any_aws_credentials(project: Path,
                                                                 tmp_path: Path) -> None:
    """A newcomer with no AWS setup at all: `local up` then `plan` just works."""
    assert run_cli("local", "up", cwd=project).returncode == 0
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["AWS_SHARED_CREDENTIALS_FILE"] = str(tmp_path / "none")
    env["AWS_CONFIG_FILE"] = str(tmp_path / "none")
    plan = subprocess.run([sys.executable, "-m", "planner", "plan", "--detailed-exitcode"],
                          cwd=project, env=env, capture_output=True, text=True, timeout=120)
    assert plan.returncode == 2, plan.stderr
    assert plan.stderr.startswith("Target: the local emulator at http://127.0.0.1:")
    assert "volume.scratch" in plan.stdout


def test_emulator_server_computes_per_request_lookups_once() -> None:
    """moto's server lists its packages on disk and inspects the response class on every
    request; the launcher does both once (in a subprocess: moto is patched there)."""
    code = textwrap.dedent("""
        import logging, os
        from moto import backends
        from moto.core import responses
        from moto.ec2.responses import EC2Response
        from planner import emulator_server

        listed = list(backends.list_of_moto_modules())
        names = responses.method_names_from_class(EC2Response)
        emulator_server._once_per_process()
        def no_disk(*a, **k):
            raise AssertionError("listed the disk again")
        os.listdir = no_disk
        assert list(backends.list_of_moto_modules()) == listed and "ec2" in listed
        once = responses.method_names_from_class(EC2Response)
        assert once == names and "describe_volumes" in once
        assert responses.method_names_from_class(EC2Response) is once
        assert logging.getLogger("werkzeug").getEffectiveLevel() == logging.WARNING
        print("ok")
        """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
