"""DESIGN section 3's ownership tags, computed in one place for the diff and the engines."""

from __future__ import annotations

from collections.abc import Mapping

from planner.live import TAG_ADDRESS, TAG_ON_DELETE, TAG_PERSISTENT, TAG_PROJECT, TAG_PROTECTED
from planner.spec import Spec


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
