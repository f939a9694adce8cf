"""`trainctl logs INSTANCE [--follow]`: the training log (`training.log` in the spec)."""

from __future__ import annotations

import sys
import time

import click

from planner.cli import Options
from planner.errors import TrainctlError

FOLLOW_INTERVAL = 2.0


@click.command("logs")
@click.argument("instance")
@click.option("--follow", is_flag=True, help="Keep printing what the job appends.")
@click.option("--tail", "tail_bytes", type=click.IntRange(0), default=None, metavar="BYTES",
              help="Start this many bytes before the end (default: the whole log).")
@click.option("--interval", type=click.FloatRange(0.2, 60), default=FOLLOW_INTERVAL,
              hidden=True)
@click.pass_obj
def command(opts: Options, instance: str, follow: bool, tail_bytes: int | None,
            interval: float) -> None:
    """Show INSTANCE's training log (the spec's `training.log`).

    \b
    Examples:
      trainctl logs trainer
      trainctl logs trainer --follow          (Ctrl-C to stop)
      trainctl logs trainer --tail 20000
    """
    from planner.aws.session import aws_errors
    from planner.commands.instances import open_remote
    from planner.dataplane.remote import copy_file, read_page

    remote = open_remote(opts, instance)
    log = remote.instance.training.log if remote.instance.training else None
    if not log:
        raise TrainctlError(f"{remote.spec.source_file}: instance {remote.instance.name} has "
                            "no `training.log`: set it to the job's log file")
    out = sys.stdout.buffer

    def write(data: bytes) -> None:
        out.write(data)
        out.flush()

    with aws_errors():
        _data, size, exists = read_page(remote.ssm, remote.instance_id, log, 0, 0)
        if not exists and not follow:
            raise TrainctlError(f"{log} does not exist on {remote.instance_id} yet")
        offset = max(0, size - tail_bytes) if tail_bytes is not None else 0
        offset = copy_file(remote.ssm, remote.instance_id, log, size, write, offset=offset)
        while follow:
            time.sleep(interval)
            _data, size, _exists = read_page(remote.ssm, remote.instance_id, log, 0, 0)
            if size < offset:                  # rotated or truncated: start again
                click.echo(f"--- {log} was truncated; from its start ---", err=True)
                offset = 0
            offset = copy_file(remote.ssm, remote.instance_id, log, size, write,
                               offset=offset)
