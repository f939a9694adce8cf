"""`trainctl show PLANFILE [--json | --markdown]`: print a saved plan."""

from __future__ import annotations

import sys

import click

from planner.cli import Options
from planner.errors import PlanFileError, TrainctlError
from planner.jsontext import dumps_indent2
from planner.plan import Plan, plan_from_json, plan_to_json


def read_plan_file(path: str) -> Plan:
    """Read, check (planner.fileschemas.plan_schema) and parse a plan file; every failure
    is a TrainctlError naming the file and, for a bad value, the field."""
    from planner.filecheck import read_json

    doc = read_json(path, "plan file")
    if isinstance(doc, dict) and "format_version" not in doc:
        raise TrainctlError(f"{path}: not a trainctl plan: no format_version")
    try:
        return plan_from_json(doc)
    except PlanFileError as e:
        head, *lines = str(e).split("\n")
        raise TrainctlError("\n".join(f"{path}: {line}" for line in [head, *lines])) from None
    except RecursionError:
        raise TrainctlError(f"{path}: corrupt plan file: nested too deeply") from None


@click.command("show")
@click.argument("planfile", type=click.Path(dir_okay=True))
@click.option("--json", "as_json", is_flag=True, help="Print the plan file's JSON.")
@click.option("--markdown", "as_markdown", is_flag=True,
              help="Print a pull-request comment body (Markdown with a Mermaid graph).")
@click.pass_obj
def command(opts: Options, planfile: str, as_json: bool, as_markdown: bool) -> None:
    """Show a saved plan file."""
    if as_json and as_markdown:
        raise click.UsageError("--json and --markdown exclude each other")
    plan = read_plan_file(planfile)
    if as_json:
        click.echo(dumps_indent2(plan_to_json(plan)))
    elif as_markdown:
        from planner.render.markdown import render_markdown

        click.echo(render_markdown(plan, None, plan_file=planfile), nl=False)
    else:
        from planner.render.text import render_text

        color = not opts.no_color and sys.stdout.isatty()
        click.echo(render_text(plan, color=color), nl=False, color=color)
