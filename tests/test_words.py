"""planner.words: counted nouns in messages, and the messages that use it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from planner.errors import SpecError
from planner.loader import load_spec
from planner.plan import Action
from planner.rules import Overrides, min_age_block
from planner.words import counted, plural

NOW = datetime(2026, 11, 22, 21, 0, 0, tzinfo=UTC)


def test_plural_and_counted() -> None:
    assert [counted(n, "minute") for n in (0, 1, 2)] == ["0 minutes", "1 minute", "2 minutes"]
    assert counted(1, "entry", "entries") == "1 entry"
    assert counted(3, "entry", "entries") == "3 entries"
    assert counted(1234, "file", grouped=True) == "1,234 files"
    assert plural(1, "is", "are") == "is" and plural(2, "is", "are") == "are"


@pytest.mark.parametrize("age_s,old,left", [
    (30, "0 minutes old", "in 5 minutes"),
    (60, "1 minute old", "in 4 minutes"),
    (90, "1 minute old", "in 4 minutes"),
    (120, "2 minutes old", "in 3 minutes"),
    (4 * 60, "4 minutes old", "in 1 minute,"),
    (4 * 60 + 59, "4 minutes old", "in 1 minute,"),
])
def test_min_age_message_counts_minutes_in_the_right_number(age_s: int, old: str,
                                                            left: str) -> None:
    block = min_age_block("volume.v", NOW - timedelta(seconds=age_s), NOW, 5,
                          (Action.DELETE,), Overrides())
    assert block is not None
    assert f"volume.v is {old}, younger than min_age_minutes (5)" in block.message
    assert left in block.message


def _spec_error(tmp_path: Path, training: str) -> str:
    f = tmp_path / "t.yaml"
    f.write_text("version: 1\nproject: demo\nregion: us-east-1\ndefaults:\n"
                 "  availability_zone: us-east-1a\ninstances:\n  t:\n"
                 "    instance_type: g5.xlarge\n    ami: ami-0123456789abcdef0\n"
                 f"    training: {training}\n")
    with pytest.raises(SpecError) as exc:
        load_spec(str(f))
    return str(exc.value)


def test_schema_size_messages_count_in_the_right_number(tmp_path: Path) -> None:
    assert "must have at least 1 character; got ''" in _spec_error(
        tmp_path, '{process_patterns: [""]}')
    many = ", ".join(f"p{i}" for i in range(21))
    assert "must have at most 20 items" in _spec_error(
        tmp_path, f"{{process_patterns: [{many}]}}")
