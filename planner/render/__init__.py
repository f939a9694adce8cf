"""Plan renderers: terminal text (`render_text`) and PR-comment Markdown
(`render_markdown`). Pure functions of a Plan; shared wording lives here."""

from __future__ import annotations

import json
from typing import Any

from planner.export import change_symbol
from planner.payloads import DatasetPayload
from planner.plan import Change, CostSummary, Plan, Reason, Rule
from planner.words import counted

REASON_WORDS: dict[Reason, str] = {
    Reason.NO_CHANGE: "it matches the spec",
    Reason.CREATE_BECAUSE_MISSING: "it does not exist yet",
    Reason.CREATE_BECAUSE_DELETED_OUTSIDE: "it was deleted or terminated outside trainctl",
    Reason.UPDATE_BECAUSE_DRIFT: "live state differs from the spec",
    Reason.REPLACE_BECAUSE_CANNOT_UPDATE: "a changed attribute cannot be updated in place",
    Reason.REPLACE_BECAUSE_DEPENDENCY_REPLACED: "something it depends on is replaced",
    Reason.DELETE_BECAUSE_NOT_IN_SPEC: "it is no longer in the spec",
    Reason.DELETE_BECAUSE_DESTROY: "--destroy was given",
    Reason.ADOPT_BECAUSE_IMPORT: "the spec imports an existing resource",
    Reason.UPLOAD_BECAUSE_SOURCE_CHANGED: "the local source changed",
    Reason.PREWARM_BECAUSE_DATASET_CHANGED: "the dataset changed since the volume was filled",
    Reason.ATTACH_BECAUSE_NOT_ATTACHED: "the volume is not attached",
    Reason.MOUNT_BECAUSE_NOT_MOUNTED: "the volume is not mounted",
    Reason.MOUNT_BECAUSE_VOLUME_GREW: "the volume grew, so its filesystem must grow",
    Reason.SYNC_BECAUSE_DATASET_CHANGED: "the dataset changed since the last sync",
    Reason.VERIFY_BECAUSE_EXISTING_EBS: "the dataset on the existing volume is verified",
    Reason.DELETE_BECAUSE_DUPLICATE: "another live resource carries the same address",
    Reason.DELETE_BECAUSE_TEMPORARY: "a temporary prewarm instance left by an interrupted "
                                     "apply (its volumes are detached, never deleted)",
}

VERBS = {
    "create": "will be created",
    "update": "will be updated in place",
    "replace": "must be replaced",
    "delete": "will be deleted",
    "no-op": "is unchanged",
}


def reason_words(reason: Reason) -> str:
    return REASON_WORDS.get(reason, reason.value.replace("_", " "))


def change_reason(change: Change, plan: Plan | None = None) -> str:
    """The reason in words for this change, naming the resource it is about when the
    plan holds it (`i-0abc was terminated outside trainctl`, its `deleted-outside`
    warning)."""
    if change.reason is Reason.CREATE_BECAUSE_DELETED_OUTSIDE and plan is not None:
        for w in plan.warnings:
            if w.rule is Rule.DELETED_OUTSIDE and w.address == change.address:
                return w.message
    return reason_words(change.reason)


def symbol(change: Change) -> str:
    """Terraform's action symbol: `+ ~ -/+ +/- -` (blank for no-op)."""
    return " " if change.is_noop else change_symbol(change)


def fmt_value(value: Any) -> str:
    """An attribute value as JSON: strings quoted, null, true/false, compact objects."""
    return json.dumps(value, sort_keys=True, separators=(", ", ": "), default=str)


def usd(x: float) -> str:
    return f"${x:,.2f}"


def cost_figure(cost: CostSummary, name: str) -> str:
    """`$1.23`, or `$?` when part of the figure has no price (never a lower $ figure)."""
    value = cost.figure(name)
    return "$?" if value is None else usd(value)


def cost_delta(cost: CostSummary) -> str:
    if cost.figure("hourly_usd_after") is None or cost.figure("hourly_usd_before") is None:
        return "$?/h change"
    delta = cost.hourly_usd_after - cost.hourly_usd_before
    sign = "+" if delta >= 0 else "-"
    return f"{sign}{usd(abs(delta))}/h"


