"""`trainctl apply [PLANFILE]`: carry a plan out (DESIGN section 6).

Order: engine check, saved plan parsed, spec loaded, lock taken, live state read again
(a fresh plan), staleness and safety from that fresh plan, confirmation, then the
executor with the journal. The plan file is never trusted for safety: which changes are
blocked always comes from the fresh evaluation (and the engine checks the rules again
just before each destructive call).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import click

from planner.cli import Options
from planner.digest import canonical_json
from planner.errors import StalePlanError, TrainctlError, first_few
from planner.plan import Change, Plan, change_to_json, plan_to_json

EXIT_INTERRUPTED = 130


class ApplyRefused(TrainctlError):
    """apply will not go on (no confirmation possible, cost limits, another engine...)."""


def check_engine(engine: str) -> None:
    """The registry's engine `engine` can run here, or EngineUnavailable (exit 1) before
    anything is read or changed (`--engine pulumi` without the CLI)."""
    from planner.engines import EngineUnavailable, engine_class

    try:
        target = engine_class(engine)
    except KeyError:
        raise EngineUnavailable(f"unknown engine {engine!r}") from None
    check = getattr(target, "check_available", None)
    if callable(check):
        check()


def cost_refusal(plan: Plan) -> str:
    why = []
    if plan.cost.exceeded:
        why.append(f"the plan exceeds the spec's cost limits ({', '.join(plan.cost.exceeded)})")
    if plan.cost.unknown:
        why.append("its cost is unknown: " + "; ".join(
            u.message for u in plan.cost.unknown_prices))
    return (" and ".join(why) + "; cost.enforce is true: pass --allow-cost to apply anyway")


def _fmt_time(created_at: str) -> str:
    return f"the plan was made ({created_at})"


def check_saved_plan(saved: Plan, fresh: Plan) -> None:
    """Refuse a saved plan whose spec or live state moved on, or that was edited."""
    if saved.spec_digest != fresh.spec_digest:
        raise StalePlanError(f"stale plan: the spec changed since {_fmt_time(saved.created_at)}; "
                             "run `trainctl plan` again")
    if saved.live_digest != fresh.live_digest:
        raise StalePlanError(f"stale plan: live state changed since "
                             f"{_fmt_time(saved.created_at)}; run `trainctl plan` again")
    want = {c.address: _comparable(c) for c in saved.changes}
    have = {c.address: _comparable(c) for c in fresh.changes}
    differ = sorted(a for a in want.keys() | have.keys() if want.get(a) != have.get(a))
    fresh_blocked = {c.address for c in fresh.changes if c.blocked}
    unblocked = sorted(c.address for c in saved.changes
                       if c.blocked and c.address not in fresh_blocked)
    also = [a for a in differ if a not in unblocked]
    if unblocked and also:
        raise StalePlanError(
            f"the plan file was made while {first_few(unblocked)} "
            f"{'was' if len(unblocked) == 1 else 'were'} blocked; unblocked now (by --force "
            "or --allow-delete, or because min-age has passed), "
            f"{'it changes' if len(unblocked) == 1 else 'they change'} {first_few(also)} too, "
            "which the plan file does not show. Review the whole plan: `trainctl apply` "
            "with the same flags and no plan file shows it and asks before acting, or make "
            "a new plan file with `trainctl plan -o FILE`")
    if differ:
        raise StalePlanError(
            "the plan file's changes differ from a fresh plan of the same spec and live "
            f"state (was it edited?): {first_few(differ)}")


def _comparable(c: Change) -> bytes:
    """A change as the file holds it, less blocked_by (re-evaluated at apply time)."""
    doc = change_to_json(c)
    doc.pop("blocked_by")
    return canonical_json(doc)


def with_fresh_changes(saved: Plan, fresh: Plan) -> Plan:
    """The saved plan (its id names the journal and client tokens) carrying the fresh
    plan's changes and rules: check_saved_plan proved them equal but for blocked_by, and
    nothing the engine acts on is taken from the file."""
    return replace(saved, changes=fresh.changes, warnings=fresh.warnings, cost=fresh.cost,
                   cost_enforced=fresh.cost_enforced)


def save_plan(plan: Plan, state_dir: str) -> str:
    path = os.path.join(state_dir, "plans", f"{plan.plan_id}.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(plan_to_json(plan), f, indent=2)
        f.write("\n")
    os.replace(tmp, path)
    return path


@contextlib.contextmanager
def stop_on_sigint(stop: threading.Event) -> Iterator[None]:
    """First Ctrl-C sets `stop` (running steps finish); a second one interrupts at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        stop.set()
        click.echo("\nInterrupted: no new steps start; waiting for running steps "
                   "(Ctrl-C again to stop now).", err=True)
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _stdin_is_terminal() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (ValueError, OSError):
        return False


