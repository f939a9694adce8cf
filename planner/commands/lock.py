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


Where = tuple[str | None, str | None]       # (the S3 `state:` or None, its region)


def _lock_and_project(opts: Options) -> tuple[Lock, str | None, Where]:
    """The lock, the spec's project (None without a spec) and where the state is."""
    if not os.path.exists(opts.file):
        return lock_for_options(opts, None, None), None, (None, None)
    from planner.loader import load_spec

    spec = load_spec(opts.file)
    remote = spec.state if spec.state and spec.state.startswith("s3://") else None
    return (lock_for_options(opts, spec.state, spec.region), spec.project,
            (remote, opts.region or spec.region))


def _pulumi_troubles(opts: Options, project: str | None, where: Where) -> list:
    """Locks and pending operations the Pulumi engine's stacks were left with, in the
    local file backend or under the `state:` S3 prefix."""
    state, region = where
    if state is not None:
        from planner.aws.session import open_aws
        from planner.engines.pulumi.recovery import s3_troubles

        aws, _how = open_aws(opts.endpoint_url, opts.state_dir, region or "us-east-1")
        return s3_troubles(aws.s3, state, project)
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
    lock, project, where = _lock_and_project(opts)
    info = lock.status()
    _say_pulumi_troubles(opts, project, where)
    if info is None:
        click.echo("unlocked")
        return
    click.echo(f"locked: {lock.where} is {info.describe()}")
    if info.holder_gone():
        click.echo(f"hint: the holder process (pid {info.pid}) is gone; if no apply is "
                   f"running: trainctl lock release {info.id}")


def _say_pulumi_troubles(opts: Options, project: str | None, where: Where) -> None:
    from planner.engines.pulumi.backend import backend_url
    from planner.engines.pulumi.recovery import explain

    url = backend_url(opts.state_dir, where[0], where[1] or "us-east-1", opts.endpoint_url)
    for trouble in _pulumi_troubles(opts, project, where):
        click.echo(explain(trouble, url))


@command.command("release")
@click.argument("lock_id")
@click.pass_obj
def release(opts: Options, lock_id: str) -> None:
    """Remove the lock, only if LOCK_ID is the id it holds."""
    lock, project, where = _lock_and_project(opts)
    held = lock.status()
    lock.release(lock_id)      # LockError (id mismatch, not held): message, exit 1
    click.echo(f"released the lock {lock.where} (id {lock_id})")
    if held is not None and held.holder_gone():
        # the apply that held it is gone: so is any Pulumi lock its CLI left on this host
        from planner.engines.pulumi.recovery import remove_dead_locks

        for path in remove_dead_locks(_pulumi_troubles(opts, project, where)):
            click.echo(f"removed the Pulumi lock {path} (its pulumi process is gone)")
    _say_pulumi_troubles(opts, project, where)
