"""Applying as a function (DESIGN section 6).

Order: engine check, saved plan parsed, spec loaded (once), lock taken, live state read
again (a fresh plan of that same spec), staleness and safety from that fresh plan,
confirmation, then the executor with the journal. The plan file is never trusted for
safety: which changes are blocked always comes from the fresh evaluation (and the rules
are checked again just before each destructive call).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from planner.errors import TrainctlError, first_few
from planner.options import Options
from planner.plan import Plan
from planner.rules import Overrides
from planner.words import counted
from planner.workflow.console import Console
from planner.workflow.planning import NO_OVERRIDES

if TYPE_CHECKING:
    from planner.executor import ExecutionResult
    from planner.live import LiveState
    from planner.spec import Spec

EXIT_INTERRUPTED = 130


class ApplyRefused(TrainctlError):
    """apply will not go on (no confirmation possible, cost limits, another engine...)."""


@dataclass(frozen=True)
class ApplyRequest:
    opts: Options
    planfile: str | None = None
    auto_approve: bool = False
    parallelism: int = 10
    engine: str = "direct"
    overrides: Overrides = NO_OVERRIDES
    destroy: bool = False
    targets: tuple[str, ...] = ()


@dataclass(frozen=True)
class ApplyOutcome:
    plan: Plan
    result: ExecutionResult | None = None     # None: the plan had nothing to carry out
    journal: str | None = None                # the journal's path when it ran


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


def confirm(plan: Plan, console: Console) -> None:
    """Terraform's rule: a plan that deletes or replaces anything needs the word `yes`;
    one that only creates and updates takes y/N."""
    doomed = [c.address for c in plan.changes if c.deletes and not c.blocked]
    if not doomed:
        if not console.confirm("Do you want to perform these actions?"):
            raise ApplyRefused("Apply cancelled; nothing changed.")
        return
    console.out(f"This plan deletes or replaces {first_few(doomed)}.")
    answer = console.prompt("Do you want to perform these actions? Only 'yes' will be "
                            "accepted to approve")
    if answer.strip() != "yes":
        raise ApplyRefused("Apply cancelled; nothing changed (deleting or replacing "
                           "needs the word yes).")


def list_blocked(plan: Plan, console: Console) -> None:
    blocked = [c for c in plan.changes if c.blocked]
    if not blocked:
        return
    n = len(blocked)
    console.out(f"{counted(n, 'change')} blocked, not carried out:")
    for c in blocked:
        for b in c.blocked_by:
            console.out(f"  {c.address} ({c.kind}): {b.rule.value}: {b.message}")


@contextlib.contextmanager
def stop_on_sigint(stop: threading.Event, console: Console) -> Iterator[None]:
    """First Ctrl-C sets `stop` (running steps finish); a second one interrupts at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        stop.set()
        console.err("\nInterrupted: no new steps start; waiting for running steps "
                    "(Ctrl-C again to stop now).")
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def project_key(opts: Options, project: str, region: str) -> str:
    """What the machine-wide apply lock is keyed by: the target (the AWS account, or the
    endpoint URL), the region and the project. Says the target (stderr) on the way."""
    from planner.aws.session import open_aws

    aws, _how = open_aws(opts.endpoint_url, opts.state_dir, region)
    where = f"account {aws.account}" if aws.account else f"endpoint {aws.endpoint_url}"
    return f"project {project} ({where}, region {region})"


def make_engine(opts: Options, spec: Spec, plan: Plan, overrides: Overrides, region: str,
                engine: str = "direct", live: LiveState | None = None) -> tuple[Any, Any]:
    """(engine, guards): the engine `engine` (registry) on the endpoint plan used, with
    the SSM transport and `live` (the state the plan's changes were diffed against), and
    the guards the executor runs before its steps (the same fresh read and transport,
    whatever the engine)."""
    from planner.aws.fresh import AwsFreshRead
    from planner.aws.session import open_aws
    from planner.aws.ssm import make_transport
    from planner.engines import EngineContext, build_engine
    from planner.guards import Guards

    aws, _how = open_aws(opts.endpoint_url, opts.state_dir, region, retry_mode="standard")
    transport = make_transport(aws, opts.state_dir)
    ctx = EngineContext(spec=spec, aws=aws, ssm=transport, plan=plan, overrides=overrides,
                        endpoint_url=aws.endpoint_url, state_dir=opts.state_dir,
                        live=live)
    built = build_engine(engine, ctx)
    return built, Guards(spec, overrides, AwsFreshRead(aws), transport)