def list_blocked(plan: Plan) -> None:
    blocked = [c for c in plan.changes if c.blocked]
    if not blocked:
        return
    n = len(blocked)
    click.echo(f"{n} change{'s' if n != 1 else ''} blocked, not carried out:")
    for c in blocked:
        for b in c.blocked_by:
            click.echo(f"  {c.address} ({c.kind}): {b.rule.value}: {b.message}")


def project_key(opts: Options, project: str, region: str) -> str:
    """What the machine-wide apply lock is keyed by: the target (the AWS account, or the
    endpoint URL), the region and the project. Says the target (stderr) on the way."""
    from planner.aws.session import open_aws

    aws, _how = open_aws(opts.endpoint_url, opts.state_dir, region)
    where = f"account {aws.account}" if aws.account else f"endpoint {aws.endpoint_url}"
    return f"project {project} ({where}, region {region})"


def make_engine(opts: Options, spec: Any, plan: Plan, overrides: Any, region: str,
                engine: str = "direct") -> Any:
    """The engine `engine` (registry) on the endpoint plan used, with the SSM transport."""
    from planner.aws.session import open_aws
    from planner.aws.ssm import make_transport
    from planner.engines import EngineContext, build_engine

    aws, _how = open_aws(opts.endpoint_url, opts.state_dir, region, retry_mode="standard")
    transport = make_transport(aws, opts.state_dir)
    ctx = EngineContext(spec=spec, aws=aws, ssm=transport, plan=plan, overrides=overrides,
                        endpoint_url=aws.endpoint_url, state_dir=opts.state_dir)
    return build_engine(engine, ctx)


@click.command("apply")
@click.argument("planfile", required=False, type=click.Path(dir_okay=False))
@click.option("--auto-approve", is_flag=True, help="Do not ask for confirmation.")
@click.option("--parallelism", type=click.IntRange(1, 100), default=10, show_default=True,
              help="Steps run at the same time.")
@click.option("--engine", "engine_name", type=click.Choice(["direct", "pulumi"]),
              default="direct", show_default=True)
@click.option("--force", is_flag=True,
              help="Override min-age only (never persistent, protected or training-running).")
@click.option("--allow-delete", multiple=True, metavar="ADDR|ID",
              help="Allow deleting or replacing this persistent/protected resource (ADDR), "
                   "or delete this duplicate (ID: vol-..., i-...).")
@click.option("--allow-cost", is_flag=True,
              help="Apply although cost limits are exceeded or a price is unknown.")
@click.option("--stop-training", "stop_training", multiple=True, metavar="instance.NAME",
              help="Stop the training job on this instance gracefully (SIGTERM, "
                   "training.grace_seconds, SIGKILL, checkpoint sync) where a teardown "
                   "step needs it gone (repeatable).")
@click.option("--destroy", is_flag=True,
              help="Delete everything trainctl manages (persistent/protected volumes stay).")
@click.option("--target", "targets", multiple=True, metavar="ADDR",
              help="Apply only this address and what it depends on (repeatable).")
