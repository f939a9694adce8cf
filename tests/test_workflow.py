"""planner.workflow called directly (no click) against the moto server: planning,
applying, the exit code from the outcome, the spec loaded once, the phase graph built
once."""

from __future__ import annotations

import io
import threading
from pathlib import Path
from typing import Any

import boto3
import pytest

import planner.executor
import planner.loader
from planner.options import Options
from planner.plan import Action
from planner.workflow import (
    EXIT_INTERRUPTED,
    ApplyOutcome,
    ApplyRefused,
    ApplyRequest,
    PlainConsole,
    PlanRequest,
    apply_plan,
    exit_code,
    make_plan,
)
from planner.workflow.saved import save_plan

SPEC = """\
version: 1
project: wftest
region: us-east-1
defaults:
  availability_zone: us-east-1a
  min_age_minutes: 0
volumes:
  scratch:
    size_gib: 20
"""


@pytest.fixture
def opts(tmp_path: Path, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Options:
    monkeypatch.setenv("TRAINCTL_LOCK_DIR", str(tmp_path / "locks"))
    (tmp_path / "trainctl.yaml").write_text(SPEC)
    return Options(file=str(tmp_path / "trainctl.yaml"), region=None,
                   endpoint_url=moto_endpoint, no_color=True)


def volumes(endpoint: str) -> list[dict[str, Any]]:
    ec2 = boto3.client("ec2", endpoint_url=endpoint, region_name="us-east-1")
    return list(ec2.describe_volumes(
        Filters=[{"Name": "tag:trainctl:project", "Values": ["wftest"]}])["Volumes"])


def console(answer: str | None = None) -> PlainConsole:
    return PlainConsole(io.StringIO(), io.StringIO(), answer=answer)


@pytest.fixture
def count_loads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = planner.loader.load_spec

    def counting(path: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(path)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(planner.loader, "load_spec", counting)
    return calls


def test_make_plan_and_its_exit_code(opts: Options, moto_endpoint: str) -> None:
    outcome = make_plan(PlanRequest(opts))
    assert outcome.spec.project == "wftest" and outcome.live.api_calls > 0
    assert [(c.address, c.actions) for c in outcome.plan.changes] == [
        ("volume.scratch", (Action.CREATE,))]
    assert exit_code(outcome) == 0
    assert exit_code(make_plan(PlanRequest(opts, detailed_exitcode=True))) == 2
    assert volumes(moto_endpoint) == []              # planning changes nothing


def test_make_plan_takes_a_loaded_spec(opts: Options, count_loads: list[str]) -> None:
    first = make_plan(PlanRequest(opts))
    again = make_plan(PlanRequest(opts), first.spec)
    assert len(count_loads) == 1 and again.plan.spec_digest == first.plan.spec_digest


def test_apply_plan_creates_then_converges(opts: Options, moto_endpoint: str,
                                           count_loads: list[str]) -> None:
    c = console()
    outcome = apply_plan(ApplyRequest(opts, auto_approve=True), c)
    assert count_loads == [opts.file]                # the spec is loaded once per apply
    assert outcome.result is not None and outcome.result.ok and exit_code(outcome) == 0
    assert outcome.journal and Path(outcome.journal).is_file()
    assert len(volumes(moto_endpoint)) == 1
    text = c.stdout.getvalue()                        # type: ignore[attr-defined]
    assert "Apply: 1 created" in text and "Journal: " in text
    assert "volume.scratch" in text                   # the plan was shown first

    count_loads.clear()
    again = apply_plan(ApplyRequest(opts, auto_approve=True), c2 := console())
    assert count_loads == [opts.file]
    assert again.result is None and exit_code(again) == 0
    assert "No changes." in c2.stdout.getvalue()      # type: ignore[attr-defined]
    detailed = make_plan(PlanRequest(opts, detailed_exitcode=True))
    assert exit_code(detailed) == 0


def test_apply_of_a_saved_plan_loads_the_spec_once(opts: Options, moto_endpoint: str,
                                                   count_loads: list[str]) -> None:
    planned = make_plan(PlanRequest(opts))
    path = save_plan(planned.plan, str(Path(opts.file).parent / "saved"))
    count_loads.clear()
    outcome = apply_plan(ApplyRequest(opts, planfile=path), console())
    assert count_loads == [opts.file]
    assert outcome.plan.plan_id == planned.plan.plan_id and exit_code(outcome) == 0
    assert len(volumes(moto_endpoint)) == 1


def test_apply_builds_the_phase_graph_once(opts: Options,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[int] = []
    real = planner.executor.phase_graph

    def counting(changes: Any) -> Any:
        built.append(1)
        return real(changes)

    monkeypatch.setattr(planner.executor, "phase_graph", counting)
    monkeypatch.setattr("planner.phases.phase_graph", counting)
    outcome = apply_plan(ApplyRequest(opts, auto_approve=True), console())
    assert exit_code(outcome) == 0 and len(built) == 1


def test_apply_without_a_person_or_approval_is_refused(opts: Options,
                                                       moto_endpoint: str) -> None:
    with pytest.raises(ApplyRefused, match="stdin is not a terminal"):
        apply_plan(ApplyRequest(opts), console())
    with pytest.raises(ApplyRefused, match="Apply cancelled"):
        apply_plan(ApplyRequest(opts), console(answer="n"))
    assert volumes(moto_endpoint) == []
    assert exit_code(apply_plan(ApplyRequest(opts), console(answer="y"))) == 0
    assert len(volumes(moto_endpoint)) == 1


def test_deleting_needs_the_word_yes(opts: Options, moto_endpoint: str) -> None:
    apply_plan(ApplyRequest(opts, auto_approve=True), console())
    c = console(answer="y")
    with pytest.raises(ApplyRefused, match="needs the word yes"):
        apply_plan(ApplyRequest(opts, destroy=True), c)
    assert "This plan deletes or replaces volume.scratch." in c.stdout.getvalue()  # type: ignore[attr-defined]
    assert len(volumes(moto_endpoint)) == 1
    outcome = apply_plan(ApplyRequest(opts, destroy=True), console(answer="yes"))
    assert exit_code(outcome) == 0 and volumes(moto_endpoint) == []


def test_a_saved_plan_with_destroy_or_target_is_refused(opts: Options) -> None:
    with pytest.raises(ApplyRefused, match="a saved plan file already says"):
        apply_plan(ApplyRequest(opts, planfile="plan.json", destroy=True), console())


def test_exit_code_of_an_interrupted_or_failed_apply() -> None:
    from planner.engines.base import StepFailed
    from planner.plan import Change, Plan, Reason, ResourceType

    change = Change(address="volume.v", type=ResourceType.VOLUME, actions=(Action.CREATE,),
                    reason=Reason.CREATE_BECAUSE_MISSING, after={"size_gib": 1})
    plan = Plan(project="p", region="us-east-1", created_at="t", spec_digest="s",
                live_digest="l", changes=(change,))

    class Failing:
        def apply(self, change: Any, action: Any) -> Any:
            raise StepFailed("injected")

    class Done:
        def apply(self, change: Any, action: Any) -> Any:
            return {}

    stop = threading.Event()
    stop.set()
    stopped = planner.executor.execute(plan, Done(), stop=stop)
    assert exit_code(ApplyOutcome(plan, stopped)) == EXIT_INTERRUPTED
    failed = planner.executor.execute(plan, Failing())
    assert exit_code(ApplyOutcome(plan, failed)) == 1
    assert exit_code(ApplyOutcome(plan, planner.executor.execute(plan, Done()))) == 0
    assert exit_code(ApplyOutcome(plan)) == 0
