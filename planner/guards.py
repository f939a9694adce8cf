"""The guards: what keeps data safe before a destructive step, whatever the engine.

The executor calls `Guards.before(change, action, ...)` for every step of a unit before
the engine runs the unit; a step it refuses (StepFailed, or StepBlocked for a rule) is
never handed to the engine. Engines only create, update and delete. The guards:

- **order**: an unmount before the detach of that volume, the detaches and unmounts of
  an instance before its terminate, those of a volume before its delete: a prerequisite
  the plan holds must be done (or come earlier in the same unit);
- **re-check**: before a volume delete or an instance terminate, `rules.recheck`
  (persistent, protected, min-age...) and `rules.duplicate_recheck` on a fresh describe;
- **training**: before an unmount, a detach or a terminate on a running instance, and a
  prewarm onto a managed instance, is a training job running? Refused while it does or
  SSM cannot tell, unless `--stop-training instance.NAME` (then stopped gracefully
  first: SIGTERM, training.grace_seconds, SIGKILL). A "not running" answer is reused
  for `training_idle_ttl` seconds for the same instance; "running" and "cannot tell"
  never are. `--force` never lifts this;
- **checkpoints**: synced before the unmount of the volume holding them and before a
  terminate; a sync that fails or does not say what it did refuses the step.

What they find goes to the journal with the step's facts (`training`, `checkpoints`).
This module imports no boto3: the fresh read (`FreshRead`, planner.aws.fresh) and the
SSM transport (planner.dataplane.steps.Transport) are injected.
"""

from __future__ import annotations

import posixpath
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from planner import rules
from planner.dataplane import steps as dp
from planner.engines.base import OUTPUT_LIMIT, StepBlocked, StepEngine, StepFailed
from planner.errors import TrainctlError
from planner.live import TAG_MOUNTED, LiveInstance, LiveState, LiveVolume
from planner.payloads import Payload
from planner.phases import Step
from planner.plan import Action, Change, ResourceType, base_address
from planner.spec import DEFAULT_GRACE_SECONDS, Checkpoints, Spec, Training
from planner.tags import parse_mounted_tag, safety_from_tags

# A "no training job" answer is reused this long for the same instance (unmount, detach
# and terminate of one teardown); "running" and "cannot tell" are never reused.
TRAINING_IDLE_TTL = 60.0
RUNNING = ("pending", "running")
GONE_INSTANCE = ("shutting-down", "terminated")
GONE_VOLUME = ("deleting", "deleted")

R = ResourceType


class FreshRead(Protocol):
    """Live state described just now (planner.aws.fresh.AwsFreshRead)."""

    region: str

    def volume(self, volume_id: str) -> LiveVolume | None:
        """The volume, None when it does not exist."""
        ...

    def instance(self, instance_id: str) -> LiveInstance | None:
        """The instance, None when it does not exist."""
        ...

    def volumes_at(self, project: str, address: str) -> tuple[LiveVolume, ...]:
        """The project's live volumes tagged with `address`."""
        ...

    def instances_at(self, project: str, address: str) -> tuple[LiveInstance, ...]:
        """The project's live (not terminated) instances tagged with `address`."""
        ...


def _why(result: Any) -> str:
    return str(result.message(OUTPUT_LIMIT))


def _payload(p: Payload | None, key: str) -> Any:
    """A typed payload's field (None when the payload is absent or has no such field)."""
    return getattr(p, key, None) if p is not None else None


def prerequisites(step: Step, planned: Collection[Step]) -> list[Step]:
    """The teardown steps of `planned` that must be done before `step`: unmount before
    detach before terminate (and before a volume delete)."""
    address, action = step
    if action is not Action.DELETE:
        return []
    rtype, _, name = address.partition(".")
    deletes = sorted(a for a, act in planned if act is Action.DELETE)

    def pair(a: str) -> tuple[str, str, str]:
        kind, _, rest = a.partition(".")
        i_name, _, v_name = rest.partition(".")
        return kind, i_name, v_name.split("@", 1)[0]

    need: list[str] = []
    if rtype == "attachment":
        need = [f"mount.{name}"] if f"mount.{name}" in deletes else []
    elif rtype == "instance":
        need = [a for a in deletes if pair(a)[0] in ("mount", "attachment")
                and pair(a)[1] == name.split("@", 1)[0]]
    elif rtype == "volume":
        need = [a for a in deletes if pair(a)[0] in ("mount", "attachment")
                and pair(a)[2] == name.split("@", 1)[0]]
    return [(a, Action.DELETE) for a in need if (a, Action.DELETE) != step]


