"""The guards do not depend on the engine: an engine that would delete anything, run by
the executor with the real planner.guards over a fresh read and an SSM transport that
are fakes (no AWS here), still never deletes what the rules or a training job protect,
whether its units hold one step or the whole teardown."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from types import MappingProxyType

import pytest
from test_engine_direct import script_kind

from planner.dataplane.status import ScriptResult
from planner.engines import StepFailed, Unit
from planner.engines.base import Report
from planner.executor import BLOCKED, DONE, FAILED, execute
from planner.guards import Guards, prerequisites
from planner.live import (
    TAG_ADDRESS,
    TAG_MOUNTED,
    TAG_PROJECT,
    LiveAttachment,
    LiveInstance,
    LiveVolume,
)
from planner.phases import Step
from planner.plan import Action, Change, Reason, ResourceType, Rule
from planner.rules import Overrides
from planner.spec import Checkpoints, Defaults, Instance, Mount, Spec, Training, Volume

NOW = datetime(2026, 12, 2, 1, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=3)
D = Action.DELETE


def spec() -> Spec:
    vols = {v.name: v for v in (
        Volume(name="keep", size_gib=10, availability_zone="us-east-1a", persistent=True),
        Volume(name="young", size_gib=10, availability_zone="us-east-1a"),
        Volume(name="old", size_gib=10, availability_zone="us-east-1a"),
        Volume(name="data", size_gib=10, availability_zone="us-east-1a"))}
    trainer = Instance(
        name="trainer", instance_type="g5.xlarge", ami="ami-1",
        availability_zone="us-east-1a",
        mounts=(Mount(volume="data", device="/dev/sdg", path="/data"),),
        checkpoints=Checkpoints(path="/data/ckpt", sync_to="s3://ckpt/run/"),
        training=Training(pid_file="/run/train.pid"))
    return Spec(version=1, project="proj", region="us-east-1",
                defaults=Defaults(availability_zone="us-east-1a", min_age_minutes=30),
                volumes=MappingProxyType(vols),
                instances=MappingProxyType({"trainer": trainer}),
                datasets=MappingProxyType({}))


def _tags(address: str, **more: str) -> Mapping[str, str]:
    return MappingProxyType({TAG_PROJECT: "proj", TAG_ADDRESS: address, **more})


class Fresh:
    """A FreshRead over fixed live resources."""

    region = "us-east-1"

    def __init__(self) -> None:
        def vol(name: str, created: datetime, **kw: object) -> LiveVolume:
            return LiveVolume(id=f"vol-{name}", availability_zone="us-east-1a", size_gib=10,
                              type="gp3", state=str(kw.pop("state", "available")),
                              create_time=created, tags=_tags(f"volume.{name}"),
                              **kw)  # type: ignore[arg-type]

        data = LiveVolume(id="vol-data", availability_zone="us-east-1a", size_gib=10,
                          type="gp3", state="in-use", create_time=OLD,
                          tags=_tags("volume.data", **{TAG_MOUNTED: "i-1:/data"}),
                          attachments=(LiveAttachment("i-1", "/dev/sdg", "attached"),))
        self.volumes = {v.id: v for v in (vol("keep", OLD), vol("young", NOW - timedelta(
            minutes=2)), vol("old", OLD), data)}
        self.instances = {"i-1": LiveInstance(
            id="i-1", instance_type="g5.xlarge", availability_zone="us-east-1a",
            state="running", launch_time=OLD, tags=_tags("instance.trainer"))}

    def volume(self, volume_id: str) -> LiveVolume | None:
        return self.volumes.get(volume_id)

    def instance(self, instance_id: str) -> LiveInstance | None:
        return self.instances.get(instance_id)

    def volumes_at(self, project: str, address: str) -> tuple[LiveVolume, ...]:
        return tuple(v for v in self.volumes.values() if v.tags[TAG_ADDRESS] == address)

    def instances_at(self, project: str, address: str) -> tuple[LiveInstance, ...]:
        return tuple(i for i in self.instances.values() if i.tags[TAG_ADDRESS] == address)


class Ssm:
    """Says a training job runs (True), does not (False) or cannot tell (None); the
    checkpoint sync finds files to sync. Records every script kind asked."""

    def __init__(self, running: bool | None = True):
        self.running = running
        self.asked: list[str] = []

    def run(self, instance_id: str, script: str, *, timeout: float) -> ScriptResult:
        kind = script_kind(script)
        self.asked.append(kind)
        if kind == "checkpoint_sync":
            return ScriptResult("ok", {"present": True, "objects": 2, "copied": 2})
        if kind != "training_check":
            raise AssertionError(f"the guards never run a {kind} script")
        if self.running is None:
            return ScriptResult("unknown", {"reason": "no output"}, "")
        return ScriptResult("ok", {"running": self.running})


class DeletesAnything:
    """An engine with no check at all: every step it is handed, it 'deletes'."""

    name = "reckless"

    def __init__(self, one_unit: bool = False):
        self.one_unit = one_unit
        self.deleted: list[Step] = []
        self.lock = threading.Lock()

    def units(self, steps: Sequence[Step], changes: Mapping[str, Change]) -> list[Unit]:
        if self.one_unit:
            return [Unit("teardown", tuple(steps))]
        return [Unit(f"{a.value} {addr}", ((addr, a),)) for addr, a in steps]

    def run(self, unit: Unit, changes: Mapping[str, Change], report: Report) -> None:
        for step in unit.steps:
            with self.lock:
                self.deleted.append(step)
            report(step, {"result": "deleted"})


def delete(address: str, id: str | None = None, deps: tuple[str, ...] = (),
           before: Mapping[str, object] | None = None) -> Change:
    return Change(address=address, type=ResourceType(address.split(".")[0]),
                  actions=(D,), reason=Reason.DELETE_BECAUSE_NOT_IN_SPEC, id=id,
                  before=before or ({"id": id} if id else {}), depends_on=deps)


TEARDOWN = [
    delete("volume.keep", "vol-keep"),
    delete("volume.young", "vol-young"),
    delete("volume.old", "vol-old"),
    delete("instance.trainer", "i-1"),
]


@pytest.mark.parametrize("one_unit", [False, True], ids=["unit-per-step", "one-unit"])
def test_guards_refuse_whatever_the_engine(one_unit: bool) -> None:
    engine = DeletesAnything(one_unit)
    ssm = Ssm(running=True)
    guards = Guards(spec(), Overrides(), Fresh(), ssm, clock=lambda: NOW)
    result = execute(TEARDOWN, engine, guards=guards)
    assert engine.deleted == [("volume.old", D)]          # the only one allowed
    keep, young = result.step("volume.keep", D), result.step("volume.young", D)
    assert keep.status == BLOCKED and Rule.PERSISTENT.value in keep.message
    assert young.status == BLOCKED and Rule.MIN_AGE.value in young.message
    trainer = result.step("instance.trainer", D)
    assert trainer.status == FAILED
    assert trainer.message.startswith("training-running: a training job runs on "
                                      "instance.trainer (i-1)")
    assert result.step("volume.old", D).status == DONE
    assert result.refused == {"volume.keep", "volume.young"}


def test_the_same_engine_without_guards_deletes_everything() -> None:
    """The fake engine really would delete anything: the refusals above are the guards'."""
    engine = DeletesAnything()
    result = execute(TEARDOWN, engine)
    assert len(engine.deleted) == 4 and result.ok


