"""The diff: spec + graph + live snapshot + clock reading + options -> Plan.

Pure: no boto3, no clock, no environment. Live resources map to addresses through the
`trainctl:address` tag (or `import:` ids); rules (planner.rules) mark blocked changes.

In the manner of Terraform's graph transformers, the diff is an explicit, ordered list
of small passes (PASSES). Each pass is `pass(ctx, work) -> None`: it reads the frozen
DiffContext (spec, graph, live state and the indexes built once, planner.diff.index)
and adds to the one mutable WorkSet (changes, blocks, warnings, results).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

import networkx as nx

from planner.diff import attachments, blocks, data, ordering, orphans, resources, summary
from planner.diff import warnings as plan_warnings
from planner.diff.context import DiffContext
from planner.diff.index import build_context
from planner.diff.work import WorkSet
from planner.live import LiveState, iso
from planner.plan import Plan, PlanOptions
from planner.rules import Overrides
from planner.spec import Spec

Pass = Callable[[DiffContext, WorkSet], None]

DEFAULT_OPTIONS = PlanOptions()
NO_OVERRIDES = Overrides()

PASSES: tuple[Pass, ...] = (
    # volumes and instances: the spec's, then what live holds that the spec does not
    resources.volumes,
    resources.instances,
    orphans.orphan_volumes,
    orphans.orphan_instances,
    orphans.temporary_cleanups,
    orphans.duplicate_deletes,
    blocks.resource_rules,
    # what hangs off them: attachments and mounts come before the data, since a
    # prewarm fills through an instance the volume stays attached to
    data.datasets,
    attachments.attachments,
    attachments.mounts,
    data.prewarms,
    data.syncs,
    attachments.orphan_attachments_and_mounts,
    blocks.keep_with_blocked_instances,
    blocks.resource_rules_again,
    # order, targets, blocks that follow the graph
    ordering.full_graph,
    ordering.targets,
    blocks.resource_rules_for_targets,
    blocks.block_on_duplicates,
    ordering.order,
    # what the plan says besides its changes
    summary.cost,
    plan_warnings.empty_dataset_warnings,
    plan_warnings.duplicate_warnings,
    plan_warnings.stage_warnings,
    plan_warnings.deleted_outside_warnings,
    plan_warnings.unknown_live_warnings,
    summary.digests,
    summary.expiries,
    summary.data_locations,
)


def run_passes(ctx: DiffContext, passes: tuple[Pass, ...] = PASSES) -> WorkSet:
    work = WorkSet()
    for p in passes:
        p(ctx, work)
    return work


def _plan(ctx: DiffContext, work: WorkSet) -> Plan:
    assert work.cost is not None, "summary.cost runs before the plan is built"
    return Plan(
        project=ctx.project,
        region=ctx.live.region,
        created_at=iso(ctx.now),
        spec_digest=work.spec_digest,
        live_digest=work.live_digest,
        changes=work.ordered,
        warnings=tuple(work.warnings),
        cost=work.cost,
        options=ctx.options,
        cost_enforced=ctx.spec.cost.enforce and not ctx.overrides.allow_cost,
        data_locations=work.data_locations,
        expiries=work.expiries,
    )


def diff(spec: Spec, graph: nx.DiGraph, live: LiveState, *, now: datetime,
         options: PlanOptions = DEFAULT_OPTIONS,
         overrides: Overrides = NO_OVERRIDES,
         known_volumes: Mapping[str, str] | None = None,
         removed_spend_usd: float | None = 0.0) -> Plan:
    """The plan that brings `live` to `spec` (or destroys it), with the rules applied.

    From the cost ledger: `known_volumes` (address -> id of volumes it last saw, so one
    deleted outside trainctl reads as such) and `removed_spend_usd` (what resources
    already gone cost, counted in the plan's accumulated spend)."""
    ctx = build_context(spec, graph, live, now=now, options=options, overrides=overrides,
                        known_volumes=known_volumes, removed_spend_usd=removed_spend_usd)
    return _plan(ctx, run_passes(ctx))


__all__ = ["PASSES", "DiffContext", "Pass", "WorkSet", "build_context", "diff", "run_passes"]
