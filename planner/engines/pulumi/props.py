"""A resource's props from the plan's payloads: what it is now (`current`) and what the
plan makes of it (`desired`). A field neither payload names stays unset."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from planner.engines.pulumi.schema import ATTACHMENT, INSTANCE, VOLUME, Deployed
from planner.live import (
    TAG_CLIENT_TOKEN,
    TAG_CREATED_EMPTY,
    TAG_DATASET_DIGEST,
    TAG_MODIFIED,
    TAG_MOUNTED,
    TAG_PERSISTENT,
    TAG_PROTECTED,
)
from planner.payloads import Payload
from planner.plan import Action, Change, ResourceType

FIELDS: dict[str, tuple[str, ...]] = {
    VOLUME: ("availability_zone", "size_gib", "type", "iops", "throughput_mibps",
             "encrypted", "snapshot_id", "on_delete"),
    INSTANCE: ("ami", "instance_type", "availability_zone", "subnet_id",
               "iam_instance_profile", "market"),
    ATTACHMENT: ("instance", "volume", "device", "instance_id", "volume_id"),
}
REQUIRED: dict[str, tuple[str, ...]] = {
    VOLUME: ("availability_zone",), INSTANCE: ("ami", "instance_type"),
    ATTACHMENT: ("device", "instance", "volume"),
}
# the plan's replace_paths -> the programs' argument names (Python names: the SDK
# translates them to the provider's)
REPLACE_PROPS: dict[str, dict[str, str]] = {
    VOLUME: {"size_gib": "size", "throughput_mibps": "throughput"},
    INSTANCE: {"market": "instance_market_options"},
    ATTACHMENT: {"device": "device_name"},
}
# tags trainctl writes outside the programs: the data plane's (mount, dataset digests,
# modification times) and the direct engine's create token; a refresh must not undo them
OUTSIDE_TAGS = (TAG_MOUNTED, TAG_DATASET_DIGEST, TAG_MODIFIED, TAG_CLIENT_TOKEN)
IGNORED = tuple(f'tags["{t}"]' for t in OUTSIDE_TAGS)
# fields bound to an availability zone (AWS picks a subnet when the spec names none)
AZ_BOUND = {INSTANCE: ("subnet_id",)}
KINDS = {ResourceType.VOLUME: VOLUME, ResourceType.INSTANCE: INSTANCE,
         ResourceType.ATTACHMENT: ATTACHMENT}


def value(payload: Payload | None, key: str) -> Any:
    """A payload field; None when the payload is absent or its type has no such field."""
    return None if payload is None else getattr(payload, key, None)


def _overlay(props: dict[str, Any], payload: Payload | None, kind: str) -> None:
    for key in FIELDS[kind]:
        v = value(payload, key)
        if v is not None:
            props[key] = v
    tags = value(payload, "tags")
    if isinstance(tags, Mapping) and tags:
        merged = dict(props.get("tags") or {})
        for k, v in tags.items():
            if v is None:
                merged.pop(k, None)     # the key is not there (live) / goes away
            else:
                merged[k] = str(v)
        props["tags"] = merged


def live(change: Change) -> bool:
    """The change acts on a live resource (anything but a pure create)."""
    return change.actions != (Action.CREATE,)


def current(change: Change, deployed: Deployed, kind: str,
            live_props: Mapping[str, Mapping[str, Any]] | None = None
            ) -> dict[str, Any] | None:
    """The resource as it is now; None when it is not live. The base: what the stack
    declared last, or for a resource no stack holds, the live one (`live_props`, by id;
    attachments by address)."""
    if not live(change):
        return None
    base = deployed.props.get(change.address)
    if base is None and live_props is not None:
        base = live_props.get(change.address if kind == ATTACHMENT else str(change.id))
    props = {k: v for k, v in (base or {}).items()}
    if isinstance(props.get("tags"), Mapping):
        props["tags"] = dict(props["tags"])
    _overlay(props, change.before, kind)
    if change.is_noop:
        _overlay(props, change.after, kind)     # before == after: either may carry it
    return props


def _replacement(now: Mapping[str, Any], declared: Mapping[str, Any] | None,
                 change: Change, kind: str) -> dict[str, Any]:
    """What a replacement starts from before the plan's `after`: what the stack declared
    last (what the spec asked for then), else the live resource; the live tags either
    way. Moving to another AZ drops what belongs to the old one (its subnet) unless the
    plan names the new one."""
    base = dict(declared if declared is not None else now)
    if now.get("tags") is not None:
        base["tags"] = now["tags"]
    if "availability_zone" in change.replace_paths:
        for key in AZ_BOUND.get(kind, ()):
            if value(change.after, key) is None:
                base.pop(key, None)
    return base


def desired(change: Change, now: dict[str, Any] | None, kind: str,
            declared: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """The resource as the plan leaves it; None when it goes away. `declared`: the props
    the stack declared last, if it holds the resource."""
    if change.blocked or change.is_noop:
        return None if now is None else {**now}
    if change.actions == (Action.DELETE,):
        return None
    if len(change.actions) == 2 and now is not None:
        props = _replacement(now, declared, change, kind)
    else:
        props = dict(now or {})
    if isinstance(props.get("tags"), Mapping):
        props["tags"] = dict(props["tags"])
    _overlay(props, change.after, kind)
    for path in change.replace_paths:        # a replaced dependency's id: not known yet
        if value(change.after, path) is None:
            props.pop(path, None)
    if Action.CREATE in change.actions and kind == VOLUME:
        tags = dict(props.get("tags") or {})
        if props.get("snapshot_id"):
            tags.pop(TAG_CREATED_EMPTY, None)
        else:
            tags[TAG_CREATED_EMPTY] = "true"     # the only volumes mount.sh may format
        props["tags"] = tags
    return props


def guarded(props: Mapping[str, Any] | None) -> tuple[bool, bool]:
    """(protect, retain_on_delete) from the trainctl tags: persistent -> both."""
    tags = (props or {}).get("tags") or {}
    persistent = tags.get(TAG_PERSISTENT) == "true"
    return persistent or tags.get(TAG_PROTECTED) == "true", persistent
