"""`trainctl destroy`: `plan --destroy`, shown, confirmed, applied (Terraform's verb).

Persistent and protected volumes survive exactly as they survive `plan --destroy`: their
deletes stay blocked unless `--allow-delete` names them.
"""

from __future__ import annotations

import click


@click.command("destroy")
@click.option("--auto-approve", is_flag=True, help="Do not ask for confirmation.")
@click.option("--target", "targets", multiple=True, metavar="ADDR",
              help="Destroy only this address and what depends on it (repeatable).")
@click.option("--parallelism", type=click.IntRange(1, 100), default=10, show_default=True)
@click.option("--force", is_flag=True, help="Override min-age only (never persistent, protected or "
                   "training-running).")
@click.option("--allow-delete", multiple=True, metavar="ADDR|ID",
              help="Also delete this persistent/protected resource.")
@click.option("--stop-training", "stop_training", multiple=True, metavar="instance.NAME",
              help="Stop the training job on this instance gracefully (SIGTERM, "
                   "training.grace_seconds, SIGKILL, checkpoint sync) first (repeatable).")
@click.pass_context
def command(ctx: click.Context, auto_approve: bool, targets: tuple[str, ...],
            parallelism: int, force: bool, allow_delete: tuple[str, ...],
            stop_training: tuple[str, ...]) -> None:
    """Delete everything trainctl manages in this project; keep persistent data.

    \\b
    Examples:
      trainctl destroy                      show the destroy plan, ask, apply
      trainctl destroy --target instance.trainer
      trainctl destroy --allow-delete volume.imagenet-cache   (also that volume)
    """
    from planner.commands.apply import run_apply, stop_training_addresses
    from planner.rules import Overrides
    from planner.workflow import ApplyRequest

    overrides = Overrides(force=force, allow_delete=frozenset(allow_delete), allow_cost=True,
                          stop_training=stop_training_addresses(stop_training))
    run_apply(ApplyRequest(ctx.obj, auto_approve=auto_approve, parallelism=parallelism,
                           overrides=overrides, destroy=True, targets=targets))
