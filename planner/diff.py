"""The diff: spec + graph + live snapshot + clock + options -> Plan.

Pure: no boto3, no clock, no environment. Live resources map to addresses through the
`trainctl:address` tag (or `import:` ids); rules (planner.rules) mark blocked changes.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

import networkx as nx

from planner import leftovers, rules
from planner.cost import plan_cost
from planner.digest import digest
from planner.digesttag import digest_matches, entry_counts, parse_digest_tag, short_digest
from planner.errors import TrainctlError
from planner.graph import data_location, parse_address, sync_path, with_dependencies
from planner.keys import describe as describe_keys
from planner.keys import named as named_keys
from planner.live import (
    TAG_CREATED_EMPTY,
    TAG_DATASET_DIGEST,
    TAG_MOUNTED,
    TAG_ON_DELETE,
    TAG_PERSISTENT,
    TAG_PROJECT,
    TAG_PROTECTED,
    TAG_TEMPORARY,
    DatasetManifest,
    LiveAttachment,
    LiveInstance,
    LiveState,
    LiveVolume,
    iso,
    live_to_json,
)
from planner.plan import (
    Action,
    Block,
    Change,
    DataLocation,
    Expiry,
    Plan,
    PlanOptions,
    PlanWarning,
    Reason,
    ResourceType,
    Rule,
    base_address,
    duplicate_address,
)
from planner.rules import ATTACHED_STATES, GONE_INSTANCE_STATES, Overrides
from planner.spec import Instance, Mount, Spec, Volume
from planner.specdict import spec_to_dict
from planner.stage import as_json as stage_json
from planner.stage import owner_problem as stage_owner_problem
from planner.tags import GIB, MountedTag, instance_safety_tags, owner_tags, parse_mounted_tag

VOLUME, INSTANCE = ResourceType.VOLUME, ResourceType.INSTANCE
ATTACHMENT, MOUNT = ResourceType.ATTACHMENT, ResourceType.MOUNT
SYNC, PREWARM, DATASET = ResourceType.SYNC, ResourceType.PREWARM, ResourceType.DATASET
NOOP, CREATE, UPDATE, DELETE = Action.NOOP, Action.CREATE, Action.UPDATE, Action.DELETE
REPLACE = (DELETE, CREATE)
TEMPORARY_INSTANCE = "temporary-instance"
DEFAULT_OPTIONS = PlanOptions()
NO_OVERRIDES = Overrides()


# --- helpers ---------------------------------------------------------------------------------


def _valid_address(addr: str | None, rtype: ResourceType) -> bool:
    if not addr:
        return False
    try:
        return parse_address(addr)[0] is rtype
    except ValueError:
        return False


def _name(addr: str) -> str:
    return addr.split(".", 1)[1]


def _profile_matches(spec_profile: str | None, live_arn: str | None) -> bool:
    if spec_profile is None:
        return True
    if live_arn is None:
        return False
    return live_arn == spec_profile or live_arn.endswith("/" + spec_profile)


def _profile_name(arn: str | None) -> str | None:
    """An instance profile's name: `trainctl-ssm` for `arn:aws:iam::1:instance-profile/...`
    (the spec names profiles, EC2 reports ARNs: compare and show names)."""
    return arn.rsplit("/", 1)[-1] if arn else None


def _change(addr: str, actions: tuple[Action, ...], reason: Reason, *,
            id: str | None = None, before: Mapping[str, Any] | None = None,
            after: Mapping[str, Any] | None = None,
            replace_paths: Iterable[str] = ()) -> Change:
    return Change(
        address=addr, type=parse_address(addr)[0], actions=actions, reason=reason, id=id,
        before=None if before is None else MappingProxyType(dict(before)),
        after=None if after is None else MappingProxyType(dict(after)),
        replace_paths=tuple(replace_paths),
    )


def _noop(addr: str, id: str | None = None) -> Change:
    return _change(addr, (NOOP,), Reason.NO_CHANGE, id=id)


def _inferred_dependencies(addr: str) -> list[str]:
    """Structural dependencies of an address that is not in the spec's graph."""
    rtype, names = parse_address(addr)
    if rtype is ATTACHMENT:
        return [f"instance.{names[0]}", f"volume.{names[1]}"]
    if rtype is MOUNT:
        return [f"attachment.{names[0]}.{names[1]}"]
    return []


def _attachment_to(volume: LiveVolume, instance_id: str) -> LiveAttachment | None:
    return next((a for a in volume.attachments
                 if a.instance_id == instance_id and a.state in ATTACHED_STATES), None)


# --- the diff ---------------------------------------------------------------------------------


