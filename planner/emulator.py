"""The embedded AWS emulator: moto's server on 127.0.0.1, recorded in STATE_DIR/local.json.

`trainctl local up` starts it detached (it outlives the command), seeds what instances
need (the `trainctl-ssm` instance profile) and the S3 buckets the spec names. Later
commands find it through `planner.aws.session.resolve_target`, which reads local.json
and refuses a recorded emulator that does not answer.
SSM steps for emulated instances run on this machine in STATE_DIR/sandbox/INSTANCE_ID
(see `planner.ssm.LocalRunner`).

Seeding it (planner.aws.seed) is the AWS side; this module only starts, records and
stops the server.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from typing import Any

from planner.errors import TrainctlError
from planner.procs import pid_alive

STATE_FILE = "local.json"
LOG_FILE = "local.log"
SANDBOX_DIR = "sandbox"
HOST = "127.0.0.1"
START_TIMEOUT = 60.0          # seconds until the server must answer
STOP_TIMEOUT = 10.0           # seconds between SIGTERM and SIGKILL
PROFILE_NAME = "trainctl-ssm"
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}
class EmulatorError(TrainctlError):
    """The emulator could not be started, reached or stopped."""


# --- the record --------------------------------------------------------------------


def state_path(state_dir: str) -> str:
    return os.path.join(state_dir, STATE_FILE)


def read_state(state_dir: str) -> dict[str, Any] | None:
    """local.json's content, or None when there is none. A record that is not a file,
    not JSON or not of planner.fileschemas.LOCAL_SCHEMA (an endpoint that is not an
    http(s) URL included) is a FileCheckError naming the file and field: never ignored,
    so commands cannot switch silently from the emulator to other AWS credentials."""
    from planner.filecheck import FileCheckError, check, read_json
    from planner.fileschemas import LOCAL_SCHEMA
    from planner.statedir import check_state_dir

    check_state_dir(state_dir)
    path = state_path(state_dir)
    if not os.path.lexists(path):
        return None
    what = "emulator record (trainctl local up writes it)"
    from planner.endpoint import endpoint_problem

    hint = f"\nhint: if no emulator runs from this folder, remove {path}"
    try:
        doc = read_json(path, what)
        check(path, what, doc, LOCAL_SCHEMA)
    except FileCheckError as e:
        raise FileCheckError(f"{e}{hint}") from None
    problem = endpoint_problem(doc["endpoint"])
    if problem:
        raise FileCheckError(f"{path}: not a valid {what}:\n{path}: endpoint: {problem}{hint}")
    return dict(doc)


def _write_state(state_dir: str, doc: dict[str, Any]) -> None:
    os.makedirs(state_dir, exist_ok=True)
    tmp = state_path(state_dir) + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, state_path(state_dir))


def _reap(pid: int) -> None:
    """Collect `pid` if it is our own exited child (so it does not linger as a zombie)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _alive(pid: int) -> bool:
    _reap(pid)
    return pid_alive(pid)


def _is_moto(pid: int) -> bool:
    """True when `pid` runs moto's server (guards against a recycled pid)."""
    if not _alive(pid):
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read()
    except OSError:
        return True      # no /proc here: trust the pid
    return any(name in cmdline for name in (b"planner.emulator_server", b"moto.server",
                                            b"moto_server"))


def answers(endpoint: str, timeout: float = 1.0) -> bool:
    """True when an HTTP server answers at `endpoint` (any status counts)."""
    try:
        with urllib.request.urlopen(endpoint + "/moto-api/", timeout=timeout):
            return True
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):
        return False


def running(state_dir: str) -> dict[str, Any] | None:
    """The record of a live emulator, or None."""
    doc = read_state(state_dir)
    if not doc:
        return None
    try:
        pid = int(doc.get("pid", 0))
    except (TypeError, ValueError):
        return None
    return doc if _is_moto(pid) else None


