"""How data-plane scripts reach an instance: SSM Run Command on AWS, or bash on this
machine for emulated instances. Both answer with a `ScriptResult` read from the script's
`TRAINCTL_STATUS {json}` line; an empty or unparsable answer is "unknown", never "ok".
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable
from urllib.parse import urlparse

from planner.dataplane.status import ScriptResult, parse_status

if TYPE_CHECKING:
    from planner.aws.session import AwsContext

DOCUMENT = "AWS-RunShellScript"
MIN_SSM_TIMEOUT = 30            # SendCommand's TimeoutSeconds minimum
ONLINE_TIMEOUT = 600.0          # seconds to wait for a new instance's SSM agent
FINAL_STATUSES = ("Success", "Failed", "Cancelled", "TimedOut", "Cancelling")


@runtime_checkable
class SsmTransport(Protocol):
    def run(self, instance_id: str, script: str, *, timeout: float) -> ScriptResult:
        """Run `script` (bash) on `instance_id`; never raises for a script's failure."""
        ...


def _unknown(reason: str, output: str = "") -> ScriptResult:
    return ScriptResult("unknown", {"reason": reason}, output)


# --- AWS: SSM Run Command ------------------------------------------------------------


def _online_waiter(ssm: Any) -> Any:
    """A botocore waiter: the instance's SSM agent reports PingStatus Online."""
    from botocore.waiter import WaiterModel, create_waiter_with_client

    model = WaiterModel({
        "version": 2,
        "waiters": {"InstanceOnline": {
            "operation": "DescribeInstanceInformation",
            "delay": 5, "maxAttempts": 120,
            "acceptors": [
                {"state": "success", "matcher": "pathAny", "expected": "Online",
                 "argument": "InstanceInformationList[].PingStatus"},
                {"state": "retry", "matcher": "path", "expected": True,
                 "argument": "length(InstanceInformationList[]) == `0`"},
            ],
        }},
    })
    return create_waiter_with_client("InstanceOnline", model, ssm)


class AwsSsm:
    """SendCommand (AWS-RunShellScript), the `command_executed` waiter, then
    GetCommandInvocation; the stdout's status line decides.

    `poll_delay` is the waiter's delay in seconds (small against an emulator).
    """

    def __init__(self, aws: AwsContext, *, poll_delay: float = 2,
                 online_timeout: float = ONLINE_TIMEOUT):
        self.aws = aws
        self.poll_delay = max(1, int(poll_delay))
        self.online_timeout = online_timeout

    def wait_online(self, instance_id: str) -> bool:
        """Wait until the instance's SSM agent is registered; False when it never is."""
        from botocore.exceptions import WaiterError

        attempts = max(1, math.ceil(self.online_timeout / self.poll_delay))
        try:
            _online_waiter(self.aws.ssm).wait(
                Filters=[{"Key": "InstanceIds", "Values": [instance_id]}],
                WaiterConfig={"Delay": self.poll_delay, "MaxAttempts": attempts},
            )
        except WaiterError:
            return False
        return True

    def _send(self, instance_id: str, script: str, timeout: float) -> str:
        from botocore.exceptions import ClientError

        kwargs = {
            "InstanceIds": [instance_id], "DocumentName": DOCUMENT,
            "Parameters": {"commands": [script],
                           "executionTimeout": [str(max(1, int(timeout)))]},
            "TimeoutSeconds": max(MIN_SSM_TIMEOUT, int(timeout)),
            "Comment": "trainctl",
        }
        try:
            resp = self.aws.ssm.send_command(**kwargs)
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") != "InvalidInstanceId":
                raise
            # A new instance's agent registers a minute or so after boot.
            if not self.wait_online(instance_id):
                raise
            resp = self.aws.ssm.send_command(**kwargs)
        return str(resp["Command"]["CommandId"])

    def run(self, instance_id: str, script: str, *, timeout: float) -> ScriptResult:
        from botocore.exceptions import BotoCoreError, ClientError, WaiterError

        try:
            command_id = self._send(instance_id, script, timeout)
        except (ClientError, BotoCoreError) as e:
            return _unknown(f"SSM SendCommand failed: {e}")
        attempts = max(1, math.ceil((timeout + MIN_SSM_TIMEOUT) / self.poll_delay))
        with contextlib.suppress(WaiterError):   # read the invocation in any case
            self.aws.ssm.get_waiter("command_executed").wait(
                CommandId=command_id, InstanceId=instance_id,
                WaiterConfig={"Delay": self.poll_delay, "MaxAttempts": attempts},
            )
        try:
            inv = self.aws.ssm.get_command_invocation(CommandId=command_id,
                                                      InstanceId=instance_id)
        except (ClientError, BotoCoreError) as e:
            return _unknown(f"SSM GetCommandInvocation failed: {e}")
        return self._result(inv)

    @staticmethod
    def _result(inv: Mapping[str, Any]) -> ScriptResult:
        status = str(inv.get("Status", ""))
        stdout = str(inv.get("StandardOutputContent") or "")
        stderr = str(inv.get("StandardErrorContent") or "")
        code = inv.get("ResponseCode")
        exit_code = int(code) if isinstance(code, int) and code >= 0 else None
        result = parse_status(stdout, exit_code)
        output = stdout + (f"\n--- stderr ---\n{stderr}" if stderr.strip() else "")
        if result.ok and status != "Success":
            # A status line but the command did not finish well: never a success.
            return _unknown(f"SSM command status {status or 'missing'} after an ok line",
                            output)
        if status and status not in FINAL_STATUSES and result.state == "unknown":
            return _unknown(f"SSM command still {status}", output)
        return replace(result, output=output)


