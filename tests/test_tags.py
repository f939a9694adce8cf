"""planner.tags: ownership tags and the safety settings recorded on instances."""

from __future__ import annotations

from planner.spec import Checkpoints, Instance, Training
from planner.tags import UNRECORDED, instance_safety_tags, safety_from_tags


def _inst(**kw: object) -> Instance:
    return Instance("t", "g5.xlarge", "ami-0123456789abcdef0", "us-east-1a", **kw)  # type: ignore[arg-type]


def test_safety_settings_round_trip_through_tags() -> None:
    ins = _inst(training=Training("/run/t.pid", ("python.*train", "torchrun")),
                checkpoints=Checkpoints("/scratch/ckpt", "s3://b/run/"))
    tags = instance_safety_tags(ins)
    assert all(len(v) <= 256 for v in tags.values())
    assert safety_from_tags(tags) == (ins.training, ins.checkpoints)
    assert safety_from_tags(instance_safety_tags(_inst())) == (None, None)   # none declared


def test_settings_too_long_for_a_tag_are_unknown_not_empty() -> None:
    ins = _inst(training=Training(None, tuple(f"pattern-{i}-" + "x" * 40 for i in range(8))))
    tags = instance_safety_tags(ins)
    assert tags["trainctl:training"] == UNRECORDED
    assert safety_from_tags(tags) is None
    assert safety_from_tags({}) is None
