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


def test_modified_tag_keeps_the_last_24_hours_and_at_most_four() -> None:
    from datetime import UTC, datetime, timedelta

    from planner.tags import modified_tag

    t0 = datetime(2026, 11, 22, 8, 0, 0, 500000, tzinfo=UTC)
    value = modified_tag(None, t0, t0)
    assert value == "2026-11-22T08:00:00Z"
    for h in (1, 2, 3, 4):
        value = modified_tag(value, t0 + timedelta(hours=h), t0 + timedelta(hours=h))
    assert value.split(",") == [f"2026-11-22T{9 + h:02d}:00:00Z" for h in range(4)]
    later = t0 + timedelta(hours=30)
    assert modified_tag(value + ",garbage", later, later) == "2026-11-23T14:00:00Z"


def test_recorded_modifications_join_the_one_aws_reports() -> None:
    from datetime import UTC, datetime

    from planner.live import TAG_MODIFIED, LiveModification, LiveState, LiveVolume
    from planner.rules import modify_block
    from planner.tags import with_recorded_modifications

    now = datetime(2026, 11, 22, 20, 0, tzinfo=UTC)
    vol = LiveVolume(id="vol-1", size_gib=10, type="gp3", availability_zone="us-east-1a",
                     state="available", create_time=datetime(2026, 11, 1, tzinfo=UTC),
                     tags={TAG_MODIFIED: "2026-11-22T08:00:00Z,2026-11-22T09:00:00Z,"
                                         "2026-11-22T10:00:00Z,2026-11-22T11:00:00Z"})
    latest = LiveModification("vol-1", "completed",
                              datetime(2026, 11, 22, 11, 0, 0, 700000, tzinfo=UTC))
    mods = with_recorded_modifications([vol], [latest])
    assert [m.start_time.hour for m in mods] == [8, 9, 10, 11]     # 11:00 counted once
    live = LiveState(project="p", region="us-east-1", read_at=now, volumes=(vol,),
                     modifications=tuple(mods))
    block = modify_block("volume.v", vol, live, now)
    assert block is not None and "4 modifications" in block.message
    assert "2026-11-23T08:00:00Z" in block.message
    # What AWS alone reports (the latest) would not block.
    alone = LiveState(project="p", region="us-east-1", read_at=now, volumes=(vol,),
                      modifications=(latest,))
    assert modify_block("volume.v", vol, alone, now) is None


def test_grace_seconds_is_recorded_for_an_instance_dropped_from_the_spec() -> None:
    ins = _inst(training=Training("/run/t.pid", ("train",), grace_seconds=7))
    training, _ = safety_from_tags(instance_safety_tags(ins)) or (None, None)
    assert training is not None and training.grace_seconds == 7
    # the default is not written: tags of instances launched before stay the same
    plain = instance_safety_tags(_inst(training=Training("/run/t.pid", ("train",))))
    assert "grace" not in plain["trainctl:training"]
    back = safety_from_tags(plain)
    assert back is not None and back[0] is not None and back[0].grace_seconds == 120
