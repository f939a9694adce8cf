"""`trainctl validate`: check the spec; exit 0 valid, 1 invalid. Never imports boto3."""

from __future__ import annotations

import click

from planner.cli import Options
from planner.words import counted


@click.command("validate")
@click.pass_obj
def command(opts: Options) -> None:
    """Check the spec: schema, references, AZs, devices and the dependency graph."""
    from planner.graph import check_spec_graph
    from planner.loader import load_spec

    spec = load_spec(opts.file)   # SpecError: one line per issue, exit 1 (planner.cli.main)
    check_spec_graph(spec)        # GraphCycleError names the cycle (without networkx)
    click.echo(f"OK: {opts.file} ({counted(len(spec.volumes), 'volume')}, "
               f"{counted(len(spec.instances), 'instance')}, "
               f"{counted(len(spec.datasets), 'dataset')})")
