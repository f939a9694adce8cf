"""`trainctl apply [PLANFILE]`: carry a plan out (DESIGN section 6).

Applying itself is planner.workflow.apply_plan; this command parses the options, calls it
with a console on the terminal, and exits with the outcome's code.
"""

from __future__ import annotations

import re
import sys
from typing import TYPE_CHECKING

import click

from planner.cli import Options

if TYPE_CHECKING:
    from planner.workflow import ApplyRequest


def stop_training_addresses(names: tuple[str, ...]) -> frozenset[str]:
    """`--stop-training instance.NAME` (a bare NAME is taken as instance.NAME: only
    instances run training jobs); anything else is a usage error."""
    out = set()
    for n in names:
        address = n if n.startswith("instance.") else f"instance.{n}"
        if not re.fullmatch(r"instance\.[A-Za-z0-9][A-Za-z0-9_-]*", address):
            raise click.UsageError(f"--stop-training {n}: expected instance.NAME")
        out.add(address)
    return frozenset(out)


def run_apply(request: ApplyRequest) -> None:
    """apply_plan on the terminal; exits with the outcome's code when it is not 0."""
    from planner.commands.console import ClickConsole
    from planner.workflow import apply_plan, exit_code

    rc = exit_code(apply_plan(request, ClickConsole(no_color=request.opts.no_color)))
    if rc:
        sys.exit(rc)


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
    from planner.rules import Overrides
    from planner.workflow import ApplyRequest

    overrides = Overrides(force=force, allow_delete=frozenset(allow_delete),
                          allow_cost=allow_cost,
                          stop_training=stop_training_addresses(stop_training))
    run_apply(ApplyRequest(opts, planfile=planfile, auto_approve=auto_approve,
                           parallelism=parallelism, engine=engine_name, overrides=overrides,
                           destroy=destroy, targets=targets))
