"""DESIGN section 3's ownership tags, computed in one place for the diff and the engines."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from planner.live import (
    TAG_ADDRESS,
    TAG_CHECKPOINTS,
    TAG_MODIFIED,
    TAG_ON_DELETE,
    TAG_PERSISTENT,
    TAG_PROJECT,
    TAG_PROTECTED,
    TAG_TRAINING,
    LiveModification,
    LiveVolume,
    iso,
    parse_iso,
)
from planner.spec import DEFAULT_GRACE_SECONDS, Checkpoints, Instance, Spec, Training

TAG_VALUE_MAX = 256          # EC2's limit on a tag value
MODIFY_WINDOW = timedelta(hours=24)
MODIFY_LIMIT = 4             # volume modifications AWS allows per 24 h
UNRECORDED = "unrecorded"    # the settings did not fit in a tag
GIB = 2**30
GROW_SLACK = 2**20           # mount.sh grows a filesystem this much smaller than its device
FS_FIELD = " fs="            # trainctl:mounted = "INSTANCE_ID:PATH fs=BYTES" (paths hold no space)


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


def _training_doc(training: Training) -> dict[str, object]:
    doc: dict[str, object] = {"pid_file": training.pid_file,
                              "patterns": list(training.process_patterns)}
    if training.grace_seconds != DEFAULT_GRACE_SECONDS:   # the default is not recorded
        doc["grace"] = training.grace_seconds
    return doc


def instance_safety_tags(ins: Instance) -> dict[str, str]:
    """The training-job check and checkpoint sync settings, kept on the instance: once
    it is dropped from the spec, its teardown still knows what to check and save."""
    training = ins.training
    ckpt = ins.checkpoints
    return {
        TAG_TRAINING: _compact(_training_doc(training) if training else {}),
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
                     process_patterns=tuple(training.get("patterns", ())),
                     grace_seconds=int(training.get("grace", DEFAULT_GRACE_SECONDS)))
            if training else None,
            Checkpoints(path=ckpt["path"], sync_to=ckpt.get("sync_to")) if ckpt else None,
        )
    except (KeyError, ValueError, TypeError, AttributeError):
        return None


def _times(value: str | None) -> list[datetime]:
    out = []
    for part in (value or "").split(","):
        try:
            out.append(parse_iso(part.strip()))
        except ValueError:
            continue
    return out


def modified_tag(previous: str | None, started: datetime, now: datetime) -> str:
    """TAG_MODIFIED after a modification that started at STARTED: the start times of the
    modifications trainctl made in the last 24 h. AWS reports only a volume's latest
    modification, while its limit counts every one of them."""
    times = [t for t in _times(previous) if now - t < MODIFY_WINDOW]
    times.append(parse_iso(iso(started)))
    return ",".join(iso(t) for t in sorted(times)[-MODIFY_LIMIT:])


def with_recorded_modifications(volumes: Iterable[LiveVolume],
                                reported: Iterable[LiveModification]
                                ) -> list[LiveModification]:
    """The modifications AWS reports, plus the earlier ones recorded in each volume's
    TAG_MODIFIED (completed: only the latest can still run, and AWS reports that one)."""
    out = list(reported)
    by_volume: dict[str, list[str]] = {}
    for m in out:
        by_volume.setdefault(m.volume_id, []).append(iso(m.start_time))
    for v in volumes:
        recorded = [iso(t) for t in _times(v.tags.get(TAG_MODIFIED))]
        for t in by_volume.get(v.id, ()):
            if t in recorded:
                recorded.remove(t)       # the one AWS reports
        out += [LiveModification(volume_id=v.id, state="completed", start_time=parse_iso(t))
                for t in recorded]
    return sorted(out, key=lambda m: (m.volume_id, m.start_time))


# --- trainctl:mounted -----------------------------------------------------------------


@dataclass(frozen=True)
class MountedTag:
    """A verified mount: where, and the filesystem size it made or grew (None: a tag
    written before trainctl recorded sizes, or a mount step that did not report one)."""

    instance_id: str
    path: str
    fs_bytes: int | None = None

    def needs_grow(self, volume_gib: int) -> bool:
        """The volume is larger than the filesystem recorded on it (mount.sh's slack)."""
        return self.fs_bytes is not None and volume_gib * GIB - self.fs_bytes >= GROW_SLACK


def mounted_tag_value(instance_id: str, path: str, fs_bytes: int | None) -> str:
    if fs_bytes is None:
        return f"{instance_id}:{path}"
    return f"{instance_id}:{path}{FS_FIELD}{fs_bytes}"


def parse_mounted_tag(value: str | None) -> MountedTag | None:
    """`INSTANCE_ID:PATH` (old) or `INSTANCE_ID:PATH fs=BYTES`; None when not a mount."""
    if not value or ":" not in value:
        return None
    head, sep, size = value.rpartition(FS_FIELD)
    fs_bytes: int | None = None
    if sep and size.isdigit() and size.isascii():
        fs_bytes = int(size)
    else:
        head = value
    instance_id, _, path = head.partition(":")
    return MountedTag(instance_id, path, fs_bytes)
