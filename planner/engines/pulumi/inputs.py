"""`inputs_for(plan)`: both stacks' inputs, built from the plan's changes, never the spec.

A resource's props are what it is now (the stack's last declared props, with the live
values the plan shows over them: `before`), then what the plan makes of it (`after`).
A field neither names stays unset, so Pulumi never changes what the plan does not show
(an `encrypted=False` the spec implies never replaces an encrypted live volume).
A blocked change is not carried out: its resource is declared as it is now.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from planner.engines.pulumi import iam
from planner.engines.pulumi.props import (
    IGNORED,
    KINDS,
    REPLACE_PROPS,
    REQUIRED,
    current,
    desired,
    guarded,
)
from planner.engines.pulumi.provider import default_tags, provider_args
from planner.engines.pulumi.schema import (
    ATTACHMENT,
    COMPUTE,
    INSTANCE,
    STORAGE,
    VOLUME,
    Deployed,
    Inputs,
    Options,
    Resource,
    StackInputs,
    _frozen,
)
from planner.engines.pulumi.state import live_props
from planner.errors import TrainctlError, first_few
from planner.live import TAG_ADDRESS, TAG_PROJECT, LiveState
from planner.plan import DUPLICATE_MARK, Action, Change, Plan, Reason


class InputsError(TrainctlError):
    """The plan does not describe a resource the stacks must declare."""


@dataclass
class _Entry:
    """One address: its change, what it is now and after the plan."""

    change: Change
    kind: str
    now: dict[str, Any] | None
    after: dict[str, Any] | None
    in_state: bool
    complete: bool = False     # `now` describes the whole resource (stack state or live)

    @property
    def address(self) -> str:
        return self.change.address

    @property
    def carried(self) -> bool:
        """The plan changes it (not blocked, not a no-op)."""
        return not self.change.blocked and not self.change.is_noop

    @property
    def removes(self) -> bool:
        """Its live resource goes away in this apply (a delete or a replace)."""
        return self.carried and Action.DELETE in self.change.actions

    def import_id(self) -> str | None:
        if self.in_state or self.now is None:
            return None
        if self.kind == ATTACHMENT:
            n = self.now
            if not (n.get("device") and n.get("volume_id") and n.get("instance_id")):
                return None
            return f"{n['device']}:{n['volume_id']}:{n['instance_id']}"
        return self.change.id


@dataclass
class _Build:
    plan: Plan
    deployed: Deployed
    live: Mapping[str, Mapping[str, Any]] | None = None
    entries: list[_Entry] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)
    unmanaged: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def collect(self) -> None:
        for c in (*self.plan.changes, *self.unmentioned()):
            kind = KINDS.get(c.type)
            if kind is None:
                continue                            # the data plane's (mount, sync, ...)
            if DUPLICATE_MARK in c.address:
                self.outside.append(c.address)      # no stack holds a second one
                continue
            now = current(c, self.deployed, kind, self.live)
            declared = self.deployed.props.get(c.address)
            in_state = c.address in self.deployed.addresses
            held = self.deployed.ids.get(c.address)
            if in_state and c.id and held and held != c.id and kind != ATTACHMENT:
                # a pass acts on what the state holds: never on another resource than
                # the one the plan, and the guards' fresh re-check, name
                self.problems.append(f"{c.address} (the stack holds {held}, the plan "
                                     f"acts on {c.id})")
                continue
            self.entries.append(_Entry(c, kind, now, desired(c, now, kind, declared),
                                       in_state, complete=in_state or self.described(c, kind)))
        for e in self.entries:
            self.check(e)

    def described(self, c: Change, kind: str) -> bool:
        """The live snapshot describes the resource the change acts on."""
        key = c.address if kind == ATTACHMENT else str(c.id)
        return self.live is not None and key in self.live

    def unmentioned(self) -> list[Change]:
        """A no-op for every resource the stacks hold that the plan does not mention (a
        `--target` plan leaves the rest out): it stays as the stack holds it, never
        removed because a program did not declare it."""
        named = {c.address for c in self.plan.changes}
        out = []
        for address in sorted(self.deployed.addresses - named):
            rtype = next((t for t in KINDS if address.startswith(f"{t.value}.")), None)
            if rtype is not None:
                out.append(Change(address, rtype, (Action.NOOP,), Reason.NO_CHANGE,
                                  id=self.deployed.ids.get(address)))
        return out

    def check(self, e: _Entry) -> None:
        """Every resource a pass declares must be fully described; a live one the plan
        leaves alone and the stacks do not hold is simply not declared (unmanaged)."""
        declared = [p for p in (e.now, e.after) if p is not None]
        missing = sorted({k for p in declared for k in REQUIRED[e.kind] if p.get(k) is None})
        if e.kind != ATTACHMENT:
            # what is written must be trainctl's; what is imported must be whole (its
            # tags as they are: an import of a part would strip the rest)
            delete_only = e.after is None and not e.in_state   # imported only to delete it
            tags = [p.get("tags") or {} for p in declared if p is not e.now or not e.complete]
            if not delete_only and any(TAG_PROJECT not in t or TAG_ADDRESS not in t
                                       for t in tags):
                missing.append("tags")
        if not missing:
            return
        if not e.in_state and not e.carried:
            self.unmanaged.append(e.address)
            e.now = e.after = None
            return
        self.problems.append(f"{e.address} ({', '.join(missing)})")


def _options(e: _Entry, props: Mapping[str, Any], *, final: bool = False,
             unprotect: bool = False) -> Options:
    """`final`: the pass that carries the change out (a replace happens there, and its
    new resource is never an import: Pulumi refuses to replace one that names an ID)."""
    protect, retain = guarded(props)
    if unprotect:
        protect = retain = False
    c = e.change
    replacing = final and e.carried and len(c.actions) == 2
    names = REPLACE_PROPS.get(e.kind, {})
    ignore = IGNORED if e.kind != ATTACHMENT else ()
    if e.after is None and not e.in_state and e.kind != ATTACHMENT:
        ignore = (*ignore, "tags")      # imported only to be removed: its tags do not matter
    return Options(
        protect=protect, retain_on_delete=retain,
        import_id=None if replacing else e.import_id(),
        replace_on_changes=tuple(names.get(p, p) for p in c.replace_paths) if replacing
        else (),
        delete_before_replace=replacing and c.actions == (Action.DELETE, Action.CREATE),
        ignore_changes=ignore)


def _resource(e: _Entry, props: Mapping[str, Any], **kw: bool) -> Resource:
    return Resource(e.address, e.kind, _frozen(props), _options(e, props, **kw))


def _final(e: _Entry) -> Resource | None:
    return None if e.after is None else _resource(e, e.after, final=True)


def _teardown(e: _Entry) -> Resource | None:
    """As it is now, or gone when this apply removes it (replaces come back in the build)."""
    if e.now is None or e.removes:
        return None
    return _resource(e, e.now)


def _prepare(e: _Entry, unprotect: set[str]) -> Resource | None:
    if e.now is None:
        return None
    return _resource(e, e.now, unprotect=e.address in unprotect)


def launches(plan: Plan, entries: list[_Entry]) -> bool:
    """Fill what a new instance takes from the plan beyond its change: the project's
    profile when it names none (as the direct engine launches it) and the shutdown
    behaviour of its lifetime limits (`plan.expiries`). True when one takes the profile."""
    profile = iam.project_role_name(plan.project)
    shutdown = {f"instance.{x.instance}": x.action for x in plan.expiries}
    needed = False
    for e in entries:
        new = e.kind == INSTANCE and e.carried and Action.CREATE in e.change.actions
        if not new or e.after is None:
            continue
        if not e.after.get("iam_instance_profile"):
            e.after["iam_instance_profile"] = profile
            needed = True
        if e.address in shutdown:
            e.after["shutdown_behavior"] = shutdown[e.address]
    return needed


def _stack(name: str, plan: Plan, resources: Iterable[Resource | None],
           extra: Iterable[Resource] = ()) -> StackInputs:
    got = [r for r in resources if r is not None]
    prov = provider_args(plan.region, default_tags(plan.project, {}))
    return StackInputs(name, plan.project, (*extra, *got), _frozen(prov))


def inputs_for(plan: Plan, deployed: Deployed | None = None, *,
               account: str | None = None, iam_in_state: bool | None = None,
               iam_live: bool = False, live: LiveState | None = None) -> Inputs:
    """The inputs of both stacks for PLAN, given what the stacks hold (`deployed`).

    `account` names the project's data policy for the IAM role the storage stack makes
    when an instance names no profile; `iam_live`: that role is already there (made by
    `--engine direct`): it is imported. `live`: the live snapshot the plan was made from
    (its `live_digest`), which describes what no stack holds yet, for its import (the
    plan's no-ops carry no fields). Raises InputsError when a resource a pass must
    declare is not fully described by the plan (a live resource outside the stacks that
    the plan changes, with the live fields or tags it does not carry).
    """
    deployed = deployed or Deployed()
    b = _Build(plan, deployed, None if live is None else live_props(live, plan.project))
    b.collect()
    if b.problems:
        raise InputsError(
            "the plan does not carry the live inputs the Pulumi stacks need for "
            f"{first_few(b.problems)}; these are not in the stacks yet: apply this plan "
            "with --engine direct, or import them with a plan that leaves them unchanged")
    # held (or imported) unprotected until this apply removes it: Pulumi refuses to delete
    # a protected resource and keeps a retained one
    unprotect = {e.address for e in b.entries if e.removes and guarded(e.now)[0]}
    imports = {e.address for e in b.entries if e.carried and e.import_id()}
    storage = [e for e in b.entries if e.kind == VOLUME]
    compute = [e for e in b.entries if e.kind != VOLUME]
    needed = launches(plan, compute)
    roles = iam.resources(plan.project, needed=needed, account=account,
                          in_state=iam.in_state(deployed) if iam_in_state is None
                          else iam_in_state, live=iam_live)

    def prepare(name: str, entries: list[_Entry],
                extra: tuple[Resource, ...] = ()) -> StackInputs | None:
        if not any(e.address in unprotect | imports for e in entries):
            return None
        kept = tuple(r for r in extra if r.address in deployed.addresses)
        return _stack(name, plan, (_prepare(e, unprotect) for e in entries), kept)

    return Inputs(
        storage=_stack(STORAGE, plan, (_final(e) for e in storage), roles),
        compute=_stack(COMPUTE, plan, (_final(e) for e in compute)),
        compute_teardown=_stack(COMPUTE, plan, (_teardown(e) for e in compute)),
        storage_prepare=prepare(STORAGE, storage, roles),
        compute_prepare=prepare(COMPUTE, compute),
        unprotect=tuple(sorted(unprotect)),
        imports=tuple(sorted(imports)),
        unmanaged=tuple(sorted(b.unmanaged)),
        outside=tuple(sorted(b.outside)),
    )


def with_volume_ids(stack: StackInputs, ids: Mapping[str, str]) -> StackInputs:
    """The compute inputs with the ids of volumes the storage pass made (`volume.NAME` ->
    `vol-...`, from the storage stack's outputs) filled into attachments that lack one."""
    out = []
    for r in stack.resources:
        vid = ids.get(f"volume.{r.props.get('volume')}")
        if r.kind == ATTACHMENT and r.props.get("volume_id") is None and vid:
            r = Resource(r.address, r.kind, _frozen({**r.props, "volume_id": vid}), r.options)
        out.append(r)
    return StackInputs(stack.stack, stack.project, tuple(out), stack.provider)
