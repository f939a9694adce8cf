"""apply's pieces without AWS: engine choice, saved-plan checks, fresh blocks, Ctrl-C."""

from __future__ import annotations

import os
import signal
import stat
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from planner.engines import EngineUnavailable
from planner.errors import StalePlanError
from planner.plan import (
    Action,
    Block,
    Change,
    Plan,
    Reason,
    ResourceType,
    Rule,
    plan_from_json,
)
from planner.workflow import PlainConsole
from planner.workflow.applying import check_engine, stop_on_sigint
from planner.workflow.saved import check_saved_plan, save_plan, with_fresh_changes

PERSISTENT = Block(Rule.PERSISTENT, "volume.data is persistent; name it with --allow-delete")


def _plan(*changes: Change, spec: str = "sha256:s", live: str = "sha256:l") -> Plan:
    return Plan(project="demo", region="us-east-1", created_at="2026-11-22T21:00:00Z",
                spec_digest=spec, live_digest=live, changes=changes)


def _delete(address: str, *blocks: Block) -> Change:
    return Change(address=address, type=ResourceType.VOLUME, actions=(Action.DELETE,),
                  reason=Reason.DELETE_BECAUSE_NOT_IN_SPEC, id="vol-1", blocked_by=blocks)


def test_pulumi_engine_without_the_cli_points_to_direct(monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(EngineUnavailable, match="--engine direct") as e:
        check_engine("pulumi")
    assert "`pulumi` CLI on PATH" in str(e.value)


def test_an_engine_is_checked_through_the_registry(monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    """With the CLI on PATH the pulumi engine may run (it is implemented now); an engine
    the registry does not know is refused by name."""
    fake = tmp_path / "pulumi"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", str(tmp_path))
    check_engine("pulumi")
    check_engine("direct")
    with pytest.raises(EngineUnavailable, match="unknown engine 'terraform'"):
        check_engine("terraform")


def test_stale_spec_and_stale_live_are_refused() -> None:
    saved = _plan(_delete("volume.old"))
    with pytest.raises(StalePlanError, match=r"^stale plan: the spec changed since"):
        check_saved_plan(saved, _plan(_delete("volume.old"), spec="sha256:other"))
    with pytest.raises(StalePlanError, match=r"^stale plan: live state changed since"):
        check_saved_plan(saved, _plan(_delete("volume.old"), live="sha256:other"))
    check_saved_plan(saved, _plan(_delete("volume.old", PERSISTENT)))   # blocks may differ


def test_edited_changes_are_refused() -> None:
    fresh = _plan(replace(_delete("volume.data"), actions=(Action.NOOP,)))
    with pytest.raises(StalePlanError, match=r"was it edited\?\): volume.data"):
        check_saved_plan(_plan(_delete("volume.data")), fresh)


def test_an_edited_before_or_after_is_refused() -> None:
    """Ids, tags and other data the engine acts on: any edit is refused, not only actions."""
    fresh = _plan(replace(_delete("volume.data"), before={"id": "vol-1"}))
    edited = _plan(replace(_delete("volume.data"), before={"id": "vol-foreign"}))
    with pytest.raises(StalePlanError, match=r"was it edited\?\): volume.data"):
        check_saved_plan(edited, fresh)
    tags = _plan(replace(_delete("volume.data"), before={
        "id": "vol-1", "tags": {"trainctl:persistent": None}}))
    with pytest.raises(StalePlanError, match="was it edited"):
        check_saved_plan(tags, fresh)
    check_saved_plan(fresh, fresh)


def test_a_replace_unblocked_since_the_plan_says_what_else_it_changes() -> None:
    """--force, --allow-delete or time can unblock a replace after the plan was saved;
    its dependents then change too, which the reviewer never saw: refused, and said so
    (not "edited")."""
    young = Block(Rule.MIN_AGE, "instance.t is 3 minutes old (min_age_minutes 60)")

    def replace_t(*blocks: Block) -> Change:
        return Change(address="instance.t", type=ResourceType.INSTANCE,
                      actions=(Action.DELETE, Action.CREATE),
                      reason=Reason.REPLACE_BECAUSE_CANNOT_UPDATE, id="i-1",
                      blocked_by=blocks)

    def attachment(*actions: Action) -> Change:
        return Change(address="attachment.t.v", type=ResourceType.ATTACHMENT,
                      actions=actions, reason=Reason.REPLACE_BECAUSE_DEPENDENCY_REPLACED)

    saved = _plan(replace_t(young), attachment(Action.NOOP))
    fresh = _plan(replace_t(), attachment(Action.DELETE, Action.CREATE))
    with pytest.raises(StalePlanError) as e:
        check_saved_plan(saved, fresh)
    msg = str(e.value)
    assert msg.startswith("the plan file was made while instance.t was blocked")
    assert "attachment.t.v too" in msg and "edited" not in msg
    check_saved_plan(saved, _plan(replace_t(young), attachment(Action.NOOP)))


def test_blocked_by_comes_from_the_fresh_plan() -> None:
    saved = _plan(_delete("volume.data"), _delete("volume.scratch", PERSISTENT))
    fresh = _plan(_delete("volume.data", PERSISTENT), _delete("volume.scratch"))
    plan = with_fresh_changes(saved, fresh)
    assert plan.change("volume.data").blocked_by == (PERSISTENT,)
    assert plan.change("volume.scratch").blocked_by == ()
    assert plan.plan_id == saved.plan_id


def test_save_plan_writes_a_readable_plan_file(tmp_path: Path) -> None:
    import json

    plan = _plan(_delete("volume.data", PERSISTENT))
    path = save_plan(plan, str(tmp_path))
    assert path == str(tmp_path / "plans" / f"{plan.plan_id}.json")
    assert plan_from_json(json.loads(Path(path).read_text())) == plan


def test_first_ctrl_c_sets_stop_second_interrupts() -> None:
    stop = threading.Event()
    before = signal.getsignal(signal.SIGINT)
    with stop_on_sigint(stop, PlainConsole()):
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.wait(5)
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before
