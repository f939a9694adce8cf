"""`trainctl lock status | release LOCK_ID`: the apply lock (local, or under `state:` in S3)."""

from __future__ import annotations

import os

import click

from planner.cli import Options
from planner.lock import Lock


def lock_for_options(opts: Options, state: str | None, region: str | None) -> Lock:
    """The lock a command uses: S3 under an s3:// `state:` prefix, else STATE_DIR/lock."""
    from planner.aws.lock_store import open_lock

    return open_lock(state, opts.state_dir, opts.endpoint_url,
                     opts.region or region or "us-east-1")


def _lock(opts: Options) -> Lock:
    """From the spec's `state:` when the spec file exists; the local lock otherwise."""
    return _lock_and_project(opts)[0]


def _lock_and_project(opts: Options) -> tuple[Lock, str | None, bool]:
    """The lock, the spec's project (None without a spec) and whether state is in S3."""
    if not os.path.exists(opts.file):
        return lock_for_options(opts, None, None), None, False
    from planner.loader import load_spec

    spec = load_spec(opts.file)
    remote = bool(spec.state and spec.state.startswith("s3://"))
    return lock_for_options(opts, spec.state, spec.region), spec.project, remote


def _pulumi_troubles(opts: Options, project: str | None, remote: bool) -> list:
    """Locks and pending operations the Pulumi engine's stacks were left with (the
    local file backend; an S3 backend's are the CLI's to report)."""
    if remote:
        return []
    from planner.engines.pulumi.backend import local_backend_dir
    from planner.engines.pulumi.recovery import local_troubles

    return local_troubles(local_backend_dir(opts.state_dir), project)


@click.group("lock")
def command() -> None:
    """The apply lock: status | release LOCK_ID."""


@command.command("status")
@click.pass_obj
def status(opts: Options) -> None:
    """Print who holds the lock, or "unlocked"."""
    lock, project, remote = _lock_and_project(opts)
    info = lock.status()
    _say_pulumi_troubles(opts, project, remote)
    if info is None:
        click.echo("unlocked")
        return
    click.echo(f"locked: {lock.where} is {info.describe()}")
    if info.holder_gone():
        click.echo(f"hint: the holder process (pid {info.pid}) is gone; if no apply is "
                   f"running: trainctl lock release {info.id}")


def _say_pulumi_troubles(opts: Options, project: str | None, remote: bool) -> None:
    from planner.engines.pulumi.backend import local_backend_dir
    from planner.engines.pulumi.recovery import explain

    url = "file://" + local_backend_dir(opts.state_dir)
    for trouble in _pulumi_troubles(opts, project, remote):
        click.echo(explain(trouble, url))


@command.command("release")
@click.argument("lock_id")
@click.pass_obj
def release(opts: Options, lock_id: str) -> None:
    """Remove the lock, only if LOCK_ID is the id it holds."""
    lock, project, remote = _lock_and_project(opts)
    held = lock.status()
    lock.release(lock_id)      # LockError (id mismatch, not held): message, exit 1
    click.echo(f"released the lock {lock.where} (id {lock_id})")
    if held is not None and held.holder_gone():
        # the apply that held it is gone: so is any Pulumi lock its CLI left on this host
        from planner.engines.pulumi.recovery import remove_dead_locks

        for path in remove_dead_locks(_pulumi_troubles(opts, project, remote)):
            click.echo(f"removed the Pulumi lock {path} (its pulumi process is gone)")
    _say_pulumi_troubles(opts, project, remote)
