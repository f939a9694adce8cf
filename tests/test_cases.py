"""Tests as cases: every folder under tests/cases/ is a spec, a live snapshot and the plan
they give (tests/error_cases/: the error), on the pure planning path `trainctl plan
--live-snapshot` runs: load the spec, build its graph, read the snapshot, diff. No AWS,
no clock.

Regenerate with `UPDATE_GOLDENS=1 pytest tests/test_cases.py`, then read the diff of
every plan.json it rewrote (tests/cases/README.md).
"""

from __future__ import annotations

import difflib
import json
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from planner.diff import diff
from planner.errors import TrainctlError
from planner.graph import build_graph
from planner.jsontext import dumps_indent2
from planner.live import LiveState, live_from_json, parse_iso
from planner.loader import load_spec
from planner.plan import PlanOptions, Rule, plan_from_json, plan_to_json
from planner.rules import Overrides
from planner.spec import Spec

TESTS = Path(__file__).resolve().parent
CASES = TESTS / "cases"                # spec + live -> plan.json
ERROR_CASES = TESTS / "error_cases"    # spec + live -> error.txt (the plan is refused)
DEFAULT_NOW = "2026-11-22T21:00:00Z"
SPEC, LIVE, OPTIONS, PLAN, ERROR = (
    "trainctl.yaml", "live.json", "options.json", "plan.json", "error.txt")
DATA = "data"              # a local dataset source's folder, when the case needs one
BUG = "bug.txt"            # a known bug: see KnownBug
CASE_FILES = frozenset({SPEC, LIVE, OPTIONS, PLAN, ERROR, DATA, BUG})
CASE_DIR = "$CASE"         # the case's folder in plans: the same in every checkout

# Rules no plan can carry, each with why and the case that shows what the plan says instead.
NOT_IN_PLANS: dict[Rule, tuple[str, str]] = {
    Rule.TRAINING_RUNNING: (
        "training-running-is-checked-at-apply",
        "the training check needs SSM on the running instance: apply runs it just before "
        "an unmount, detach or terminate (DESIGN section 4: that step fails)"),
}


@dataclass(frozen=True)
class CaseOptions:
    """options.json: the command line of `trainctl plan` / `apply` for the case."""

    now: str = DEFAULT_NOW
    destroy: bool = False
    targets: tuple[str, ...] = ()
    allow_delete: tuple[str, ...] = ()
    force: bool = False
    allow_cost: bool = False
    stop_training: tuple[str, ...] = ()
    # the cost ledger's volumes (address -> id): `plan` reads them from the ledger, never
    # from a live snapshot; a case may give them to plan a volume deleted outside
    known_volumes: tuple[tuple[str, str], ...] = ()
    description: str = ""

    @classmethod
    def read(cls, folder: Path) -> CaseOptions:
        path = folder / OPTIONS
        if not path.exists():
            return cls()
        doc = json.loads(path.read_text(encoding="utf-8"))
        unknown = sorted(set(doc) - set(cls.__dataclass_fields__))
        assert not unknown, f"{path}: unknown option(s) {unknown}"
        listed = {k: tuple(v) for k, v in doc.items()
                  if k in ("targets", "allow_delete", "stop_training")}
        known = tuple(sorted(doc.get("known_volumes", {}).items()))
        return cls(**{**doc, **listed, "known_volumes": known})

    @property
    def overrides(self) -> Overrides:
        return Overrides(force=self.force, allow_delete=frozenset(self.allow_delete),
                         allow_cost=self.allow_cost,
                         stop_training=frozenset(self.stop_training))


def case_folders(root: Path | None = None) -> dict[str, Path]:
    """Case name -> folder, of one root or both (names are unique across them)."""
    roots = (root,) if root else (CASES, ERROR_CASES)
    found = [p for r in roots for p in sorted(r.iterdir()) if (p / SPEC).is_file()]
    out = {p.name: p for p in found}
    assert len(out) == len(found), "a case name is used in both tests/cases and error_cases"
    return out


def case_names(root: Path | None = None) -> list[str]:
    return sorted(case_folders(root))


def read_live(folder: Path, project: str) -> LiveState:
    """The snapshot as `plan --live-snapshot` reads it: the schema, then the project."""
    from planner.filecheck import check, read_json
    from planner.fileschemas import live_schema

    path = str(folder / LIVE)
    doc = read_json(path, "live snapshot")
    check(path, "live snapshot", doc, live_schema())
    live = live_from_json(doc)
    assert live.project == project, f"{path}: project {live.project}, the spec's is {project}"
    return live


