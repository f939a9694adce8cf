"""Saved plan files: read and checked (`show`, `apply PLANFILE`, `graph --plan`), held
against a fresh plan before apply acts, and written to STATE_DIR/plans."""

from __future__ import annotations

import json
import os
from dataclasses import replace

from planner.digest import canonical_json
from planner.errors import PlanFileError, StalePlanError, TrainctlError, first_few
from planner.plan import Change, Plan, change_to_json, plan_from_json, plan_to_json


def read_plan_file(path: str) -> Plan:
    """Read, check (planner.fileschemas.plan_schema) and parse a plan file; every failure
    is a TrainctlError naming the file and, for a bad value, the field."""
    from planner.filecheck import read_json

    doc = read_json(path, "plan file")
    if isinstance(doc, dict) and "format_version" not in doc:
        raise TrainctlError(f"{path}: not a trainctl plan: no format_version")
    try:
        return plan_from_json(doc)
    except PlanFileError as e:
        head, *lines = str(e).split("\n")
        raise TrainctlError("\n".join(f"{path}: {line}" for line in [head, *lines])) from None
    except RecursionError:
        raise TrainctlError(f"{path}: corrupt plan file: nested too deeply") from None


def _made(created_at: str) -> str:
    return f"the plan was made ({created_at})"


def check_saved_plan(saved: Plan, fresh: Plan) -> None:
    """Refuse a saved plan whose spec or live state moved on, or that was edited."""
    if saved.spec_digest != fresh.spec_digest:
        raise StalePlanError(f"stale plan: the spec changed since {_made(saved.created_at)}; "
                             "run `trainctl plan` again")
    if saved.live_digest != fresh.live_digest:
        raise StalePlanError(f"stale plan: live state changed since "
                             f"{_made(saved.created_at)}; run `trainctl plan` again")
    want = {c.address: _comparable(c) for c in saved.changes}
    have = {c.address: _comparable(c) for c in fresh.changes}
    differ = sorted(a for a in want.keys() | have.keys() if want.get(a) != have.get(a))
    fresh_blocked = {c.address for c in fresh.changes if c.blocked}
    unblocked = sorted(c.address for c in saved.changes
                       if c.blocked and c.address not in fresh_blocked)
    also = [a for a in differ if a not in unblocked]
    if unblocked and also:
        raise StalePlanError(
            f"the plan file was made while {first_few(unblocked)} "
            f"{'was' if len(unblocked) == 1 else 'were'} blocked; unblocked now (by --force "
            "or --allow-delete, or because min-age has passed), "
            f"{'it changes' if len(unblocked) == 1 else 'they change'} {first_few(also)} too, "
            "which the plan file does not show. Review the whole plan: `trainctl apply` "
            "with the same flags and no plan file shows it and asks before acting, or make "
            "a new plan file with `trainctl plan -o FILE`")
    if differ:
        raise StalePlanError(
            "the plan file's changes differ from a fresh plan of the same spec and live "
            f"state (was it edited?): {first_few(differ)}")
    edited = [name for name in ("expiries", "data_locations")
              if getattr(saved, name) != getattr(fresh, name)]
    if edited:
        raise StalePlanError(
            f"the plan file's {' and '.join(edited)} differ from a fresh plan of the same "
            "spec and live state (was it edited?); make a new plan file with "
            "`trainctl plan -o FILE`")


def _comparable(c: Change) -> bytes:
    """A change as the file holds it, less blocked_by (re-evaluated at apply time)."""
    doc = change_to_json(c)
    doc.pop("blocked_by")
    return canonical_json(doc)


def with_fresh_changes(saved: Plan, fresh: Plan) -> Plan:
    """The saved plan (its id names the journal and client tokens) carrying the fresh
    plan's changes, rules, expiries (an instance's shutdown behaviour) and data locations:
    check_saved_plan proved them equal but for blocked_by, and nothing the engine acts on
    is taken from the file."""
    return replace(saved, changes=fresh.changes, warnings=fresh.warnings, cost=fresh.cost,
                   cost_enforced=fresh.cost_enforced, expiries=fresh.expiries,
                   data_locations=fresh.data_locations)


def plan_path(plan: Plan, state_dir: str) -> str:
    return os.path.join(state_dir, "plans", f"{plan.plan_id}.json")


def save_plan(plan: Plan, state_dir: str) -> str:
    path = plan_path(plan, state_dir)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(plan_to_json(plan), f, indent=2)
        f.write("\n")
    os.replace(tmp, path)
    return path
