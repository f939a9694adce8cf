"""Day-2 remote operations over an SSM transport: run a command, read a file in pages.

SSM keeps only the first 24,000 characters of a command's stdout, so nothing long travels
in one answer: `exec` leaves the command's stdout and stderr in files on the instance, and
they come back in base64 pages small enough for any transport.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from planner.dataplane import scripts
from planner.dataplane.steps import Transport
from planner.errors import TrainctlError

PAGE_BYTES = 12_000          # 16,000 base64 characters: well under SSM's 24,000
READ_TIMEOUT = 120.0


class RemoteError(TrainctlError):
    """A remote operation whose answer was a failure or could not be read."""


@dataclass(frozen=True)
class CommandResult:
    exit_code: int
    stdout_bytes: int
    stderr_bytes: int


def _int(data: dict[str, object], key: str) -> int:
    v = data.get(key)
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise RemoteError(f"unreadable answer from the instance: {key} = {v!r}")
    return v


def read_page(ssm: Transport, instance_id: str, path: str, offset: int,
              length: int = PAGE_BYTES, *, remove_dir: str | None = None
              ) -> tuple[bytes, int, bool]:
    """(bytes from OFFSET, the file's size now, whether it exists)."""
    script = scripts.read_output_script(path=path, offset=offset, length=length,
                                        remove_dir=remove_dir)
    result = ssm.run(instance_id, script, timeout=READ_TIMEOUT)
    if not result.ok:
        raise RemoteError(f"cannot read {path} on {instance_id}: {result.message()}")
    raw = result.data.get("data")
    if not isinstance(raw, str):
        raise RemoteError(f"unreadable answer from {instance_id}: no data")
    try:
        data = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as e:
        raise RemoteError(f"unreadable answer from {instance_id}: {e}") from None
    return data, _int(result.data, "size"), result.data.get("exists") is True


def copy_file(ssm: Transport, instance_id: str, path: str, size: int,
              out: Callable[[bytes], object], *, offset: int = 0) -> int:
    """Send bytes OFFSET..SIZE of PATH to `out`, page by page; the offset reached."""
    while offset < size:
        data, _now, _exists = read_page(ssm, instance_id, path, offset)
        if not data:
            raise RemoteError(f"{path} on {instance_id} shrank while it was read")
        out(data)
        offset += len(data)
    return offset


def run_command(ssm: Transport, instance_id: str, argv: Sequence[str], *,
                workdir: str | None, timeout: float,
                stdout: Callable[[bytes], object], stderr: Callable[[bytes], object]
                ) -> CommandResult:
    """Run ARGV (no shell) on the instance; its whole output goes to the callbacks."""
    run_id = uuid.uuid4().hex
    result = ssm.run(instance_id, scripts.exec_script(run_id=run_id, argv=argv,
                                                      workdir=workdir), timeout=timeout)
    if not result.ok:
        raise RemoteError(f"could not run the command on {instance_id}: {result.message()}")
    outcome = CommandResult(exit_code=_int(result.data, "exit_code"),
                            stdout_bytes=_int(result.data, "stdout_bytes"),
                            stderr_bytes=_int(result.data, "stderr_bytes"))
    folder = f"/var/tmp/trainctl/exec/{run_id}"
    copy_file(ssm, instance_id, f"{folder}/stdout", outcome.stdout_bytes, stdout)
    copy_file(ssm, instance_id, f"{folder}/stderr", outcome.stderr_bytes, stderr)
    # one last empty read removes the output folder
    read_page(ssm, instance_id, f"{folder}/stderr", 0, 0, remove_dir=folder)
    return outcome
