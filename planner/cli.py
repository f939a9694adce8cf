"""The `trainctl` command. Subcommands live in `planner.commands.*` and load lazily,
so `trainctl --help` and `validate` never import boto3."""

from __future__ import annotations

import importlib
import os
import sys

import click

from planner.errors import TrainctlError
from planner.options import Options

__all__ = ["Options", "cli", "main"]

COMMANDS = {
    "validate": "Check the spec: exit 0 valid, 1 invalid.",
    "schema": "Print the spec's JSON Schema (for editors).",
    "graph": "Export the dependency graph (dot, mermaid, json, svg, png).",
    "plan": "Compare the spec with live AWS state and show what apply would do.",
    "apply": "Carry out a plan (saved, or made now and confirmed).",
    "destroy": "Delete what trainctl manages (plan --destroy, confirmed, applied); keep data.",
    "show": "Show a saved plan file.",
    "status": "What runs, since when, $/h and spend so far (removed resources included).",
    "cp": "Copy files between this machine, s3:// and INSTANCE:PATH (changed files only).",
    "exec": "Run a command on an instance over SSM; exit with its status.",
    "logs": "Show an instance's training log (--follow to keep reading).",
    "local": "The embedded AWS emulator on 127.0.0.1: up | down | status | env.",
    "lock": "The apply lock: status | release LOCK_ID.",
    "iam-policy": "Print the least-privilege IAM policy trainctl itself needs.",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module = importlib.import_module("planner.commands." + cmd_name.replace("-", "_"))
        return module.command  # type: ignore[no-any-return]

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Help lists the one-line summaries without importing each command.
        with formatter.section("Commands"):
            formatter.write_dl(list(COMMANDS.items()))


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-f", "--file", "file_", default="trainctl.yaml", show_default=True,
              help="The spec file.")
@click.option("--region", default=None, help="AWS region (default: the spec's region).")
@click.option("--endpoint-url", default=None,
              help="AWS endpoint (default: boto3's configuration, or the local emulator).")
@click.option("--no-color", is_flag=True, default=False, help="No colour (NO_COLOR works too).")
@click.version_option(package_name="trainctl", prog_name="trainctl")
@click.pass_context
def cli(ctx: click.Context, file_: str, region: str | None, endpoint_url: str | None,
        no_color: bool) -> None:
    """trainctl: infrastructure as code for ML training on AWS."""
    ctx.obj = Options(
        file=file_, region=region, endpoint_url=endpoint_url,
        no_color=no_color or bool(os.environ.get("NO_COLOR")),
    )


GLOBAL_WITH_VALUE = ("-f", "--file", "--region", "--endpoint-url")
GLOBAL_FLAGS = ("--no-color",)


def hoist_global_options(args: list[str]) -> list[str]:
    """`trainctl plan --no-color -f x.yaml` works like `trainctl --no-color -f x.yaml plan`,
    as Terraform users type it. Arguments after `--` are left alone."""
    cmd = 0
    while cmd < len(args) and args[cmd].startswith("-"):     # skip `-f FILE` & co.
        cmd += 2 if args[cmd] in GLOBAL_WITH_VALUE else 1
    if cmd >= len(args) or args[cmd] not in COMMANDS:
        return args
    head, tail, moved = args[:cmd], args[cmd:], []
    rest: list[str] = []
    i = 0
    while i < len(tail):
        a = tail[i]
        if a == "--":
            rest += tail[i:]
            break
        name = a.split("=", 1)[0]
        if a in GLOBAL_FLAGS or (name in GLOBAL_WITH_VALUE and "=" in a):
            moved.append(a)
        elif a in GLOBAL_WITH_VALUE and i + 1 < len(tail):
            moved += [a, tail[i + 1]]
            i += 1
        else:
            rest.append(a)
        i += 1
    return [*head, *moved, *rest]


def main(argv: list[str] | None = None) -> None:
    args = hoist_global_options(list(sys.argv[1:] if argv is None else argv))
    try:
        rc = cli.main(args=args, prog_name="trainctl", standalone_mode=False)
    except TrainctlError as e:
        click.echo(str(e), err=True)
        sys.exit(1)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        # click exits 2 on a usage error; 2 is `--detailed-exitcode`'s "changes to apply"
        sys.exit(1 if e.exit_code == 2 else e.exit_code)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    sys.exit(rc if isinstance(rc, int) else 0)


if __name__ == "__main__":
    main()