class Guards:
    """The guards of one apply (thread-safe). `clock` gives the time of fresh rule
    checks; `ssm` is the data plane's transport."""

    def __init__(self, spec: Spec, overrides: rules.Overrides, fresh: FreshRead, ssm: Any, *,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 training_idle_ttl: float = TRAINING_IDLE_TTL):
        self.spec, self.overrides, self.fresh, self.ssm = spec, overrides, fresh, ssm
        self.clock = clock
        self.training_idle_ttl = training_idle_ttl
        self._lock = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._training_idle: dict[str, float] = {}      # instance id -> time.monotonic()
        # instance id -> what the checkpoint sync before an unmount did (for the terminate)
        self.checkpoints_at_unmount: dict[str, str] = {}

    # --- the entry point -------------------------------------------------------------

    def before(self, change: Change, action: Action, *, done: frozenset[Step] = frozenset(),
               unit: Sequence[Step] = (), planned: Collection[Step] = ()) -> dict[str, str]:
        """Check one step just before it runs; the facts found (for the journal).
        Raises StepBlocked (a rule) or StepFailed (order, training, checkpoints)."""
        self.check_order((change.address, action), done, unit, planned)
        check = (_DELETES.get(change.type) if action is Action.DELETE
                 else Guards._prewarm if change.type is R.PREWARM else None)
        if check is None:
            return {}
        try:
            return check(self, change)
        except StepFailed:
            raise
        except TrainctlError as e:          # e.g. AWS access, translated by planner.aws
            raise StepFailed(f"{change.address}: {e}") from e

    def check_order(self, step: Step, done: Collection[Step], unit: Sequence[Step],
                    planned: Collection[Step]) -> None:
        mine = list(unit)
        earlier = set(mine[:mine.index(step)]) if step in mine else set()
        for need in prerequisites(step, planned):
            if need not in done and need not in earlier:
                raise StepFailed(
                    f"ordering: {step[1].value} {step[0]} must wait for {need[1].value} "
                    f"{need[0]} (unmount before detach before terminate), which has not "
                    f"run; nothing was done")

    # --- fresh state -----------------------------------------------------------------

    def _live(self, volumes: Sequence[LiveVolume] = (),
              instances: Sequence[LiveInstance] = ()) -> LiveState:
        return LiveState(project=self.spec.project, region=self.fresh.region,
                         read_at=self.clock(), volumes=tuple(volumes),
                         instances=tuple(instances))

    def recheck(self, change: Change, live: LiveState) -> None:
        """The rules again on fresh state; StepBlocked when any applies."""
        blocks = rules.recheck(change, live, self.spec, self.clock(), self.overrides)
        if blocks:
            raise StepBlocked(change.address, blocks)

    def check_unique(self, change: Change) -> None:
        """The `duplicate` rule on what carries the change's address, described again."""
        address = base_address(change.address)
        if change.type is R.VOLUME:
            live = self._live(volumes=self.fresh.volumes_at(self.spec.project, address))
        else:
            live = self._live(instances=self.fresh.instances_at(self.spec.project, address))
        blocks = rules.duplicate_recheck(change, live, self.spec, self.overrides)
        if blocks:
            raise StepBlocked(change.address, blocks)

    def _the_one(self, rtype: str, name: str, known: Any) -> str:
        """The id of RTYPE.NAME: `known`, else the one live resource tagged so."""
        if known:
            return str(known)
        at = f"{rtype}.{name}"
        found: Sequence[LiveVolume | LiveInstance] = (
            self.fresh.volumes_at(self.spec.project, at) if rtype == "volume"
            else self.fresh.instances_at(self.spec.project, at))
        if len(found) != 1:
            what = f"no live {rtype}" if not found else f"{len(found)} live {rtype}s"
            raise StepFailed(f"{rtype}.{name}: {what} tagged with this address")
        return found[0].id

    def _state_of(self, iid: str) -> str | None:
        inst = self.fresh.instance(iid)
        return inst.state if inst is not None else None

    # --- deletes ---------------------------------------------------------------------

    def _volume_delete(self, change: Change) -> dict[str, str]:
        vid = change.id or _payload(change.before, "id")
        vol = self.fresh.volume(str(vid)) if vid else None
        if vol is None or vol.state in GONE_VOLUME:
            return {}                            # the engine says "already gone"
        held = [i for a in sorted({a.instance_id for a in vol.attachments})
                if (i := self.fresh.instance(a)) is not None]
        self.recheck(change, self._live(volumes=[vol], instances=held))
        self.check_unique(_with_id(change, vol.id))
        return {}

    def _instance_delete(self, change: Change) -> dict[str, str]:
        iid = change.id or _payload(change.before, "id")
        inst = self.fresh.instance(str(iid)) if iid else None
        if inst is None or inst.state in GONE_INSTANCE:
            return {}
        self.recheck(change, self._live(instances=[inst]))
        self.check_unique(_with_id(change, inst.id))
        if inst.state not in RUNNING:
            return self.stopped_terminate(change, inst)
        return self.before_terminate(change, inst.id)

    def _attachment_delete(self, change: Change) -> dict[str, str]:
        i_name, v_name = _names(change)
        vid = self._the_one("volume", v_name, _payload(change.before, "volume_id"))
        iid = self._the_one("instance", i_name, _payload(change.before, "instance_id"))
        vol = self.fresh.volume(vid)
        attached = [a for a in (vol.attachments if vol else ())
                    if a.instance_id == iid and a.state != "detached"]
        if not attached or self._state_of(iid) not in RUNNING:
            return {}
        # The volume may hold the job's files even where trainctl did not mount it.
        return {"training": self.check_training(i_name, iid, f"detaches {vid}")}

    def _mount_delete(self, change: Change) -> dict[str, str]:
        i_name, v_name = _names(change)
        # the mount as it is (its before, even an empty one), else what the plan wrote
        before = change.before if change.before is not None else change.after
        vid = self._the_one("volume", v_name, _payload(before, "volume_id"))
        iid = self._the_one("instance", i_name, _payload(before, "instance_id"))
        path = mount_path(self.fresh.volume(vid), iid, _payload(before, "path"))
        if not path or self._state_of(iid) not in RUNNING:
            return {}
        # The job's files go away with the mount: ask first, and save the checkpoints
        # that live on this volume while they can still be read.
        facts = {"training": self.check_training(i_name, iid, f"unmounts {path}")}
        ckpt = self.checkpoints_of(i_name, iid)
        if ckpt is not None and ckpt.sync_to and _on_mount(ckpt.path, path):
            outcome, fact = self.save_checkpoints(change.address, iid, ckpt.path,
                                                  ckpt.sync_to, f"unmounts {path}")
            facts["checkpoints"] = fact
            if outcome == "synced":
                with self._lock:
                    self.checkpoints_at_unmount[iid] = f"synced at unmount of {path}: {fact}"
        return facts

    def _prewarm(self, change: Change) -> dict[str, str]:
        """A prewarm onto a managed instance rewrites files under its mount: not while a
        training job runs there."""
        via = str(_payload(change.after, "via") or "")
        if not via.startswith("instance."):
            return {}
        i_name = via.split(".", 1)[1]
        iid = self._the_one("instance", i_name, _payload(change.after, "instance_id"))
        target = str(_payload(change.after, "mount_path") or f"the mount of {change.address}")
        return {"training": self.check_training(i_name, iid, f"rewrites {target}")}

    # --- training and checkpoints ----------------------------------------------------

    def _instance_lock(self, key: str) -> threading.Lock:
        with self._lock:
            return self._locks.setdefault(key, threading.Lock())

    def training_idle(self, instance_id: str) -> bool:
        """True when a training check of this instance said "not running" moments ago."""
        with self._lock:
            seen = self._training_idle.get(instance_id)
        return seen is not None and time.monotonic() - seen < self.training_idle_ttl

    def note_training_idle(self, instance_id: str, idle: bool) -> None:
        """Remember a "not running" answer; anything else forgets the earlier one."""
        with self._lock:
            if idle:
                self._training_idle[instance_id] = time.monotonic()
            else:
                self._training_idle.pop(instance_id, None)

    def settings(self, i_name: str, iid: str
                 ) -> tuple[Training | None, Checkpoints | None] | None:
        """The training and checkpoint settings: from the spec, else from the tags
        recorded at launch (an instance dropped from the spec); None when neither knows."""
        ins = self.spec.instances.get(i_name)
        if ins is not None:
            return ins.training, ins.checkpoints
        inst = self.fresh.instance(iid)
        return safety_from_tags(dict(inst.tags)) if inst is not None else None

    def checkpoints_of(self, i_name: str, iid: str) -> Checkpoints | None:
        settings = self.settings(i_name, iid)
        return settings[1] if settings else None

    def check_training(self, i_name: str, iid: str, verb: str) -> str:
        """The training-job check before a step that ends the job's access to its files
        (VERB: "terminates", "unmounts /scratch", ...). Returns the journal fact; raises
        StepFailed "training-running: ..." while a job runs or SSM cannot tell, unless
        `--stop-training instance.NAME` names the instance: the job is then stopped."""
        address = f"instance.{i_name}"
        with self._instance_lock(f"training-check:{iid}"):
            if self.training_idle(iid):
                return "not running"
            settings = self.settings(i_name, iid)
            training = settings[0] if settings else None
            r = dp.training_running(
                self.ssm, iid, pid_file=training.pid_file if training else None,
                patterns=tuple(training.process_patterns) if training else ())
            running = r.data.get("running") if r.ok and settings is not None else None
            self.note_training_idle(iid, running is False)
            if running is False:
                return "not running"
            if running is True:
                seen = r.data.get("evidence") or r.data.get("pids")
                why = (f"a training job runs on {address} ({iid})"
                       + (f": {seen}" if seen else ""))
            else:
                why = (f"cannot tell whether a training job runs on {address} ({iid}): " + (
                    "it is not in the spec and its training settings were not recorded at "
                    "launch" if settings is None
                    else _why(r) if not r.ok else "the check gave no answer"))
            if address not in self.overrides.stop_training:
                raise StepFailed(
                    f"training-running: {why}; --stop-training {address} stops the job "
                    f"(SIGTERM, training.grace_seconds, SIGKILL, checkpoint sync), then {verb}")
            return self.stop_training(address, iid, training, why)

    def stop_training(self, address: str, iid: str, training: Training | None,
                      why: str) -> str:
        """--stop-training: SIGTERM the job, wait its grace_seconds, SIGKILL what is left;
        the checkpoint sync that follows saves what it wrote on SIGTERM. Raises
        StepFailed when the stop cannot be confirmed (the job may still run)."""
        grace = training.grace_seconds if training else DEFAULT_GRACE_SECONDS
        r = dp.stop_training(
            self.ssm, iid, pid_file=training.pid_file if training else None,
            patterns=tuple(training.process_patterns) if training else (),
            grace_seconds=grace)
        if not r.ok or r.data.get("stopped") is not True:
            detail = _why(r) if not r.ok else "the stop script did not say it stopped the job"
            raise StepFailed(f"training-running: {why}; --stop-training {address} could "
                             f"not stop it: {detail}")
        self.note_training_idle(iid, True)
        return (f"stopped by --stop-training: {r.data.get('result')} (SIGTERM to "
                f"{r.data.get('signalled', [])}, SIGKILL to {r.data.get('killed', [])}, "
                f"grace {grace}s)")

    def save_checkpoints(self, address: str, iid: str, path: str, sync_to: str,
                         verb: str) -> tuple[str, str]:
        """Sync the checkpoint folder; (outcome, journal fact), outcome as
        steps.checkpoint_outcome. Raises StepFailed "checkpoint-sync: ..." when the sync
        failed or its answer does not say what it did (no flag overrides that)."""
        r = dp.sync_checkpoints(self.ssm, iid, path=path, sync_to=sync_to)
        outcome = dp.checkpoint_outcome(r)
        if outcome == "synced":
            return outcome, (f"synced {path} to {sync_to} ({r.data.get('objects')} files, "
                             f"{r.data.get('copied', 0)} copied now)")
        if outcome == "absent":
            return outcome, f"path {path} absent, nothing to sync"
        if outcome == "empty":
            return outcome, f"path {path} empty, nothing to sync"
        why = _why(r) if not r.ok else "the script did not say what it synced"
        raise StepFailed(f"checkpoint-sync: {address} ({iid}): checkpoints in {path} were "
                         f"not synced to {sync_to}: {why}; nothing {verb} until they are "
                         f"(fix the sync and apply again; --force does not lift this)")

    def before_terminate(self, change: Change, iid: str) -> dict[str, str]:
        """The training-job check (and --stop-training's stop), then the checkpoint sync.
        "synced" only when files were synced, here or before the unmount of the volume
        that held them, in this apply."""
        facts = {"training": self.check_training(change.name, iid, "terminates")}
        ckpt = self.checkpoints_of(change.name, iid)
        if ckpt is not None and ckpt.sync_to:
            outcome, fact = self.save_checkpoints(change.address, iid, ckpt.path,
                                                  ckpt.sync_to, "terminates")
            with self._lock:
                earlier = self.checkpoints_at_unmount.get(iid)
            if outcome in ("absent", "empty") and earlier:
                fact = earlier
            facts["checkpoints"] = fact
        return facts


    def stopped_terminate(self, change: Change, inst: LiveInstance) -> dict[str, str]:
        """A stopped instance runs no SSM command: its checkpoints cannot be synced, and a
        terminate may delete them (a root disk). Refused unless they were synced before
        the unmount in this apply; no job runs on a stopped instance."""
        ckpt = self.checkpoints_of(change.name, inst.id)
        if ckpt is None or not ckpt.sync_to:
            return {}
        with self._lock:
            earlier = self.checkpoints_at_unmount.get(inst.id)
        if earlier and earlier.startswith("synced"):
            return {"checkpoints": earlier}
        raise StepFailed(
            f"{change.address} ({inst.id}) is {inst.state}: its checkpoints in "
            f"{ckpt.path} cannot be synced to {ckpt.sync_to} before the terminate (SSM "
            f"needs a running instance); start it (aws ec2 start-instances --instance-ids "
            f"{inst.id}) and apply again, or terminate it yourself if they are not needed")


