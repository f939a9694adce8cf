"""`trainctl plan`: read live state, diff it against the spec, show the plan.

Planning itself is planner.workflow.make_plan; this command parses, prints and writes.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from planner.cli import Options
from planner.errors import TrainctlError
from planner.gcpause import gc_paused
from planner.jsontext import dumps_indent2
from planner.plan import plan_to_json


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
    from planner.workflow import PlanRequest, exit_code, make_plan

    outcome = make_plan(PlanRequest(opts, destroy=destroy, targets=targets,
                                    live_snapshot=live_snapshot,
                                    detailed_exitcode=detailed_exitcode))
    graph, live, plan = outcome.graph, outcome.live, outcome.plan
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
    return exit_code(outcome)
