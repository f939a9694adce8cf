"""The rules of DESIGN section 4, as pure functions of live state, spec, clock, overrides.

The diff calls them while planning; apply calls `recheck` just before a destructive or
modifying call, with freshly described live state. Protection is read from the live
tags (and the spec, when it still names the resource), never from a plan's blocked_by.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from planner.errors import first_few
from planner.live import (
    TAG_ADDRESS,
    TAG_PROJECT,
    TAG_TEMPORARY,
    LiveInstance,
    LiveState,
    LiveVolume,
    iso,
)
from planner.payloads import MountPayload, VolumePayload
from planner.plan import Action, Block, Change, ResourceType, Rule, base_address
from planner.spec import Instance, Spec, Volume
from planner.tags import MODIFY_LIMIT, MODIFY_WINDOW
from planner.words import counted

PENDING_MODIFICATION = ("modifying", "optimizing")
ATTACHED_STATES = ("attaching", "attached", "busy")
GONE_INSTANCE_STATES = ("shutting-down", "terminated")
MODIFIABLE = ("size_gib", "type", "iops", "throughput_mibps")


@dataclass(frozen=True)
class Overrides:
    """What the operator allowed on the command line (`apply --force ...`)."""

    force: bool = False                          # min-age only
    allow_delete: frozenset[str] = frozenset()
    allow_cost: bool = False
    stop_training: frozenset[str] = frozenset()  # `instance.NAME`s whose job may be stopped


# --- single rules ---------------------------------------------------------------------


def _verb(actions: tuple[Action, ...]) -> str:
    return "replace" if len(actions) == 2 else "delete"


def protection_block(rule: Rule, address: str, flagged: bool, actions: tuple[Action, ...],
                     overrides: Overrides) -> Block | None:
    """`persistent` or `protected`: only --allow-delete ADDR lifts it (never --force)."""
    if not flagged or address in overrides.allow_delete:
        return None
    return Block(rule, f"{address} is {rule.value}; name it with --allow-delete {address} "
                       f"to {_verb(actions)} it")


def min_age_block(address: str, created: datetime, now: datetime, min_age_minutes: int,
                  actions: tuple[Action, ...], overrides: Overrides) -> Block | None:
    if overrides.force or min_age_minutes <= 0:
        return None
    age = (now - created).total_seconds() / 60
    if age >= min_age_minutes:
        return None
    remaining = max(1, math.ceil(min_age_minutes - age))
    return Block(Rule.MIN_AGE,
                 f"{address} is {counted(max(0, int(age)), 'minute')} old, younger than "
                 f"min_age_minutes ({min_age_minutes}); it can be {_verb(actions)}d in "
                 f"{counted(remaining, 'minute')}, or now with --force")


def attached_block(address: str, volume: LiveVolume, live: LiveState,
                   deleting_instances: Collection[str] | None,
                   detaching: Collection[str] = (),
                   held: Mapping[str, str] | None = None) -> Block | None:
    """A volume attached to an instance that is unmanaged, or that this plan does not
    delete. `held`: instance id -> why the plan's delete of it does not run (blocked,
    or outside --target): the message says that, never "not being deleted".

    `deleting_instances`: ids of instances this plan deletes (not blocked); None means
    "use the instances' live state" (recheck: a terminating instance is going away).
    `detaching`: instance ids this plan detaches the volume from (apply detaches first).
    """
    for att in volume.attachments:
        if att.state not in ATTACHED_STATES or att.instance_id in detaching:
            continue
        inst = live.instance_by_id(att.instance_id)
        managed = inst is not None and inst.tags.get(TAG_PROJECT) == live.project
        if not managed:
            return Block(Rule.ATTACHED,
                         f"{address} is attached to {att.instance_id}, which trainctl does "
                         f"not manage; detach first")
        assert inst is not None
        if deleting_instances is None:
            going = inst.state in GONE_INSTANCE_STATES
        else:
            going = inst.id in deleting_instances
        if not going:
            name = inst.address or inst.id
            why = (held or {}).get(inst.id)
            if why is not None:
                return Block(Rule.ATTACHED,
                             f"{address} is attached to {name} ({inst.id}), whose delete "
                             f"{why}: the instance stays, so the volume stays attached; "
                             f"resolve that first, or detach")
            return Block(Rule.ATTACHED,
                         f"{address} is attached to {name} ({inst.id}), which this plan "
                         f"does not delete; detach first")
    return None


def modify_block(address: str, volume: LiveVolume, live: LiveState,
                 now: datetime) -> Block | None:
    """A modification while the previous one runs, or over AWS's 4-per-24h limit."""
    mods = live.modifications_of(volume.id)
    for m in sorted(mods, key=lambda m: m.start_time, reverse=True):
        if m.state in PENDING_MODIFICATION:
            return Block(Rule.MODIFY_PENDING,
                         f"{address} cannot be modified now (previous modification still "
                         f"{m.state}; retry after it completes)")
    recent = sorted(m.start_time for m in mods if now - m.start_time < MODIFY_WINDOW)
    if len(recent) >= MODIFY_LIMIT:
        when = recent[len(recent) - MODIFY_LIMIT] + MODIFY_WINDOW
        return Block(Rule.MODIFY_PENDING,
                     f"{address} cannot be modified now "
                     f"({counted(len(recent), 'modification')} started "
                     f"in the last 24 h, the AWS limit is {MODIFY_LIMIT}); it can run after "
                     f"{iso(when)}")
    return None