def portable(spec: Spec, folder: Path) -> Spec:
    """The loader makes local dataset sources absolute: the case's folder reads as $CASE,
    so the plan (its spec digest too) is the same in every checkout."""
    datasets = {n: replace(d, source=d.source.replace(str(folder), CASE_DIR, 1))
                if d.is_local else d for n, d in spec.datasets.items()}
    return replace(spec, datasets=MappingProxyType(datasets))


def run_case(folder: Path) -> tuple[str, str]:
    """(file name, text): plan.json with the plan, or error.txt with the planning error."""
    opts = CaseOptions.read(folder)
    try:
        spec = portable(load_spec(str(folder / SPEC)), folder)
        live = read_live(folder, spec.project)
        plan = diff(spec, build_graph(spec), live, now=parse_iso(opts.now),
                    options=PlanOptions(destroy=opts.destroy,
                                        targets=tuple(dict.fromkeys(opts.targets))),
                    overrides=opts.overrides, known_volumes=dict(opts.known_volumes),
                    removed_spend_usd=0.0)
    except TrainctlError as e:
        return ERROR, str(e).replace(f"{folder}{os.sep}", "").replace(
            str(folder), CASE_DIR) + "\n"
    return PLAN, dumps_indent2(plan_to_json(plan)) + "\n"


def _unified(expected: str, actual: str, name: str) -> str:
    return "".join(difflib.unified_diff(
        expected.splitlines(keepends=True), actual.splitlines(keepends=True),
        f"{name} (expected)", f"{name} (planned now)", n=4))


@dataclass(frozen=True)
class KnownBug:
    """bug.txt: a bug the case's plan.json shows fixed. Its first paragraph says what is
    wrong; each `path: P` line names a JSON path (`cost.hourly_usd_after`,
    `changes[2].blocked_by[0].message`) where plan.json holds the right value. The rest
    of the plan must match as usual; those paths xfail until the bug is fixed, then the
    case fails (strict) until bug.txt is removed."""

    description: str
    paths: tuple[str, ...]

    @classmethod
    def read(cls, folder: Path) -> KnownBug | None:
        path = folder / BUG
        if not path.exists():
            return None
        lines = path.read_text(encoding="utf-8").splitlines()
        paths = tuple(x.split(":", 1)[1].strip() for x in lines if x.startswith("path:"))
        text = " ".join(x for x in lines if x.strip() and not x.startswith("path:"))
        assert paths, f"{path}: no `path:` line"
        return cls(text, paths)


def _steps(path: str) -> list[str | int]:
    return [int(p) if p.isdigit() else p for p in re.findall(r"[^.\[\]]+", path)]


def _get(doc: Any, path: str) -> Any:
    for step in _steps(path):
        doc = doc[step]
    return doc


def _put(doc: Any, path: str, value: Any) -> None:
    *parents, last = _steps(path)
    for step in parents:
        doc = doc[step]
    doc[last] = value


def _check_known_bug(name: str, bug: KnownBug, expected: str, actual: str) -> None:
    want, got = json.loads(expected), json.loads(actual)
    for p in bug.paths:              # the rest must match: a real failure otherwise
        _put(got, p, _get(want, p))
    masked = dumps_indent2(got) + "\n"
    if masked != expected:
        pytest.fail(f"case {name}: plan.json differs besides its known bug\n"
                    + _unified(expected, masked, f"{name}/{PLAN}"), pytrace=False)
    if actual == expected:
        pytest.fail(f"case {name}: the known bug is fixed; delete {name}/{BUG}")
    wrong = {p: _get(json.loads(actual), p) for p in bug.paths}
    pytest.xfail(f"known bug: {bug.description} (planned now: {wrong})")


def _update(folder: Path, kind: str, actual: str) -> None:
    """UPDATE_GOLDENS=1: write the plan, keeping a known bug's right values."""
    bug = KnownBug.read(folder)
    if bug is not None and kind == PLAN and (folder / PLAN).exists():
        doc, old = json.loads(actual), json.loads((folder / PLAN).read_text(encoding="utf-8"))
        for p in bug.paths:
            _put(doc, p, _get(old, p))
        actual = dumps_indent2(doc) + "\n"
    (folder / kind).write_text(actual, encoding="utf-8")
    (folder / (ERROR if kind == PLAN else PLAN)).unlink(missing_ok=True)


