"""`trainctl schema`: print the spec's JSON Schema (what editors validate against).

It needs no spec file: `trainctl schema > trainctl.schema.json` and point the editor's
`# yaml-language-server: $schema=...` line at it.
"""

from __future__ import annotations

import click

from planner.cli import Options


@click.command("schema")
@click.pass_obj
def command(opts: Options) -> None:
    """Print the spec's JSON Schema (draft 2020-12)."""
    from planner.schema import schema_text

    click.echo(schema_text(), nl=False)
