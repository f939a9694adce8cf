"""DESIGN section 3's ownership tags, computed in one place for the diff and the engines."""

from __future__ import annotations

import json
from collections.abc import Mapping

from planner.live import (
    TAG_ADDRESS,
    TAG_CHECKPOINTS,
    TAG_ON_DELETE,
    TAG_PERSISTENT,
    TAG_PROJECT,
    TAG_PROTECTED,
    TAG_TRAINING,
)
from planner.spec import Checkpoints, Instance, Spec, Training

TAG_VALUE_MAX = 256          # EC2's limit on a tag value
UNRECORDED = "unrecorded"    # the settings did not fit in a tag


def owner_tags(spec: Spec, address: str, own: Mapping[str, str] | None = None, *,
               persistent: bool = False, protect: bool = False,
               on_delete: str | None = None) -> dict[str, str]:
    """The spec's default and own tags, then Name and the trainctl:* tags (which win).

    `on_delete: snapshot` is recorded on volumes so a volume dropped from the spec still
    gets its final snapshot ("delete", the default, needs no tag).
    """
    tags = {**spec.defaults.tags, **(own or {}),
            "Name": f"{spec.project}/{address}", TAG_PROJECT: spec.project,
            TAG_ADDRESS: address}
    if persistent:
        tags[TAG_PERSISTENT] = "true"
    if protect:
        tags[TAG_PROTECTED] = "true"
    if on_delete is not None and on_delete != "delete":
        tags[TAG_ON_DELETE] = on_delete
    return tags


def _compact(value: object) -> str:
    text = json.dumps(value, separators=(",", ":"), sort_keys=True)
    return text if len(text) <= TAG_VALUE_MAX else UNRECORDED


def instance_safety_tags(ins: Instance) -> dict[str, str]:
    """The training-job check and checkpoint sync settings, kept on the instance: once
    it is dropped from the spec, its teardown still knows what to check and save."""
    training = ins.training
    ckpt = ins.checkpoints
    return {
        TAG_TRAINING: _compact({"pid_file": training.pid_file,
                                "patterns": list(training.process_patterns)}
                               if training else {}),
        TAG_CHECKPOINTS: _compact({"path": ckpt.path, "sync_to": ckpt.sync_to}
                                  if ckpt else {}),
    }


def safety_from_tags(tags: Mapping[str, str]
                     ) -> tuple[Training | None, Checkpoints | None] | None:
    """Inverse of instance_safety_tags; None when they are missing or unreadable (the
    caller must then treat the instance as "cannot tell")."""
    try:
        training = json.loads(tags[TAG_TRAINING])
        ckpt = json.loads(tags[TAG_CHECKPOINTS])
        return (
            Training(pid_file=training.get("pid_file"),
                     process_patterns=tuple(training.get("patterns", ())))
            if training else None,
            Checkpoints(path=ckpt["path"], sync_to=ckpt.get("sync_to")) if ckpt else None,
        )
    except (KeyError, ValueError, TypeError, AttributeError):
        return None
