"""Error types that the CLI turns into clean messages (never a traceback)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class SpecIssue:
    """One problem in a spec file, printed as `FILE:LINE:COL: path: message`."""

    file: str
    line: int
    col: int
    path: str
    message: str

    def __str__(self) -> str:
        path = self.path or "(document)"
        return f"{self.file}:{self.line}:{self.col}: {path}: {self.message}"


def first_few(items: list[str], most: int = 5) -> str:
    """`a, b, c, d, e and 3 more`: a long list in one line of a message."""
    more = len(items) - most
    return ", ".join(items[:most]) + (f" and {more} more" if more > 0 else "")


class TrainctlError(Exception):
    """An expected failure: printed as one message, exit code 1."""


class SpecError(TrainctlError):
    """The spec is invalid; carries every issue found."""

    def __init__(self, issues: list[SpecIssue]):
        self.issues = sorted(issues)
        super().__init__("\n".join(str(i) for i in self.issues))


class PlanFileError(TrainctlError):
    """A plan file is corrupt, foreign or of an unknown format version."""


class StalePlanError(TrainctlError):
    """A saved plan no longer matches the spec or live state."""


class AwsAccessError(TrainctlError):
    """AWS cannot be reached or refused us (credentials, endpoint, permissions)."""


class LockHeldError(TrainctlError):
    """Another apply holds the lock."""
