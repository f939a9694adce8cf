"""Shared pieces for the data-plane tests (no tests here): a transport that runs scripts
with bash on this machine, PATH control for s5cmd / aws, and loop devices."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from planner.dataplane.status import ScriptResult, parse_status

VENV_BIN = Path(sys.executable).parent
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BASH = shutil.which("bash") or "/bin/bash"


class BashTransport:
    """Runs a script with bash here (a file, like SSM does), sandboxed per instance."""

    def __init__(self, sandbox_root: Path | None = None,
                 env: Mapping[str, str] | None = None):
        self.sandbox_root = sandbox_root
        self.env = dict(env or {})
        self.runs: list[ScriptResult] = []

    def sandbox(self, instance_id: str) -> Path:
        assert self.sandbox_root is not None
        return self.sandbox_root / instance_id

    def run(self, instance_id: str, script: str, *, timeout: float) -> ScriptResult:
        env = {**os.environ, **self.env}
        if self.sandbox_root is not None:
            sb = self.sandbox(instance_id)
            sb.mkdir(parents=True, exist_ok=True)
            env["TRAINCTL_SANDBOX"] = str(sb)
            env["TRAINCTL_SANDBOX_ROOT"] = str(self.sandbox_root)
        with tempfile.NamedTemporaryFile("w", suffix=".sh", delete=False) as f:
            f.write(script)
        try:
            p = subprocess.run([BASH, f.name], env=env, stdin=subprocess.DEVNULL,
                               capture_output=True, text=True, timeout=min(timeout, 120))
        finally:
            os.unlink(f.name)
        result = replace(parse_status(p.stdout, p.returncode),
                         output=p.stdout + ("\n--- stderr ---\n" + p.stderr if p.stderr else ""))
        self.runs.append(result)
        return result


def tool_path(tmp: Path, *tools: str) -> str:
    """A PATH where, of s5cmd and aws, only TOOLS exist."""
    d = tmp / ("bin-" + "-".join(tools or ("none",)))
    d.mkdir(exist_ok=True)
    for t in tools:
        link = d / t
        if not link.exists():
            link.symlink_to(VENV_BIN / t)
    for t in ("s5cmd", "aws"):
        assert t in tools or shutil.which(t, path=SYSTEM_PATH) is None, f"{t} on {SYSTEM_PATH}"
    return f"{d}:{SYSTEM_PATH}"


def path_without(tmp: Path, *hidden: str) -> str:
    """A PATH of symlinks to the system's commands, minus HIDDEN."""
    d = tmp / ("without-" + "-".join(hidden))
    d.mkdir(exist_ok=True)
    for folder in reversed(SYSTEM_PATH.split(":")):
        if not os.path.isdir(folder):
            continue
        for name in os.listdir(folder):
            link = d / name
            if name not in hidden and not link.exists() and not link.is_symlink():
                link.symlink_to(os.path.join(folder, name))
    return str(d)


def s3_env(endpoint: str) -> dict[str, str]:
    """Point s5cmd and the aws CLI at the moto server (never real AWS)."""
    return {"AWS_ENDPOINT_URL": endpoint, "AWS_EC2_METADATA_DISABLED": "true"}


def s3_client(endpoint: str):  # type: ignore[no-untyped-def]
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")


def loop_unavailable() -> str | None:
    """Why loop-device tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "loop devices and mount need root"
    if not os.path.exists("/dev/loop-control"):
        return "no /dev/loop-control (loop devices unavailable in this container)"
    for tool in ("losetup", "mount", "umount", "blkid", "findmnt", "mkfs.ext4", "blockdev"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None


class LoopDevice:
    def __init__(self, backing: Path, size: str = "64M"):
        self.backing = backing
        subprocess.run(["truncate", "-s", size, str(backing)], check=True)
        p = subprocess.run(["losetup", "-f", "--show", str(backing)], capture_output=True,
                           text=True)
        if p.returncode != 0:
            raise OSError(f"losetup is not permitted here: {p.stderr.strip()}")
        self.path = p.stdout.strip()

    def grow(self, size: str) -> None:
        subprocess.run(["truncate", "-s", size, str(self.backing)], check=True)
        subprocess.run(["losetup", "-c", self.path], check=True)

    def mountpoints(self) -> list[str]:
        p = subprocess.run(["findmnt", "-rn", "-S", self.path, "-o", "TARGET"],
                           capture_output=True, text=True)
        return [ln for ln in p.stdout.splitlines() if ln]

    def close(self) -> None:
        for target in reversed(self.mountpoints()):
            subprocess.run(["umount", "-l", target.encode().decode("unicode_escape")])
        subprocess.run(["losetup", "-d", self.path])
