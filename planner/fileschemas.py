"""JSON Schemas of the files trainctl writes and reads back: the plan file, the live
snapshot, `local.json`, the lock and a journal line. Built from the plan's enums, so a
new Action, Reason or Rule is accepted in files without editing a copy here.

Unknown keys are ignored where a newer trainctl may add some (the plan file's top level
and changes); where a record is rebuilt field by field they are refused.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from planner.filecheck import MAX_INT

STR = {"type": "string"}
STR_OR_NULL = {"type": ["string", "null"]}
BOOL = {"type": "boolean"}
COUNT = {"type": "integer", "minimum": 0, "maximum": MAX_INT}
NUMBER = {"type": "number"}
NUMBER_OR_NULL = {"type": ["number", "null"]}
TIME = {"type": "string", "format": "trainctl-time"}
STRINGS = {"type": "array", "items": STR}
STR_MAP = {"type": "object", "additionalProperties": STR}
OBJ_OR_NULL = {"type": ["object", "null"]}


def _obj(props: dict[str, Any], required: tuple[str, ...] = (),
         closed: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "properties": props,
                           "required": list(required)}
    if closed:
        out["additionalProperties"] = False
    return out


def _list(item: dict[str, Any], min_items: int = 0) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "array", "items": item}
    if min_items:
        out["minItems"] = min_items
    return out


@cache
def plan_schema() -> dict[str, Any]:
    """The plan file (DESIGN section 5)."""
    from planner.spec import IdleAction
    from planner.vocab import FORMAT_VERSION, SUMMARY_KEYS, Action, Reason, ResourceType, Rule

    a = Action
    actions = [[a.NOOP], [a.CREATE], [a.UPDATE], [a.DELETE], [a.DELETE, a.CREATE],
               [a.CREATE, a.DELETE]]
    rules = {"type": "string", "enum": [r.value for r in Rule]}
    change = _obj({
        "address": {"type": "string", "pattern": r"^[a-z]+\.[^.\s].*$"},
        "type": {"type": "string", "enum": [t.value for t in ResourceType]},
        "actions": {"type": "array", "minItems": 1, "items": {"enum": [x.value for x in a]},
                    "enum": [[x.value for x in combo] for combo in actions]},
        "reason": {"type": "string", "enum": [r.value for r in Reason]},
        "id": STR_OR_NULL,
        "before": OBJ_OR_NULL,
        "after": OBJ_OR_NULL,
        "replace_paths": STRINGS,
        "depends_on": STRINGS,
        "blocked_by": _list(_obj({"rule": rules, "message": STR}, ("rule", "message"))),
    }, ("address", "type", "actions", "reason"), closed=False)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "trainctl plan file",
        **_obj({
            "format_version": {"const": FORMAT_VERSION},
            "plan_id": STR,
            "project": STR, "region": STR, "created_at": TIME,
            "spec_digest": STR, "live_digest": STR,
            "options": _obj({"destroy": BOOL, "targets": STRINGS}),
            "changes": _list(change),
            "warnings": _list(_obj({"address": STR_OR_NULL, "rule": rules, "message": STR},
                                   ("rule", "message"))),
            "cost": _obj({      # null: part of the figure has no price (see at_least)
                "hourly_usd_before": NUMBER_OR_NULL, "hourly_usd_after": NUMBER_OR_NULL,
                "daily_usd_after": NUMBER_OR_NULL, "accumulated_usd": NUMBER_OR_NULL,
                "at_least": {"type": "object", "additionalProperties": NUMBER},
                "unknown_prices": _list(_obj({"address": STR_OR_NULL, "item": STR,
                                              "region": STR, "message": STR},
                                             ("item", "region", "message"))),
                "exceeded": STRINGS, "enforce": BOOL,
            }, closed=False),
            "data_locations": _list(_obj({"dataset": STR, "instance": STR, "strategy": STR,
                                          "location": STR},
                                         ("dataset", "instance", "strategy", "location"))),
            "expiries": _list(_obj({"instance": STR,
                                    "max_lifetime": {"type": ["string", "null"]},
                                    "expires_at": {"type": ["string", "null"]},
                                    "idle_stop_minutes": {"type": ["integer", "null"]},
                                    "action": {"enum": [a.value for a in IdleAction]}},
                                   ("instance", "max_lifetime", "expires_at",
                                    "idle_stop_minutes", "action"))),
            "summary": {"type": "object",
                        "properties": {k: COUNT for k in SUMMARY_KEYS}},
            "applyable": BOOL,
        }, ("format_version", "project", "region", "created_at", "spec_digest",
            "live_digest", "changes"), closed=False),
    }


@cache
def live_schema() -> dict[str, Any]:
    """The live snapshot (`plan --record-live` / `--live-snapshot`, planner.live's JSON)."""
    from planner.live import SNAPSHOT_FORMAT
    from planner.spec import Market

    attachment = _obj({"instance_id": STR, "device": STR, "state": STR},
                      ("instance_id", "device", "state"))
    volume = _obj({
        "id": STR, "availability_zone": STR, "size_gib": COUNT, "type": STR, "state": STR,
        "create_time": TIME, "iops": {"type": ["integer", "null"], "minimum": 0,
                                       "maximum": MAX_INT},
        "throughput_mibps": {"type": ["integer", "null"], "minimum": 0, "maximum": MAX_INT},
        "encrypted": BOOL, "snapshot_id": STR_OR_NULL, "tags": STR_MAP,
        "attachments": _list(attachment),
    }, ("id", "availability_zone", "size_gib", "type", "state", "create_time"))
    instance = _obj({
        "id": STR, "instance_type": STR, "availability_zone": STR, "state": STR,
        "launch_time": TIME, "ami": STR_OR_NULL,
        "market": {"enum": [m.value for m in Market]}, "subnet_id": STR_OR_NULL,
        "iam_instance_profile": STR_OR_NULL, "tags": STR_MAP,
    }, ("id", "instance_type", "availability_zone", "state", "launch_time"))
    modification = _obj({
        "volume_id": STR, "state": STR, "start_time": TIME,
        "end_time": {"type": ["string", "null"], "format": "trainctl-time"},
    }, ("volume_id", "state", "start_time"))
    snapshot = _obj({"id": STR, "volume_id": STR_OR_NULL, "state": STR, "start_time": TIME,
                     "tags": STR_MAP}, ("id", "state", "start_time"))
    manifest = _obj({"uri": STR, "objects": COUNT, "bytes": COUNT, "digest": STR,
                     "list_calls": COUNT, "unsafe_objects": COUNT, "unsafe_keys": STRINGS},
                    ("uri", "objects", "bytes", "digest"))
    stage = _obj({
        **{k: COUNT for k in ("upload_objects", "upload_bytes", "replace_objects",
                              "replace_bytes", "replace_foreign", "delete_objects",
                              "delete_bytes", "kept_objects", "kept_bytes")},
        "delete_examples": STRINGS, "kept_examples": STRINGS,
        "owner": STR_OR_NULL, "problem": STR_OR_NULL,
    })
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "trainctl live snapshot",
        **_obj({
            "format": {"const": SNAPSHOT_FORMAT},
            "project": STR, "region": STR, "read_at": TIME,
            "volumes": _list(volume), "instances": _list(instance),
            "modifications": _list(modification), "snapshots": _list(snapshot),
            "datasets": {"type": "object", "additionalProperties": manifest},
            "stages": {"type": "object", "additionalProperties": stage},
            "spot_prices": {"type": "object",
                            "additionalProperties": {"type": "number", "minimum": 0}},
            "image_roots": {"type": "object", "additionalProperties": _obj(
                {"size_gib": COUNT, "type": STR}, ("size_gib", "type"))},
            "api_calls": COUNT,
        }, ("format", "project", "region", "read_at")),
    }


PORT = {"type": "integer", "minimum": 1, "maximum": 65535}

LOCAL_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "trainctl local.json (the embedded emulator's record)",
    **_obj({
        "endpoint": {"type": "string", "minLength": 1}, "pid": {**COUNT, "minimum": 1},
        "port": PORT, "region": STR, "sandbox": STR, "started_at": STR, "log": STR,
    }, ("endpoint", "pid"), closed=False),
}

LOCK_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "trainctl lock",
    **_obj({
        "id": {"type": "string", "minLength": 1}, "holder": STR, "host": STR,
        "pid": {**COUNT, "minimum": 1, "maximum": 2**31 - 1}, "time": TIME, "operation": STR,
    }, ("id", "holder", "host", "pid", "time", "operation"), closed=False),
}

JOURNAL_LINE_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "trainctl journal line",
    **_obj({
        "ts": STR, "plan_id": STR, "address": STR_OR_NULL, "phase": STR_OR_NULL,
        "event": {"type": "string"}, "message": STR, "facts": STR_MAP,
    }, ("ts", "plan_id", "event"), closed=False),
}
