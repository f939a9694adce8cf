"""What an apply leaves behind beside the journal: the cost ledger brought up to date,
and (under an s3:// `state:` prefix) copies of the plan and journal. Best effort: a
failure here is a warning, the apply is done."""

from __future__ import annotations

from datetime import UTC, datetime

from planner.errors import TrainctlError
from planner.options import Options
from planner.plan import Plan
from planner.spec import Spec
from planner.workflow.console import Console


def record_ledger(opts: Options, spec: Spec, region: str, plan: Plan | None,
                  console: Console) -> None:
    """Bring the cost ledger up to what exists now (launches, changes, removals), so spend
    so far survives a terminate."""
    from planner.aws.ledger_store import LedgerStore
    from planner.aws.session import aws_errors, open_aws

    try:
        aws = open_aws(opts.endpoint_url, opts.state_dir, region, announce=False)[0]
        with aws_errors():
            ours = frozenset(c.id for c in (plan.changes if plan else ())
                             if c.deletes and c.id and not c.blocked)
            LedgerStore(opts.state_dir, spec.state, aws.s3).update(
                aws.ec2, spec.project, datetime.now(UTC), ours)
    except TrainctlError as e:
        console.err(f"warning: the cost ledger was not updated: {e}")


def share_records(opts: Options, state: str, region: str, plan: Plan,
                  console: Console) -> None:
    """Copy the applied plan and its journal under the s3:// `state:` prefix."""
    from planner.aws.session import open_aws
    from planner.aws.state_copy import copy_to_state
    from planner.journal import journal_path
    from planner.workflow.saved import plan_path

    files = {f"plans/{plan.plan_id}.json": plan_path(plan, opts.state_dir),
             f"journal/{plan.plan_id}.jsonl": journal_path(opts.state_dir, plan.plan_id)}
    try:
        copy_to_state(open_aws(opts.endpoint_url, opts.state_dir, region)[0].s3, state, files)
    except Exception as e:  # the apply is done; a copy that fails is only a warning
        console.err(f"warning: could not copy the plan and journal to {state}: {e}")
