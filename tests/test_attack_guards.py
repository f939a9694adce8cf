"""Red team on planner/guards.py (pure: a fake fresh read, no SSM answers): a terminate
that would lose checkpoints nobody synced."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from planner.engines.base import StepBlocked, StepFailed
from planner.guards import Guards
from planner.live import TAG_ADDRESS, TAG_PROJECT, LiveInstance
from planner.plan import Action, Change, Reason, ResourceType
from planner.rules import Overrides

SPEC = """\
version: 1
project: atkguards
region: us-east-1
defaults:
  availability_zone: us-east-1a
  min_age_minutes: 0
instances:
  trainer:
    instance_type: t3.micro
    ami: ami-0123456789abcdef0
    checkpoints:
      path: /ckpt
      sync_to: s3://atkguards-ckpt/run-1/
"""


class Fresh:
    region = "us-east-1"

    def __init__(self, inst: LiveInstance):
        self.inst = inst

    def volume(self, volume_id):
        return None

    def instance(self, instance_id):
        return self.inst if instance_id == self.inst.id else None

    def volumes_at(self, project, address):
        return ()

    def instances_at(self, project, address):
        return (self.inst,) if address == "instance.trainer" else ()


class NoSsm:
    """Any SSM call: the instance cannot answer (it is stopped)."""

    def __getattr__(self, name):
        raise AssertionError(f"SSM {name} on a stopped instance")


def test_terminating_a_stopped_instance_never_drops_unsynced_checkpoints(tmp_path: Path):
    from planner.loader import load_spec

    (tmp_path / "trainctl.yaml").write_text(SPEC)
    spec = load_spec(str(tmp_path / "trainctl.yaml"))
    inst = LiveInstance("i-0123456789abcdef0", "t3.micro", "us-east-1a", "stopped",
                        datetime(2026, 1, 1, tzinfo=UTC),
                        tags={TAG_ADDRESS: "instance.trainer", TAG_PROJECT: "atkguards"})
    guards = Guards(spec, Overrides(), Fresh(inst), NoSsm())
    change = Change("instance.trainer", ResourceType.INSTANCE, (Action.DELETE,),
                    Reason.DELETE_BECAUSE_NOT_IN_SPEC, id=inst.id)
    try:
        facts = guards.before(change, Action.DELETE, unit=[("instance.trainer",
                                                             Action.DELETE)])
    except (StepFailed, StepBlocked):
        return                                   # refused: nothing lost
    assert str(facts.get("checkpoints", "")).startswith("synced"), (
        f"terminated with unsynced checkpoints: {facts}")


def _stopped(tmp_path: Path, spec_text: str = SPEC):
    from planner.loader import load_spec

    (tmp_path / "trainctl.yaml").write_text(spec_text)
    spec = load_spec(str(tmp_path / "trainctl.yaml"))
    inst = LiveInstance("i-0123456789abcdef0", "t3.micro", "us-east-1a", "stopped",
                        datetime(2026, 1, 1, tzinfo=UTC),
                        tags={TAG_ADDRESS: "instance.trainer", TAG_PROJECT: "atkguards"})
    change = Change("instance.trainer", ResourceType.INSTANCE, (Action.DELETE,),
                    Reason.DELETE_BECAUSE_NOT_IN_SPEC, id=inst.id)
    return Guards(spec, Overrides(), Fresh(inst), NoSsm()), change


def test_a_stopped_instance_with_checkpoints_is_refused_saying_how_to_go_on(tmp_path: Path):
    guards, change = _stopped(tmp_path)
    with pytest.raises(StepFailed) as e:
        guards.before(change, Action.DELETE, unit=[("instance.trainer", Action.DELETE)])
    assert "is stopped" in str(e.value) and "s3://atkguards-ckpt/run-1/" in str(e.value)
    assert "start-instances" in str(e.value)


def test_a_stopped_instance_whose_checkpoints_were_synced_at_unmount_terminates(
        tmp_path: Path):
    guards, change = _stopped(tmp_path)
    guards.checkpoints_at_unmount["i-0123456789abcdef0"] = "synced 3 files"
    facts = guards.before(change, Action.DELETE, unit=[("instance.trainer", Action.DELETE)])
    assert facts["checkpoints"] == "synced 3 files"


def test_a_stopped_instance_without_checkpoints_terminates(tmp_path: Path):
    guards, change = _stopped(tmp_path, SPEC.split("    checkpoints:")[0])
    assert guards.before(change, Action.DELETE,
                         unit=[("instance.trainer", Action.DELETE)]) == {}
