"""`trainctl status [--json] [--check-training]`: what runs, since when, $/h, spend so far.

Read live by tag (two paginated describes); spend so far comes from the cost ledger, which
this command brings up to date, so what was already removed still counts.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import click

from planner.cli import Options
from planner.ledger import Kind, Observed, Spend, spend
from planner.spec import Strategy
from planner.words import counted


def rate_for(region: str) -> Any:
    from planner.cost import ledger_rate

    return ledger_rate(region)


def _age(since: datetime, now: datetime) -> str:
    s = max(0, int((now - since).total_seconds()))
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600}h"


def _usd(v: float | None, fmt: str = "{:.2f}") -> str:
    return "$?" if v is None else "$" + fmt.format(v)


def _last_synced(state_dir: str, dataset: str) -> str | None:
    """The newest finished dataset/prewarm/sync step of DATASET in the journals here."""
    folder = os.path.join(state_dir, "journal")
    best: str | None = None
    try:
        names = os.listdir(folder)
    except OSError:
        return None
    for name in names:
        try:
            with open(os.path.join(folder, name), encoding="utf-8", errors="replace") as f:
                for line in f:
                    try:
                        ev = json.loads(line)
                    except ValueError:
                        continue
                    addr = ev.get("address") if isinstance(ev, dict) else None
                    if (isinstance(addr, str) and ev.get("event") == "finished"
                            and (addr in (f"dataset.{dataset}", f"prewarm.{dataset}")
                                 or (addr.startswith("sync.")
                                     and addr.endswith(f".{dataset}")))):
                        ts = str(ev.get("ts", ""))
                        best = max(best or ts, ts)
        except OSError:
            continue
    return best


def _dataset_rows(spec: Any, state_dir: str) -> list[dict[str, Any]]:
    rows = []
    for name, ds in spec.datasets.items():
        where = {Strategy.PREWARMED_EBS: f"volume.{ds.volume}:{ds.path or '/'}",
                 Strategy.EXISTING_EBS: f"volume.{ds.volume}:{ds.path or '/'}",
                 Strategy.LOCAL_CACHE: f"each instance's {ds.path}",
                 Strategy.DIRECT_S3: ds.s3_uri}.get(ds.strategy, ds.s3_uri)
        rows.append({"name": name, "strategy": ds.strategy, "source": ds.source,
                     "stage": ds.stage, "lives_in": where,
                     "last_synced": _last_synced(state_dir, name)})
    return rows


def _training(opts: Options, spec: Any, aws: Any, observed: list[Observed]) -> dict[str, str]:
    from planner.aws.ssm import make_transport
    from planner.dataplane.steps import training_running

    ssm = make_transport(aws, opts.state_dir)
    out = {}
    for o in observed:
        name = o.address.removeprefix("instance.")
        if o.kind is not Kind.INSTANCE or not o.charged or name not in spec.instances:
            continue
        tr = spec.instances[name].training
        r = training_running(ssm, o.id, pid_file=tr.pid_file if tr else None,
                             patterns=tr.process_patterns if tr else ())
        out[o.id] = ("cannot tell" if not r.ok else
                     "running" if r.data.get("running") else "not running")
    return out


def status_doc(opts: Options, *, check_training: bool,
               now: datetime | None = None) -> dict[str, Any]:
    from planner.aws.find import observe_project
    from planner.aws.ledger_store import LedgerStore
    from planner.aws.session import aws_errors
    from planner.commands.instances import connect_aws
    from planner.ledger import reconcile
    from planner.loader import load_spec

    now = now or datetime.now(UTC)
    spec = load_spec(opts.file)
    aws = connect_aws(opts, spec)
    rate = rate_for(spec.region)
    with aws_errors():
        observed = observe_project(aws.ec2, spec.project)
        store = LedgerStore(opts.state_dir, spec.state, aws.s3 if spec.state else None)
        events = store.read()
        new = reconcile(events, observed, now)
        store.append(new)
        training = _training(opts, spec, aws, observed) if check_training else {}
    spent: dict[str, Spend] = {s.id: s for s in spend([*events, *new], now, rate)}
    resources = []
    for o in sorted(observed, key=lambda o: (o.kind.value, o.address)):
        hourly = rate(o.kind, o.attrs) if o.charged else 0.0
        s = spent.get(o.id)
        row = {"address": o.address, "id": o.id, "kind": o.kind.value,
               "state": o.state or "?",
               "availability_zone": o.attrs.get("availability_zone"),
               "size": (f"{o.attrs.get('size_gib')} GiB {o.attrs.get('type')}"
                        if o.kind is Kind.VOLUME else str(o.attrs.get("instance_type"))),
               "since": o.since.strftime("%Y-%m-%dT%H:%M:%SZ"), "age": _age(o.since, now),
               "hourly_usd": hourly, "spent_usd": s.usd if s else None,
               "flags": list(o.flags)}
        ins = spec.instances.get(o.address.removeprefix("instance."))
        if o.kind is Kind.INSTANCE and ins is not None and ins.lifetime_seconds:
            row["expires_at"] = (o.since + timedelta(seconds=ins.lifetime_seconds)
                                 ).strftime("%Y-%m-%dT%H:%M:%SZ")
            row["expiry_action"] = ins.idle_action
        if o.id in training:
            row["training"] = training[o.id]
        resources.append(row)
    removed = [{"address": s.address, "id": s.id, "kind": s.kind.value,
                "spent_usd": s.usd} for s in spent.values() if s.removed]
    hourly_all = [r["hourly_usd"] for r in resources]
    spent_all = [s.usd for s in spent.values()]
    return {
        "project": spec.project, "region": spec.region,
        "at": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "resources": resources, "removed": removed,
        "datasets": _dataset_rows(spec, opts.state_dir),
        "totals": {
            "hourly_usd": None if None in hourly_all else sum(hourly_all),
            "spent_usd": None if None in spent_all else sum(x or 0.0 for x in spent_all),
            "spent_removed_usd": sum(r["spent_usd"] or 0.0 for r in removed),
        },
    }


def render_status(doc: Mapping[str, Any], *, color: bool) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(no_color=not color, highlight=False, width=160)
    console.print(f"Project {doc['project']} in {doc['region']}, at {doc['at']}")
    table = Table(box=None, pad_edge=False)
    for col in ("ADDRESS", "ID", "STATE", "AZ", "SIZE/TYPE", "AGE", "$/H", "SPENT", ""):
        table.add_column(col, justify="right" if col in ("$/H", "SPENT", "AGE") else "left")
    for r in doc["resources"]:
        marks = " ".join(f"[{f}]" for f in r["flags"])
        if "expires_at" in r:
            marks = (marks + f" {r['expiry_action']}s at {r['expires_at']}").strip()
        if "training" in r:
            marks = (marks + f" training: {r['training']}").strip()
        cells = (r["address"], r["id"], r["state"], r["availability_zone"] or "", r["size"],
                 r["age"], _usd(r["hourly_usd"], "{:.3f}"), _usd(r["spent_usd"]), marks)
        table.add_row(*(Text(str(c)) for c in cells))
    if doc["resources"]:
        console.print(table)
    else:
        console.print("No live resources.")
    if doc["removed"]:
        console.print(f"Removed since launch: {counted(len(doc['removed']), 'resource')}, "
                      f"{_usd(doc['totals']['spent_removed_usd'])} spent while they ran")
    for d in doc["datasets"]:
        synced = d["last_synced"] or "never (by this folder)"
        console.print(f"dataset.{d['name']}: {d['strategy']}, in {d['lives_in']} "
                      f"(from {d['source']}); last synced {synced}", markup=False)
    t = doc["totals"]
    console.print(f"Total: {_usd(t['hourly_usd'], '{:.3f}')}/h now, "
                  f"{_usd(t['spent_usd'])} spent so far")


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="The same as JSON.")
@click.option("--check-training", is_flag=True,
              help="Also ask each running instance (SSM) whether a training job runs.")
@click.pass_obj
def command(opts: Options, as_json: bool, check_training: bool) -> None:
    """What runs now, since when, its $/h and spend so far (removed resources included).

    \b
    Examples:
      trainctl status
      trainctl status --json | jq .totals
      trainctl status --check-training
    """
    import sys

    doc = status_doc(opts, check_training=check_training)
    if as_json:
        click.echo(json.dumps(doc, indent=2))
    else:
        render_status(doc, color=not opts.no_color and sys.stdout.isatty())