# --- up / down ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def check_port_free(port: int) -> None:
    """EmulatorError when something (another emulator, any program) holds HOST:PORT."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((HOST, port))
        except OSError as e:
            raise EmulatorError(
                f"cannot start the emulator: port {port} on {HOST} is already in use "
                f"({e.strerror or e}; another emulator or program holds it); nothing was "
                f"recorded. Pick another with --port, or leave --port out for a free one"
            ) from None


def _server_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("MOTO_ENABLE_AMI_VALIDATION", None)   # the spec's AMI ids need not exist
    env["MOTO_IAM_LOAD_MANAGED_POLICIES"] = "true"  # AmazonSSMManagedInstanceCore exists
    return env


def start(state_dir: str, *, port: int | None = None, region: str = "us-east-1",
          timeout: float = START_TIMEOUT) -> tuple[dict[str, Any], bool]:
    """Start moto's server unless one is recorded and alive. Returns (record, started)."""
    current = running(state_dir)
    if current is not None:
        return current, False
    if port:
        check_port_free(port)
    os.makedirs(state_dir, exist_ok=True)
    log_path = os.path.join(state_dir, LOG_FILE)
    attempts = 1 if port else 3       # a free port can be taken before moto binds it
    last_error = ""
    for _ in range(attempts):
        p = port or free_port()
        endpoint = f"http://{HOST}:{p}"
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "planner.emulator_server", "-H", HOST, "-p", str(p)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=_server_env(), start_new_session=True, close_fds=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                last_error = f"moto's server exited with code {proc.returncode}"
                break
            if answers(endpoint) and proc.poll() is None:
                sandbox = os.path.join(os.path.abspath(state_dir), SANDBOX_DIR)
                os.makedirs(sandbox, exist_ok=True)
                doc = {
                    "endpoint": endpoint,
                    "pid": proc.pid,
                    "started_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "sandbox": sandbox,
                    "region": region,
                    "log": os.path.abspath(log_path),
                }
                _write_state(state_dir, doc)
                return doc, True
            time.sleep(0.2)
        else:
            last_error = f"moto's server did not answer on {endpoint} within {timeout:.0f}s"
            _terminate(proc.pid, STOP_TIMEOUT)
    raise EmulatorError(f"cannot start the emulator: {last_error} (log: {log_path})")


def _terminate(pid: int, timeout: float) -> None:
    """SIGTERM `pid` (its whole session), then SIGKILL when it is still alive."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not _alive(pid):
                return
            time.sleep(0.1)
    if _alive(pid):
        raise EmulatorError(f"the emulator (pid {pid}) did not stop")


def stop(state_dir: str, *, timeout: float = STOP_TIMEOUT) -> dict[str, Any] | None:
    """Stop the recorded emulator and remove local.json. Returns the record it stopped.
    An invalid record (not JSON, wrong fields) is forgotten: no pid in it can be trusted."""
    from planner.filecheck import FileCheckError

    try:
        doc = read_state(state_dir)
    except FileCheckError:
        if not os.path.isfile(state_path(state_dir)) or os.path.islink(state_path(state_dir)):
            raise
        os.remove(state_path(state_dir))
        return {"endpoint": "an invalid record, forgotten", "pid": "?"}
    if doc is None:
        return None
    try:
        pid = int(doc.get("pid", 0))
    except (TypeError, ValueError):
        pid = 0
    if pid and _is_moto(pid):
        _terminate(pid, timeout)
    with contextlib.suppress(FileNotFoundError):
        os.remove(state_path(state_dir))
    return doc


def env_exports(endpoint: str, region: str) -> list[str]:
    """Shell lines that point the AWS CLI, boto3, s5cmd and trainctl at the emulator."""
    values = {
        "AWS_ENDPOINT_URL": endpoint,
        **FAKE_CREDENTIALS,
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
    }
    return [f"export {k}={v}" for k, v in values.items()]


# --- seeding -----------------------------------------------------------------------


def spec_buckets(spec: Any) -> list[str]:
    """Every S3 bucket the spec names: dataset sources and stages, checkpoints, state."""
    uris: list[str] = []
    for ds in spec.datasets.values():
        uris += [ds.source, ds.stage or ""]
    for inst in spec.instances.values():
        if inst.checkpoints is not None:
            uris.append(inst.checkpoints.sync_to or "")
    uris.append(spec.state or "")
    buckets = [u[5:].split("/", 1)[0] for u in uris if u.startswith("s3://")]
    return sorted({b for b in buckets if b})
