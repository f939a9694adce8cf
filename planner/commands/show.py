"""`trainctl show PLANFILE [--json | --markdown]`: print a saved plan."""

from __future__ import annotations

import sys

import click

from planner.cli import Options
from planner.jsontext import dumps_indent2
from planner.plan import plan_to_json
from planner.workflow.saved import read_plan_file


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
