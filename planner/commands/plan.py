"""`trainctl plan`: read live state, diff it against the spec, show the plan.

The edge where the clock is read and AWS is called; `make_plan` is reused by apply.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

from planner.cli import Options
from planner.errors import TrainctlError
from planner.gcpause import gc_paused
from planner.jsontext import dumps_indent2
from planner.plan import PlanOptions, plan_to_json
from planner.rules import Overrides

if TYPE_CHECKING:
    import networkx as nx

    from planner.live import LiveState
    from planner.plan import Plan
    from planner.spec import Spec

NO_OVERRIDES = Overrides()


def read_live_snapshot(path: str) -> LiveState:
    """A live snapshot recorded with `--record-live` (planner.live's JSON form), checked
    against planner.fileschemas.live_schema before use."""
    from planner.filecheck import FileCheckError, check, read_json
    from planner.fileschemas import live_schema
    from planner.live import live_from_json

    doc = read_json(path, "live snapshot")
    check(path, "live snapshot", doc, live_schema())
    try:
        return live_from_json(doc)
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as e:
        raise FileCheckError(f"{path}: not a live snapshot: {type(e).__name__}: {e}") from None


def _read_aws(opts: Options, spec: Spec, region: str, now: datetime) -> LiveState:
    from planner.aws.read import read_live
    from planner.aws.session import aws_errors, open_aws

    aws, _how = open_aws(opts.endpoint_url, opts.state_dir, region)   # says its target
    with aws_errors():
        return read_live(spec, aws, now=now)


def _ledger(opts: Options, spec: Spec, region: str,
            now: datetime) -> tuple[dict[str, str], float | None]:
    """From the cost ledger: the volumes it last saw (address -> id) and what resources
    already gone cost while they ran. ({}, 0.0) when there is none or it cannot be read:
    the ledger improves the plan, it never fails one."""
    from planner.aws.ledger_store import LedgerStore
    from planner.aws.session import open_aws
    from planner.cost import ledger_rate
    from planner.ledger import Kind, removed_outside, spend

    try:
        s3 = (open_aws(opts.endpoint_url, opts.state_dir, region, announce=False)[0].s3
              if spec.state and spec.state.startswith("s3://") else None)
        events = LedgerStore(opts.state_dir, spec.state, s3).read()
    except Exception:
        return {}, 0.0
    removed = [s.usd for s in spend(events, now, ledger_rate(region)) if s.removed]
    spent = None if None in removed else sum(x or 0.0 for x in removed)
    return removed_outside(events, Kind.VOLUME), spent


@gc_paused()
def make_plan(opts: Options, *, destroy: bool = False, targets: tuple[str, ...] = (),
              live_snapshot: str | None = None, overrides: Overrides = NO_OVERRIDES,
              now: datetime | None = None) -> tuple[Spec, nx.DiGraph, LiveState, Plan]:
    """Load the spec, read live state (or a recorded snapshot) and diff them."""
    from planner.diff import diff
    from planner.graph import build_graph
    from planner.loader import load_spec

    now = now or datetime.now(UTC)
    spec = load_spec(opts.file)
    graph = build_graph(spec)
    if opts.region and opts.region != spec.region:
        raise TrainctlError(
            f"--region {opts.region} differs from the spec's region {spec.region} "
            f"({opts.file}); the spec's availability zones and AMIs belong to {spec.region}")
    region = spec.region
    if live_snapshot is not None:
        live = read_live_snapshot(live_snapshot)
        if live.project != spec.project:
            raise TrainctlError(f"{live_snapshot}: the snapshot is of project {live.project}, "
                                f"the spec is project {spec.project}")
        if opts.region and live.region != opts.region:
            raise TrainctlError(f"{live_snapshot}: the snapshot is of region {live.region}, "
                                f"not {opts.region}")
        known: dict[str, str] = {}
        removed_spend: float | None = 0.0
    else:
        live = _read_aws(opts, spec, region, now)
        known, removed_spend = _ledger(opts, spec, region, now)
    options = PlanOptions(destroy=destroy, targets=tuple(dict.fromkeys(targets)))
    plan = diff(spec, graph, live, now=now, options=options, overrides=overrides,
                known_volumes=known, removed_spend_usd=removed_spend)
    return spec, graph, live, plan


def _write(path: str, text: str) -> None:
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as e:
        raise TrainctlError(f"{path}: cannot write: {e.strerror or e}") from None


def _say(message: str, *, to_stderr: bool) -> None:
    click.echo(message, err=to_stderr)


@click.command("plan")
@click.option("-o", "--out", "out", metavar="PLANFILE", default=None,
              help="Save the plan (JSON) for `trainctl apply PLANFILE`.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan file's JSON.")
@click.option("--markdown", "markdown_out", metavar="OUT", default=None,
              help="Write a pull-request comment body (Markdown) to OUT.")
@click.option("--detailed-exitcode", is_flag=True,
              help="Exit 2 when the plan shows any change, blocked ones included; 0 when "
                   "live state matches the spec; 1 on error.")
@click.option("--destroy", is_flag=True, help="Plan to delete everything trainctl manages.")
@click.option("--target", "targets", multiple=True, metavar="ADDR",
              help="Plan only this address and what it depends on (repeatable).")
@click.option("--live-snapshot", metavar="FILE", default=None,
              help="Plan from a recorded live snapshot instead of calling AWS.")
@click.option("--record-live", metavar="FILE", default=None, hidden=True,
              help="Write the live state read to FILE (for offline review and benchmarks).")
@click.pass_obj
@gc_paused()
def command(opts: Options, out: str | None, as_json: bool, markdown_out: str | None,
            detailed_exitcode: bool, destroy: bool, targets: tuple[str, ...],
            live_snapshot: str | None, record_live: str | None) -> int:
    """Compare the spec with live AWS state and show what apply would do."""
    _spec, graph, live, plan = make_plan(opts, destroy=destroy, targets=targets,
                                         live_snapshot=live_snapshot)
    doc: dict[str, Any] = plan_to_json(plan)
    if record_live:
        from planner.live import live_to_json

        _write(record_live, json.dumps(live_to_json(live), indent=2) + "\n")
        _say(f"Live state written to {record_live}", to_stderr=True)
    text = dumps_indent2(doc) if as_json or out else ""
    if as_json:
        click.echo(text)
    else:
        from planner.render.text import render_text

        color = not opts.no_color and sys.stdout.isatty()
        click.echo(render_text(plan, color=color), nl=False, color=color)
    if out:
        _write(out, text + "\n")
        _say(f"Plan saved to {out}; apply it with: trainctl apply {out}", to_stderr=as_json)
    if markdown_out:
        from planner.render.markdown import render_markdown

        _write(markdown_out, render_markdown(plan, graph, plan_file=out))
        _say(f"Markdown written to {markdown_out}", to_stderr=as_json)
    return 2 if detailed_exitcode and plan.shows_changes else 0