def _load(request: ApplyRequest, console: Console) -> tuple[Plan | None, Spec, str]:
    """The saved plan (if any), the spec (loaded here, the one time of this apply) and
    the region, checked against each other."""
    from planner.loader import load_spec
    from planner.workflow.saved import read_plan_file

    if request.planfile and (request.destroy or request.targets):
        raise ApplyRefused("--destroy and --target choose what to plan; a saved plan file "
                           "already says (make it with `trainctl plan --destroy` or "
                           "`--target`)")
    if request.targets:
        console.err("Warning: applying with --target: only part of the spec converges. "
                    "Targeting is for exceptions (a stuck resource, a fix); run a full "
                    "`trainctl apply` afterwards.")
    saved = read_plan_file(request.planfile) if request.planfile else None
    spec = load_spec(request.opts.file)
    region = request.opts.region or spec.region
    if saved is not None and (saved.project, saved.region) != (spec.project, region):
        raise ApplyRefused(f"{request.planfile}: plan is for project {saved.project} / "
                           f"region {saved.region}, the spec is for project {spec.project} "
                           f"/ region {region}")
    return saved, spec, region


def apply_plan(request: ApplyRequest, console: Console) -> ApplyOutcome:
    """Carry out a saved plan file, or a plan made now and confirmed."""
    from planner.aws.lock_store import open_lock
    from planner.lock import holding, machine_holding
    from planner.workflow.records import record_ledger, share_records

    check_engine(request.engine)
    saved, spec, region = _load(request, console)
    opts = request.opts
    label = f"apply {request.planfile}" if request.planfile else "apply"
    # The folder's (or the state prefix's) lock refuses at once; the machine-wide one of
    # this project then waits for an apply from another folder.
    with holding(open_lock(spec.state, opts.state_dir, opts.endpoint_url, region), label,
                 say=console.err), \
            machine_holding(project_key(opts, spec.project, region), label,
                            os.path.dirname(os.path.abspath(opts.file)),
                            on_wait=console.err):
        plan, live = _fresh_plan(request, spec, saved, console)
        if not plan.has_changes:
            return ApplyOutcome(plan)
        outcome = run_plan(request, spec, plan, region, console, live=live)
        record_ledger(opts, spec, region, plan, console)
        if spec.state and spec.state.startswith("s3://"):
            share_records(opts, spec.state, region, plan, console)
    return outcome


def _fresh_plan(request: ApplyRequest, spec: Spec, saved: Plan | None,
                console: Console) -> tuple[Plan, LiveState]:
    """Plan again under the lock (of the spec already loaded) and hold a saved plan to
    it; show, refuse or confirm. The plan (a saved one carries the fresh changes) and
    the live state those changes were diffed against; a plan without changes is
    returned after saying so."""
    from planner.workflow.planning import PlanRequest, make_plan
    from planner.workflow.saved import check_saved_plan, with_fresh_changes

    options = saved.options if saved is not None else None
    planned = make_plan(PlanRequest(
        request.opts,
        destroy=options.destroy if options else request.destroy,
        targets=options.targets if options else request.targets,
        overrides=request.overrides, now=datetime.now(UTC)), spec)
    fresh, live = planned.plan, planned.live
    shown = ""
    if saved is not None:
        check_saved_plan(saved, fresh)
        plan = with_fresh_changes(saved, fresh)
    else:
        from planner.render.text import render_text

        plan = fresh
        shown = render_text(plan, color=console.color)
        console.out(shown, nl=False)
    if not plan.has_changes:
        list_blocked(plan, console)
        if "No changes." not in shown:
            console.out("No changes.")
        return plan, live
    if not plan.applyable and not request.overrides.allow_cost:
        raise ApplyRefused(cost_refusal(plan))
    check_stop_training(plan, request.overrides.stop_training)
    if saved is None and not request.auto_approve:
        if not console.interactive():
            raise ApplyRefused("refusing to apply without confirmation: stdin is not a "
                               "terminal; pass --auto-approve, or apply a saved plan "
                               "(trainctl plan -o plan.json; trainctl apply plan.json)")
        confirm(plan, console)
    return plan, live


def run_plan(request: ApplyRequest, spec: Spec, plan: Plan, region: str,
             console: Console, live: LiveState | None = None) -> ApplyOutcome:
    """Execute `plan` with the journal and progress; `live`: the state its changes were
    diffed against (the engine imports with it what no Pulumi stack holds yet)."""
    from planner.executor import execute, phase_graph_of, step_order
    from planner.journal import Journal, journal_path
    from planner.workflow.saved import save_plan

    opts = request.opts
    save_plan(plan, opts.state_dir)
    list_blocked(plan, console)
    engine, guards = make_engine(opts, spec, plan, request.overrides, region,
                                 request.engine, live=live)
    graph = phase_graph_of(plan)                  # once: the progress rows and the run
    steps = step_order(graph)
    stop = threading.Event()
    path = journal_path(opts.state_dir, plan.plan_id)
    with Journal(path, plan.plan_id) as journal, stop_on_sigint(stop, console), \
            console.progress(steps) as progress:
        result = execute(plan, engine, guards=guards, parallelism=request.parallelism,
                         journal=journal,
                         on_event=progress, stop=stop, graph=graph)
    for s in result.steps:
        if s.status == "failed":
            console.err(f"failed: {s.action.value} {s.address}: {s.message}")
    console.out(result.summary_line())
    console.out(f"Journal: {os.path.relpath(path)}")
    return ApplyOutcome(plan, result, path)
