"""planner.leftovers: duplicate warnings and blocks advise only what is still to do."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import MappingProxyType

from planner import leftovers
from planner.live import LiveVolume

NOW = datetime(2026, 11, 22, 21, 0, 0, tzinfo=UTC)


def vol(vid: str, hours: int) -> LiveVolume:
    return LiveVolume(id=vid, availability_zone="us-east-1a", size_gib=10, type="gp3",
                      state="available", create_time=NOW - timedelta(hours=hours),
                      tags=MappingProxyType({}))


GROUP = (vol("vol-1", 3), vol("vol-2", 2), vol("vol-3", 1))


def test_nothing_named_advises_every_duplicate() -> None:
    msg = leftovers.warning_message("volume.s", GROUP[:2], GROUP[0], False)
    assert msg.endswith("or delete the other with `--allow-delete vol-2`")
    msg = leftovers.warning_message("volume.s", GROUP, GROUP[0], False)
    assert "delete the others with `--allow-delete vol-2 --allow-delete vol-3`" in msg


def test_a_named_duplicate_the_plan_deletes_is_never_advised_again() -> None:
    msg = leftovers.warning_message("volume.s", GROUP[:2], GROUP[0], False,
                                    named={"vol-2"}, going={"vol-2"})
    assert "--allow-delete vol-2`" not in msg and "nothing changes" not in msg
    assert msg.endswith("this apply deletes vol-2 (named by --allow-delete) and keeps vol-1")
    imported = leftovers.warning_message("volume.s", GROUP[:2], GROUP[0], True,
                                         named={"vol-2"}, going={"vol-2"})
    assert "delete the other" not in imported and "this apply deletes vol-2" in imported


def test_only_the_unnamed_duplicates_are_advised() -> None:
    msg = leftovers.warning_message("volume.s", GROUP, GROUP[0], False,
                                    named={"vol-2"}, going={"vol-2"})
    assert "this apply deletes vol-2" in msg
    assert "`--allow-delete vol-3`" in msg and "--allow-delete vol-2`" not in msg
    block = leftovers.primary_block("volume.s", GROUP, GROUP[0], {"vol-2"}, {"vol-2"})
    assert "`--allow-delete vol-3`" in block.message
    assert "--allow-delete vol-2" not in block.message


def test_a_named_duplicate_whose_delete_is_blocked_is_said_so() -> None:
    msg = leftovers.warning_message("volume.s", GROUP[:2], GROUP[0], False,
                                    named={"vol-2"}, going=set())
    assert ("vol-2 is named by --allow-delete but this plan does not delete it "
            "(see volume.s@vol-2)") in msg
    assert "nothing changes at volume.s" in msg and "`--allow-delete vol-2`" not in msg
    block = leftovers.primary_block("volume.s", GROUP[:2], GROUP[0], {"vol-2"}, set())
    assert "this plan does not delete it" in block.message
    assert "`--allow-delete" not in block.message