def shrink_block(address: str, want_size: object, volume: LiveVolume) -> Block | None:
    """A smaller `size_gib` than the live volume: drift on that volume only, never an error
    for the whole plan (EBS volumes cannot shrink)."""
    if not isinstance(want_size, int) or isinstance(want_size, bool):
        return None
    if want_size >= volume.size_gib:
        return None
    name = address.split(".", 1)[1]
    return Block(Rule.SHRINK,
                 f"{address} is {volume.size_gib} GiB live and the spec asks for {want_size} "
                 f"GiB; EBS volumes cannot shrink: set volumes.{name}.size_gib to "
                 f"{volume.size_gib}")


def lowering_block(address: str, rule: Rule, live_flag: bool, spec_flag: bool,
                   overrides: Overrides) -> Block | None:
    """Turning `persistent`/`protect` off in the spec takes --allow-delete too: otherwise
    the next plan could delete what the tag protected, with nobody naming it."""
    if not live_flag or spec_flag or address in overrides.allow_delete:
        return None
    key = "persistent" if rule is Rule.PERSISTENT else "protect"
    return Block(rule, f"{address} is {rule.value} in AWS and the spec turns {key} off; "
                       f"name it with --allow-delete {address} to lower its protection")


# --- per change -----------------------------------------------------------------------


def _spec_volume_persistent(spec: Spec, address: str) -> bool:
    vol = spec.volumes.get(address.split(".", 1)[1])
    return bool(vol and vol.persistent)


def _spec_protected(spec: Spec, rtype: ResourceType, address: str) -> bool:
    name = address.split(".", 1)[1]
    res = spec.volumes.get(name) if rtype is ResourceType.VOLUME else spec.instances.get(name)
    return bool(res and res.protect)


