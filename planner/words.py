"""Words for counted things in messages: "1 minute", "2 minutes". Pure."""

from __future__ import annotations


def plural(n: int, noun: str, many: str | None = None) -> str:
    """`noun` for exactly one, else `many` (default: noun + "s")."""
    return noun if n == 1 else (many if many is not None else noun + "s")


def counted(n: int, noun: str, many: str | None = None, *, grouped: bool = False) -> str:
    """`n` and its noun: "1 minute", "3 minutes"; grouped: "1,024 files"."""
    return f"{n:,} {plural(n, noun, many)}" if grouped else f"{n} {plural(n, noun, many)}"
