"""JSON Schema validation of a loaded document: every error, located and readable."""

from __future__ import annotations

import difflib
import json
import re
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator, ValidationError, validators

from planner.errors import SpecIssue
from planner.yamlsafe import Path, YamlDoc

SCHEMA_RESOURCE = "schemas/trainctl.schema.json"

_TYPE_NAMES = {
    "string": "a string", "integer": "an integer", "number": "a number",
    "boolean": "true or false", "object": "a mapping", "array": "a list", "null": "null",
}


@cache
def load_schema() -> dict[str, Any]:
    """The schema shipped inside the package (planner/schemas/, a copy of schemas/)."""
    text = resources.files("planner").joinpath(SCHEMA_RESOURCE).read_text(encoding="utf-8")
    return json.loads(text)  # type: ignore[no-any-return]


def _ecma_pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Any:
    """`pattern` with ECMA-262's `$` (end of input), not Python's (also before a final \\n)."""
    if not validator.is_type(instance, "string"):
        return
    py = pattern[:-1] + r"\Z" if pattern.endswith("$") and not pattern.endswith("\\$") else pattern
    if not re.search(py, instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _is_integer(_checker: object, value: object) -> bool:
    """JSON Schema counts 100.0 as an integer; boto3 and EC2 do not (a partial apply)."""
    return isinstance(value, int) and not isinstance(value, bool)


_Validator = validators.extend(
    Draft202012Validator, {"pattern": _ecma_pattern},
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_integer))


@cache
def _validator() -> Any:
    return _Validator(load_schema())


def _got(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _kind(value: Any) -> str:
    for py, name in ((bool, "a boolean"), (int, "an integer"), (float, "a number"),
                     (str, "a string"), (dict, "a mapping"), (list, "a list")):
        if isinstance(value, py):
            return name
    return "null"


def _suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _issues_for(err: ValidationError, doc: YamlDoc) -> list[SpecIssue]:
    path: Path = tuple(err.absolute_path)
    schema = err.schema if isinstance(err.schema, dict) else {}
    custom = schema.get("errorMessage")
    value = err.instance
    kind = err.validator

    if "propertyNames" in err.schema_path:
        # The instance is a key of the mapping at `path`.
        key_path = (*path, value)
        what = "tag key" if path and path[-1] == "tags" else "name"
        msg = custom or err.message
        return [doc.issue(key_path, f"invalid {what} {value!r}: {msg}", key=True)]

    if kind == "additionalProperties" and err.validator_value is False:
        allowed = sorted(schema.get("properties", {}))
        out = []
        for key in value:
            if key in schema.get("properties", {}):
                continue
            hint = _suggest(key, allowed) or f" (expected one of: {', '.join(allowed)})"
            out.append(doc.issue((*path, key), f"unknown key {key!r}{hint}", key=True))
        return out

    if kind == "required":
        missing = [k for k in err.validator_value if k not in value]
        msg = custom or ("missing required key " + ", ".join(repr(k) for k in missing))
        return [doc.issue(path, msg, key=True)]

    if kind == "type":
        want = err.validator_value
        wants = [want] if isinstance(want, str) else list(want)
        expected = " or ".join(_TYPE_NAMES.get(w, w) for w in wants)
        got = _kind(value) if isinstance(value, list | dict) or value is None \
            else f"{_kind(value)} ({_got(value)})"
        return [doc.issue(path, f"expected {expected}, got {got}")]

    if kind == "enum":
        choices = [str(c) for c in err.validator_value]
        hint = _suggest(str(value), choices) if isinstance(value, str) else ""
        return [doc.issue(path, f"must be one of {', '.join(choices)}; got {_got(value)}{hint}")]

    if kind == "const":
        return [doc.issue(path, f"must be {json.dumps(err.validator_value)}; got {_got(value)}")]

    if custom:
        return [doc.issue(path, f"{custom}; got {_got(value)}")]

    bounds = {
        "minimum": "must be at least {}", "maximum": "must be at most {}",
        "exclusiveMinimum": "must be more than {}", "exclusiveMaximum": "must be less than {}",
        "minLength": "must have at least {} characters", "maxLength": "must have at most {} "
        "characters", "minItems": "must have at least {} items", "maxItems": "must have at "
        "most {} items", "maxProperties": "must have at most {} entries",
    }
    if kind in bounds:
        msg = bounds[kind].format(err.validator_value)
        if not isinstance(value, list | dict):
            msg += f"; got {_got(value)}"
        return [doc.issue(path, msg)]
    if kind == "uniqueItems":
        return [doc.issue(path, "items must be unique")]
    return [doc.issue(path, err.message)]


def validate_document(doc: YamlDoc) -> list[SpecIssue]:
    """Every schema violation in the document, each with its FILE:LINE:COL and path."""
    issues: list[SpecIssue] = []
    for err in _validator().iter_errors(doc.data):
        issues.extend(_issues_for(err, doc))
    return sorted(set(issues))
