"""Small pieces every pass module shares: action and type shorthands, Change builders,
address helpers."""

from __future__ import annotations

from collections.abc import Iterable

from planner.graph import parse_address
from planner.live import LiveAttachment, LiveInstance, LiveVolume
from planner.payloads import Payload
from planner.plan import Action, Change, Reason, ResourceType, duplicate_address
from planner.rules import ATTACHED_STATES

VOLUME, INSTANCE = ResourceType.VOLUME, ResourceType.INSTANCE
ATTACHMENT, MOUNT = ResourceType.ATTACHMENT, ResourceType.MOUNT
SYNC, PREWARM, DATASET = ResourceType.SYNC, ResourceType.PREWARM, ResourceType.DATASET
NOOP, CREATE, UPDATE, DELETE = Action.NOOP, Action.CREATE, Action.UPDATE, Action.DELETE
REPLACE = (DELETE, CREATE)
TEMPORARY_INSTANCE = "temporary-instance"


def valid_address(addr: str | None, rtype: ResourceType) -> bool:
    if not addr:
        return False
    try:
        return parse_address(addr)[0] is rtype
    except ValueError:
        return False


def name_of(addr: str) -> str:
    """`volume.data` -> `data`."""
    return addr.split(".", 1)[1]


def change(addr: str, actions: tuple[Action, ...], reason: Reason, *,
           id: str | None = None, before: Payload | None = None,
           after: Payload | None = None,
           replace_paths: Iterable[str] = ()) -> Change:
    return Change(
        address=addr, type=parse_address(addr)[0], actions=actions, reason=reason, id=id,
        before=before, after=after, replace_paths=tuple(replace_paths),
    )


def noop(addr: str, id: str | None = None) -> Change:
    return change(addr, (NOOP,), Reason.NO_CHANGE, id=id)


def delete_reason(destroy: bool) -> Reason:
    return Reason.DELETE_BECAUSE_DESTROY if destroy else Reason.DELETE_BECAUSE_NOT_IN_SPEC


def attachment_to(volume: LiveVolume, instance_id: str) -> LiveAttachment | None:
    return next((a for a in volume.attachments
                 if a.instance_id == instance_id and a.state in ATTACHED_STATES), None)


def cleanup_address(t: LiveInstance) -> str:
    """The address of a temporary instance's cleanup: `prewarm.D@i-...`."""
    tag = t.address if valid_address(t.address, PREWARM) else "prewarm.unknown"
    return duplicate_address(str(tag), t.id)
