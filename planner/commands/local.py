"""`trainctl local up | down | status | env`: the embedded AWS emulator on 127.0.0.1."""

from __future__ import annotations

import os
from typing import Any

import click

from planner.cli import Options


def _spec(opts: Options) -> Any | None:
    """The spec at `-f` when the file exists; an invalid spec is reported, not fatal."""
    if not os.path.exists(opts.file):
        return None
    from planner.errors import TrainctlError
    from planner.loader import load_spec

    try:
        return load_spec(opts.file)
    except TrainctlError as e:
        click.echo(f"warning: {opts.file} is not valid, so no buckets are created from it:\n"
                   f"{e}", err=True)
        return None


def _region(opts: Options, spec: Any | None) -> str:
    return (opts.region or (spec.region if spec is not None else None)
            or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
            or "us-east-1")


@click.group("local")
def command() -> None:
    """The embedded AWS emulator (moto's server) on 127.0.0.1: up | down | status | env."""


@command.command("up")
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="Port on 127.0.0.1 (default: a free one).")
@click.pass_obj
def up(opts: Options, port: int | None) -> None:
    """Start the emulator (unless it runs), seed an SSM instance profile and the spec's
    S3 buckets."""
    from planner import emulator
    from planner.aws.seed import seed

    spec = _spec(opts)
    region = _region(opts, spec)
    doc, started = emulator.start(opts.state_dir, port=port, region=region)
    verb = "started" if started else "already running"
    click.echo(f"emulator {verb} at {doc['endpoint']} (pid {doc['pid']})")
    buckets = emulator.spec_buckets(spec) if spec is not None else []
    created = seed(doc["endpoint"], region, buckets=buckets)
    for line in created:
        click.echo(f"  created {line}")
    click.echo(f"recorded in {emulator.state_path(opts.state_dir)}; trainctl commands run "
               f"from here now target it. `trainctl local env` prints the shell exports.")


@command.command("down")
@click.pass_obj
def down(opts: Options) -> None:
    """Stop the emulator and forget it (its data is gone)."""
    from planner import emulator

    doc = emulator.stop(opts.state_dir)
    if doc is None:
        click.echo("emulator not running")
    else:
        click.echo(f"emulator stopped ({doc.get('endpoint')}, pid {doc.get('pid')})")


@command.command("status")
@click.pass_obj
def status(opts: Options) -> None:
    """Print whether the emulator runs, and where."""
    from planner import emulator

    doc = emulator.running(opts.state_dir)
    if doc is None:
        stale = emulator.read_state(opts.state_dir)
        hint = f" (stale record {emulator.state_path(opts.state_dir)})" if stale else ""
        click.echo(f"not running{hint}")
        return
    click.echo(f"running at {doc['endpoint']} (pid {doc['pid']}, since {doc.get('started_at')}, "
               f"sandbox {doc.get('sandbox')})")


@command.command("env")
@click.pass_obj
def env(opts: Options) -> None:
    """Print `export ...` lines pointing AWS tools at the emulator.

    Use: eval "$(trainctl local env)"
    """
    from planner import emulator
    from planner.errors import TrainctlError

    doc = emulator.running(opts.state_dir)
    if doc is None:
        raise TrainctlError("the emulator is not running: start it with `trainctl local up`")
    region = opts.region or doc.get("region") or _region(opts, None)
    for line in emulator.env_exports(doc["endpoint"], region):
        click.echo(line)
