"""Issue 10 item 4: no silent fall-back to real AWS. A recorded emulator that does not
answer is an error with the two ways out; `local up --port P` with P taken records
nothing; every command that talks to AWS says first what it targets; AWS_ENDPOINT_URL
and --endpoint-url behave the same (SSM steps run on the local runner either way)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_cli

SPEC = """\
version: 1
project: {project}
region: us-east-1
defaults:
  availability_zone: us-east-1a
  min_age_minutes: 0
datasets:
  docs:
    source: ./docs
    stage: s3://{project}-stage/docs/
    strategy: local-cache
    path: /scratch/docs
volumes:
  scratch: {{size_gib: 20}}
instances:
  trainer:
    instance_type: g5.xlarge
    ami: ami-0123456789abcdef0
    iam_instance_profile: trainctl-ssm
    mounts:
      - {{volume: scratch, device: /dev/sdg, path: /scratch}}
    datasets: [docs]
"""


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def _seeded(endpoint: str) -> None:
    from planner.aws.seed import seed

    seed(endpoint, "us-east-1", buckets=["tgt-stage"])


def _project(tmp_path: Path, name: str = "tgt") -> Path:
    d = tmp_path / name
    (d / "docs").mkdir(parents=True)
    (d / "docs" / "a.txt").write_text("alpha\n")
    (d / "docs" / "b.txt").write_text("beta\n")
    (d / "trainctl.yaml").write_text(SPEC.format(project=name))
    return d


# --- a recorded emulator that does not answer --------------------------------------------


@pytest.mark.parametrize("command", [("plan",), ("plan", "--json"), ("apply", "--auto-approve"),
                                     ("plan", "--destroy")])
def test_a_dead_recorded_emulator_fails_every_command_with_the_two_ways_out(
        tmp_path: Path, command: tuple[str, ...]) -> None:
    d = _project(tmp_path)
    (d / ".trainctl").mkdir()
    (d / ".trainctl" / "local.json").write_text(json.dumps(
        {"endpoint": "http://127.0.0.1:1", "pid": _dead_pid()}))
    r = run_cli(*command, cwd=d, env={"AWS_ENDPOINT_URL": "http://127.0.0.1:2"})
    assert r.returncode == 1, r.stdout + r.stderr
    assert "does not answer" in r.stderr
    assert "trainctl local up" in r.stderr and "trainctl local down" in r.stderr
    assert "Traceback" not in r.stderr and "Target:" not in r.stderr
    assert r.stdout == ""


def test_local_down_forgets_a_dead_emulator(tmp_path: Path, moto_endpoint: str) -> None:
    d = _project(tmp_path)
    (d / ".trainctl").mkdir()
    (d / ".trainctl" / "local.json").write_text(json.dumps(
        {"endpoint": "http://127.0.0.1:1", "pid": _dead_pid()}))
    _seeded(moto_endpoint)
    assert run_cli("local", "down", cwd=d).returncode == 0
    assert not (d / ".trainctl" / "local.json").exists()
    r = run_cli("--endpoint-url", moto_endpoint, "plan", cwd=d)
    assert r.returncode == 0, r.stderr


# --- local up --port P with P taken ------------------------------------------------------


def test_local_up_on_a_port_taken_by_a_program_records_nothing(tmp_path: Path) -> None:
    d = _project(tmp_path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = run_cli("local", "up", "--port", str(port), cwd=d)
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"port {port}" in r.stderr and "already in use" in r.stderr
    assert not (d / ".trainctl" / "local.json").exists()


def test_local_up_on_the_port_of_another_emulator_records_nothing(
        tmp_path: Path, moto_endpoint: str) -> None:
    d = _project(tmp_path)
    port = moto_endpoint.rsplit(":", 1)[1]
    r = run_cli("local", "up", "--port", port, cwd=d)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "already in use" in r.stderr
    assert not (d / ".trainctl" / "local.json").exists()
    # and nothing later targets the other emulator by accident
    plan = run_cli("plan", cwd=d)
    assert moto_endpoint not in plan.stderr


# --- every command says its target --------------------------------------------------------


def test_plan_says_its_target_on_stderr_and_json_stays_clean(tmp_path: Path,
                                                            moto_endpoint: str) -> None:
    d = _project(tmp_path)
    _seeded(moto_endpoint)
    by_flag = run_cli("--endpoint-url", moto_endpoint, "plan", "--json", cwd=d)
    assert by_flag.returncode == 0, by_flag.stderr
    assert by_flag.stderr.splitlines()[0] == (
        f"Target: AWS endpoint {moto_endpoint} (from --endpoint-url), region us-east-1")
    json.loads(by_flag.stdout)
    by_env = run_cli("plan", "--json", cwd=d, env={"AWS_ENDPOINT_URL": moto_endpoint})
    assert by_env.returncode == 0, by_env.stderr
    assert by_env.stderr.splitlines()[0] == (
        f"Target: AWS endpoint {moto_endpoint} (from AWS_ENDPOINT_URL), region us-east-1")
    assert json.loads(by_env.stdout)["changes"] == json.loads(by_flag.stdout)["changes"]


def test_aws_itself_is_named_by_account_from_one_sts_call(
        tmp_path: Path, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from planner.aws import session

    make = session.AwsContext._make_client

    def sts_to_moto(self: session.AwsContext, service: str) -> object:
        """STS only to moto (botocore's AWS_ENDPOINT_URL_STS is ignored: trainctl's target
        is the only one)."""
        if service != "sts":
            return make(self, service)
        self.endpoint_url = moto_endpoint
        try:
            return make(self, service)
        finally:
            self.endpoint_url = None

    monkeypatch.setattr(session.AwsContext, "_make_client", sts_to_moto)
    monkeypatch.setattr(session, "_announced", set())
    monkeypatch.setattr(session, "_accounts", {})
    aws, how = session.open_aws(None, str(tmp_path), "us-east-1")
    session.open_aws(None, str(tmp_path), "us-east-1")           # said once, asked once
    assert how == "AWS default" and aws.endpoint_url is None
    assert aws.account == "123456789012"
    assert capsys.readouterr().err == "Target: AWS account 123456789012, region us-east-1\n"
    assert aws.calls["GetCallerIdentity"] == 1


def test_aws_itself_without_credentials_fails_before_anything(tmp_path: Path) -> None:
    d = _project(tmp_path)
    r = run_cli("plan", cwd=d, env={"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "",
                                    "AWS_SESSION_TOKEN": "", "AWS_ENDPOINT_URL_STS":
                                    "http://127.0.0.1:1"})
    assert r.returncode == 1 and "Traceback" not in r.stderr


# --- AWS_ENDPOINT_URL and --endpoint-url: one code path -----------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("how", ["flag", "env"])
def test_apply_with_the_flag_or_the_variable_runs_ssm_steps_locally(
        tmp_path: Path, moto_endpoint: str, how: str) -> None:
    """Mount and sync go through the local runner both ways (before, the variable sent
    them to moto's SSM, which runs nothing: every mount failed with "no output"); the
    stage upload uses path-style S3 addressing both ways."""
    d = _project(tmp_path)
    _seeded(moto_endpoint)
    args = ("--endpoint-url", moto_endpoint) if how == "flag" else ()
    env = {"AWS_ENDPOINT_URL": moto_endpoint} if how == "env" else {}
    r = run_cli(*args, "apply", "--auto-approve", "--no-color", cwd=d, env=env, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    source = "--endpoint-url" if how == "flag" else "AWS_ENDPOINT_URL"
    assert r.stderr.splitlines()[0] == (
        f"Target: AWS endpoint {moto_endpoint} (from {source}), region us-east-1")
    boxes = list((d / ".trainctl" / "sandbox").glob("i-*"))
    assert len(boxes) == 1
    synced = boxes[0] / "scratch" / "docs"
    assert (synced / "a.txt").read_text() == "alpha\n"
    again = run_cli(*args, "plan", "--detailed-exitcode", cwd=d, env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    lock = run_cli(*args, "lock", "status", cwd=d, env=env)
    assert lock.returncode == 0 and "unlocked" in lock.stdout
    ran = run_cli(*args, "exec", "trainer", "--", "echo", "hello", cwd=d, env=env)
    assert ran.returncode == 0 and ran.stdout == "hello\n", ran.stdout + ran.stderr
    assert ran.stderr.startswith(f"Target: AWS endpoint {moto_endpoint} (from {source})")
    destroy = run_cli(*args, "plan", "--destroy", "--json", cwd=d, env=env)
    assert destroy.returncode == 0, destroy.stderr
    assert json.loads(destroy.stdout)["summary"]["delete"] >= 2