# --- this machine: the emulator's instances ------------------------------------------


def venv_bin() -> str:
    """The folder of the running interpreter (s5cmd and aws live there in the venv)."""
    return os.path.dirname(os.path.abspath(sys.executable))


def emulator_env(endpoint_url: str, region: str) -> dict[str, str]:
    """Environment that points the aws CLI, s5cmd and boto3 at an emulator."""
    return {
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_ENDPOINT_URL_S3": endpoint_url,
        "S3_ENDPOINT_URL": endpoint_url,          # s5cmd
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


class LocalRunner:
    """Runs a script with bash on this machine for an emulated instance.

    The script sees TRAINCTL_SANDBOX=<sandbox_root>/<instance_id> (created), and
    TRAINCTL_SANDBOX_ROOT=<sandbox_root> (e.g. for per-volume folders shared between
    emulated instances), `env` on top of this process's environment, and PATH starting
    with the venv's bin folder. stderr is appended to the output.
    """

    def __init__(self, sandbox_root: str, env: Mapping[str, str] | None = None):
        self.sandbox_root = os.path.abspath(sandbox_root)
        self.env = dict(env or {})

    @classmethod
    def for_endpoint(cls, sandbox_root: str, endpoint_url: str, region: str,
                     env: Mapping[str, str] | None = None) -> LocalRunner:
        return cls(sandbox_root, {**emulator_env(endpoint_url, region), **(env or {})})

    def sandbox(self, instance_id: str) -> str:
        if not instance_id or "/" in instance_id or instance_id in (".", ".."):
            raise ValueError(f"bad instance id {instance_id!r}")
        path = os.path.join(self.sandbox_root, instance_id)
        os.makedirs(path, exist_ok=True)
        return path

    def _environ(self, sandbox: str) -> dict[str, str]:
        env = {**os.environ, **self.env}
        env["PATH"] = os.pathsep.join([venv_bin(), env.get("PATH") or os.defpath])
        env["TRAINCTL_SANDBOX"] = sandbox
        env["TRAINCTL_SANDBOX_ROOT"] = self.sandbox_root
        return env

    def run(self, instance_id: str, script: str, *, timeout: float) -> ScriptResult:
        sandbox = self.sandbox(instance_id)
        with tempfile.NamedTemporaryFile("w", suffix=".sh", prefix="trainctl-",
                                         delete=False, encoding="utf-8") as f:
            f.write(script)
            path = f.name
        try:
            proc = subprocess.Popen(
                ["bash", path], cwd=sandbox, env=self._environ(sandbox),
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                text=True, start_new_session=True,
            )
            try:
                stdout, stderr = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                stdout, stderr = proc.communicate()
                return _unknown(f"timed out after {timeout:g}s",
                                _join(stdout, stderr))
        finally:
            with contextlib.suppress(OSError):
                os.remove(path)
        result = parse_status(stdout, proc.returncode)
        return replace(result, output=_join(stdout, stderr))


def _join(stdout: str | None, stderr: str | None) -> str:
    out = stdout or ""
    if stderr and stderr.strip():
        out += f"\n--- stderr ---\n{stderr}"
    return out


# --- which transport ----------------------------------------------------------------


def is_loopback(url: str | None) -> bool:
    host = urlparse(url).hostname if url else None
    return host in {"127.0.0.1", "localhost", "::1"}


def make_transport(aws: AwsContext, state_dir: str, *, mode: str = "auto") -> SsmTransport:
    """AwsSsm against AWS; LocalRunner when the endpoint is an emulator on this machine.

    `mode`: "auto" (the rule above), "aws" or "local". The sandbox is the one recorded in
    STATE_DIR/local.json by `trainctl local up`, else STATE_DIR/sandbox.
    """
    local = mode == "local" or (mode == "auto" and is_loopback(aws.endpoint_url))
    if not local:
        return AwsSsm(aws, poll_delay=1 if aws.endpoint_url else 2)
    from planner.emulator import SANDBOX_DIR, read_state

    doc = read_state(state_dir) or {}
    sandbox = doc.get("sandbox") or os.path.join(os.path.abspath(state_dir), SANDBOX_DIR)
    endpoint = aws.endpoint_url or str(doc.get("endpoint") or "")
    return LocalRunner.for_endpoint(str(sandbox), endpoint, aws.region)