_DELETES: dict[ResourceType, Callable[[Guards, Change], dict[str, str]]] = {
    R.VOLUME: Guards._volume_delete,
    R.INSTANCE: Guards._instance_delete,
    R.ATTACHMENT: Guards._attachment_delete,
    R.MOUNT: Guards._mount_delete,
}


def mount_path(volume: LiveVolume | None, iid: str, planned: Any) -> str:
    """Where the volume is mounted on instance `iid`: the plan's path, else the one its
    trainctl:mounted tag records for that instance ("" when neither says)."""
    if planned:
        return str(planned)
    tag = parse_mounted_tag((volume.tags if volume else {}).get(TAG_MOUNTED))
    return tag.path if tag is not None and tag.instance_id == iid else ""


def _names(change: Change) -> tuple[str, str]:
    first, _, second = change.name.partition(".")
    return first, second


def _on_mount(path: str, mount_path: str) -> bool:
    """PATH is MOUNT_PATH or below it."""
    p, m = posixpath.normpath(path), posixpath.normpath(mount_path)
    return p == m or p.startswith(m.rstrip("/") + "/")


def _with_id(change: Change, resource_id: str) -> Change:
    from dataclasses import replace

    return replace(change, id=resource_id)


class Guarded(StepEngine):
    """An engine's `apply` behind the guards, one step at a time: what the executor does
    for a one-step unit (for tools and tests that act on one change)."""

    def __init__(self, engine: Any, guards: Guards):
        self.engine, self.guards = engine, guards
        self.name = str(engine.name)

    def apply(self, change: Change, action: Action) -> Mapping[str, str]:
        step = (change.address, action)
        facts = self.guards.before(change, action, unit=[step])
        try:
            done = dict(self.engine.apply(change, action) or {})
        except StepFailed as e:
            e.facts = {**facts, **e.facts}
            raise
        return {**facts, **done}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)
