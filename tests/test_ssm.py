"""SSM transports: AWS Run Command (against moto) and the local runner (real bash)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from planner.aws.session import connect
from planner.aws.ssm import AwsSsm, make_transport
from planner.ssm import LocalRunner, SsmTransport

OK_SCRIPT = 'echo "TRAINCTL_STATUS {\\"status\\": \\"ok\\", \\"n\\": 1}"\n'


def _status(doc: dict[str, object]) -> str:
    return "TRAINCTL_STATUS " + json.dumps(doc)


# --- AwsSsm ---------------------------------------------------------------------------


def test_aws_ssm_against_moto_is_unknown_never_ok(moto_endpoint: str) -> None:
    """moto's SSM runs nothing and answers "Success" with empty output: that is unknown."""
    aws = connect("us-east-1", moto_endpoint)
    iid = aws.ec2.run_instances(ImageId="ami-0123456789abcdef0", InstanceType="t3.small",
                                MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    ssm = AwsSsm(aws, poll_delay=1)
    assert isinstance(ssm, SsmTransport)
    result = ssm.run(iid, OK_SCRIPT, timeout=30)
    assert result.state == "unknown"
    assert not result.ok
    assert aws.calls["SendCommand"] == 1
    assert aws.calls["GetCommandInvocation"] >= 1
    sent = aws.ssm.list_commands(InstanceId=iid)["Commands"]
    assert sent[0]["DocumentName"] == "AWS-RunShellScript"
    assert sent[0]["Parameters"]["commands"] == [OK_SCRIPT]


@pytest.mark.parametrize(("invocation", "state"), [
    ({"Status": "Success", "ResponseCode": 0,
      "StandardOutputContent": "x\n" + _status({"status": "ok", "copied": 3})}, "ok"),
    ({"Status": "Success", "ResponseCode": 0, "StandardOutputContent": ""}, "unknown"),
    ({"Status": "Success", "ResponseCode": 0, "StandardOutputContent": "done\n"}, "unknown"),
    ({"Status": "Failed", "ResponseCode": 1,
      "StandardOutputContent": _status({"status": "failed", "error": "boom"})}, "failed"),
    # an "ok" line but the command did not succeed: never a success
    ({"Status": "TimedOut", "ResponseCode": -1,
      "StandardOutputContent": _status({"status": "ok"})}, "unknown"),
    ({"Status": "Failed", "ResponseCode": 2,
      "StandardOutputContent": _status({"status": "ok"})}, "failed"),
    ({"Status": "InProgress", "ResponseCode": -1, "StandardOutputContent": "half"}, "unknown"),
])
def test_aws_ssm_reads_the_invocation(invocation: dict[str, object], state: str) -> None:
    result = AwsSsm._result(invocation)
    assert result.state == state
    if state == "ok":
        assert result.data == {"copied": 3}


def test_aws_ssm_keeps_stderr_in_the_output() -> None:
    result = AwsSsm._result({"Status": "Failed", "ResponseCode": 1,
                             "StandardOutputContent": _status({"status": "failed"}),
                             "StandardErrorContent": "mkfs: device busy"})
    assert result.state == "failed"
    assert "mkfs: device busy" in result.output


# --- LocalRunner -------------------------------------------------------------------------


def test_local_runner_runs_in_the_instance_sandbox(tmp_path: Path) -> None:
    runner = LocalRunner(str(tmp_path / "sandbox"), {"EXTRA": "from-env"})
    script = (
        'set -euo pipefail\n'
        'echo hello > "$TRAINCTL_SANDBOX/marker"\n'
        'echo "to stderr" >&2\n'
        'printf \'TRAINCTL_STATUS {"status": "ok", "sandbox": "%s", "cwd": "%s", '
        '"extra": "%s", "root": "%s", "s5cmd": "%s"}\\n\' '
        '"$TRAINCTL_SANDBOX" "$PWD" "$EXTRA" "$TRAINCTL_SANDBOX_ROOT" '
        '"$(command -v s5cmd || true)"\n'
    )
    result = runner.run("i-0abc", script, timeout=30)
    sandbox = tmp_path / "sandbox" / "i-0abc"
    assert result.state == "ok", result.output
    assert result.data["sandbox"] == str(sandbox)
    assert result.data["cwd"] == str(sandbox)
    assert result.data["extra"] == "from-env"
    assert result.data["root"] == str(tmp_path / "sandbox")
    venv_bin = os.path.dirname(os.path.abspath(sys.executable))
    if os.path.exists(os.path.join(venv_bin, "s5cmd")):
        assert result.data["s5cmd"] == os.path.join(venv_bin, "s5cmd")
    assert (sandbox / "marker").read_text() == "hello\n"
    assert "to stderr" in result.output


def test_local_runner_never_calls_an_unparsable_answer_ok(tmp_path: Path) -> None:
    runner = LocalRunner(str(tmp_path))
    assert runner.run("i-1", "true\n", timeout=30).state == "unknown"
    assert runner.run("i-1", "echo 'TRAINCTL_STATUS {nope'\n", timeout=30).state == "unknown"
    # ok, then a non-zero exit: failed
    assert runner.run("i-1", OK_SCRIPT + "exit 3\n", timeout=30).state == "failed"
    failed = runner.run("i-1", 'echo \'TRAINCTL_STATUS {"status": "failed", "error": "x"}\''
                        '\nexit 1\n', timeout=30)
    assert failed.state == "failed"
    assert failed.data["error"] == "x"


def test_local_runner_timeout_kills_the_script(tmp_path: Path) -> None:
    runner = LocalRunner(str(tmp_path))
    marker = tmp_path / "late"
    script = f"sleep 30 & wait\ntouch {marker}\n" + OK_SCRIPT
    result = runner.run("i-2", script, timeout=1)
    assert result.state == "unknown"
    assert "timed out" in result.data["reason"]
    assert not marker.exists()


def test_local_runner_refuses_path_like_instance_ids(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        LocalRunner(str(tmp_path)).run("../escape", OK_SCRIPT, timeout=5)


def test_make_transport_picks_local_for_an_emulator(tmp_path: Path) -> None:
    local = make_transport(connect("us-east-1", "http://127.0.0.1:5999"), str(tmp_path))
    assert isinstance(local, LocalRunner)
    assert local.sandbox_root == str(tmp_path / "sandbox")
    assert local.env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:5999"
    assert local.env["S3_ENDPOINT_URL"] == "http://127.0.0.1:5999"
    (tmp_path / "local.json").write_text(json.dumps(
        {"endpoint": "http://127.0.0.1:5999", "pid": 1, "sandbox": str(tmp_path / "sb")}))
    recorded = make_transport(connect("us-east-1", "http://127.0.0.1:5999"), str(tmp_path))
    assert isinstance(recorded, LocalRunner)
    assert recorded.sandbox_root == str(tmp_path / "sb")
    assert isinstance(make_transport(connect("us-east-1", None), str(tmp_path)), AwsSsm)
    forced = make_transport(connect("us-east-1", "http://127.0.0.1:5999"), str(tmp_path),
                            mode="aws")
    assert isinstance(forced, AwsSsm)