class _Diff:
    def __init__(self, spec: Spec, graph: nx.DiGraph, live: LiveState, now: datetime,
                 options: PlanOptions, overrides: Overrides):
        self.spec, self.graph, self.live, self.now = spec, graph, live, now
        self.options, self.overrides = options, overrides
        self.project = spec.project
        self.changes: dict[str, Change] = {}
        self.volumes: dict[str, LiveVolume] = {}       # address -> live volume
        self.instances: dict[str, LiveInstance] = {}   # address -> live instance
        self.adopting: set[str] = set()                # imported, not yet tagged as ours
        self.known_volumes: dict[str, str] = {}        # address -> id the ledger last saw
        self.removed_spend_usd: float | None = 0.0     # the ledger's removed resources
        self.groups: dict[str, list[Any]] = {}         # address -> all its live resources
        self.dups: dict[str, leftovers.Duplicate] = {}  # `volume.V@ID` -> the duplicate
        self.temporaries: list[LiveInstance] = []
        self.cleanups: dict[str, list[str]] = {}       # `prewarm.D@i-...` -> volumes it holds
        self._index()

    # live resources by address ---------------------------------------------------------

    def _ours(self, tags: Mapping[str, str]) -> bool:
        return tags.get(TAG_PROJECT) == self.project

    def _index(self) -> None:
        named = self.overrides.allow_delete
        vol_groups = leftovers.group_by_address(
            self.live.volumes, self.project, lambda a: _valid_address(a, VOLUME))
        inst_groups = leftovers.group_by_address(
            self.live.instances, self.project, lambda a: _valid_address(a, INSTANCE))
        for addr, group in vol_groups.items():
            self.volumes[addr] = leftovers.pick_primary(group, named)  # type: ignore[assignment]
        for addr, group in inst_groups.items():
            self.instances[addr] = leftovers.pick_primary(  # type: ignore[assignment]
                group, named)
        for name, vs in self.spec.volumes.items():
            if vs.import_id:
                self._adopt(f"volume.{name}", vs.import_id, self.live.volume_by_id(vs.import_id),
                            self.volumes)
        for name, ins in self.spec.instances.items():
            if ins.import_id:
                found = self.live.instance_by_id(ins.import_id)
                if found is not None and found.state in GONE_INSTANCE_STATES:
                    found = None
                self._adopt(f"instance.{name}", ins.import_id, found, self.instances)
        self._duplicates(vol_groups, self.volumes)
        self._duplicates(inst_groups, self.instances)
        self.temporaries = leftovers.temporary_instances(self.live)

    def _duplicates(self, groups: Mapping[str, list[Any]], index: dict[str, Any]) -> None:
        """Every live resource carrying an address besides the one kept there."""
        kept = {r.id for r in index.values()}
        imported = {f"volume.{n}": v.import_id for n, v in self.spec.volumes.items()}
        imported |= {f"instance.{n}": i.import_id for n, i in self.spec.instances.items()}
        for addr, group in groups.items():
            rest = [r for r in group if r.id not in kept]
            if addr not in index and rest:          # its oldest was imported elsewhere
                index[addr] = rest.pop(0)
                kept.add(index[addr].id)
            if not rest:
                continue
            primary = index[addr]
            is_import = imported.get(addr) == primary.id
            self.groups[addr] = [primary, *rest]
            for r in rest:
                dup = leftovers.Duplicate(addr, r, primary, is_import)
                self.dups[dup.change_address] = dup

    def _adopt(self, addr: str, rid: str, found: LiveVolume | LiveInstance | None,
               index: dict[str, Any]) -> None:
        if found is None:
            if addr in index:          # adopted earlier: the tag carries it now
                return
            raise TrainctlError(f"{addr}: import: {rid} is not in the live state of "
                                f"{self.live.region}")
        owner = found.tags.get(TAG_PROJECT)
        if owner is not None and owner != self.project:
            raise TrainctlError(f"{addr}: import: {rid} belongs to trainctl project {owner}; "
                                f"remove it there first")
        for other, res in list(index.items()):
            if res.id == found.id and other != addr:
                del index[other]
        index[addr] = found
        if not (self._ours(found.tags) and found.address == addr):
            self.adopting.add(addr)

    @property
    def instances_by_id(self) -> dict[str, str]:
        return {i.id: a for a, i in self.instances.items() if a not in self.adopting}

    # tags ---------------------------------------------------------------------------------

    def desired_tags(self, addr: str, own: Mapping[str, str], *, persistent: bool = False,
                     protect: bool = False, on_delete: str | None = None,
                     live_tags: Mapping[str, str] | None = None) -> dict[str, str]:
        """DESIGN section 3's tags; a protection tag no longer wanted is set to "false"."""
        tags = owner_tags(self.spec, addr, own, persistent=persistent, protect=protect,
                          on_delete=on_delete)
        for key, wanted in ((TAG_PERSISTENT, persistent), (TAG_PROTECTED, protect)):
            if not wanted and live_tags is not None and live_tags.get(key) == "true":
                tags[key] = "false"
        if on_delete is not None and live_tags is not None and TAG_ON_DELETE in live_tags:
            tags[TAG_ON_DELETE] = on_delete
        return tags

    @staticmethod
    def _tag_diff(desired: Mapping[str, str], live_tags: Mapping[str, str],
                  before: dict[str, Any], after: dict[str, Any]) -> None:
        changed = {k: v for k, v in desired.items() if live_tags.get(k) != v}
        if changed:
            before["tags"] = {k: live_tags.get(k) for k in changed}
            after["tags"] = changed

    # volumes and instances ------------------------------------------------------------------

    def volume_before(self, lv: LiveVolume) -> dict[str, Any]:
        before: dict[str, Any] = {
            "id": lv.id, "size_gib": lv.size_gib, "type": lv.type, "iops": lv.iops,
            "throughput_mibps": lv.throughput_mibps,
            "availability_zone": lv.availability_zone, "snapshot_id": lv.snapshot_id,
            "encrypted": lv.encrypted, "state": lv.state,
            "attached_to": [a.instance_id for a in lv.attachments if a.state in ATTACHED_STATES],
        }
        vs = self.spec.volumes.get(_name(lv.address or "")) if lv.address else None
        on_delete = vs.on_delete if vs is not None else lv.tags.get(TAG_ON_DELETE)
        if on_delete is not None:
            before["on_delete"] = on_delete
        return before

    def volume_change(self, vs: Volume) -> Change:
        addr = f"volume.{vs.name}"
        lv = self.volumes.get(addr)
        tags = self.desired_tags(addr, vs.tags, persistent=vs.persistent, protect=vs.protect,
                                 on_delete=vs.on_delete, live_tags=lv.tags if lv else None)
        if lv is not None and addr in self.adopting and TAG_CREATED_EMPTY in lv.tags:
            # an adopted volume was not created empty here (the tag is its maker's word,
            # or anyone's): it may never be formatted, even once `import:` is dropped
            tags[TAG_CREATED_EMPTY] = "false"
        create = {
            "name": vs.name, "size_gib": vs.size_gib, "type": vs.type, "iops": vs.iops,
            "throughput_mibps": vs.throughput_mibps, "availability_zone": vs.availability_zone,
            "snapshot_id": vs.snapshot_id, "encrypted": vs.encrypted, "on_delete": vs.on_delete,
            "tags": tags,
        }
        if lv is None:
            gone = self.known_volumes.get(addr)
            if gone is not None and not any(v.id == gone for v in self.live.volumes):
                return _change(addr, (CREATE,), Reason.CREATE_BECAUSE_DELETED_OUTSIDE,
                               before={"id": gone, "state": "deleted"}, after=create)
            return _change(addr, (CREATE,), Reason.CREATE_BECAUSE_MISSING, after=create)
        paths = []
        if vs.availability_zone != lv.availability_zone:
            paths.append("availability_zone")
        if vs.snapshot_id and vs.snapshot_id != lv.snapshot_id:
            paths.append("snapshot_id")
        if vs.encrypted and not lv.encrypted:
            paths.append("encrypted")
        if paths:
            return self.replace_change(addr, lv.id, paths, self.volume_before(lv), create,
                                       lv.tags)
        before: dict[str, Any] = {"id": lv.id}
        after: dict[str, Any] = {"id": lv.id}
        # A smaller size than live is drift on this volume, blocked by the `shrink` rule.
        wanted = {"size_gib": vs.size_gib if vs.size_gib != lv.size_gib else None,
                  "type": vs.type, "iops": vs.iops, "throughput_mibps": vs.throughput_mibps}
        for key, want in wanted.items():
            have = getattr(lv, key)
            if want is not None and want != have:
                before[key], after[key] = have, want
        return self.update_change(addr, lv.id, before, after, tags, lv.tags)

    @staticmethod
    def instance_before(li: LiveInstance) -> dict[str, Any]:
        return {
            "id": li.id, "instance_type": li.instance_type, "ami": li.ami, "market": li.market,
            "availability_zone": li.availability_zone, "subnet_id": li.subnet_id,
            "iam_instance_profile": _profile_name(li.iam_instance_profile), "state": li.state,
        }

    def instance_change(self, ins: Instance) -> Change:
        addr = f"instance.{ins.name}"
        li = self.instances.get(addr)
        tags = {**self.desired_tags(addr, ins.tags, protect=ins.protect,
                                    live_tags=li.tags if li else None),
                **instance_safety_tags(ins)}
        create = {
            "name": ins.name, "instance_type": ins.instance_type, "ami": ins.ami,
            "market": ins.market, "availability_zone": ins.availability_zone,
            "subnet_id": ins.subnet_id, "iam_instance_profile": ins.iam_instance_profile,
            "tags": tags,
        }
        if li is None:
            gone = self.terminated_outside(addr)
            if gone is not None:
                return _change(addr, (CREATE,), Reason.CREATE_BECAUSE_DELETED_OUTSIDE,
                               before={"id": gone.id, "state": gone.state}, after=create)
            return _change(addr, (CREATE,), Reason.CREATE_BECAUSE_MISSING, after=create)
        checks = [
            ("instance_type", ins.instance_type != li.instance_type),
            ("ami", li.ami is not None and ins.ami != li.ami),
            ("market", ins.market != li.market),
            ("subnet_id", ins.subnet_id is not None and ins.subnet_id != li.subnet_id),
            ("availability_zone", ins.availability_zone != li.availability_zone),
            ("iam_instance_profile",
             not _profile_matches(ins.iam_instance_profile, li.iam_instance_profile)),
        ]
        paths = [k for k, differs in checks if differs]
        if paths:
            return self.replace_change(addr, li.id, paths, self.instance_before(li), create,
                                       li.tags)
        before: dict[str, Any] = {"id": li.id}
        after: dict[str, Any] = {"id": li.id}
        return self.update_change(addr, li.id, before, after, tags, li.tags)

    def terminated_outside(self, addr: str) -> LiveInstance | None:
        """The latest instance that carried ADDR and is terminated (or terminating) while
        no live one does: someone ended it outside trainctl (the console, a spot
        reclaim, a script)."""
        gone = [i for i in self.live.instances
                if self._ours(i.tags) and i.address == addr
                and i.state in GONE_INSTANCE_STATES and i.tags.get(TAG_TEMPORARY) != "true"]
        return max(gone, key=lambda i: (i.launch_time, i.id), default=None)

    def update_change(self, addr: str, live_id: str, before: dict[str, Any],
                      after: dict[str, Any], tags: Mapping[str, str],
                      live_tags: Mapping[str, str]) -> Change:
        """An in-place update with the tag drift added, or a no-op when nothing differs."""
        self._tag_diff(tags, live_tags, before, after)
        if len(after) == 1:
            return _noop(addr, live_id)
        reason = Reason.ADOPT_BECAUSE_IMPORT if addr in self.adopting else (
            Reason.UPDATE_BECAUSE_DRIFT)
        return _change(addr, (UPDATE,), reason, id=live_id, before=before, after=after)

    def replace_change(self, addr: str, live_id: str, paths: list[str],
                       live: dict[str, Any], create: dict[str, Any],
                       live_tags: Mapping[str, str]) -> Change:
        """A replace forced by PATHS, showing only what changes: attributes the spec sets
        that differ from LIVE (those it leaves to AWS, like an unnamed subnet, are not
        shown as null), and the tags that differ. An imported resource is adopted as it
        is, never replaced, so there it is an error."""
        if addr in self.adopting:
            kind = addr.split(".", 1)[0]
            raise TrainctlError(
                f"{addr}: import: {live_id} differs in {', '.join(paths)}; an imported "
                f"{kind} is adopted as it is, so make the spec match it")
        before: dict[str, Any] = {"id": live_id}
        after: dict[str, Any] = {}
        for key, want in create.items():
            if key in ("name", "tags") or key not in live:
                continue
            if key in paths or (want is not None and want != live[key]):
                before[key], after[key] = live[key], want
        self._tag_diff(create.get("tags") or {}, live_tags, before, after)
        return _change(addr, REPLACE, Reason.REPLACE_BECAUSE_CANNOT_UPDATE, id=live_id,
                       before=before, after=after, replace_paths=paths)

    def resources(self) -> None:
        """volume.* and instance.* changes: from the spec, orphans, or --destroy."""
        destroy = self.options.destroy
        if not destroy:
            for vs in self.spec.volumes.values():
                self.add(self.volume_change(vs))
            for ins in self.spec.instances.values():
                self.add(self.instance_change(ins))
        reason = Reason.DELETE_BECAUSE_DESTROY if destroy else Reason.DELETE_BECAUSE_NOT_IN_SPEC
        for addr, lv in self.volumes.items():
            if addr not in self.changes and addr not in self.adopting:
                self.add(_change(addr, (DELETE,), reason, id=lv.id, before=self.volume_before(lv)))
        for addr, li in self.instances.items():
            if addr not in self.changes and addr not in self.adopting:
                self.add(_change(addr, (DELETE,), reason, id=li.id,
                                 before=self.instance_before(li)))
        self.temporary_cleanups()
        for addr, dup in self.dups.items():
            r = dup.resource
            before = (self.volume_before(r) if isinstance(r, LiveVolume)
                      else self.instance_before(r))
            self.add(_change(addr, (DELETE,), Reason.DELETE_BECAUSE_DUPLICATE, id=r.id,
                             before={**before, "duplicate_of": dup.primary.id}))

    def temporary_cleanups(self) -> None:
        """A temporary prewarm instance still live was left by an interrupted apply: apply
        unmounts and detaches what it holds (the volumes stay), then terminates it."""
        for t in self.temporaries:
            tag = t.address if _valid_address(t.address, PREWARM) else "prewarm.unknown"
            held = leftovers.held_volumes(self.live, t.id, self.volumes)
            addr = duplicate_address(str(tag), t.id)
            self.cleanups[addr] = [a for a, v in self.volumes.items() if v in held]
            self.add(_change(addr, (DELETE,), Reason.DELETE_BECAUSE_TEMPORARY, id=t.id, before={
                "temporary_instance": t.id, "instance_type": t.instance_type,
                "availability_zone": t.availability_zone, "state": t.state,
                "launched": iso(t.launch_time), "holds": self.cleanups[addr],
                "volume_ids": [v.id for v in held]}))

    def add(self, change: Change) -> None:
        self.changes[change.address] = change

    # rules for volumes and instances ---------------------------------------------------

    def live_resource(self, addr: str) -> LiveVolume | LiveInstance | None:
        """The live resource a volume/instance change acts on (a duplicate's own)."""
        dup = self.dups.get(addr)
        if dup is not None:
            return dup.resource
        return (self.volumes if addr.startswith("volume.") else self.instances).get(addr)

    def block_resources(self, keep: set[str] | None = None) -> None:
        """Rules for volume/instance changes; `keep` restricts what counts as deleted.
        Duplicates first: an address stays blocked while one of its duplicates does."""
        order = sorted(self.changes, key=lambda a: a not in self.dups)
        for addr in order:
            c = self.changes[addr]
            li = self.live_resource(addr) if c.type is INSTANCE else None
            if isinstance(li, LiveInstance):
                blocks = rules.instance_blocks(base_address(addr), c.actions, li, self.spec,
                                               self.now, self.overrides)
                self._set_blocks(addr, c, blocks + self.duplicate_blocks(addr))
        deleting = {
            res.id for a, c in self.changes.items()
            if c.type is INSTANCE and c.deletes and not c.blocked
            and (res := self.live_resource(a)) is not None and (keep is None or a in keep)
        }
        detached = self.detached_by_volume()
        for addr in order:
            c = self.changes[addr]
            lv = self.live_resource(addr) if c.type is VOLUME else None
            if isinstance(lv, LiveVolume):
                blocks = rules.volume_blocks(base_address(addr), c.actions,
                                             tuple(c.after or ()), lv, self.live, self.spec,
                                             self.now, self.overrides, deleting,
                                             self.detaching(lv, c, detached),
                                             want_size=(c.after or {}).get("size_gib"))
                self._set_blocks(addr, c, blocks + self.duplicate_blocks(addr))

    def _set_blocks(self, addr: str, c: Change, blocks: tuple[Block, ...]) -> None:
        if blocks != c.blocked_by:
            self.changes[addr] = replace(c, blocked_by=blocks)

    def duplicate_blocks(self, addr: str) -> tuple[Block, ...]:
        """`duplicate`: a duplicate's delete needs `--allow-delete ID`; the address it
        duplicates is blocked until every duplicate is resolved (imported, or deleted by
        this apply)."""
        dup = self.dups.get(addr)
        if dup is not None:
            if dup.resource.id in self.overrides.allow_delete:
                return ()
            return (leftovers.duplicate_block(dup),)
        group = self.groups.get(addr)
        if not group:
            return ()
        primary = group[0]
        if any(d.imported for d in self.dups.values() if d.address == addr):
            return ()
        unresolved = [r for r in group[1:]
                      if (c := self.changes.get(duplicate_address(addr, r.id))) is None
                      or c.blocked]
        return (leftovers.primary_block(addr, group, primary),) if unresolved else ()

    def duplicate_warnings(self) -> list[PlanWarning]:
        out = []
        for addr, group in sorted(self.groups.items()):
            imported = any(d.imported for d in self.dups.values() if d.address == addr)
            out.append(PlanWarning(addr, Rule.DUPLICATE,
                                   leftovers.warning_message(addr, group, group[0], imported)))
        return out

    def empty_datasets(self) -> list[PlanWarning]:
        """A dataset whose listing holds nothing is most often a typo in its prefix."""
        if self.options.destroy:
            return []
        return [
            PlanWarning(f"dataset.{name}", Rule.EMPTY_DATASET,
                        f"{m.uri} lists no object: check the prefix (a typo plans an empty "
                        f"sync or prewarm)")
            for name in self.spec.datasets
            if (m := self.source_manifest(name)) is not None and m.objects == 0
        ]

    def keep_with_blocked_instances(self) -> None:
        """An instance whose delete is blocked keeps its volumes mounted and attached: a
        half torn-down trainer would lose its disks while it stays."""
        for addr, c in list(self.changes.items()):
            if c.type not in (ATTACHMENT, MOUNT) or not c.deletes or c.blocked:
                continue
            i_addr = f"instance.{c.name.split('.')[0]}"
            ic = self.changes.get(i_addr)
            if ic is not None and ic.deletes and ic.blocked:
                self.changes[addr] = replace(c, blocked_by=tuple(
                    Block(b.rule, f"{addr} stays while {i_addr} is kept ({b.rule.value})")
                    for b in ic.blocked_by))

    def detached_by_volume(self) -> dict[str, set[str]]:
        """Volume id -> instance ids of the attachment deletes planned (not blocked)."""
        out: dict[str, set[str]] = {}
        for c in self.changes.values():
            if c.type is ATTACHMENT and c.deletes and not c.blocked and c.before:
                vid, iid = c.before.get("volume_id"), c.before.get("instance_id")
                if vid and iid:
                    out.setdefault(str(vid), set()).add(str(iid))
            elif c.address in self.cleanups and not c.blocked and c.before:
                for vid in c.before.get("volume_ids", ()):
                    out.setdefault(str(vid), set()).add(str(c.id))
        return out

    def detaching(self, volume: LiveVolume, change: Change,
                  detached: dict[str, set[str]]) -> set[str]:
        """Instance ids this plan detaches a deleted volume from: apply detaches first, so
        removing a mounted volume from the spec converges in one apply. Replaces keep the
        conservative rule (their dependents were planned with the volume blocked).
        `detached`: detached_by_volume(), computed once for many volumes."""
        if change.actions != (DELETE,):
            return set()
        return set(detached.get(volume.id, ()))

    def fresh(self, addr: str) -> bool:
        """Created, or replaced (not blocked), in this plan: nothing live carries over."""
        c = self.changes.get(addr)
        return c is not None and CREATE in c.actions and not c.blocked

    def grew(self, addr: str) -> bool:
        c = self.changes.get(addr)
        return (c is not None and c.actions == (UPDATE,) and not c.blocked
                and "size_gib" in (c.after or {}))

    def live_id(self, addr: str) -> str | None:
        """The id of the live resource at `addr` that survives this plan, if any."""
        res = self.volumes.get(addr) if addr.startswith("volume.") else self.instances.get(addr)
        return None if res is None or self.fresh(addr) else res.id

    # attachments and mounts -----------------------------------------------------------------

    def attachment_change(self, ins: Instance, m: Mount) -> Change:
        addr = f"attachment.{ins.name}.{m.volume}"
        i_addr, v_addr = f"instance.{ins.name}", f"volume.{m.volume}"
        li, lv = self.instances.get(i_addr), self.volumes.get(v_addr)
        att = _attachment_to(lv, li.id) if lv and li else None
        after = {"instance": ins.name, "volume": m.volume, "device": m.device,
                 "instance_id": self.live_id(i_addr), "volume_id": self.live_id(v_addr)}
        renewed = [p for p, a in (("instance_id", i_addr), ("volume_id", v_addr))
                   if self.fresh(a)]
        if att is None:
            reason = Reason.CREATE_BECAUSE_MISSING if renewed else (
                Reason.ATTACH_BECAUSE_NOT_ATTACHED)
            return _change(addr, (CREATE,), reason, after=after)
        assert li is not None and lv is not None
        before = {"instance": ins.name, "volume": m.volume, "device": att.device,
                  "instance_id": li.id, "volume_id": lv.id}
        if renewed:
            return _change(addr, REPLACE, Reason.REPLACE_BECAUSE_DEPENDENCY_REPLACED,
                           before=before, after=after, replace_paths=renewed)
        if att.device != m.device:
            return _change(addr, REPLACE, Reason.REPLACE_BECAUSE_CANNOT_UPDATE,
                           before=before, after=after, replace_paths=["device"])
        return _noop(addr)

    def mount_change(self, ins: Instance, m: Mount) -> Change:
        addr = f"mount.{ins.name}.{m.volume}"
        v_addr = f"volume.{m.volume}"
        li, lv = self.instances.get(f"instance.{ins.name}"), self.volumes.get(v_addr)
        vs = self.spec.volumes[m.volume]
        att = self.changes[f"attachment.{ins.name}.{m.volume}"]
        after = {"instance": ins.name, "volume": m.volume, "device": m.device, "path": m.path,
                 "read_only": m.read_only, "filesystem": vs.filesystem,
                 "instance_id": self.live_id(f"instance.{ins.name}"),
                 "volume_id": self.live_id(v_addr)}
        tag = parse_mounted_tag(lv.tags.get(TAG_MOUNTED)) if lv else None
        mounted_here = bool(li and tag and tag.instance_id == li.id)
        before = None
        if mounted_here:
            assert li is not None and lv is not None and tag is not None
            live_att = _attachment_to(lv, li.id)
            before = {"instance": ins.name, "volume": m.volume, "path": tag.path,
                      "device": live_att.device if live_att else None,
                      "instance_id": li.id, "volume_id": lv.id}
        if att.kind == "create" or not mounted_here:
            return _change(addr, (CREATE,), Reason.MOUNT_BECAUSE_NOT_MOUNTED, after=after)
        if att.kind == "replace":
            return _change(addr, REPLACE, Reason.REPLACE_BECAUSE_DEPENDENCY_REPLACED,
                           before=before, after=after, replace_paths=att.replace_paths)
        assert li is not None and lv is not None and tag is not None
        if tag.path != m.path:
            return _change(addr, REPLACE, Reason.REPLACE_BECAUSE_CANNOT_UPDATE,
                           before=before, after=after, replace_paths=["path"])
        return self.grow_change(addr, v_addr, lv, tag, after)

    def grow_change(self, addr: str, v_addr: str, lv: LiveVolume, tag: MountedTag,
                    after: dict[str, Any]) -> Change:
        """The mount grows its filesystem when this plan grows the volume, or when the live
        volume is already larger than the filesystem size the last mount recorded (a grow
        skipped behind a blocked change, or a volume grown outside trainctl)."""
        growing = self.grew(v_addr)
        if not growing and not tag.needs_grow(lv.size_gib):
            return _noop(addr)
        target = max(lv.size_gib, int((self.changes[v_addr].after or {})["size_gib"])
                     if growing else lv.size_gib)
        if tag.fs_bytes is not None:
            old: float = tag.fs_bytes // GIB if tag.fs_bytes % GIB == 0 else round(
                tag.fs_bytes / GIB, 2)
        else:
            old = lv.size_gib
        extra = {} if tag.fs_bytes is None else {"fs_bytes": tag.fs_bytes}
        return _change(addr, (UPDATE,), Reason.MOUNT_BECAUSE_VOLUME_GREW,
                       before={**after, "size_gib": old, **extra},
                       after={**after, "size_gib": target})

    def live_pairs(self) -> Iterable[tuple[str, str, LiveVolume, LiveInstance, LiveAttachment]]:
        """(instance name, volume name, ...) for every live attachment between ours."""
        by_id = self.instances_by_id
        for v_addr, lv in self.volumes.items():
            if v_addr in self.adopting:
                continue
            for a in lv.attachments:
                i_addr = by_id.get(a.instance_id)
                if i_addr is not None and a.state in ATTACHED_STATES:
                    yield _name(i_addr), _name(v_addr), lv, self.instances[i_addr], a

    def orphan_attachments_and_mounts(self) -> None:
        reason = (Reason.DELETE_BECAUSE_DESTROY if self.options.destroy
                  else Reason.DELETE_BECAUSE_NOT_IN_SPEC)
        for i_name, v_name, lv, li, a in self.live_pairs():
            att_addr, mnt_addr = f"attachment.{i_name}.{v_name}", f"mount.{i_name}.{v_name}"
            ids = {"instance": i_name, "volume": v_name, "instance_id": li.id,
                   "volume_id": lv.id}
            if att_addr not in self.changes:
                self.add(_change(att_addr, (DELETE,), reason,
                                 before={**ids, "device": a.device}))
            tag = parse_mounted_tag(lv.tags.get(TAG_MOUNTED))
            if tag is not None and tag.instance_id == li.id and mnt_addr not in self.changes:
                self.add(_change(mnt_addr, (DELETE,), reason, before={
                    **ids, "device": a.device, "path": tag.path}))

    # data: datasets, prewarm, sync ----------------------------------------------------------

    def source_manifest(self, name: str) -> DatasetManifest | None:
        """What the dataset's S3 side will hold after apply: the local folder for local
        sources (it is uploaded first), else the S3 listing."""
        ds = self.spec.datasets[name]
        if ds.is_local and f"{name}:local" in self.live.datasets:
            return self.live.datasets[f"{name}:local"]
        return self.live.datasets.get(name)

    def manifest_fields(self, name: str) -> dict[str, Any]:
        m = self.source_manifest(name)
        d = m.digest if m else None
        return {"objects": m.objects if m else None, "bytes": m.bytes if m else None,
                "digest": d, "digest_entry": f"{name}={short_digest(d)}" if d else None}

    def dataset_change(self, name: str) -> Change:
        """The upload of a local folder to its stage. With the stage's work known
        (planner.stage), it is a no-op exactly when nothing is sent or deleted, and the
        change carries every count the upload will act on, deletions included."""
        addr = f"dataset.{name}"
        ds = self.spec.datasets[name]
        local = self.live.datasets.get(f"{name}:local")
        stage = self.live.datasets.get(name)
        work = self.live.stages.get(name)
        owner = stage_owner_problem(work, self.project)
        if owner is not None:
            raise TrainctlError(f"datasets.{name}.stage: {ds.stage}: {owner}; a stage is a "
                                f"prefix trainctl owns alone: give dataset {name} its own")
        after = {"dataset": name, "source": ds.source, "stage": ds.stage,
                 "objects": local.objects if local else None,
                 "bytes": local.bytes if local else None,
                 "digest": local.digest if local else None,
                 **(stage_json(work) if work is not None else {})}
        if work is not None and stage is not None:
            unchanged = work.upload_objects == 0 and work.delete_objects == 0
        else:
            unchanged = local is not None and stage is not None and local.digest == stage.digest
        if unchanged:
            return _noop(addr)
        blocks = self.unsafe_blocks(name, local=True)
        if stage is None or stage.objects == 0:
            c = _change(addr, (CREATE,), Reason.UPLOAD_BECAUSE_SOURCE_CHANGED, after=after)
        else:
            before = {"objects": stage.objects, "bytes": stage.bytes, "digest": stage.digest}
            c = _change(addr, (UPDATE,), Reason.UPLOAD_BECAUSE_SOURCE_CHANGED,
                        before=before, after=after)
        return replace(c, blocked_by=blocks) if blocks else c

    def unsafe_blocks(self, name: str, *, local: bool = False) -> tuple[Block, ...]:
        """`unsafe-key`: a listing of dataset NAME holds keys that are not safe relative
        paths. LOCAL: only the local folder counts (what the upload sends)."""
        keys = [f"{name}:local"] if local else [f"{name}:local", name]
        out = []
        for key in keys:
            m = self.live.datasets.get(key)
            if m is None or not m.unsafe_objects:
                continue
            out.append(Block(Rule.UNSAFE_KEY, (
                f"dataset {name}: {m.uri} holds {m.unsafe_objects} key(s) that are not safe "
                f"relative paths: {describe_keys(m.unsafe_keys, m.unsafe_objects)}; copying "
                f"them could write outside the destination: rename or remove them")))
        return tuple(out)

    def with_unsafe_blocks(self, change: Change, name: str) -> Change:
        if change.is_noop:
            return change
        blocks = self.unsafe_blocks(name)
        return replace(change, blocked_by=change.blocked_by + blocks) if blocks else change

    def stage_warnings(self) -> list[PlanWarning]:
        """Objects under a stage that trainctl keeps (it did not write them), stage objects
        it overwrites without having written them, and records it cannot read."""
        out: list[PlanWarning] = []
        if self.options.destroy:
            return out
        for name, ds in self.spec.datasets.items():
            work = self.live.stages.get(name)
            if not ds.is_local or work is None:
                continue
            addr = f"dataset.{name}"
            if work.kept_objects:
                out.append(PlanWarning(addr, Rule.FOREIGN_OBJECTS, (
                    f"{work.kept_objects} object(s) ({work.kept_bytes} bytes) under stage "
                    f"{ds.stage} are not in {ds.source} and were not written by trainctl: "
                    f"they are kept (and synced with the dataset): "
                    f"{named_keys(work.kept_examples, work.kept_objects)}; remove them "
                    f"by hand if they are stale")))
            if work.replace_foreign:
                out.append(PlanWarning(addr, Rule.FOREIGN_OBJECTS, (
                    f"the upload overwrites {work.replace_foreign} object(s) under stage "
                    f"{ds.stage} that trainctl did not record writing (same keys as files "
                    f"in {ds.source})")))
            if work.problem:
                out.append(PlanWarning(addr, Rule.FOREIGN_OBJECTS, (
                    f"{work.problem}: nothing under the stage counts as trainctl's, so "
                    f"nothing there is deleted")))
        return out

    def prewarm_via(self, v_name: str) -> dict[str, Any]:
        """Fill through the managed instance the volume stays attached to, else through a
        temporary instance in the volume's AZ (the volume is new or not attached)."""
        for ins in self.spec.instances.values():
            for m in ins.mounts:
                att = self.changes.get(f"attachment.{ins.name}.{v_name}")
                if m.volume != v_name or att is None or not att.is_noop:
                    continue
                mnt = self.changes.get(f"mount.{ins.name}.{v_name}")
                return {"via": f"instance.{ins.name}",
                        "instance_id": self.instances[f"instance.{ins.name}"].id,
                        "device": m.device, "mount_path": m.path, "read_only": m.read_only,
                        "mounted": bool(mnt and mnt.is_noop)}
        return {"via": TEMPORARY_INSTANCE}

    def prewarm_change(self, name: str) -> Change:
        addr = f"prewarm.{name}"
        ds = self.spec.datasets[name]
        v_name = str(ds.volume)
        v_addr = f"volume.{v_name}"
        vs = self.spec.volumes[v_name]
        lv = self.volumes.get(v_addr)
        fields = self.manifest_fields(name)
        new_volume = lv is None or self.fresh(v_addr)
        recorded = None if new_volume or lv is None else lv.tags.get(TAG_DATASET_DIGEST)
        if digest_matches(recorded, name, fields["digest"]):
            return _noop(addr)
        after = {"volume": v_name, "dataset": name, "uri": ds.s3_uri, "path": ds.path or "/",
                 **fields, "volume_id": self.live_id(v_addr),
                 "availability_zone": vs.availability_zone, "filesystem": vs.filesystem,
                 **self.prewarm_via(v_name)}
        reason = Reason.CREATE_BECAUSE_MISSING if new_volume else (
            Reason.PREWARM_BECAUSE_DATASET_CHANGED)
        before = self.refill_before(recorded, name)
        return self.with_unsafe_blocks(
            _change(addr, (UPDATE,) if before else (CREATE,), reason, before=before,
                    after=after), name)

    @staticmethod
    def refill_before(recorded: str | None, name: str) -> dict[str, Any] | None:
        """What a refill replaces: the dataset as last filled or synced (its digest, and
        its counts when the tag recorded them). None when nothing was filled yet: then
        the fill or sync is a create."""
        entry = parse_digest_tag(recorded).get(name)
        if entry is None:
            return None
        objects, size = entry_counts(entry)
        return {"objects": objects, "bytes": size, "digest": short_digest(entry),
                "digest_entry": f"{name}={short_digest(entry)}"}

    def sync_change(self, addr: str) -> Change:
        _, (i_name, d_name) = parse_address(addr)
        ins = self.spec.instances[i_name]
        ds = self.spec.datasets[d_name]
        landing = sorted(p for p in self.graph.predecessors(addr) if p.startswith("mount."))
        if landing:
            record_on = f"volume.{landing[0].split('.')[2]}"
            res: LiveVolume | LiveInstance | None = self.volumes.get(record_on)
        else:
            record_on = f"instance.{i_name}"
            res = self.instances.get(record_on)
        fields = self.manifest_fields(d_name)
        fresh = res is None or self.fresh(record_on)
        recorded = None if fresh or res is None else res.tags.get(TAG_DATASET_DIGEST)
        if digest_matches(recorded, d_name, fields["digest"]):
            return _noop(addr)
        after = {"instance": i_name, "dataset": d_name, "strategy": ds.strategy,
                 "uri": ds.s3_uri, "path": sync_path(self.spec, ins, d_name), **fields,
                 "record_on": record_on, "instance_id": self.live_id(f"instance.{i_name}"),
                 "volume_id": self.live_id(record_on) if landing else None}
        if ds.strategy == "existing-ebs":
            reason = Reason.VERIFY_BECAUSE_EXISTING_EBS
        elif fresh:
            reason = Reason.CREATE_BECAUSE_MISSING
        else:
            reason = Reason.SYNC_BECAUSE_DATASET_CHANGED
        before = self.refill_before(recorded, d_name)
        change = _change(addr, (UPDATE,) if before else (CREATE,), reason, before=before,
                         after=after)
        if ds.strategy == "existing-ebs":
            return change          # a check of the volume's files: nothing is copied
        return self.with_unsafe_blocks(change, d_name)

    def dependents(self) -> None:
        """Everything that hangs off volumes and instances. Attachments and mounts come
        first: a prewarm fills through an instance the volume stays attached to."""
        if not self.options.destroy:
            rank = {DATASET: 0, ATTACHMENT: 1, MOUNT: 2, PREWARM: 3, SYNC: 4}
            nodes = [(parse_address(n), n) for n in self.graph.nodes]
            for (rtype, names), node in sorted(
                    (x for x in nodes if x[0][0] in rank), key=lambda x: (rank[x[0][0]], x[1])):
                if rtype is DATASET:
                    self.add(self.dataset_change(names[0]))
                elif rtype is PREWARM:
                    self.add(self.prewarm_change(names[0]))
                elif rtype in (ATTACHMENT, MOUNT):
                    ins = self.spec.instances[names[0]]
                    m = next(m for m in ins.mounts if m.volume == names[1])
                    fn = self.attachment_change if rtype is ATTACHMENT else self.mount_change
                    self.add(fn(ins, m))
                else:
                    self.add(self.sync_change(node))
        self.orphan_attachments_and_mounts()

    # targets, order, digests --------------------------------------------------------------

    def full_graph(self) -> nx.DiGraph:
        g: nx.DiGraph = self.graph.copy()
        for addr in self.changes:
            if addr not in self.graph:
                g.add_node(addr)
                for dep in _inferred_dependencies(addr):
                    g.add_edge(dep, addr)
        self.leftover_edges(g)
        return g

    def leftover_edges(self, g: nx.DiGraph) -> None:
        """A temporary instance's cleanup runs before its volumes are deleted or attached
        elsewhere; a duplicate volume is deleted after the instance it is attached to
        (when that instance goes too): its delete "depends" on the volume, as attachments
        do."""
        for addr, held in self.cleanups.items():   # detach before the volume goes, and
            for v_addr in held:                      # before anything else attaches it
                g.add_edge(v_addr, addr)
                for after in list(self.graph.successors(v_addr)) if v_addr in self.graph else ():
                    g.add_edge(addr, after)
        going = {c.id: a for a, c in self.changes.items()
                 if c.type is INSTANCE and c.deletes and c.id}
        for addr, dup in self.dups.items():
            if isinstance(dup.resource, LiveVolume):
                for a in dup.resource.attachments:
                    if a.instance_id in going and a.state in ATTACHED_STATES:
                        g.add_edge(addr, going[a.instance_id])

    def block_on_duplicates(self, g: nx.DiGraph) -> None:
        """Nothing that needs an address with unresolved duplicates runs: attachments,
        mounts, prewarms and syncs of it are blocked too (naming the address)."""
        stuck = {a for a in self.groups
                 if a in self.changes
                 and any(b.rule is Rule.DUPLICATE for b in self.changes[a].blocked_by)}
        if not stuck:
            return
        for addr, c in list(self.changes.items()):
            if c.is_noop or addr in stuck or addr in self.dups or addr not in g:
                continue
            hit = sorted(nx.ancestors(g, addr) & stuck)
            if hit:
                extra = tuple(Block(Rule.DUPLICATE, f"{addr} needs {a}, which more than one "
                                                    f"live resource carries") for a in hit)
                self.changes[addr] = replace(c, blocked_by=c.blocked_by + extra)

    def targeted(self, g: nx.DiGraph) -> set[str] | None:
        if not self.options.targets:
            return None
        valid = sorted(set(g.nodes) | set(self.changes))
        unknown = [t for t in self.options.targets if t not in valid]
        if unknown:
            lines = []
            for t in unknown:
                close = difflib.get_close_matches(t, valid, n=5, cutoff=0.5)
                hint = f"; did you mean {', '.join(close)}?" if close else (
                    f"; valid addresses: {', '.join(valid[:20])}"
                    + (" ..." if len(valid) > 20 else ""))
                lines.append(f"--target {t}: no such address{hint}")
            raise TrainctlError("\n".join(lines))
        if self.options.destroy:         # Terraform's destroy -target: it and its dependents,
            return set(self.options.targets).union(   # never what it depends on
                *(nx.descendants(g, t) for t in self.options.targets if t in g))
        keep = with_dependencies(g, self.options.targets)
        for t in self.options.targets:   # deletes below a target must run before it
            keep |= {d for d in nx.descendants(g, t)
                     if d in self.changes and self.changes[d].deletes}
        return keep

    def ordered(self, g: nx.DiGraph, keep: set[str] | None) -> tuple[Change, ...]:
        present = {a for a in self.changes if keep is None or a in keep}
        gen = {n: i for i, layer in enumerate(nx.topological_generations(g)) for n in layer}
        out = []
        for addr in present:
            deps = sorted(p for p in g.predecessors(addr) if p in present)
            out.append(replace(self.changes[addr], depends_on=tuple(deps)))
        return tuple(sorted(out, key=lambda c: (
            c.reason is Reason.DELETE_BECAUSE_NOT_IN_SPEC, gen.get(c.address, 0), c.address)))

    def live_digest(self, changes: Iterable[Change]) -> str:
        vol_ids: set[str] = set()
        inst_ids: set[str] = set()
        datasets: set[str] = set()
        for c in changes:
            rtype, names = parse_address(c.address)
            res = self.live_resource(c.address) if rtype in (VOLUME, INSTANCE) else None
            if res is not None:
                (vol_ids if rtype is VOLUME else inst_ids).add(res.id)
            for side in (c.before or {}, c.after or {}):
                if side.get("volume_id"):
                    vol_ids.add(str(side["volume_id"]))
                if side.get("instance_id"):
                    inst_ids.add(str(side["instance_id"]))
            if rtype in (DATASET, PREWARM, SYNC):
                d = names[-1]
                datasets |= {d, f"{d}:local"}
        sub = replace(
            self.live,
            read_at=datetime(1970, 1, 1, tzinfo=UTC),
            volumes=tuple(v for v in self.live.volumes if v.id in vol_ids),
            instances=tuple(i for i in self.live.instances if i.id in inst_ids),
            modifications=tuple(sorted(
                (m for m in self.live.modifications if m.volume_id in vol_ids),
                key=lambda m: (m.volume_id, m.start_time))),
            snapshots=(),
            datasets=MappingProxyType({
                k: replace(v, list_calls=0) for k, v in self.live.datasets.items()
                if k in datasets}),
            stages=MappingProxyType({
                k: v for k, v in self.live.stages.items() if k in datasets}),
            spot_prices=MappingProxyType({}),
            api_calls=0,
        )
        doc = live_to_json(sub)
        for key in ("read_at", "api_calls", "spot_prices", "snapshots", "image_roots"):
            doc.pop(key, None)
        doc["volumes"] = sorted(doc["volumes"], key=lambda v: v["id"])
        doc["instances"] = sorted(doc["instances"], key=lambda i: i["id"])
        return digest(doc)

    # the whole thing ------------------------------------------------------------------------

    def run(self) -> Plan:
        self.resources()
        self.block_resources()
        self.dependents()
        self.keep_with_blocked_instances()
        self.block_resources()       # again, now that attachment deletes are known
        g = self.full_graph()
        keep = self.targeted(g)
        if keep is not None:
            self.block_resources(keep)
        self.block_on_duplicates(g)
        changes = rules.propagate_blocks(self.ordered(g, keep))
        cost, warnings = plan_cost(self.spec, self.live, changes, self.now,
                                   self.removed_spend_usd)
        warnings += self.empty_datasets() + self.duplicate_warnings()
        warnings += self.stage_warnings()
        return Plan(
            project=self.project,
            region=self.live.region,
            created_at=iso(self.now),
            spec_digest=digest(spec_to_dict(self.spec)),
            live_digest=self.live_digest(changes),
            changes=changes,
            warnings=tuple(warnings),
            cost=cost,
            options=self.options,
            cost_enforced=self.spec.cost.enforce and not self.overrides.allow_cost,
            data_locations=() if self.options.destroy else tuple(
                DataLocation(d, i.name, self.spec.datasets[d].strategy,
                             data_location(self.spec, i, d))
                for i in self.spec.instances.values() for d in i.datasets
            ),
            expiries=() if self.options.destroy else self.expiries(),
        )

    def expiries(self) -> tuple[Expiry, ...]:
        out = []
        for i in self.spec.instances.values():
            if not (i.max_lifetime or i.idle_stop_minutes):
                continue
            addr = f"instance.{i.name}"
            live = self.instances.get(addr)
            change = self.changes.get(addr)
            relaunch = change is not None and change.kind in ("create", "replace")
            at = (iso(live.launch_time + timedelta(seconds=i.lifetime_seconds))
                  if live is not None and i.lifetime_seconds and not relaunch else None)
            out.append(Expiry(i.name, i.max_lifetime, at, i.idle_stop_minutes,
                              i.idle_action))
        return tuple(out)


def diff(spec: Spec, graph: nx.DiGraph, live: LiveState, *, now: datetime,
         options: PlanOptions = DEFAULT_OPTIONS,
         overrides: Overrides = NO_OVERRIDES,
         known_volumes: Mapping[str, str] | None = None,
         removed_spend_usd: float | None = 0.0) -> Plan:
    """The plan that brings `live` to `spec` (or destroys it), with the rules applied.

    From the cost ledger: `known_volumes` (address -> id of volumes it last saw, so one
    deleted outside trainctl reads as such) and `removed_spend_usd` (what resources
    already gone cost, counted in the plan's accumulated spend)."""
    d = _Diff(spec, graph, live, now, options, overrides)
    d.known_volumes = dict(known_volumes or {})
    d.removed_spend_usd = removed_spend_usd
    return d.run()
