"""`trainctl lock status | release LOCK_ID`: the apply lock (local, or under `state:` in S3)."""

from __future__ import annotations

import os

import click

from planner.cli import Options
from planner.lock import Lock


def lock_for_options(opts: Options, state: str | None, region: str | None) -> Lock:
    """The lock a command uses: S3 under an s3:// `state:` prefix, else STATE_DIR/lock."""
    from planner.lock import LocalLock

    if state and state.startswith("s3://"):
        from planner.aws.lock_store import S3Lock
        from planner.aws.session import open_aws

        aws, _how = open_aws(opts.endpoint_url, opts.state_dir,
                             opts.region or region or "us-east-1")
        return S3Lock(aws.s3, state)
    return LocalLock(opts.state_dir)


def _lock(opts: Options) -> Lock:
    """From the spec's `state:` when the spec file exists; the local lock otherwise."""
    if not os.path.exists(opts.file):
        return lock_for_options(opts, None, None)
    from planner.loader import load_spec

    spec = load_spec(opts.file)
    return lock_for_options(opts, spec.state, spec.region)


@click.group("lock")
def command() -> None:
    """The apply lock: status | release LOCK_ID."""


@command.command("status")
@click.pass_obj
def status(opts: Options) -> None:
    """Print who holds the lock, or "unlocked"."""
    lock = _lock(opts)
    info = lock.status()
    if info is None:
        click.echo("unlocked")
        return
    click.echo(f"locked: {lock.where} is {info.describe()}")
    if info.holder_gone():
        click.echo(f"hint: the holder process (pid {info.pid}) is gone; if no apply is "
                   f"running: trainctl lock release {info.id}")


@command.command("release")
@click.argument("lock_id")
@click.pass_obj
def release(opts: Options, lock_id: str) -> None:
    """Remove the lock, only if LOCK_ID is the id it holds."""
    lock = _lock(opts)
    lock.release(lock_id)      # LockError (id mismatch, not held): message, exit 1
    click.echo(f"released the lock {lock.where} (id {lock_id})")
