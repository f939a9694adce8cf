"""How data-plane scripts reach an instance: SSM Run Command on AWS
(planner.aws.ssm.AwsSsm), or bash on this machine for emulated instances (LocalRunner,
here; planner.aws.ssm.make_transport chooses). Both answer with a `ScriptResult` read
from the script's `TRAINCTL_STATUS {json}` line; an empty or unparsable answer is
"unknown", never "ok".
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import replace
from typing import Protocol, runtime_checkable

from planner.dataplane.status import ScriptResult, parse_status


@runtime_checkable
class SsmTransport(Protocol):
    def run(self, instance_id: str, script: str, *, timeout: float) -> ScriptResult:
        """Run `script` (bash) on `instance_id`; never raises for a script's failure."""
        ...


def unknown(reason: str, output: str = "") -> ScriptResult:
    return ScriptResult("unknown", {"reason": reason}, output)


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
                return unknown(f"timed out after {timeout:g}s",
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
