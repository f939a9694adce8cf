"""The plan as a pull-request comment (GitHub-flavoured Markdown): summary table,
a deletion warning alert, cost delta, change table and the Mermaid graph. Pure."""

from __future__ import annotations

import networkx as nx

from planner.export import graph_from_plan, to_mermaid
from planner.plan import SUMMARY_KEYS, Change, Plan
from planner.render import (
    attribute_diff,
    cost_delta,
    object_deletion_words,
    reason_words,
    symbol,
    usd,
)


def _cell(s: str) -> str:
    """Text safe inside a table cell or a one-line list item."""
    return s.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").strip()


def _code(s: str) -> str:
    return f"`{s.replace('`', '')}`"


def _rules(c: Change) -> str:
    return ", ".join(_code(b.rule.value) for b in c.blocked_by)


def _action(c: Change) -> str:
    return f"{_code(symbol(c))} {c.kind}"


def _risk_line(c: Change) -> str:
    line = f"> - {_code(c.address)}"
    if c.id:
        line += f" ({_code(c.id)})"
    line += f": **{c.kind}**"
    if c.replace_paths:
        line += f", forced by {', '.join(_code(p) for p in c.replace_paths)}"
    if c.blocked:
        line += " - blocked by " + "; ".join(
            f"{_code(b.rule.value)}: {_cell(b.message)}" for b in c.blocked_by
        )
    return line


def _object_line(c: Change) -> str:
    line = f"> - {_code(c.address)}: **{_cell(object_deletion_words(c) or '')}**"
    if c.blocked:
        line += " - blocked by " + "; ".join(
            f"{_code(b.rule.value)}: {_cell(b.message)}" for b in c.blocked_by
        )
    return line


def _warning_block(plan: Plan) -> list[str]:
    deletes = [c for c in plan.changes if c.deletes]
    objects = [c for c in plan.changes if not c.deletes and c.deleted_objects[0]]
    other_blocked = [c for c in plan.changes
                     if c.blocked and not c.deletes and c not in objects]
    if not deletes and not objects and not other_blocked:
        return []
    out = ["> [!WARNING]"]
    if deletes or objects:
        out.append("> This plan deletes or replaces resources:")
        out += [_risk_line(c) for c in deletes]
        out += [_object_line(c) for c in objects]
    if other_blocked:
        if deletes:
            out.append(">")
        out.append("> Blocked changes (apply never carries them out):")
        out += [_risk_line(c) for c in other_blocked]
    return [*out, ""]


def _attribute_details(shown: list[Change]) -> list[str]:
    """Every change's attribute diff, collapsed: what a reviewer checks line by line."""
    body: list[str] = []
    for c in shown:
        rows, _hidden = attribute_diff(c)
        if not rows:
            continue
        body.append(f"{symbol(c)} {c.address}" + (f" ({c.id})" if c.id else ""))
        body += [f"{op}     {key} = {text}" for op, key, text in rows]
    if not body:
        return []
    fence = "```"
    return ["<details><summary>Attribute changes</summary>", "", fence + "diff",
            *(line.replace(fence, "'''") for line in body), fence, "", "</details>", ""]


def _cost(plan: Plan) -> list[str]:
    cost = plan.cost
    out = [
        "### Cost",
        "",
        f"{usd(cost.hourly_usd_before)}/h → **{usd(cost.hourly_usd_after)}/h** "
        f"({cost_delta(cost)}); {usd(cost.daily_usd_after)}/day after apply; "
        f"{usd(cost.accumulated_usd)} accumulated so far.",
        "",
    ]
    if cost.exceeded:
        out.append("> [!CAUTION]")
        out.append("> Cost limits exceeded: " + ", ".join(_cell(x) for x in cost.exceeded)
                   + ("." if plan.applyable else
                      ". The spec enforces them: this plan cannot be applied without "
                      "`--allow-cost`."))
        out.append("")
    return out


def render_markdown(plan: Plan, graph: nx.DiGraph | None = None) -> str:
    """A PR-comment body. Without a graph, the plan's own depends_on is drawn."""
    s = plan.summary
    shown = [c for c in plan.changes if not c.is_noop]
    out = [
        f"## trainctl plan: {_code(plan.project)} in {_code(plan.region)}",
        "",
        "| " + " | ".join(SUMMARY_KEYS) + " |",
        "| " + " | ".join("---:" for _ in SUMMARY_KEYS) + " |",
        "| " + " | ".join(str(s[k]) for k in SUMMARY_KEYS) + " |",
        "",
    ]
    if not shown:
        out += ["**No changes.** Live state matches the spec.", ""]
    out += _warning_block(plan)
    out += _cost(plan)
    if shown:
        out += [
            "### Changes",
            "",
            "| address | action | reason | blocked by |",
            "| --- | --- | --- | --- |",
        ]
        for c in shown:
            out.append(f"| {_code(c.address)} | {_action(c)} | "
                       f"{_cell(reason_words(c.reason))} | {_rules(c)} |")
        out.append("")
        out += _attribute_details(shown)
        if len(shown) < len(plan.changes):
            out += [f"{len(plan.changes) - len(shown)} unchanged, not listed.", ""]
    if plan.warnings:
        out += ["### Warnings", ""]
        for w in plan.warnings:
            where = f"{_code(w.address)} ({_code(w.rule.value)})" if w.address else _code(
                w.rule.value)
            out.append(f"- {where}: {_cell(w.message)}")
        out.append("")
    if plan.data_locations:
        out += ["### Datasets", "", "| dataset | instance | reads it at | strategy |",
                "| --- | --- | --- | --- |"]
        out += [f"| {_code(d.dataset)} | {_code(d.instance)} | {_code(d.location)} | "
                f"{d.strategy} |" for d in plan.data_locations]
        out.append("")
    mermaid = to_mermaid(graph if graph is not None else graph_from_plan(plan), plan)
    out += [
        "<details><summary>Dependency graph</summary>",
        "",
        "```mermaid",
        mermaid.rstrip("\n"),
        "```",
        "",
        "</details>",
        "",
        f"<sub>plan {_code(plan.plan_id)}, created {plan.created_at}, "
        f"spec {_code(plan.spec_digest)}, live {_code(plan.live_digest)}</sub>",
    ]
    return "\n".join(out) + "\n"
