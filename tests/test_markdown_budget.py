"""`plan --markdown` fits a pull-request comment whatever the plan's size, and reads in
GitHub, GitLab and plain CommonMark (checked with markdown-it-py's CommonMark preset)."""

from __future__ import annotations

import re

import pytest
from diffworld import NOW, inst, lvol, make_spec, plan_of, vol
from diffworld import live as live_state
from markdown_it import MarkdownIt

from planner.plan import (
    Action,
    Block,
    Change,
    Plan,
    PlanWarning,
    Reason,
    ResourceType,
    Rule,
)
from planner.render.markdown import BUDGET, render_markdown
from planner.spec import Mount

C, D = Action.CREATE, Action.DELETE
LIMIT = 60_000


def big_plan(n: int) -> Plan:
    """N instances, each with a volume, its attachment and mount: all created."""
    spec = make_spec([vol(f"v{i}", 100) for i in range(n)],
                     [inst(f"i{i}", mounts=(Mount(f"v{i}", "/dev/sdf", "/data"),))
                      for i in range(n)])
    return plan_of(spec, live_state())


def with_changes(plan: Plan, changes: tuple[Change, ...], **kw: object) -> Plan:
    return Plan(**{**plan.__dict__, "changes": changes, **kw})


def deletes(n: int, *, blocked: bool) -> tuple[Change, ...]:
    block = (Block(Rule.PERSISTENT, "persistent; name it with --allow-delete"),)
    return tuple(Change(f"volume.old{i}", ResourceType.VOLUME, (D,),
                        Reason.DELETE_BECAUSE_NOT_IN_SPEC, id=f"vol-{i:017x}",
                        before={"size_gib": 100}, blocked_by=block if blocked else ())
                 for i in range(n))


@pytest.mark.parametrize("n", [40, 500, 5000])
def test_markdown_stays_under_the_comment_limit(n: int) -> None:
    plan = big_plan(n)
    assert len(plan.changes) == 4 * n
    md = render_markdown(plan, None, plan_file="plan.json")
    assert len(md) < LIMIT, len(md)
    assert BUDGET <= LIMIT
    assert f"**Plan:** {4 * n:,} to create" in md
    assert "### Cost" in md
    if n >= 500:        # folded: counts per type and the pointer
        assert f"- `instance`: {n:,} create" in md and f"- `mount`: {n:,} create" in md
        assert "the full plan is in `plan.json`" in md
    else:               # 40 instances fit with every change listed
        assert "- `+` create `instance.i39`" in md


def test_a_plan_that_fits_is_not_folded() -> None:
    md = render_markdown(big_plan(3), None)
    assert "too many for a comment" not in md and "left out" not in md
    assert "<details><summary>Attribute changes</summary>" in md
    assert "```mermaid" in md


@pytest.mark.parametrize("blocked", [False, True])
def test_huge_deletion_and_blocked_lists_are_bounded_but_never_hidden(blocked: bool) -> None:
    base = big_plan(1)
    plan = with_changes(base, base.changes + deletes(5000, blocked=blocked))
    md = render_markdown(plan, None, plan_file="out/plan.json")
    assert len(md) < LIMIT, len(md)
    if blocked:
        assert "Warning: this plan deletes" not in md
        head = "> **Blocked: 5,000 changes that apply never carries out:**"
    else:
        head = "> **Warning: this plan deletes or replaces 5,000 resources:**"
    assert head in md
    block = md[md.index(head):].split("\n\n")[0]
    assert re.search(r"> - \.\.\. and [\d,]+ more \([\d,]+ `volume`\): the full plan is in "
                     r"`out/plan.json`", block), block[-300:]
    listed = block.count("> - `volume.old")
    more = int(re.search(r"and ([\d,]+) more", block).group(1).replace(",", ""))  # type: ignore[union-attr]
    assert listed + more == 5000 and listed > 10
    assert "### Cost" in md


def test_the_deletion_warning_only_when_something_is_really_deleted() -> None:
    base = big_plan(1)
    only_blocked = render_markdown(with_changes(base, deletes(3, blocked=True)), None)
    assert "deletes or replaces" not in only_blocked
    assert "> **Blocked: 3 changes that apply never carries out:**" in only_blocked
    real = render_markdown(with_changes(base, deletes(2, blocked=False)), None)
    assert "> **Warning: this plan deletes or replaces 2 resources:**" in real
    assert "Blocked:" not in real
    creates = render_markdown(base, None)
    assert "deletes or replaces" not in creates and "Blocked:" not in creates


def test_a_real_blocked_replace_is_not_announced_as_a_replace() -> None:
    spec = make_spec([vol("data", 100, persistent=True, encrypted=True)], [])
    state = live_state(volumes=(lvol("vol-1", "volume.data", 100, encrypted=False,
                                     created=NOW),))
    plan = plan_of(spec, state)
    assert plan.change("volume.data").blocked
    md = render_markdown(plan, None)
    assert "deletes or replaces" not in md and "> **Blocked: 1 change" in md


def test_many_warnings_and_datasets_fold_too() -> None:
    base = big_plan(1)
    warnings = tuple(PlanWarning(f"instance.i{i}", Rule.COST, "x" * 200) for i in range(2000))
    md = render_markdown(with_changes(base, base.changes, warnings=warnings), None)
    assert len(md) < LIMIT
    assert "2,000 warnings (2,000 `cost`)" in md


@pytest.mark.parametrize("html", [True, False])
def test_portable_markdown_reads_in_plain_commonmark(html: bool) -> None:
    base = big_plan(2)
    plan = with_changes(base, base.changes + deletes(2, blocked=False)
                        + deletes(1, blocked=True)[:0]
                        + (Change("volume.kept", ResourceType.VOLUME, (D,),
                                  Reason.DELETE_BECAUSE_NOT_IN_SPEC, id="vol-k",
                                  blocked_by=(Block(Rule.PERSISTENT, "persistent"),)),))
    md = render_markdown(plan, None)
    assert "[!" not in md          # no GitHub-only alert syntax
    out = MarkdownIt("commonmark", {"html": html}).render(md)
    assert "<h2>trainctl plan: <code>llm</code> in <code>us-east-1</code></h2>" in out
    assert "<strong>Plan:</strong> 8 to create" in out
    assert "<blockquote>\n<p><strong>Warning: this plan deletes or replaces 2 " in out
    assert "<strong>Blocked: 1 change that apply never carries out:</strong>" in out
    assert "<li><code>volume.old0</code>" in out      # the deletions are a real list
    assert '<code class="language-mermaid">flowchart LR' in out
    assert "<li><code>+</code> create <code>instance.i0</code>" in out
    if html:
        assert "<details><summary>Dependency graph</summary>" in out
    else:                           # a renderer without HTML shows the tag as text
        assert "&lt;details&gt;" in out