def test_overrides_lift_the_rules_but_never_the_training_check() -> None:
    engine = DeletesAnything()
    guards = Guards(spec(), Overrides(force=True, allow_delete=frozenset({"volume.keep"})),
                    Fresh(), Ssm(running=None), clock=lambda: NOW)
    result = execute(TEARDOWN, engine, guards=guards)
    assert set(engine.deleted) == {("volume.keep", D), ("volume.young", D), ("volume.old", D)}
    assert result.step("instance.trainer", D).message.startswith(
        "training-running: cannot tell whether a training job runs")


def test_unmount_before_detach_before_terminate_is_checked_by_the_guards() -> None:
    """A hand-made plan without its dependencies: the phase graph does not order the
    teardown, the guards do (a detach or a terminate whose unmount has not run is
    refused, whatever the engine)."""
    ids = {"instance_id": "i-1", "volume_id": "vol-data"}
    plan = [delete("mount.trainer.data", before={**ids, "path": "/data"}),
            delete("attachment.trainer.data", before=ids),
            delete("instance.trainer", "i-1")]
    engine = DeletesAnything(one_unit=False)
    ssm = Ssm(running=False)
    guards = Guards(spec(), Overrides(), Fresh(), ssm, clock=lambda: NOW)
    result = execute(plan, engine, guards=guards, parallelism=3)
    assert engine.deleted == [("mount.trainer.data", D)]
    for addr in ("attachment.trainer.data", "instance.trainer"):
        r = result.step(addr, D)
        assert r.status == FAILED
        assert r.message.startswith(f"ordering: delete {addr} must wait for delete "), r.message
    # the unmount itself was guarded: training checked, checkpoints on /data synced
    mount = result.step("mount.trainer.data", D)
    assert mount.facts["training"] == "not running"
    assert mount.facts["checkpoints"].startswith("synced /data/ckpt to s3://ckpt/run/")
    assert ssm.asked == ["training_check", "checkpoint_sync"]


def test_prerequisites_name_the_teardown_order() -> None:
    planned = {("mount.t.a", D), ("attachment.t.a", D), ("instance.t", D), ("volume.a", D),
               ("mount.u.b", D)}
    assert prerequisites(("attachment.t.a", D), planned) == [("mount.t.a", D)]
    assert sorted(prerequisites(("instance.t", D), planned)) == [
        ("attachment.t.a", D), ("mount.t.a", D)]
    assert sorted(prerequisites(("volume.a", D), planned)) == [
        ("attachment.t.a", D), ("mount.t.a", D)]
    assert prerequisites(("mount.t.a", D), planned) == []
    assert prerequisites(("instance.t", Action.CREATE), planned) == []


def test_an_ordering_refusal_is_a_failed_step_naming_what_is_missing() -> None:
    guards = Guards(spec(), Overrides(), Fresh(), Ssm(running=False), clock=lambda: NOW)
    planned = frozenset({("mount.trainer.data", D), ("attachment.trainer.data", D)})
    with pytest.raises(StepFailed, match=r"ordering: delete attachment\.trainer\.data must "
                                         r"wait for delete mount\.trainer\.data"):
        guards.before(delete("attachment.trainer.data"), D, planned=planned,
                      unit=[("attachment.trainer.data", D)])
    # done, or earlier in the same unit: fine
    facts = guards.before(delete("attachment.trainer.data", before={
        "instance_id": "i-1", "volume_id": "vol-data"}), D, planned=planned,
        done=frozenset({("mount.trainer.data", D)}), unit=[("attachment.trainer.data", D)])
    assert facts == {"training": "not running"}