def volume_blocks(address: str, actions: tuple[Action, ...], after_keys: Collection[str],
                  volume: LiveVolume, live: LiveState, spec: Spec, now: datetime,
                  overrides: Overrides,
                  deleting_instances: Collection[str] | None,
                  detaching: Collection[str] = (), *,
                  want_size: object = None,
                  held: Mapping[str, str] | None = None) -> tuple[Block, ...]:
    """`want_size`: the size_gib the change asks for (an update's or a replace's)."""
    spec_persistent = _spec_volume_persistent(spec, address)
    spec_protected = _spec_protected(spec, ResourceType.VOLUME, address)
    found: list[Block | None] = []
    if Action.CREATE in actions or Action.UPDATE in actions:
        found.append(shrink_block(address, want_size, volume))
    if Action.DELETE in actions:
        found += [
            protection_block(Rule.PERSISTENT, address, volume.persistent or spec_persistent,
                             actions, overrides),
            protection_block(Rule.PROTECTED, address, volume.protected or spec_protected,
                             actions, overrides),
            min_age_block(address, volume.create_time, now, spec.defaults.min_age_minutes,
                          actions, overrides),
            attached_block(address, volume, live, deleting_instances, detaching, held),
        ]
    elif Action.UPDATE in actions:
        if any(k in MODIFIABLE for k in after_keys):
            found.append(modify_block(address, volume, live, now))
        found += [
            lowering_block(address, Rule.PERSISTENT, volume.persistent, spec_persistent,
                           overrides),
            lowering_block(address, Rule.PROTECTED, volume.protected, spec_protected,
                           overrides),
        ]
    return tuple(b for b in found if b is not None)


def instance_blocks(address: str, actions: tuple[Action, ...], instance: LiveInstance,
                    spec: Spec, now: datetime, overrides: Overrides) -> tuple[Block, ...]:
    if Action.UPDATE in actions:
        block = lowering_block(address, Rule.PROTECTED, instance.protected,
                               _spec_protected(spec, ResourceType.INSTANCE, address), overrides)
        return (block,) if block else ()
    if Action.DELETE not in actions:
        return ()
    found = [
        protection_block(Rule.PROTECTED, address, instance.protected or _spec_protected(
            spec, ResourceType.INSTANCE, address), actions, overrides),
        min_age_block(address, instance.launch_time, now, spec.defaults.min_age_minutes,
                      actions, overrides),
    ]
    return tuple(b for b in found if b is not None)


def _find_volume(change: Change, live: LiveState) -> LiveVolume | None:
    if change.id:
        return live.volume_by_id(change.id)
    return next((v for v in live.volumes if v.tags.get(TAG_ADDRESS) == change.address
                 and v.tags.get(TAG_PROJECT) == live.project), None)


def _find_instance(change: Change, live: LiveState) -> LiveInstance | None:
    if change.id:
        return live.instance_by_id(change.id)
    return next((i for i in live.instances if i.tags.get(TAG_ADDRESS) == change.address
                 and i.tags.get(TAG_PROJECT) == live.project
                 and i.state not in GONE_INSTANCE_STATES), None)


def recheck(change: Change, live: LiveState, spec: Spec, now: datetime,
            overrides: Overrides) -> tuple[Block, ...]:
    """The rules again, against freshly described live state, for one change.

    Ignores change.blocked_by on purpose: a hand-edited plan cannot lift a rule.
    """
    if change.type is ResourceType.VOLUME:
        vol = _find_volume(change, live)
        if vol is None:
            return ()
        after = change.after if isinstance(change.after, VolumePayload) else None
        keys = tuple(after.given()) if after is not None else ()
        return volume_blocks(base_address(change.address), change.actions, keys, vol, live,
                             spec, now, overrides, deleting_instances=None,
                             want_size=after.size_gib if after is not None else None)
    if change.type is ResourceType.INSTANCE:
        inst = _find_instance(change, live)
        if inst is None:
            return ()
        return instance_blocks(base_address(change.address), change.actions, inst, spec,
                               now, overrides)
    return ()


