"""Typed change payloads: one frozen dataclass per ResourceType for `Change.before` and
`Change.after`, their field names exactly the plan file's keys.

A payload carries only the keys it was given (an absent key is not a key set to null:
an update shows only what changes) and keeps their order, so `to_json()` is the plan
file's JSON exactly; an absent field reads as None. `payload_from_json` refuses unknown
keys and wrong types. Collections are tuples and `FrozenMap`s: payloads are hashable.

A payload is not a mapping: read fields as attributes (`p.volume_id`), ask `has(k)` for
a key given, `given()` for the keys given and `to_json()` for the JSON form. A payload is
always truthy (an empty update payload too): test `is None`.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar, dataclass_transform


class PayloadError(ValueError):
    """A before/after payload that does not fit its resource type."""


class FrozenMap(Mapping[str, Any]):
    """An immutable, hashable str-keyed mapping (tags)."""

    __slots__ = ("_d",)
    _d: dict[str, Any]

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        object.__setattr__(self, "_d", dict(data or {}))

    def __getitem__(self, key: str) -> Any:
        return self._d[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._d)

    def __len__(self) -> int:
        return len(self._d)

    def __hash__(self) -> int:
        return hash(frozenset(self._d.items()))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mapping) and self._d == dict(other.items())

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("FrozenMap is immutable")

    def __reduce__(self) -> tuple[Any, ...]:          # copy, deepcopy, pickle
        return (FrozenMap, (self._d,))

    def __repr__(self) -> str:
        return f"FrozenMap({self._d!r})"


Tags = Mapping[str, str | None]     # at run time always a FrozenMap


def _json(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_json(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _json(v) for k, v in value.items()}
    return value


_SCALARS = frozenset({str, int, float, bool, type(None)})


def _frozen(value: Any) -> Any:
    if type(value) in _SCALARS or type(value) is FrozenMap:
        return value
    if isinstance(value, list | tuple):
        return tuple(_frozen(v) for v in value)
    if isinstance(value, Mapping):
        return FrozenMap({k: _frozen(v) for k, v in value.items()})
    return value


@dataclass_transform(kw_only_default=True, frozen_default=True)
class Payload:
    """The base of every payload type (made a frozen dataclass per subclass)."""

    TYPE: ClassVar[str]                   # the ResourceType's value
    FIELDS: ClassVar[tuple[str, ...]]
    HINTS: ClassVar[dict[str, Any]]
    _keys: ClassVar[tuple[str, ...]]      # set per instance: the keys given, in order

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        dataclasses.dataclass(init=False, eq=False, frozen=True, repr=False)(cls)
        cls.FIELDS = tuple(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]
        hints = typing.get_type_hints(cls, globalns=globals())
        cls.HINTS = {k: hints[k] for k in cls.FIELDS}

    def __init__(self, **values: Any) -> None:
        # an absent field reads as its class default, None (the dataclass field default)
        known, scalars, setattr_ = self.HINTS, _SCALARS, object.__setattr__
        for key, value in values.items():
            if key not in known:
                raise PayloadError(f"{self.TYPE} payload: unknown key {key!r}")
            setattr_(self, key, value if type(value) in scalars else _frozen(value))
        setattr_(self, "_keys", tuple(values))

    # the JSON form ----------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        scalars = _SCALARS
        return {k: v if type(v := getattr(self, k)) in scalars else _json(v)
                for k in self._keys}

    def has(self, key: str) -> bool:
        """True when the payload carries KEY (possibly as null)."""
        return key in self._keys

    def given(self) -> dict[str, Any]:
        """The keys this payload carries, in order, with their (typed) values."""
        return {k: getattr(self, k) for k in self._keys}

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Payload):
            return type(self) is type(other) and self.given() == other.given()
        return NotImplemented

    def __hash__(self) -> int:
        return hash((type(self), frozenset(self.given().items())))

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={getattr(self, k)!r}" for k in self._keys)
        return f"{type(self).__name__}({inner})"


class VolumePayload(Payload):
    TYPE = "volume"
    name: str | None = None
    id: str | None = None
    size_gib: int | None = None
    type: str | None = None
    iops: int | None = None
    throughput_mibps: int | None = None
    availability_zone: str | None = None
    snapshot_id: str | None = None
    encrypted: bool | None = None
    state: str | None = None
    attached_to: tuple[str, ...] | None = None
    on_delete: str | None = None
    tags: Tags | None = None
    duplicate_of: str | None = None


class InstancePayload(Payload):
    TYPE = "instance"
    name: str | None = None
    id: str | None = None
    instance_type: str | None = None
    ami: str | None = None
    market: str | None = None
    availability_zone: str | None = None
    subnet_id: str | None = None
    iam_instance_profile: str | None = None
    state: str | None = None
    tags: Tags | None = None
    duplicate_of: str | None = None


class AttachmentPayload(Payload):
    TYPE = "attachment"
    instance: str | None = None
    volume: str | None = None
    device: str | None = None
    instance_id: str | None = None
    volume_id: str | None = None


class MountPayload(Payload):
    TYPE = "mount"
    instance: str | None = None
    volume: str | None = None
    device: str | None = None
    path: str | None = None
    read_only: bool | None = None
    filesystem: str | None = None
    instance_id: str | None = None
    volume_id: str | None = None
    size_gib: int | float | None = None     # a grow: the filesystem's size, in GiB
    fs_bytes: int | None = None


class PrewarmPayload(Payload):
    """A fill of a volume from S3, or (`temporary_instance` ...) the cleanup of a
    temporary prewarm instance an interrupted apply left."""

    TYPE = "prewarm"
    temporary_instance: str | None = None
    instance_type: str | None = None
    volume: str | None = None
    dataset: str | None = None
    uri: str | None = None
    path: str | None = None
    objects: int | None = None
    bytes: int | None = None
    digest: str | None = None
    digest_entry: str | None = None
    volume_id: str | None = None
    availability_zone: str | None = None
    filesystem: str | None = None
    via: str | None = None
    instance_id: str | None = None
    device: str | None = None
    mount_path: str | None = None
    read_only: bool | None = None
    mounted: bool | None = None
    state: str | None = None
    launched: str | None = None
    holds: tuple[str, ...] | None = None
    volume_ids: tuple[str, ...] | None = None


class SyncPayload(Payload):
    TYPE = "sync"
    instance: str | None = None
    dataset: str | None = None
    strategy: str | None = None
    uri: str | None = None
    path: str | None = None
    objects: int | None = None
    bytes: int | None = None
    digest: str | None = None
    digest_entry: str | None = None
    record_on: str | None = None
    instance_id: str | None = None
    volume_id: str | None = None


class DatasetPayload(Payload):
    TYPE = "dataset"
    dataset: str | None = None
    source: str | None = None
    stage: str | None = None
    objects: int | None = None
    bytes: int | None = None
    digest: str | None = None
    upload_objects: int | None = None
    upload_bytes: int | None = None
    replace_objects: int | None = None
    replace_bytes: int | None = None
    delete_objects: int | None = None
    delete_bytes: int | None = None
    delete_examples: tuple[str, ...] | None = None
    kept_objects: int | None = None
    kept_bytes: int | None = None


PAYLOADS: dict[str, type[Payload]] = {     # by ResourceType value
    cls.TYPE: cls for cls in (VolumePayload, InstancePayload, AttachmentPayload, MountPayload,
                              PrewarmPayload, SyncPayload, DatasetPayload)
}


# --- from_json: the checked way in ---------------------------------------------------------


def _describe(hint: Any) -> str:
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return " or ".join(_describe(a) for a in args)
    if hint is type(None):
        return "null"
    origin = typing.get_origin(hint)
    if origin is tuple:
        return f"a list of {_describe(args[0])}"
    if origin is not None:                  # Mapping[str, V]
        return f"an object whose values are {_describe(args[1])}"
    return {str: "a string", int: "an integer", float: "a number", bool: "true/false"}.get(
        hint, str(hint))


def _fits(value: Any, hint: Any) -> bool:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return any(_fits(value, a) for a in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is tuple:
        return isinstance(value, list | tuple) and all(_fits(v, args[0]) for v in value)
    if origin is not None:                  # Mapping[str, V]
        return isinstance(value, Mapping) and all(
            isinstance(k, str) and _fits(v, args[1]) for k, v in value.items())
    return False


def payload_from_json(rtype: str, data: Any) -> Payload:
    """The payload of a change of type RTYPE from its JSON object; PayloadError names the
    first key that is unknown or of the wrong type."""
    cls = PAYLOADS.get(str(rtype))
    if cls is None:
        raise PayloadError(f"no payload type for {rtype!r}")
    if isinstance(data, cls):
        return data
    if isinstance(data, Payload):
        raise PayloadError(f"a {data.TYPE} payload on a {cls.TYPE} change")
    if not isinstance(data, Mapping):
        raise PayloadError(f"a {cls.TYPE} payload is an object, not "
                           f"{type(data).__name__}")
    for key, value in data.items():
        hint = cls.HINTS.get(key) if isinstance(key, str) else None
        if hint is None:
            raise PayloadError(f"unknown key {key!r} in a {cls.TYPE} payload (it has: "
                               f"{', '.join(cls.FIELDS)})")
        if not _fits(value, hint):
            raise PayloadError(f"{key}: expected {_describe(hint)}, got {value!r}")
    return cls(**data)


def from_json(rtype: str, data: Any) -> Payload | None:
    """`payload_from_json`, with null for null."""
    return None if data is None else payload_from_json(rtype, data)
