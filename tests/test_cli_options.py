"""Global options work before or after the subcommand, as Terraform users type them."""

from __future__ import annotations

import pytest
from conftest import EXAMPLES, run_cli

from planner.cli import hoist_global_options


@pytest.mark.parametrize(("given", "expected"), [
    (["plan", "--no-color", "-f", "x.yaml"], ["--no-color", "-f", "x.yaml", "plan"]),
    (["-f", "plan", "apply", "--region=eu-west-1", "p.json"],
     ["-f", "plan", "--region=eu-west-1", "apply", "p.json"]),
    (["apply", "plan.json", "--endpoint-url", "http://127.0.0.1:1", "--auto-approve"],
     ["--endpoint-url", "http://127.0.0.1:1", "apply", "plan.json", "--auto-approve"]),
    (["plan", "--target", "volume.a", "--", "-f"], ["plan", "--target", "volume.a", "--", "-f"]),
    (["--help"], ["--help"]),
    (["nonsense", "-f", "x"], ["nonsense", "-f", "x"]),
])
def test_hoist_global_options(given: list[str], expected: list[str]) -> None:
    assert hoist_global_options(given) == expected


def test_validate_with_file_after_the_subcommand() -> None:
    spec = EXAMPLES / "quickstart" / "trainctl.yaml"
    r = run_cli("validate", "-f", str(spec), "--no-color")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("OK: ")


@pytest.mark.parametrize("args", [
    ["plan", "--detailed-exitcode", "--bogus"],
    ["plan", "--target"],
    ["show"],
    ["no-such-command"],
])
def test_usage_errors_exit_1_never_2(args: list[str]) -> None:
    """2 is `plan --detailed-exitcode`'s "changes to apply": a CI job must not read a
    typo as pending changes (click's own code for usage errors is 2)."""
    r = run_cli(*args)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "Usage:" in r.stderr or "Error:" in r.stderr
    assert "Traceback" not in r.stderr
