"""`trainctl graph [--format dot|mermaid|json|svg|png] [-o OUT] [--plan PLANFILE]`."""

from __future__ import annotations

import sys

import click

from planner.cli import Options
from planner.errors import TrainctlError

FORMATS = ("dot", "mermaid", "json", "svg", "png")


@click.command("graph")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="mermaid",
              show_default=True, help="Output format; svg and png need Graphviz's `dot`.")
@click.option("-o", "--output", "out", type=click.Path(dir_okay=False), default=None,
              help="Write here instead of stdout.")
@click.option("--plan", "plan_file", default=None, metavar="PLANFILE",
              help="Colour nodes by the actions of this saved plan.")
@click.pass_obj
def command(opts: Options, fmt: str, out: str | None, plan_file: str | None) -> None:
    """Export the dependency graph."""
    from planner import export
    from planner.graph import build_graph
    from planner.loader import load_spec
    from planner.workflow.saved import read_plan_file

    spec = load_spec(opts.file)
    graph = build_graph(spec)
    plan = read_plan_file(plan_file) if plan_file else None
    if plan is not None and plan.project != spec.project:
        raise TrainctlError(
            f"{plan_file}: the plan is for project {plan.project!r}, "
            f"the spec {opts.file} is project {spec.project!r}"
        )

    data: bytes
    if fmt == "dot":
        data = export.to_dot(graph, plan).encode()
    elif fmt == "mermaid":
        data = export.to_mermaid(graph, plan).encode()
    elif fmt == "json":
        data = export.to_json(graph, plan).encode()
    else:
        if out is None and sys.stdout.isatty():
            raise TrainctlError(f"--format {fmt} writes binary data: give -o FILE")
        data = export.render_image(export.to_dot(graph, plan), fmt)

    if out is None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    try:
        with open(out, "wb") as f:
            f.write(data)
    except OSError as e:
        raise TrainctlError(f"{out}: cannot write: {e.strerror or e}") from None
    click.echo(f"wrote {out} ({fmt}, {graph.number_of_nodes()} nodes)", err=True)