@click.pass_obj
def command(opts: Options, planfile: str | None, auto_approve: bool, parallelism: int,
            engine_name: str, force: bool, allow_delete: tuple[str, ...],
            allow_cost: bool, destroy: bool = False, targets: tuple[str, ...] = (),
            stop_training: tuple[str, ...] = ()) -> None:
    """Carry out a plan: a saved PLANFILE, or one made now and confirmed.

    \b
    Examples:
      trainctl apply                          plan, show, ask, apply
      trainctl apply plan.json                exactly a reviewed plan file
      trainctl apply --target volume.scratch  only that address and its dependencies
      trainctl apply --destroy                the same as `trainctl destroy`
    """
    from planner.commands.lock import lock_for_options
    from planner.commands.plan import make_plan
    from planner.commands.show import read_plan_file
    from planner.loader import load_spec
    from planner.lock import holding, machine_holding
    from planner.rules import Overrides

    check_engine(engine_name)
    if planfile and (destroy or targets):
        raise ApplyRefused("--destroy and --target choose what to plan; a saved plan file "
                           "already says (make it with `trainctl plan --destroy` or "
                           "`--target`)")
    if targets:
        click.echo("Warning: applying with --target: only part of the spec converges. "
                   "Targeting is for exceptions (a stuck resource, a fix); run a full "
                   "`trainctl apply` afterwards.", err=True)
    saved = read_plan_file(planfile) if planfile else None
    spec = load_spec(opts.file)
    region = opts.region or spec.region
    if saved is not None and (saved.project, saved.region) != (spec.project, region):
        raise ApplyRefused(f"{planfile}: plan is for project {saved.project} / region "
                           f"{saved.region}, the spec is for project {spec.project} / "
                           f"region {region}")
    stops = stop_training_addresses(stop_training)
    overrides = Overrides(force=force, allow_delete=frozenset(allow_delete),
                          allow_cost=allow_cost, stop_training=stops)
    color = not opts.no_color and sys.stdout.isatty()
    label = f"apply {planfile}" if planfile else "apply"
    # The folder's (or the state prefix's) lock refuses at once; the machine-wide one of
    # this project then waits for an apply from another folder.
    with holding(lock_for_options(opts, spec.state, region), label,
                 say=lambda m: click.echo(m, err=True)), \
            machine_holding(project_key(opts, spec.project, region), label,
                            os.path.dirname(os.path.abspath(opts.file)),
                            on_wait=lambda msg: click.echo(msg, err=True)):
        options = saved.options if saved is not None else None
        spec, _graph, _live, fresh = make_plan(
            opts,
            destroy=options.destroy if options else destroy,
            targets=options.targets if options else targets,
            overrides=overrides,
            now=datetime.now(UTC),
        )
        shown = ""
        if saved is not None:
            check_saved_plan(saved, fresh)
            plan = with_fresh_changes(saved, fresh)
        else:
            from planner.render.text import render_text

            plan = fresh
            shown = render_text(plan, color=color)
            click.echo(shown, nl=False, color=color)
        if not plan.has_changes:
            list_blocked(plan)
            if "No changes." not in shown:
                click.echo("No changes.")
            return
        if not plan.applyable and not allow_cost:
            raise ApplyRefused(cost_refusal(plan))
        check_stop_training(plan, stops)
        if saved is None and not auto_approve:
            if not _stdin_is_terminal():
                raise ApplyRefused("refusing to apply without confirmation: stdin is not a "
                                   "terminal; pass --auto-approve, or apply a saved plan "
                                   "(trainctl plan -o plan.json; trainctl apply plan.json)")
            confirm(plan)
        rc = run_plan(opts, spec, plan, overrides, region, parallelism, color, engine_name)
        record_ledger(opts, spec, region, plan)
        if spec.state and spec.state.startswith("s3://"):
            share_records(opts, spec.state, region, plan)
    if rc:
        sys.exit(rc)


def record_ledger(opts: Options, spec: Any, region: str, plan: Plan | None = None) -> None:
    """Bring the cost ledger up to what exists now (launches, changes, removals), so spend
    so far survives a terminate. A failure here is only a warning: the apply is done."""
    from planner.aws.ledger_store import LedgerStore
    from planner.aws.session import aws_errors, open_aws

    try:
        aws = open_aws(opts.endpoint_url, opts.state_dir, region, announce=False)[0]
        with aws_errors():
            ours = frozenset(c.id for c in (plan.changes if plan else ())
                             if c.deletes and c.id and not c.blocked)
            LedgerStore(opts.state_dir, spec.state, aws.s3).update(
                aws.ec2, spec.project, datetime.now(UTC), ours)
    except TrainctlError as e:
        click.echo(f"warning: the cost ledger was not updated: {e}", err=True)


