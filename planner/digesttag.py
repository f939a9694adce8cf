"""The `trainctl:dataset-digest` tag codec: `name=sha256:<32 hex>[:OBJECTS:BYTES],...`.

Pure: the diff reads it (is a dataset's fill current?), the engines write it after a fill.
"""

from __future__ import annotations

from collections.abc import Mapping

DIGEST_HEX = 32          # hex digits of a digest kept in the trainctl:dataset-digest tag


def short_digest(d: str | None) -> str | None:
    """`sha256:<64 hex>` -> `sha256:<first 32 hex>` (the tag's form)."""
    if not d:
        return None
    algo, _, hexpart = d.partition(":")
    return f"{algo}:{hexpart[:DIGEST_HEX]}"


def parse_digest_tag(value: str | None) -> dict[str, str]:
    """`a=sha256:...,b=sha256:...` -> {"a": "sha256:...", ...}; junk entries are ignored."""
    out: dict[str, str] = {}
    for part in (value or "").split(","):
        name, sep, d = part.strip().partition("=")
        if sep and name and d:
            out[name] = d
    return out


def entry_value(digest: str, objects: int | None = None, size: int | None = None) -> str:
    """An entry's value: `sha256:<32 hex>`, with `:OBJECTS:BYTES` when known (so the next
    refill can say `objects 6 -> 7`). Readers that compare digests only see the digest."""
    d = str(short_digest(digest))
    return f"{d}:{objects}:{size}" if objects is not None and size is not None else d


def entry_counts(value: str | None) -> tuple[int | None, int | None]:
    """(objects, bytes) an entry recorded, or (None, None) for a digest-only entry."""
    parts = (value or "").split(":")
    if len(parts) == 4 and parts[2].isdigit() and parts[3].isdigit():
        return int(parts[2]), int(parts[3])
    return None, None


def format_digest_tag(entries: Mapping[str, str], *, counts: bool = True) -> str:
    """Inverse of parse_digest_tag, entries sorted by name, digests shortened (and their
    counts kept, unless `counts` is false)."""
    out = []
    for k, v in sorted(entries.items()):
        objects, size = entry_counts(v) if counts else (None, None)
        out.append(f"{k}={entry_value(v, objects, size)}")
    return ",".join(out)


def digest_matches(tag_value: str | None, dataset: str, manifest_digest: str | None) -> bool:
    """Whether the tag records DATASET at MANIFEST_DIGEST (compared in the short form)."""
    recorded = parse_digest_tag(tag_value).get(dataset)
    return manifest_digest is not None and short_digest(recorded) == short_digest(
        manifest_digest)
