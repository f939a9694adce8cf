"""`trainctl exec INSTANCE -- CMD...`: run a command on an instance over SSM.

Prints the command's whole stdout and stderr (paged back, never cut at SSM's 24,000
characters) and exits with its status. trainctl's own failures (no such instance, SSM
cannot run it) exit 1 with a message.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TextIO

import click

from planner.cli import Options


def _writer(stream: TextIO) -> Callable[[bytes], None]:
    """Bytes as they come, to the stream's binary buffer when it has one."""
    buf = getattr(stream, "buffer", None)

    def write(data: bytes) -> None:
        if buf is not None:
            buf.write(data)
            buf.flush()
        else:
            stream.write(data.decode("utf-8", "replace"))
            stream.flush()
    return write


@click.command("exec", context_settings={"ignore_unknown_options": True})
@click.argument("instance")
@click.argument("argv", nargs=-1, required=True, type=click.UNPROCESSED)
@click.option("--workdir", metavar="PATH", default=None,
              help="Working directory on the instance (default /).")
@click.option("--timeout", type=click.IntRange(1, 48 * 3600), default=3600,
              show_default=True, help="Seconds before the command is stopped.")
@click.pass_obj
def command(opts: Options, instance: str, argv: tuple[str, ...], workdir: str | None,
            timeout: int) -> None:
    """Run CMD on INSTANCE (a name of the spec) and exit with its status.

    \b
    Examples:
      trainctl exec trainer -- nvidia-smi
      trainctl exec trainer -- bash -c 'df -h /data | tail -1'
      trainctl exec trainer --workdir /scratch -- ls -la checkpoints

    The command runs as given, without a shell: use `bash -c '...'` for pipes. On the
    emulator it runs on this machine, in the instance's sandbox folder.
    """
    from planner.aws.session import aws_errors
    from planner.commands.instances import open_remote
    from planner.dataplane.remote import run_command

    remote = open_remote(opts, instance)
    with aws_errors():
        result = run_command(remote.ssm, remote.instance_id, argv, workdir=workdir,
                             timeout=timeout, stdout=_writer(sys.stdout),
                             stderr=_writer(sys.stderr))
    sys.exit(result.exit_code)