def duplicate_recheck(change: Change, live: LiveState, spec: Spec,
                      overrides: Overrides) -> tuple[Block, ...]:
    """`duplicate` at apply time, on live state described by address just before acting:
    a duplicate is deleted only when named by `--allow-delete ID`; any other step at an
    address is refused while another live resource carries it (unless the spec imports
    the one acted on, or the other is named for deletion). A create is refused when
    anything carries the address already (another apply made it since the plan)."""
    address = base_address(change.address)
    if address != change.address:
        if change.id in overrides.allow_delete:
            return ()
        return (Block(Rule.DUPLICATE, f"{change.id} carries {address}; delete it only with "
                                      f"--allow-delete {change.id}"),)
    rtype, _, name = address.partition(".")
    pool: tuple[LiveVolume | LiveInstance, ...]
    spec_res: Volume | Instance | None
    if change.type is ResourceType.VOLUME:
        pool, spec_res = live.volumes, spec.volumes.get(name)
    else:
        pool = tuple(i for i in live.instances if i.state not in GONE_INSTANCE_STATES)
        spec_res = spec.instances.get(name)
    if spec_res is not None and change.id and spec_res.import_id == change.id:
        return ()
    others = sorted(r.id for r in pool
                    if r.tags.get(TAG_ADDRESS) == address
                    and r.tags.get(TAG_PROJECT) == live.project
                    and r.tags.get(TAG_TEMPORARY) != "true"
                    and r.id != change.id and r.id not in overrides.allow_delete)
    if not others:
        return ()
    if not change.id:
        return (Block(Rule.DUPLICATE, f"{address} exists already ({', '.join(others)}), made "
                                      f"since the plan (another apply?); creating it again "
                                      f"would make a duplicate; run `trainctl plan` again"),)
    return (Block(Rule.DUPLICATE, f"{len(others) + 1} live {rtype}s carry {address} "
                                  f"({', '.join([change.id, *others])}); adopt one with "
                                  f"`import:` or delete the other with "
                                  f"--allow-delete {others[0]}"),)


# --- what waits for a blocked change --------------------------------------------------


def depends_on_block(address: str, blocked: list[str]) -> Block:
    """The `depends-on-blocked` entry of a change that needs the BLOCKED changes first."""
    one = len(blocked) == 1
    return Block(Rule.DEPENDS_ON_BLOCKED,
                 f"{address} waits for {first_few(blocked)}, which "
                 f"{'is' if one else 'are'} blocked; it runs once "
                 f"{'that rule is' if one else 'those rules are'} lifted")


def _met_without(blocked: Change, waiting: Change) -> bool:
    """A mount that only grows its filesystem to the volume's live size does not need the
    volume's own (blocked) grow: that part of the grow is never left behind."""
    if not (blocked.type is ResourceType.VOLUME and blocked.actions == (Action.UPDATE,)
            and waiting.type is ResourceType.MOUNT and waiting.actions == (Action.UPDATE,)):
        return False
    live = blocked.before.size_gib if isinstance(blocked.before, VolumePayload) else None
    want = waiting.after.size_gib if isinstance(waiting.after, MountPayload) else None
    return isinstance(live, int) and isinstance(want, int) and want <= live


def propagate_blocks(changes: tuple[Change, ...]) -> tuple[Change, ...]:
    """Every change that cannot run because a change it waits for is blocked, blocked
    too (`depends-on-blocked`, naming the changes blocked by a rule of their own).

    "Waits for" is the executor's phase order (planner.phases): a create or update after
    what it depends on, a delete before the deletes of what it depends on. A blocked
    change is blocked whole (a replace that cannot create does not delete either), so
    this runs to a fixpoint. Apply then runs exactly the plan's unblocked changes.
    """
    import networkx as nx

    from planner.phases import phase_graph

    origins = {c.address: {c.address} for c in changes if c.blocked}
    if not origins:
        return changes
    g = phase_graph(changes)
    phases: dict[str, list[tuple[str, Action]]] = {}
    for node in g:
        phases.setdefault(node[0], []).append(node)
    by_addr = {c.address: c for c in changes}
    todo = list(origins)
    while todo:
        addr = todo.pop()
        for node in phases.get(addr, ()):
            for waiting, _action in nx.descendants(g, node):
                if waiting in origins and not origins[waiting] - {waiting}:
                    continue          # blocked by a rule of its own
                if _met_without(by_addr[addr], by_addr[waiting]):
                    continue
                found = origins.setdefault(waiting, set())
                if not origins[addr] <= found:
                    found |= origins[addr]
                    todo.append(waiting)
    return tuple(
        replace(c, blocked_by=(depends_on_block(c.address, sorted(origins[c.address])),))
        if c.address in origins and not c.blocked else c
        for c in changes
    )
