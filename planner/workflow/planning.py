"""Planning as a function: load the spec (unless given), read live state (AWS or a
recorded snapshot) and the cost ledger, diff. The edge where the clock is read and AWS
is called; `trainctl plan`, `apply`, the bench and the tests call `make_plan`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from planner.errors import TrainctlError
from planner.gcpause import gc_paused
from planner.options import Options
from planner.plan import PlanOptions
from planner.rules import Overrides

if TYPE_CHECKING:
    import networkx as nx

    from planner.live import LiveState
    from planner.plan import Plan
    from planner.spec import Spec

NO_OVERRIDES = Overrides()


@dataclass(frozen=True)
class PlanRequest:
    opts: Options
    destroy: bool = False
    targets: tuple[str, ...] = ()
    live_snapshot: str | None = None          # plan from this recorded snapshot
    overrides: Overrides = NO_OVERRIDES
    now: datetime | None = None               # None: the clock, when planning
    detailed_exitcode: bool = False           # exit 2 when the plan shows changes


@dataclass(frozen=True)
class PlanOutcome:
    request: PlanRequest
    spec: Spec
    graph: nx.DiGraph
    live: LiveState
    plan: Plan


def read_live_snapshot(path: str) -> LiveState:
    """A live snapshot recorded with `--record-live` (planner.live's JSON form), checked
    against planner.fileschemas.live_schema before use."""
    from planner.filecheck import FileCheckError, check, read_json
    from planner.fileschemas import live_schema
    from planner.live import live_from_json

    doc = read_json(path, "live snapshot")
    check(path, "live snapshot", doc, live_schema())
    try:
        return live_from_json(doc)
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as e:
        raise FileCheckError(f"{path}: not a live snapshot: {type(e).__name__}: {e}") from None


def _read_aws(opts: Options, spec: Spec, region: str, now: datetime) -> LiveState:
    from planner.aws.read import read_live
    from planner.aws.session import aws_errors, open_aws

    aws, _how = open_aws(opts.endpoint_url, opts.state_dir, region)   # says its target
    with aws_errors():
        return read_live(spec, aws, now=now)


def _ledger(opts: Options, spec: Spec, region: str,
            now: datetime) -> tuple[dict[str, str], float | None]:
    """From the cost ledger: the volumes it last saw (address -> id) and what resources
    already gone cost while they ran. ({}, 0.0) when there is none or it cannot be read:
    the ledger improves the plan, it never fails one."""
    from planner.aws.ledger_store import LedgerStore
    from planner.aws.session import open_aws
    from planner.cost import ledger_rate
    from planner.ledger import Kind, removed_outside, spend

    try:
        s3 = (open_aws(opts.endpoint_url, opts.state_dir, region, announce=False)[0].s3
              if spec.state and spec.state.startswith("s3://") else None)
        events = LedgerStore(opts.state_dir, spec.state, s3).read()
    except Exception:
        return {}, 0.0
    removed = [s.usd for s in spend(events, now, ledger_rate(region)) if s.removed]
    spent = None if None in removed else sum(x or 0.0 for x in removed)
    return removed_outside(events, Kind.VOLUME), spent


def _snapshot(request: PlanRequest, spec: Spec, path: str) -> LiveState:
    live = read_live_snapshot(path)
    if live.project != spec.project:
        raise TrainctlError(f"{path}: the snapshot is of project {live.project}, "
                            f"the spec is project {spec.project}")
    if request.opts.region and live.region != request.opts.region:
        raise TrainctlError(f"{path}: the snapshot is of region {live.region}, "
                            f"not {request.opts.region}")
    return live


@gc_paused()
def make_plan(request: PlanRequest, spec: Spec | None = None) -> PlanOutcome:
    """Diff `spec` (loaded from the request's file when None) against live state."""
    from planner.diff import diff
    from planner.graph import build_graph

    opts = request.opts
    now = request.now or datetime.now(UTC)
    if spec is None:
        from planner.loader import load_spec

        spec = load_spec(opts.file)
    graph = build_graph(spec)
    if opts.region and opts.region != spec.region:
        raise TrainctlError(
            f"--region {opts.region} differs from the spec's region {spec.region} "
            f"({opts.file}); the spec's availability zones and AMIs belong to {spec.region}")
    known: dict[str, str] = {}
    removed_spend: float | None = 0.0
    if request.live_snapshot is not None:
        live = _snapshot(request, spec, request.live_snapshot)
    else:
        live = _read_aws(opts, spec, spec.region, now)
        known, removed_spend = _ledger(opts, spec, spec.region, now)
    options = PlanOptions(destroy=request.destroy,
                          targets=tuple(dict.fromkeys(request.targets)))
    plan = diff(spec, graph, live, now=now, options=options, overrides=request.overrides,
                known_volumes=known, removed_spend_usd=removed_spend)
    return PlanOutcome(request, spec, graph, live, plan)