def cost_summary_line(cost: CostSummary, *, markdown: bool = False) -> str:
    """The figures in one sentence; unknown ones as `$?` with the priced part."""
    def fig(name: str, unit: str) -> str:
        text = cost_figure(cost, name) + unit
        if name in cost.incomplete:
            text += f" (at least {usd(getattr(cost, name))}{unit})"
        return text

    after = fig("hourly_usd_after", "/h")
    if markdown:
        return (f"{fig('hourly_usd_before', '/h')} → **{after}** ({cost_delta(cost)}); "
                f"{fig('daily_usd_after', '/day')} after apply; "
                f"{fig('accumulated_usd', '')} accumulated so far")
    return (f"{fig('hourly_usd_before', '/h')} -> {after} "
            f"({cost_delta(cost)}), {fig('daily_usd_after', '/day')} after apply, "
            f"{fig('accumulated_usd', '')} accumulated so far")


def unknown_price_lines(cost: CostSummary) -> list[str]:
    """`$?/h: no price for p5en.48xlarge in eu-north-1 (instance.trainer)`, one per price."""
    return [f"$?/h: {u.message}" + (f" ({u.address})" if u.address else "")
            for u in cost.unknown_prices]


# ids that exist only once apply has created their resource; other unset values are not shown
KNOWN_AFTER_APPLY = frozenset({"id", "instance_id", "volume_id"})


def attribute_diff(change: Change) -> tuple[list[tuple[str, str, str]], int]:
    """Rows (op, key, text) for a change's attributes, and how many unchanged were hidden.

    op is `+` (only after), `-` (only before) or `~` (changed); text is `v` or `a -> b`.
    """
    before = change.before.to_json() if change.before is not None else {}
    after = change.after.to_json() if change.after is not None else {}
    rows: list[tuple[str, str, str]] = []
    hidden = 0
    keys = list(after) + [k for k in before if k not in after]
    for key in keys:
        if key not in before and after[key] is None:
            if key in KNOWN_AFTER_APPLY:
                rows.append(("+", key, "(known after apply)"))
        elif key not in before:
            rows.append(("+", key, fmt_value(after[key])))
        elif key not in after:
            if key == "id" and before[key] == change.id:
                continue          # the id is in the change's header already
            rows.append(("-", key, fmt_value(before[key])))
        elif before[key] != after[key]:
            rows.append(("~", key, f"{fmt_value(before[key])} -> {fmt_value(after[key])}"))
        elif key in change.replace_paths:
            rows.append(("~", key, fmt_value(after[key])))
        else:
            hidden += 1
    return rows, hidden


def forces_replacement(change: Change, key: str) -> bool:
    return any(p == key or p.startswith(key + ".") for p in change.replace_paths)


def size_words(n: int) -> str:
    """`12 bytes`, `1.5 MiB (1,572,864 bytes)`."""
    if n < 1024:
        return counted(n, "byte", grouped=True)
    value, units = n / 1024, ["KiB", "MiB", "GiB", "TiB", "PiB"]
    while value >= 1024 and len(units) > 1:
        value, units = value / 1024, units[1:]
    return f"{value:.1f} {units[0]} ({n:,} bytes)"


def object_deletion_words(change: Change) -> str | None:
    """`deletes 3 objects (12 bytes) under s3://b/p/ that trainctl uploaded earlier: ...`,
    or None when the change deletes no S3 object."""
    n, size = change.deleted_objects
    if not n:
        return None
    after = change.after if isinstance(change.after, DatasetPayload) else DatasetPayload()
    where = f" under {after.stage}" if after.stage else ""
    examples = list(after.delete_examples or ())
    more = n - len(examples)
    named = ", ".join(examples) + (f" and {more} more" if examples and more > 0 else "")
    return (f"deletes {counted(n, 'object')} ({size_words(size)}){where} that "
            f"trainctl uploaded earlier" + (f": {named}" if named else ""))


def object_deletions(changes: list[Change]) -> tuple[int, int]:
    """(objects, bytes) all CHANGES delete under S3 prefixes, blocked ones left out."""
    pairs = [c.deleted_objects for c in changes if not c.blocked]
    return sum(n for n, _ in pairs), sum(b for _, b in pairs)
