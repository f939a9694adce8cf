"""Which S3 keys are safe to copy below a destination folder (DESIGN section 4, `unsafe-key`).

A key below a dataset prefix becomes a path below the destination: it must be a plain
relative path. `..` makes s5cmd write outside the destination; a leading `/`, empty
segments (`a//b`) and `.` segments name another file than the key says; backslashes and
control characters (NUL included) are read differently by different tools. The same rule
runs on the instance (planner/dataplane/scripts/lib.sh, `check_s3_keys`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

EXAMPLES = 5     # keys named in a message or a plan

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_UNSAFE = re.compile(r"^/|//|(?:^|/)\.\.?(?:/|$)|[\\\x00-\x1f\x7f]")


def unsafe_reason(rel: str) -> str | None:
    """Why the key RELATIVE to its prefix is not a safe relative path, or None.

    A folder marker (a key ending in `/`) is judged without that final slash; the prefix's
    own marker (the empty relative key) is safe."""
    if rel == "":
        return None
    if _UNSAFE.search(rel) is None:
        return None
    path = rel[:-1] if rel.endswith("/") else rel
    if "\\" in path:
        return "a backslash"
    if "\x00" in path:
        return "a NUL character"
    if _CONTROL.search(path):
        return "a control character"
    if path.startswith("/"):
        return "a leading '/'"
    parts = path.split("/")
    if ".." in parts:
        return "a '..' segment"
    if "." in parts:
        return "a '.' segment"
    if "" in parts:
        return "an empty segment"
    return None


def unsafe_keys(rels: Iterable[str]) -> tuple[int, tuple[str, ...]]:
    """(how many of RELS are unsafe, the first EXAMPLES of them in sorted order)."""
    bad = sorted(k for k in rels if _UNSAFE.search(k) is not None and unsafe_reason(k))
    return len(bad), tuple(bad[:EXAMPLES])


def describe(keys: Iterable[str], total: int) -> str:
    """`'../x' (a '..' segment), 'a//b' (an empty segment) and 3 more`."""
    shown = [f"{k!r} ({unsafe_reason(k)})" for k in keys]
    more = total - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


def named(keys: Iterable[str], total: int) -> str:
    """`'a', 'b' and 3 more`: example keys of TOTAL, quoted."""
    shown = [repr(k) for k in keys]
    more = total - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")
