"""The canonical JSON-able form of a Spec (pure: the diff digests it, the loader re-exports)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from planner.spec import Spec

_SCALARS = frozenset({str, int, float, bool, type(None)})


_FIELD_NAMES: dict[type, tuple[str, ...] | None] = {}


def _field_names(cls: type) -> tuple[str, ...] | None:
    """The field names of a dataclass type, None for any other type (cached per type:
    spec_to_dict walks every volume and instance, 100,000 of them in benchmarks)."""
    if cls not in _FIELD_NAMES:
        _FIELD_NAMES[cls] = (tuple(f.name for f in dataclasses.fields(cls))
                             if dataclasses.is_dataclass(cls) else None)
    return _FIELD_NAMES[cls]


def _plain(value: Any) -> Any:
    cls = type(value)
    if cls in _SCALARS:
        return value
    if isinstance(value, StrEnum):          # the spec's vocabularies: their string
        return value.value
    names = _field_names(cls)
    if names is not None:
        return {name: _plain(getattr(value, name)) for name in names}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def spec_to_dict(spec: Spec) -> dict[str, Any]:
    """The canonical JSON-able form of a Spec (model field names; no source_file), for
    digests and plan `after` values. Mappings keep spec order; digest() sorts keys."""
    out: dict[str, Any] = _plain(spec)
    out.pop("source_file", None)
    return out
