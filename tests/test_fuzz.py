"""Fuzzing (issue 12, item 2): mutated specs, plan files and live snapshots through
`validate`, `plan --live-snapshot` and `show`, in-process. Every run must end cleanly
(exit 0/1/2 with a message on failure): 0 tracebacks, 0 hangs (each run has an alarm).

Bounded for the suite (profile `suite`); `make fuzz` runs the `fuzz` profile
(TRAINCTL_FUZZ_PROFILE=fuzz) with many more examples. Each property prints its counts.
"""

from __future__ import annotations

import copy
import json
import os
import signal
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from fuzzbase import PLAN_DOC, SPEC_TEXT, live_doc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from inproc import Outcome, invoke

PROFILE = os.environ.get("TRAINCTL_FUZZ_PROFILE", "suite")
EXAMPLES = {"suite": 40, "fuzz": 1500}[PROFILE]
HANG_SECONDS = 20          # one run (validate/plan/show) taking longer counts as a hang
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=PROFILE == "suite",
                suppress_health_check=list(HealthCheck), database=None)

SPEC_DATA: dict[str, Any] = yaml.safe_load(SPEC_TEXT)


class Hang(Exception):
    pass


@contextmanager
def alarm(seconds: int) -> Iterator[None]:
    def fire(signum: int, frame: Any) -> None:
        raise Hang(f"no answer in {seconds}s")

    old = signal.signal(signal.SIGALRM, fire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


# --- mutations -------------------------------------------------------------------------

NASTY_STRINGS = st.sampled_from([
    "", " ", "\x00", "a\x00b", "é", "日本語", "\U0001f600", "\u202e", "..", "../../etc",
    "/", "-1", "1e400", "NaN", "null", "true", "x" * 5000, "s3://", "s3://b/../k",
    "vol-", "i-0", "2026-13-45T99:99:99Z", "${HOME}", "$(rm -rf /)", "'\"", "\\",
])
NUMBERS = st.one_of(
    st.integers(), st.sampled_from([10**400, -(10**400), 2**63, 2**64, -1, 0, 10**18]),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([1e308, -0.0, 0.5]))
LEAF = st.one_of(st.none(), st.booleans(), NUMBERS, NASTY_STRINGS, st.text(max_size=20))


def deep(n: int) -> Any:
    v: Any = "x"
    for i in range(n):
        v = [v] if i % 2 else {"k": v}
    return v


VALUES = st.one_of(
    LEAF,
    st.lists(LEAF, max_size=4),
    st.dictionaries(st.one_of(NASTY_STRINGS, st.text(max_size=8)), LEAF, max_size=4),
    st.integers(min_value=20, max_value=400).map(deep),
)


def paths(doc: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += paths(v, (*path, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += paths(v, (*path, i))
    return out


def _at(doc: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        doc = doc[p]
    return doc


@st.composite
def mutated(draw: st.DrawFn, base: Any) -> Any:
    """`base` with 1-4 mutations: a value swapped, a key deleted, renamed or added."""
    doc = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 4))):
        all_paths = paths(doc)
        path = draw(st.sampled_from(all_paths))
        op = draw(st.sampled_from(["swap", "swap", "delete", "rename", "extra"]))
        if not path:
            if op == "swap" and draw(st.booleans()):
                doc = draw(VALUES)
            continue
        parent, key = _at(doc, path[:-1]), path[-1]
        if op == "swap":
            parent[key] = draw(VALUES)
        elif op == "delete":
            del parent[key]
        elif op == "rename" and isinstance(parent, dict):
            parent[str(key) + draw(st.sampled_from(["_", "s", "\x00", "é", " "]))] = \
                parent.pop(key)
        elif op == "extra" and isinstance(parent, dict):
            parent[draw(st.one_of(NASTY_STRINGS, st.text(max_size=8)))] = draw(VALUES)
        elif isinstance(parent, list):
            parent.append(draw(VALUES))
    return doc


def to_json(doc: Any) -> str:
    """JSON text; huge floats as literals Python's encoder would write as Infinity."""
    return json.dumps(doc, ensure_ascii=False, allow_nan=True)


def to_yaml(draw: st.DrawFn, doc: Any) -> str:
    try:
        text = yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)
    except (yaml.YAMLError, RecursionError, ValueError):
        text = SPEC_TEXT
    tweak = draw(st.sampled_from(["none", "none", "alias", "bomb", "bigint", "nul", "tab"]))
    if tweak == "alias":        # anchors and aliases on the defaults mapping
        text = text.replace("defaults:", "defaults: &d", 1) + "\nextra: *d\n"
    elif tweak == "bomb":
        text += "\nbomb: &a [x, x, x, x, x, x, x, x]\n" + "".join(
            f"b{i}: &a{i} [*{'a' if i == 0 else f'a{i - 1}'}, *{'a' if i == 0 else f'a{i - 1}'}]\n"
            for i in range(12))
    elif tweak == "bigint":
        text = text.replace("size_gib: 50", "size_gib: 1" + "0" * 400, 1)
    elif tweak == "nul":
        text = text.replace("project:", "project: \x00", 1)
    elif tweak == "tab":
        text = text.replace("  ", "\t", 1)
    return text


# --- the properties --------------------------------------------------------------------

COUNTS: dict[str, Counter[str]] = {}


def record(name: str, o: Outcome) -> None:
    COUNTS.setdefault(name, Counter())[f"exit {o.code}"] += 1
    assert not o.traceback, o.traceback
    assert o.clean, o


def run(name: str, *args: str, cwd: Path) -> None:
    try:
        with alarm(HANG_SECONDS):
            o = invoke(*args, cwd=cwd)
    except Hang:
        COUNTS.setdefault(name, Counter())["hang"] += 1
        raise
    record(name, o)


def report(name: str) -> None:
    c = COUNTS.get(name, Counter())
    total = sum(c.values())
    print(f"\nfuzz {name}: {total} runs ({PROFILE} profile), "
          + ", ".join(f"{k}: {v}" for k, v in sorted(c.items()))
          + f"; tracebacks: 0, hangs: {c['hang']}")


@pytest.fixture
def work(tmp_path: Path) -> Path:
    return tmp_path


def test_fuzz_specs(work: Path) -> None:
    (work / "live.json").write_text(json.dumps(live_doc()))

    @FUZZ
    @given(st.data())
    def prop(data: st.DataObject) -> None:
        doc = data.draw(mutated(SPEC_DATA))
        text = data.draw(st.composite(lambda draw: to_yaml(draw, doc))())
        (work / "trainctl.yaml").write_text(text, encoding="utf-8", errors="surrogatepass")
        run("spec validate", "validate", cwd=work)
        run("spec plan --live-snapshot", "plan", "--live-snapshot", "live.json", cwd=work)

    prop()
    report("spec validate")
    report("spec plan --live-snapshot")


def test_fuzz_live_snapshots(work: Path) -> None:
    (work / "trainctl.yaml").write_text(SPEC_TEXT)
    base = live_doc()

    @FUZZ
    @given(st.data())
    def prop(data: st.DataObject) -> None:
        doc = data.draw(mutated(base))
        (work / "live.json").write_text(to_json(doc), encoding="utf-8",
                                        errors="surrogatepass")
        run("live snapshot plan", "plan", "--live-snapshot", "live.json", cwd=work)

    prop()
    report("live snapshot plan")


def test_fuzz_plan_files(work: Path) -> None:
    base = copy.deepcopy(PLAN_DOC)
    base.pop("plan_id")

    @FUZZ
    @given(st.data())
    def prop(data: st.DataObject) -> None:
        doc = data.draw(mutated(base))
        (work / "plan.json").write_text(to_json(doc), encoding="utf-8",
                                        errors="surrogatepass")
        flag = data.draw(st.sampled_from([[], ["--json"], ["--markdown"]]))
        run("plan file show", "show", *flag, "plan.json", cwd=work)

    prop()
    report("plan file show")
