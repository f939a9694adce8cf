"""What live state holds beyond one resource per address: duplicates (two live volumes or
instances carrying one `trainctl:address`) and prewarm's temporary instances left by an
interrupted apply. Pure: the diff asks, this module answers with data and messages.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from planner.live import TAG_PROJECT, TAG_TEMPORARY, LiveInstance, LiveState, LiveVolume, iso
from planner.plan import Block, Rule, duplicate_address

GONE_INSTANCE_STATES = ("shutting-down", "terminated")
GONE_VOLUME_STATES = ("deleting", "deleted")
Resource = LiveVolume | LiveInstance


def _born(r: Resource) -> Any:
    return r.create_time if isinstance(r, LiveVolume) else r.launch_time


def _kind(r: Resource) -> str:
    return "volume" if isinstance(r, LiveVolume) else "instance"


def group_by_address(resources: Iterable[Resource], project: str,
                     valid: Any) -> dict[str, list[Resource]]:
    """Live resources of PROJECT by address tag, oldest first (`valid(addr)` filters)."""
    groups: dict[str, list[Resource]] = {}
    for r in sorted(resources, key=lambda r: (_born(r), r.id)):
        if r.tags.get(TAG_PROJECT) != project or not valid(r.address):
            continue
        gone = GONE_VOLUME_STATES if isinstance(r, LiveVolume) else GONE_INSTANCE_STATES
        if r.state in gone or r.tags.get(TAG_TEMPORARY) == "true":
            continue
        groups.setdefault(str(r.address), []).append(r)
    return groups


def pick_primary(group: Sequence[Resource], allow_delete: Iterable[str]) -> Resource:
    """The resource kept at the address: the oldest not named by `--allow-delete ID`."""
    named = set(allow_delete)
    return next((r for r in group if r.id not in named), group[0])


@dataclass(frozen=True)
class Duplicate:
    """A live resource carrying `address` besides `primary` (the one the plan acts on)."""

    address: str
    resource: Resource
    primary: Resource
    imported: bool            # the spec imports the primary: the address is resolved

    @property
    def change_address(self) -> str:
        return duplicate_address(self.address, self.resource.id)


def _listing(rs: Iterable[Resource]) -> str:
    return ", ".join(f"{r.id} (created {iso(_born(r))})" for r in rs)


def spec_path(address: str) -> str:
    kind, _, name = address.partition(".")
    return f"{kind}s.{name}"


def _flags(ids: Sequence[str]) -> str:
    return " ".join(f"--allow-delete {i}" for i in ids)


def _resolving(address: str, others: Sequence[Resource], named: Collection[str],
               going: Collection[str]) -> tuple[list[str], list[str], str]:
    """(ids still to name with --allow-delete, ids this apply deletes, what is said of the
    ids named that this plan does not delete: blocked, or left out by --target)."""
    need = [r.id for r in others if r.id not in named]
    gone = [r.id for r in others if r.id in named and r.id in going]
    held = [r.id for r in others if r.id in named and r.id not in going]
    said = "".join(f"; {i} is named by --allow-delete but this plan does not delete it "
                   f"(see {duplicate_address(address, i)})" for i in held)
    return need, gone, said


def warning_message(address: str, group: Sequence[Resource], primary: Resource,
                    imported: bool, named: Collection[str] = (),
                    going: Collection[str] = ()) -> str:
    """`named`: the ids given with --allow-delete; `going`: the duplicates whose delete
    this plan carries out (not blocked). Advice is only ever for what is still to do."""
    kind = _kind(primary)
    others = [r for r in group if r.id != primary.id]
    need, gone, held = _resolving(address, others, named, going)
    head = f"{len(group)} live {kind}s carry this address: {_listing(group)}"
    deletes = (f"; this apply deletes {', '.join(gone)} (named by --allow-delete) and "
               f"keeps {primary.id}" if gone else "")
    if imported:
        rest = f"; delete the other with {_flags(need)}" if need else ""
        return f"{head}; the spec imports {primary.id}{deletes}{held}{rest}"
    if not need and not held:
        return f"{head}{deletes}"
    advice = ""
    if need:
        which = "the other" if len(need) == 1 else "the others"
        advice = f", or delete {which} with `{_flags(need)}`"
    return (f"{head}{deletes}{held}; nothing changes at {address} until "
            f"one is resolved: adopt one with `import: ID` under {spec_path(address)} in "
            f"the spec{advice}")


def primary_block(address: str, group: Sequence[Resource], primary: Resource,
                  named: Collection[str] = (), going: Collection[str] = ()) -> Block:
    kind = _kind(primary)
    others = [r for r in group if r.id != primary.id]
    need, _gone, held = _resolving(address, others, named, going)
    advice = f", or delete the other with `{_flags(need)}`" if need else ""
    return Block(Rule.DUPLICATE,
                 f"{len(group)} live {kind}s carry {address} ({', '.join(r.id for r in group)})"
                 f"{held}; adopt one with `import: {primary.id}` under {spec_path(address)}"
                 f"{advice}")


def duplicate_block(dup: Duplicate) -> Block:
    rid, keep = dup.resource.id, dup.primary.id
    if dup.imported:
        why = f"{rid} also carries {dup.address}, which the spec imports as {keep}"
    else:
        why = (f"{rid} is a second live {_kind(dup.resource)} carrying {dup.address} "
               f"(besides {keep}, the older)")
    return Block(Rule.DUPLICATE, f"{why}; delete it with `--allow-delete {rid}`, or adopt "
                                 f"it with `import: {rid}` under {spec_path(dup.address)}")


# --- prewarm's temporary instances --------------------------------------------------------


def temporary_instances(live: LiveState) -> list[LiveInstance]:
    """The project's live instances tagged `trainctl:temporary=true` (prewarm's)."""
    return [i for i in live.instances
            if i.tags.get(TAG_PROJECT) == live.project and i.tags.get(TAG_TEMPORARY) == "true"
            and i.state not in GONE_INSTANCE_STATES]


def held_volumes(live: LiveState, instance_id: str,
                 managed: Mapping[str, LiveVolume]) -> list[LiveVolume]:
    """The managed volumes (by address) attached to `instance_id`."""
    return [v for v in managed.values()
            if any(a.instance_id == instance_id and a.state != "detached"
                   for a in v.attachments)]