def stop_training_addresses(names: tuple[str, ...]) -> frozenset[str]:
    """`--stop-training instance.NAME` (a bare NAME is taken as instance.NAME: only
    instances run training jobs); anything else is a usage error."""
    import re

    out = set()
    for n in names:
        address = n if n.startswith("instance.") else f"instance.{n}"
        if not re.fullmatch(r"instance\.[A-Za-z0-9][A-Za-z0-9_-]*", address):
            raise click.UsageError(f"--stop-training {n}: expected instance.NAME")
        out.add(address)
    return frozenset(out)


def check_stop_training(plan: Plan, stops: frozenset[str]) -> None:
    """Every --stop-training names an instance this plan tears down or replaces (or
    whose volumes it unmounts or detaches, or refills); a typo never passes silently."""
    touched = set()
    for c in plan.changes:
        if c.blocked or c.is_noop:
            continue
        if c.address.startswith("instance.") and c.deletes:
            touched.add(c.address)
        elif c.type.value in ("mount", "attachment", "prewarm", "sync"):
            touched.add("instance." + c.name.split(".", 1)[0])
    unknown = sorted(stops - touched)
    if unknown:
        raise ApplyRefused(f"--stop-training {', '.join(unknown)}: this plan does not "
                           "unmount, detach, refill or terminate anything there")


def confirm(plan: Plan) -> None:
    """Terraform's rule: a plan that deletes or replaces anything needs the word `yes`;
    one that only creates and updates takes y/N."""
    doomed = [c.address for c in plan.changes if c.deletes and not c.blocked]
    if not doomed:
        if not click.confirm("Do you want to perform these actions?", default=False):
            raise ApplyRefused("Apply cancelled; nothing changed.")
        return
    click.echo(f"This plan deletes or replaces {first_few(doomed)}.")
    answer = click.prompt("Do you want to perform these actions? Only 'yes' will be "
                          "accepted to approve", default="", show_default=False)
    if answer.strip() != "yes":
        raise ApplyRefused("Apply cancelled; nothing changed (deleting or replacing "
                           "needs the word yes).")


def share_records(opts: Options, state: str, region: str, plan: Plan) -> None:
    """Copy the applied plan and its journal under the s3:// `state:` prefix (best effort)."""
    from planner.aws.session import open_aws
    from planner.journal import journal_path
    from planner.manifest import split_s3_uri

    bucket, prefix = split_s3_uri(state)
    prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
    files = {
        f"{prefix}plans/{plan.plan_id}.json":
            os.path.join(opts.state_dir, "plans", f"{plan.plan_id}.json"),
        f"{prefix}journal/{plan.plan_id}.jsonl": journal_path(opts.state_dir, plan.plan_id),
    }
    try:
        s3 = open_aws(opts.endpoint_url, opts.state_dir, region)[0].s3
        for key, path in files.items():
            with open(path, "rb") as f:
                s3.put_object(Bucket=bucket, Key=key, Body=f.read())
    except Exception as e:  # the apply is done; a copy that fails is only a warning
        click.echo(f"warning: could not copy the plan and journal to {state}: {e}", err=True)


def run_plan(opts: Options, spec: Any, plan: Plan, overrides: Any, region: str,
             parallelism: int, color: bool, engine_name: str = "direct") -> int:
    """Execute `plan` with the journal and progress; return the exit code."""
    from planner.executor import execute, phase_graph, step_order
    from planner.journal import Journal, journal_path
    from planner.progress import ApplyProgress

    save_plan(plan, opts.state_dir)
    list_blocked(plan)
    engine = make_engine(opts, spec, plan, overrides, region, engine_name)
    steps = step_order(phase_graph(plan.changes))
    stop = threading.Event()
    path = journal_path(opts.state_dir, plan.plan_id)
    with Journal(path, plan.plan_id) as journal, stop_on_sigint(stop), \
            ApplyProgress(steps, color=color) as progress:
        result = execute(plan, engine, parallelism=parallelism, journal=journal,
                         on_event=progress, stop=stop)
    for s in result.steps:
        if s.status == "failed":
            click.echo(f"failed: {s.action.value} {s.address}: {s.message}", err=True)
    click.echo(result.summary_line())
    click.echo(f"Journal: {os.path.relpath(path)}")
    if result.interrupted:
        return EXIT_INTERRUPTED
    return 0 if result.ok else 1