@pytest.mark.parametrize("name", case_names())
def test_case(name: str) -> None:
    folder = case_folders()[name]
    kind, actual = run_case(folder)
    path = folder / kind
    want = PLAN if folder.parent == CASES else ERROR
    if kind != want:
        got = "plans" if kind == PLAN else "fails to plan"
        pytest.fail(f"case {name} {got} (a case under {folder.parent.name}/ gives {want}):"
                    f"\n{actual}")
    if os.environ.get("UPDATE_GOLDENS") == "1":
        _update(folder, kind, actual)
        return
    if not path.exists():
        got = "plans" if kind == PLAN else "fails to plan"
        pytest.fail(f"case {name} {got}, but holds no {kind} "
                    f"(UPDATE_GOLDENS=1 writes it):\n{actual}")
    expected = path.read_text(encoding="utf-8")
    bug = KnownBug.read(folder)
    if bug is not None and kind == PLAN:
        _check_known_bug(name, bug, expected, actual)
    elif actual != expected:
        pytest.fail(f"case {name}: {kind} differs (UPDATE_GOLDENS=1 rewrites it)\n"
                    + _unified(expected, actual, f"{name}/{kind}"), pytrace=False)


# --- the cases as a whole ----------------------------------------------------------------


def _plans() -> dict[str, dict[str, Any]]:
    return {n: json.loads((f / PLAN).read_text(encoding="utf-8"))
            for n, f in case_folders(CASES).items() if (f / PLAN).exists()}


def _rules_in(doc: dict[str, Any]) -> set[str]:
    found = {b["rule"] for c in doc["changes"] for b in c["blocked_by"]}
    return found | {w["rule"] for w in doc["warnings"]}


def _rules_in_error(text: str) -> set[str]:
    return set(re.findall(r"\(rule ([a-z-]+)\)", text))


def rule_coverage() -> dict[str, set[str]]:
    """Rule value -> the cases whose plan (blocked_by, warnings) or error names it."""
    out: dict[str, set[str]] = {}
    for name, doc in _plans().items():
        for rule in _rules_in(doc):
            out.setdefault(rule, set()).add(name)
    for name, folder in case_folders(ERROR_CASES).items():
        err = folder / ERROR
        if err.exists():
            for rule in _rules_in_error(err.read_text(encoding="utf-8")):
                out.setdefault(rule, set()).add(name)
    return out


def test_every_rule_has_a_case() -> None:
    """A new Rule value needs a case whose plan (or spec error) shows it; a rule no plan
    can carry is listed in NOT_IN_PLANS with its reason and a case of what plans say."""
    covered = rule_coverage()
    missing = [r.value for r in Rule if r.value not in covered and r not in NOT_IN_PLANS]
    assert not missing, (f"no case shows rule(s) {missing}: add tests/cases/NAME/ "
                         f"(tests/cases/README.md)")
    names = set(case_names(CASES))
    for rule, (case, _why) in NOT_IN_PLANS.items():
        assert rule.value not in covered, (
            f"{rule.value} now appears in plans ({sorted(covered[rule.value])}): "
            f"remove it from NOT_IN_PLANS")
        assert case in names, f"NOT_IN_PLANS names case {case}, which does not exist"
    unknown = set(covered) - {r.value for r in Rule}
    assert not unknown, f"cases name rules that do not exist: {sorted(unknown)}"


def test_cases_are_valid_plan_files_and_name_their_inputs() -> None:
    """Every plan.json reads back as a plan file (what `show` and `apply` accept), with
    the options and clock of its case; every case folder holds only known files."""
    assert len(_plans()) >= 20
    for name, doc in _plans().items():
        assert plan_to_json(plan_from_json(doc)) == doc, name
        opts = CaseOptions.read(CASES / name)
        assert doc["created_at"] == opts.now, name
        assert doc["options"] == {"destroy": opts.destroy,
                                  "targets": list(dict.fromkeys(opts.targets))}, name
    for root, result in ((CASES, PLAN), (ERROR_CASES, ERROR)):
        for folder in (p for p in root.iterdir() if p.is_dir()):
            extra = {p.name for p in folder.iterdir()} - CASE_FILES
            assert (folder / SPEC).is_file() and (folder / LIVE).is_file(), folder
            assert (folder / result).is_file(), f"{folder}: no {result}"
            assert not extra, f"{folder}: unexpected {sorted(extra)}"
            other = folder / (ERROR if result == PLAN else PLAN)
            assert not other.exists(), f"{folder}: {other.name} belongs to the other root"


def test_a_case_equals_what_plan_live_snapshot_prints(tmp_path: Path) -> None:
    """The CLI on one case's files gives the case's plan.json, but for what its own clock
    changes (created_at, the plan id derived from it, the spend accumulated so far)."""
    from conftest import run_cli

    name = "noop-matching-world"
    folder = CASES / name
    r = run_cli("-f", str(folder / SPEC), "plan", "--json", "--live-snapshot",
                str(folder / LIVE), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    want = json.loads((folder / PLAN).read_text(encoding="utf-8"))
    for doc in (got, want):       # what the clock changes: when, and the spend so far
        del doc["plan_id"], doc["created_at"], doc["cost"]["accumulated_usd"]
    assert got == want
