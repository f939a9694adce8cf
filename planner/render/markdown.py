"""The plan as a pull-request comment: summary, the deletion and blocked blocks, cost,
the changes, attribute diffs and the Mermaid graph. Pure.

Portable Markdown (GitHub, GitLab, plain CommonMark): lists and blockquotes rather than
GitHub-only alerts; `<details>` only around what may fold away. The body stays under
BUDGET characters (GitHub refuses comments over 65,536): past it the summary, the
deletion and blocked blocks and the cost stay, the rest folds into counts per type with
a pointer to the full plan file."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import networkx as nx

from planner.export import graph_from_plan, to_mermaid
from planner.plan import SUMMARY_KEYS, Change, Plan
from planner.render import (
    attribute_diff,
    change_reason,
    cost_summary_line,
    object_deletion_words,
    symbol,
    unknown_price_lines,
)
from planner.words import counted


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


BUDGET = 60_000          # characters of the whole body
BLOCK_BUDGET = 20_000    # characters of the deletion block, and again of the blocked block


def _type_counts(changes: list[Change]) -> str:
    counts = Counter(c.type.value for c in changes)
    return ", ".join(f"{n:,} {_code(t)}" for t, n in sorted(counts.items()))


def _bounded(head: str, lines: list[str], changes: list[Change], budget: int,
             pointer: str) -> list[str]:
    """`head` and as many LINES as fit in BUDGET characters; the rest as counts per type
    (never dropped silently: the head and the counts always show)."""
    out, used = [head], len(head)
    for i, line in enumerate(lines):
        if used + len(line) + 1 > budget:
            rest = changes[i:]
            out.append(f"> - ... and {len(rest):,} more ({_type_counts(rest)}): {pointer}")
            break
        out.append(line)
        used += len(line) + 1
    return out


def _warning_block(plan: Plan, pointer: str, budget: int = BLOCK_BUDGET) -> list[str]:
    """What apply will really delete or replace, then what it will not do (blocked)."""
    deletes = [c for c in plan.changes if c.deletes and not c.blocked]
    objects = [c for c in plan.changes
               if not c.deletes and not c.blocked and c.deleted_objects[0]]
    blocked = [c for c in plan.changes if c.blocked]
    out: list[str] = []
    if deletes or objects:
        n = len(deletes) + len(objects)
        out += _bounded(
            f"> **Warning: this plan deletes or replaces "
            f"{counted(n, 'resource', grouped=True)}:**",
            [_risk_line(c) for c in deletes] + [_object_line(c) for c in objects],
            deletes + objects, budget, pointer)
        out.append("")
    if blocked:
        n = len(blocked)
        out += _bounded(
            f"> **Blocked: {counted(n, 'change', grouped=True)} that apply never carries "
            f"out:**",
            [_object_line(c) if not c.deletes and c.deleted_objects[0] else _risk_line(c)
             for c in blocked], blocked, budget, pointer)
        out.append("")
    return out


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
        _cell(cost_summary_line(cost, markdown=True)) + ".",
        "",
    ]
    unknown = unknown_price_lines(cost)
    if unknown:
        out += [f"- **{_cell(line)}**" for line in unknown] + [""]
        if not plan.applyable:
            out += ["> **Caution: prices unknown:** the spec enforces its cost limits: this "
                    "plan cannot be applied without `--allow-cost`.", ""]
    if cost.exceeded:
        out.append("> **Caution: cost limits exceeded:** "
                   + ", ".join(_cell(x) for x in cost.exceeded)
                   + ("." if plan.applyable else
                      ". The spec enforces them: this plan cannot be applied without "
                      "`--allow-cost`."))
        out.append("")
    return out


def _summary_line(plan: Plan) -> str:
    s = plan.summary
    return (f"**Plan:** {s['create']:,} to create, {s['update']:,} to update, "
            f"{s['replace']:,} to replace, {s['delete']:,} to delete, "
            f"{s['blocked']:,} blocked ({s['no-op']:,} unchanged).")


def _changes(shown: list[Change], plan: Plan) -> list[str]:
    out = ["### Changes", ""]
    for c in shown:
        line = f"- {_action(c)} {_code(c.address)}: {_cell(change_reason(c, plan))}"
        if c.blocked:
            line += f" (**blocked**: {_rules(c)})"
        out.append(line)
    return [*out, ""]


def _changes_folded(shown: list[Change], pointer: str) -> list[str]:
    """Counts per type and action instead of one line per change."""
    per: dict[str, Counter[str]] = {}
    for c in shown:
        per.setdefault(c.type.value, Counter())["blocked" if c.blocked else c.kind] += 1
    out = ["### Changes", "", f"{len(shown):,} changes, too many for a comment; {pointer}", ""]
    for t, counts in sorted(per.items()):
        out.append(f"- {_code(t)}: " + ", ".join(
            f"{counts[k]:,} {k}" for k in SUMMARY_KEYS if counts[k]))
    return [*out, ""]


def _warnings(plan: Plan) -> list[str]:
    out = ["### Warnings", ""]
    for w in plan.warnings:
        where = f"{_code(w.address)} ({_code(w.rule.value)})" if w.address else _code(
            w.rule.value)
        out.append(f"- {where}: {_cell(w.message)}")
    return [*out, ""]


def _warnings_folded(plan: Plan, pointer: str) -> list[str]:
    counts = Counter(w.rule.value for w in plan.warnings)
    return ["### Warnings", "", f"{len(plan.warnings):,} warnings ("
            + ", ".join(f"{n:,} {_code(r)}" for r, n in sorted(counts.items()))
            + f"); {pointer}", ""]


def _datasets(plan: Plan) -> list[str]:
    out = ["### Datasets", ""]
    out += [f"- {_code(d.dataset)} on {_code(d.instance)}: {_code(d.location)} "
            f"({d.strategy})" for d in plan.data_locations]
    return [*out, ""]


def _limits(plan: Plan) -> list[str]:
    from planner.render.text import expiry_text

    out = ["### Limits (enforced on the instance)", ""]
    out += [f"- {_code(e.instance)}: {expiry_text(e)}" for e in plan.expiries]
    return [*out, ""]


def _graph(plan: Plan, graph: nx.DiGraph | None) -> list[str]:
    mermaid = to_mermaid(graph if graph is not None else graph_from_plan(plan), plan)
    return ["<details><summary>Dependency graph</summary>", "", "```mermaid",
            mermaid.rstrip("\n"), "```", "", "</details>", ""]


def render_markdown(plan: Plan, graph: nx.DiGraph | None = None, *,
                    plan_file: str | None = None, budget: int = BUDGET) -> str:
    """A PR-comment body under `budget` characters. Without a graph, the plan's own
    depends_on is drawn. `plan_file` is where the full plan is (the pointer when
    detail folds away)."""
    pointer = (f"the full plan is in {_code(plan_file)} (`trainctl show {plan_file}`)"
               if plan_file else "the full plan: `trainctl plan -o plan.json` then "
               "`trainctl show plan.json`")
    shown = [c for c in plan.changes if not c.is_noop]
    head = [f"## trainctl plan: {_code(plan.project)} in {_code(plan.region)}", "",
            _summary_line(plan), ""]
    if not shown:
        head += ["**No changes.** Live state matches the spec.", ""]
    head += _warning_block(plan, pointer)
    head += _cost(plan)
    foot = [f"<sub>plan {_code(plan.plan_id)}, created {plan.created_at}, "
            f"spec {_code(plan.spec_digest)}, live {_code(plan.live_digest)}</sub>"]
    # optional sections in order: (full, folded); a section folds when it and the
    # folded rest would not fit
    sections: list[tuple[Callable[[], list[str]], Callable[[], list[str]]]] = []
    if shown:
        sections.append((lambda: _changes(shown, plan), lambda: _changes_folded(shown, pointer)))
        sections.append((lambda: _attribute_details(shown), lambda: [
            f"Attribute changes are left out for size; {pointer}.", ""]))
    if plan.warnings:
        sections.append((lambda: _warnings(plan), lambda: _warnings_folded(plan, pointer)))
    if plan.data_locations:
        n = len(plan.data_locations)
        sections.append((lambda: _datasets(plan), lambda: [
            "### Datasets", "", f"{n:,} dataset locations; {pointer}", ""]))
    if plan.expiries:
        n = len(plan.expiries)
        sections.append((lambda: _limits(plan), lambda: [
            "### Limits", "", f"{n:,} instances with lifetime or idle limits; {pointer}", ""]))
    sections.append((lambda: _graph(plan, graph), lambda: [
        f"The dependency graph is left out ({len(plan.changes):,} nodes): "
        "`trainctl graph --plan PLANFILE`.", ""]))

    def size(lines: list[str]) -> int:
        return sum(len(x) + 1 for x in lines)

    folded = [f() for _, f in sections]
    out = list(head)
    for i, (full, _fold) in enumerate(sections):
        body = full()
        if size(out) + size(body) + sum(size(x) for x in folded[i + 1:]) + size(foot) \
                <= budget:
            out += body
        else:
            out += folded[i]
    out += foot
    return "\n".join(out) + "\n"
