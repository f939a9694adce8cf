"""The terminal plan, Terraform-like: `+ ~ -/+ -`, reasons, attribute diffs, blocked
changes with their rule, warnings, cost and a summary line. Pure: built with rich on a
StringIO, never touching the terminal or the environment."""

from __future__ import annotations

from io import StringIO

from rich.console import Console
from rich.text import Text

from planner.plan import Change, ChangeKind, Expiry, Plan
from planner.render import (
    VERBS,
    attribute_diff,
    change_reason,
    cost_summary_line,
    forces_replacement,
    object_deletion_words,
    object_deletions,
    size_words,
    symbol,
    unknown_price_lines,
)

STYLES = {
    "create": "green",
    "update": "yellow",
    "replace": "magenta",
    "delete": "red",
    "no-op": "",
}
BLOCKED = "bold red"
WARN = "yellow"
DIM = "dim"


def _console(color: bool) -> tuple[Console, StringIO]:
    buf = StringIO()
    console = Console(
        file=buf, record=False, width=100, force_terminal=color, no_color=not color,
        color_system="standard" if color else None, highlight=False, soft_wrap=True,
        emoji=False, markup=False, legacy_windows=False, _environ={},
    )
    return console, buf


def _change_block(c: Change, plan: Plan) -> list[Text]:
    style = STYLES[c.kind]
    lines = [Text(f"  # {c.address} {VERBS[c.kind]}: {change_reason(c, plan)}", style=DIM)]
    head = Text()
    head.append(f"{symbol(c):>3}", style=f"bold {style}".strip())
    head.append(f" {c.address}", style="bold")
    if c.id:
        head.append(f" ({c.id})")
    lines.append(head)
    rows, hidden = attribute_diff(c)
    width = max((len(k) for _, k, _ in rows), default=0)
    ops = {"+": STYLES["create"], "-": STYLES["delete"], "~": STYLES["update"]}
    for op, key, text in rows:
        line = Text("      ")
        line.append(op, style=ops[op])
        line.append(f" {key:<{width}} = {text}")
        if c.kind is ChangeKind.REPLACE and forces_replacement(c, key):
            line.append("  # forces replacement", style=BLOCKED)
        lines.append(line)
    if hidden:
        noun = "attribute" if hidden == 1 else "attributes"
        lines.append(Text(f"        # ({hidden} unchanged {noun} hidden)", style=DIM))
    gone = object_deletion_words(c)
    if gone:
        lines.append(Text(f"      - {gone}", style=STYLES["delete"]))
    for b in c.blocked_by:
        lines.append(Text(f"      ! blocked ({b.rule.value}): {b.message}", style=BLOCKED))
    return lines


def _cost_lines(plan: Plan) -> list[Text]:
    cost = plan.cost
    lines = [Text(f"Cost: {cost_summary_line(cost)}")]
    for line in unknown_price_lines(cost):
        lines.append(Text(f"  ! {line}", style=BLOCKED))
    for limit in cost.exceeded:
        lines.append(Text(f"  ! cost limit exceeded: {limit}", style=BLOCKED))
    if not plan.applyable:
        why = "its cost limits" + (" and an unknown price blocks it" if cost.unknown else "")
        lines.append(Text(
            f"  ! not applyable: the spec enforces {why} (--allow-cost overrides)",
            style=BLOCKED,
        ))
    return lines


def expiry_text(e: Expiry) -> str:
    parts = []
    if e.max_lifetime:
        parts.append(f"expires {e.expires_at}" if e.expires_at
                     else f"expires {e.max_lifetime} after launch")
    if e.idle_stop_minutes:
        parts.append(f"idle after {e.idle_stop_minutes} min")
    return f"{', '.join(parts)}; then {e.action}"


def render_text(plan: Plan, *, color: bool) -> str:
    """The plan for a terminal; with color=False the result holds no ANSI escapes."""
    console, buf = _console(color)
    out = console.print
    out(Text(f"trainctl plan for project {plan.project} in {plan.region}", style="bold"))
    out(Text(f"  created {plan.created_at}, plan {plan.plan_id}", style=DIM))
    opts = []
    if plan.options.destroy:
        opts.append("--destroy")
    opts += [f"--target {t}" for t in plan.options.targets]
    if opts:
        out(Text(f"  options: {' '.join(opts)}", style=DIM))
    out()

    shown = [c for c in plan.changes if not c.is_noop]
    unchanged = len(plan.changes) - len(shown)
    if shown:
        legend = Text("Actions: ")
        for i, (kind, sym) in enumerate(
            (("create", "+"), ("update", "~"), ("replace", "-/+"), ("delete", "-"))
        ):
            if i:
                legend.append(", ")
            legend.append(sym, style=STYLES[kind])
            legend.append(f" {kind}")
        out(legend)
        out()
        for c in shown:
            for line in _change_block(c, plan):
                out(line)
            out()

    if plan.warnings:
        out(Text("Warnings:", style=f"bold {WARN}"))
        for w in plan.warnings:
            where = f"{w.address} ({w.rule.value})" if w.address else w.rule.value
            out(Text(f"  ! {where}: {w.message}", style=WARN))
        out()
    if plan.data_locations:
        out(Text("Datasets:", style="bold"))
        for d in plan.data_locations:
            out(Text(f"  {d.dataset} on {d.instance}: {d.location} ({d.strategy})"))
        out()
    if plan.expiries:
        out(Text("Limits (enforced on the instance):", style="bold"))
        for e in plan.expiries:
            out(Text(f"  {e.instance}: {expiry_text(e)}"))
        out()
    for line in _cost_lines(plan):
        out(line)
    out()

    if not shown:
        out(Text("No changes. Live state matches the spec.", style="bold green"))
    else:
        s = plan.summary
        summary = Text("Plan: ", style="bold")
        summary.append(
            f"{s['create']} to create, {s['update']} to update, {s['replace']} to replace, "
            f"{s['delete']} to delete, "
        )
        summary.append(f"{s['blocked']} blocked.", style=BLOCKED if s["blocked"] else "")
        out(summary)
        objects, size = object_deletions(shown)
        if objects:
            out(Text(f"S3 objects to delete: {objects} ({size_words(size)}), stale objects "
                     "trainctl uploaded to a stage.", style=STYLES["delete"]))
    if unchanged:
        out(Text(f"{unchanged} unchanged, not listed.", style=DIM))
    return buf.getvalue()
