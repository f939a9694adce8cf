"""JSON Schema validation of a loaded document: every error, located and readable.

jsonschema-rs (Rust) decides whether a document is valid: milliseconds for a
100,000-resource spec. A document it rejects is explained by the Python `jsonschema`
(imported only then), whose errors carry the subschema and value the messages need.
"""

from __future__ import annotations

import difflib
import json
import re
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from planner.errors import SpecIssue
from planner.words import plural
from planner.yamlsafe import YAML11_BOOLS, Path, YamlDoc, format_path

if TYPE_CHECKING:
    from jsonschema import ValidationError

SCHEMA_RESOURCE = "schemas/trainctl.schema.json"

_TYPE_NAMES = {
    "string": "a string", "integer": "an integer", "number": "a number",
    "boolean": "true or false", "object": "a mapping", "array": "a list", "null": "null",
}


@cache
def load_schema() -> dict[str, Any]:
    """The schema shipped inside the package (planner/schemas/, a copy of schemas/)."""
    return json.loads(schema_text())  # type: ignore[no-any-return]


def schema_text() -> str:
    """The schema file as shipped (what `trainctl schema` prints)."""
    return resources.files("planner").joinpath(SCHEMA_RESOURCE).read_text(encoding="utf-8")


@cache
def _fast() -> Any:
    """jsonschema-rs: its `pattern` is ECMA-262's (`$` is the end of input)."""
    import jsonschema_rs

    return jsonschema_rs.Draft202012Validator(load_schema())


@cache
def _explainer() -> Any:
    """The Python validator, with the same reading as the fast one: ECMA `$`, and
    an integer that is not a float (100.0 passes JSON Schema's integer; boto3 and EC2
    refuse it mid-apply)."""
    from jsonschema import Draft202012Validator, ValidationError, validators

    def ecma_pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Any:
        if not validator.is_type(instance, "string"):
            return
        py = (pattern[:-1] + r"\Z" if pattern.endswith("$") and not pattern.endswith("\\$")
              else pattern)
        if not re.search(py, instance):
            yield ValidationError(f"{instance!r} does not match {pattern!r}")

    def is_integer(_checker: object, value: object) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    cls = validators.extend(
        Draft202012Validator, {"pattern": ecma_pattern},
        type_checker=Draft202012Validator.TYPE_CHECKER.redefine("integer", is_integer))
    return cls(load_schema())


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


_SEXAGESIMAL = re.compile(r"[-+]?[0-9][0-9_]*(:[0-5]?[0-9])+")
_YAML11_INT = re.compile(r"[-+]?(0b[01_]+|0[0-7_]+|0x[0-9a-fA-F_]+|[0-9][0-9_]*)")


def _yaml11_int(text: str) -> int | None:
    """What YAML 1.1 (PyYAML's old reading) made of an integer-looking string."""
    sign = -1 if text.startswith("-") else 1
    digits = text.lstrip("+-").replace("_", "")
    if _SEXAGESIMAL.fullmatch(text):
        value = 0
        for part in digits.split(":"):
            value = value * 60 + int(part)
        return sign * value
    if not _YAML11_INT.fullmatch(text) or len(digits) > 30:
        return None
    for prefix, base in (("0b", 2), ("0x", 16)):
        if digits.startswith(prefix):
            return sign * int(digits[2:] or "0", base)
    if digits.startswith("0") and len(digits) > 1:
        return sign * int(digits, 8)
    return sign * int(digits)


def yaml11_hint(value: Any, wants: list[str]) -> str:
    """Why a value an older YAML reader took for a boolean or number is a string here."""
    if not isinstance(value, str):
        return ""
    if "boolean" in wants and value in YAML11_BOOLS:
        word = "true" if YAML11_BOOLS[value] else "false"
        return f"; YAML 1.2 reads {value} as a string: write {word}"
    if "integer" in wants or "number" in wants:
        number = _yaml11_int(value)
        if number is not None:
            return f"; YAML 1.2 reads {value} as a string: write {number}"
    return ""


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

    at = schema.get("errorAt")   # a rule across keys, located as the semantic checks do
    if custom and at == "key":
        return [doc.issue(path, custom, key=True)]
    if custom and at:
        return [doc.issue((*path, at), custom)]

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
        return [doc.issue(path, f"expected {expected}, got {got}{yaml11_hint(value, wants)}")]

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
    }
    sizes = {"minLength": ("at least", "character", None),
             "maxLength": ("at most", "character", None),
             "minItems": ("at least", "item", None), "maxItems": ("at most", "item", None),
             "maxProperties": ("at most", "entry", "entries")}
    if kind in sizes:
        how, noun, many = sizes[kind]
        bounds[kind] = f"must have {how} {{}} {plural(err.validator_value, noun, many)}"
    if kind in bounds:
        msg = bounds[kind].format(err.validator_value)
        if not isinstance(value, list | dict):
            msg += f"; got {_got(value)}"
        return [doc.issue(path, msg)]
    if kind == "uniqueItems":
        return [doc.issue(path, "items must be unique")]
    return [doc.issue(path, err.message)]


def _integral_floats(value: Any) -> bool:
    """Any float like 100.0 in data not loaded by yamlsafe (which flags them as it goes)."""
    if isinstance(value, float):
        return value.is_integer()
    if isinstance(value, dict):
        return any(_integral_floats(v) for v in value.values())
    if isinstance(value, list):
        return any(_integral_floats(v) for v in value)
    return False


def check(doc: YamlDoc) -> tuple[list[SpecIssue], set[str]]:
    """The schema's issues, and the paths whose values it rejected (the semantic checks
    skip those; a rule across keys, like "a local source needs stage", rejects none)."""
    integral = doc.has_integral_floats if doc.root is not None else _integral_floats(doc.data)
    if not integral and _fast().is_valid(doc.data):
        return [], set()
    issues: set[SpecIssue] = set()
    rejected: set[str] = set()
    for err in _explainer().iter_errors(doc.data):
        found = _issues_for(err, doc)
        issues.update(found)
        schema = err.schema if isinstance(err.schema, dict) else {}
        if not schema.get("errorAt"):
            rejected.update(i.path for i in found)
    if not issues and not _fast().is_valid(doc.data):
        # The two validators disagree: the fast one's word stands, in its own terms.
        for e in _fast().iter_errors(doc.data):
            path = tuple(e.instance_path)
            issues.add(doc.issue(path, e.message))
            rejected.add(format_path(path))
    return sorted(issues), rejected


def validate_document(doc: YamlDoc) -> list[SpecIssue]:
    """Every schema violation in the document, each with its FILE:LINE:COL and path."""
    return check(doc)[0]
