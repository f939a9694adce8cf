"""Files trainctl reads back (plan files, live snapshots, local.json, the lock, the journal):
strict JSON, finite numbers that fit 64 bits, then the file's own JSON Schema. Every
problem is reported at once as `FILE: field: message`, before anything uses the file.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from functools import cache
from typing import Any

from planner.errors import TrainctlError
from planner.words import counted

MAX_INT = 2**63 - 1            # what AWS's APIs and JSON readers elsewhere can hold
MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_ISSUES = 20                # listed in one message; the rest are counted

Path = tuple[str | int, ...]


class FileCheckError(TrainctlError):
    """A file trainctl reads back is unreadable, of the wrong type, or invalid."""


def field_name(path: Path) -> str:
    """`("changes", 0, "actions")` -> `changes[0].actions`; the top level is `(document)`."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
    return out or "(document)"


def _constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def loads_strict(text: str | bytes) -> Any:
    """json.loads without NaN/Infinity (Python accepts them; JSON does not)."""
    return json.loads(text, parse_constant=_constant)


def number_issues(doc: Any) -> list[tuple[Path, str]]:
    """Every number that is not finite or does not fit 64 bits (`1e400`, `10**400`).
    Iterative, so deep nesting cannot overflow the stack."""
    out: list[tuple[Path, str]] = []
    stack: list[tuple[Path, Any]] = [((), doc)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, bool):
            continue
        if isinstance(value, int):
            if abs(value) > MAX_INT:
                out.append((path, "number too large (more than 2^63)"))
        elif isinstance(value, float):
            if not math.isfinite(value):
                out.append((path, "number too large or not finite"))
        elif isinstance(value, Mapping):
            stack.extend(((*path, str(k)), v) for k, v in value.items())
        elif isinstance(value, list | tuple):
            stack.extend(((*path, i), v) for i, v in enumerate(value))
    return sorted(out, key=lambda pv: field_name(pv[0]))


def _is_integer(_checker: object, value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@cache
def _format_checker() -> Any:
    from jsonschema import FormatChecker

    checker = FormatChecker(formats=())

    @checker.checks("trainctl-time", raises=(ValueError, TypeError, OverflowError))
    def _time(value: object) -> bool:
        if not isinstance(value, str):
            return True
        from planner.live import parse_iso

        parse_iso(value)
        return True

    return checker


@cache
def _validator_class() -> Any:
    from jsonschema import Draft202012Validator, validators

    return validators.extend(
        Draft202012Validator,
        type_checker=Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_integer))


_TYPE_NAMES = {
    "string": "a string", "integer": "an integer", "number": "a number",
    "boolean": "true or false", "object": "an object", "array": "a list", "null": "null",
}


def _kind(value: Any) -> str:
    for py, name in ((bool, "a boolean"), (int, "an integer"), (float, "a number"),
                     (str, "a string"), (Mapping, "an object"), (list, "a list")):
        if isinstance(value, py):
            return name
    return "null"


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=True, default=str) if not isinstance(
        value, Mapping | list) else _kind(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _message(err: Any) -> str:
    kind, want, value = err.validator, err.validator_value, err.instance
    if kind == "type":
        wants = [want] if isinstance(want, str) else list(want)
        return (f"expected {' or '.join(_TYPE_NAMES.get(w, w) for w in wants)}, "
                f"got {_kind(value)}" + ("" if isinstance(value, Mapping | list)
                                          else f" ({_short(value)})"))
    if kind == "required":
        missing = [k for k in want if isinstance(value, Mapping) and k not in value]
        return "missing required key " + ", ".join(repr(k) for k in missing)
    if kind in ("enum", "const"):
        choices = want if kind == "enum" else [want]
        shown = ", ".join(json.dumps(c) for c in choices[:12])
        more = f" and {len(choices) - 12} more" if len(choices) > 12 else ""
        return f"must be one of {shown}{more}; got {_short(value)}"
    if kind == "additionalProperties":
        extra = sorted(set(value) - set(err.schema.get("properties", {})))
        return "unknown key " + ", ".join(repr(_short(k)) for k in extra[:5])
    if kind == "minItems":
        return f"must have at least {counted(want, 'item')}"
    if kind == "maxItems":
        return f"must have at most {counted(want, 'item')}"
    if kind == "minLength":
        return f"must have at least {counted(want, 'character')}"
    if kind == "maxLength":
        return f"must have at most {counted(want, 'character')}"
    if kind == "minimum":
        return f"must be at least {want}; got {_short(value)}"
    if kind == "maximum":
        return f"must be at most {want}; got {_short(value)}"
    if kind == "format":
        return f"not a valid time (ISO 8601, e.g. 2026-01-31T12:00:00Z); got {_short(value)}"
    if kind == "pattern":
        return f"does not match {want!r}; got {_short(value)}"
    if kind == "propertyNames":
        return "invalid key"
    msg = str(err.message)
    return msg if len(msg) <= 200 else msg[:197] + "..."


def schema_issues(doc: Any, schema: Mapping[str, Any]) -> list[tuple[Path, str]]:
    """Every violation of `schema` (a JSON Schema, draft 2020-12) in `doc`."""
    validator = _validator_class()(schema, format_checker=_format_checker())
    out = []
    for err in validator.iter_errors(doc):
        path: Path = tuple(err.absolute_path)
        if err.validator == "propertyNames":
            path = (*path, str(err.instance))
        out.append((path, _message(err)))
    return sorted(set(out), key=lambda pv: (field_name(pv[0]), pv[1]))


def issues_of(doc: Any, schema: Mapping[str, Any]) -> list[tuple[Path, str]]:
    """Number problems first (the schema cannot see them), then schema violations."""
    numbers = number_issues(doc)
    return numbers or schema_issues(doc, schema)


def raise_issues(path: str, what: str, issues: list[tuple[Path, str]]) -> None:
    """One FileCheckError listing `issues` as `FILE: field: message` lines (if any)."""
    if not issues:
        return
    lines = [f"{path}: {field_name(p)}: {m}" for p, m in issues[:MAX_ISSUES]]
    if len(issues) > MAX_ISSUES:
        lines.append(f"{path}: and {len(issues) - MAX_ISSUES} more problems")
    raise FileCheckError(f"{path}: not a valid {what}:\n" + "\n".join(lines))


def check(path: str, what: str, doc: Any, schema: Mapping[str, Any]) -> None:
    raise_issues(path, what, issues_of(doc, schema))


def read_json(path: str, what: str) -> Any:
    """The file's JSON, strictly parsed; every failure is one FileCheckError naming it."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise FileCheckError(f"{path}: no such {what}") from None
    except IsADirectoryError:
        raise FileCheckError(f"{path}: is a directory, not a {what}") from None
    except OSError as e:
        raise FileCheckError(f"{path}: cannot read the {what}: {e.strerror or e}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise FileCheckError(f"{path}: not a {what}: larger than {MAX_FILE_BYTES} bytes")
    return loads_checked(raw, path, what)


def loads_checked(raw: bytes | str, path: str, what: str) -> Any:
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        return loads_strict(text)
    except UnicodeDecodeError:
        raise FileCheckError(f"{path}: not a {what}: not UTF-8 text") from None
    except json.JSONDecodeError as e:
        raise FileCheckError(f"{path}: not a {what}: invalid JSON at line {e.lineno} column "
                             f"{e.colno}: {e.msg}") from None
    except RecursionError:
        raise FileCheckError(f"{path}: not a {what}: JSON nested too deeply") from None
    except ValueError as e:      # NaN/Infinity, or an integer of more than 4300 digits
        raise FileCheckError(f"{path}: not a {what}: {e}") from None
