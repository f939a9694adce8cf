"""examples/ci/github-actions.yml: linted by actionlint, and it runs the commands the
CI flow relies on (DESIGN section 6; docs/ci.md)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT

WORKFLOW = ROOT / "examples" / "ci" / "github-actions.yml"


def _actionlint() -> str:
    here = Path(sys.executable).parent / "actionlint"
    found = str(here) if here.exists() else shutil.which("actionlint")
    if found is None:
        pytest.fail("actionlint is not installed: `make test` installs it (dev extra)")
    return found


def _workflow() -> dict[Any, Any]:
    doc = yaml.safe_load(WORKFLOW.read_text())
    assert isinstance(doc, dict)
    return doc


def _runs(job: dict[str, Any]) -> str:
    return "\n".join(s.get("run", "") for s in job["steps"])


def test_actionlint_accepts_the_workflow() -> None:
    p = subprocess.run([_actionlint(), "-no-color", str(WORKFLOW)], capture_output=True,
                       text=True, timeout=60, env={**os.environ, "SHELLCHECK_OPTS": ""})
    assert p.returncode == 0, p.stdout + p.stderr


def test_actionlint_would_catch_a_broken_workflow(tmp_path: Path) -> None:
    """The lint is real: an undefined context in the same file is reported."""
    broken = tmp_path / "broken.yml"
    broken.write_text(WORKFLOW.read_text().replace("github.token", "github.no_such_token"))
    p = subprocess.run([_actionlint(), "-no-color", str(broken)], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode != 0 and "no_such_token" in p.stdout


def test_pull_requests_plan_and_comment_in_place() -> None:
    wf = _workflow()
    plan = wf["jobs"]["plan"]
    triggers = wf.get(True, wf.get("on"))    # YAML 1.1 readers turn `on` into True
    assert "pull_request" in triggers and "push" in triggers
    assert "plan -o plan.json --markdown plan.md --detailed-exitcode" in _runs(plan)
    # exit 1 fails the job, 2 (changes) does not
    assert 'if [ "$rc" -eq 1 ]; then exit 1; fi' in _runs(plan)
    sticky = [s for s in plan["steps"] if "sticky-pull-request-comment" in s.get("uses", "")]
    assert sticky and sticky[0]["with"]["path"].endswith("plan.md")
    assert sticky[0]["with"]["header"]        # one comment, found again and updated


def test_merge_applies_the_reviewed_plan_in_one_group_per_project() -> None:
    wf = _workflow()
    apply = wf["jobs"]["apply"]
    assert "apply plan.json --auto-approve" in _runs(apply)
    assert "trainctl plan" not in _runs(apply)      # never a fresh, unreviewed plan
    assert wf["concurrency"]["group"].startswith("trainctl-")
    assert wf["concurrency"]["cancel-in-progress"] is False


def test_the_commands_it_uses_exist() -> None:
    from click.testing import CliRunner

    from planner.cli import cli

    for sub in ("plan", "apply"):
        r = CliRunner().invoke(cli, [sub, "--help"])
        assert r.exit_code == 0
    plan_help = CliRunner().invoke(cli, ["plan", "--help"]).output
    for flag in ("-o", "--markdown", "--detailed-exitcode"):
        assert flag in plan_help
    assert "--auto-approve" in CliRunner().invoke(cli, ["apply", "--help"]).output
