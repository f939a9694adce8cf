"""Crashes (issue 12, item 4): a real SIGKILL of `trainctl apply` at 13 points across
create, prewarm, attach, mount and teardown, each kill as soon as the journal shows the
step started (plus a seeded delay, so kills land inside the step). Each next apply
resumes: it takes the dead apply's lock over (no `lock release`), cleans up the
temporary instance an interrupted prewarm left, and creates nothing twice. At the end:
converged, 0 duplicates, 0 temporary instances, every dataset byte on the instance.
Prints its figures (pytest -s)."""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import EXAMPLES, ROOT, run_cli
from test_faults import _by_address, _files

from planner.journal import read_journal

pytestmark = pytest.mark.slow

CREATE_STEPS = [
    ("volume.datasets", "create"), ("volume.scratch", "create"),
    ("instance.trainer", "create"), ("prewarm.tiny-imagenet", "create"),
    ("attachment.trainer.datasets", "create"), ("attachment.trainer.scratch", "create"),
    ("mount.trainer.datasets", "create"), ("mount.trainer.scratch", "create"),
]
TEARDOWN_STEPS = [
    ("mount.trainer.scratch", "delete"), ("attachment.trainer.scratch", "delete"),
    ("instance.trainer", "delete"), ("volume.scratch", "delete"),
]
# a kill at `started` (journalled, nothing done) and at `finished` (done, not journalled)
EVENTS = ("started", "finished")
DELAYS = [0.1, 0.2, 0.3]


def _in_execution_order(d: Path, endpoint: str,
                        points: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """`points` sorted as apply --parallelism 1 runs the steps (the executor's order)."""
    from planner.phases import phase_graph, step_order
    from planner.workflow.saved import read_plan_file

    r = run_cli("--endpoint-url", endpoint, "plan", "-o", "order.json", cwd=d)
    assert r.returncode == 0, r.stderr
    order = [(a, act.value) for a, act in
             step_order(phase_graph(read_plan_file(str(d / "order.json")).changes))]
    (d / "order.json").unlink()
    missing = [p for p in points if p not in order]
    assert not missing, (missing, order)
    return sorted(points, key=order.index)


def _events(d: Path) -> list[dict[str, str]]:
    jdir = d / ".trainctl" / "journal"
    if not jdir.exists():
        return []
    return [e for f in sorted(jdir.glob("*.jsonl")) for e in read_journal(str(f))]


def _kill_at(d: Path, endpoint: str, address: str, phase: str, delay: float) -> str:
    """Run apply; SIGKILL it `delay` s after the journal shows (address, phase) started.
    Returns "killed", or "finished" when the apply ended before that step started."""
    seen = len(_events(d))
    proc = subprocess.Popen(
        [sys.executable, "-m", "planner", "--endpoint-url", endpoint, "apply",
         "--auto-approve", "--parallelism", "1"],
        cwd=d, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            new = _events(d)[seen:]
            if any(e["address"] == address and e["phase"] == phase
                   and e["event"] == "started" for e in new):
                time.sleep(delay)
                proc.send_signal(signal.SIGKILL)
                proc.wait(30)
                return "killed" if proc.returncode == -signal.SIGKILL else "finished"
            time.sleep(0.01)
        return "finished"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)


def _kill_self_at(d: Path, endpoint: str, address: str, phase: str, event: str) -> str:
    """apply with TRAINCTL_TEST_SIGKILL_AT: it SIGKILLs itself at that journal event."""
    r = subprocess.run(
        [sys.executable, "-m", "planner", "--endpoint-url", endpoint, "apply",
         "--auto-approve", "--parallelism", "1"],
        cwd=d, env={**os.environ, "PYTHONPATH": str(ROOT),
                    "TRAINCTL_TEST_SIGKILL_AT": f"{address}:{phase}:{event}"},
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)
    assert "Traceback" not in r.stderr, r.stderr
    return "killed" if r.returncode == -signal.SIGKILL else "not reached"


def _chain(d: Path, endpoint: str, steps: list[tuple[str, str]], rng: random.Random,
           outcomes: Counter[str]) -> None:
    for address, phase in _in_execution_order(d, endpoint, steps):
        for event in EVENTS:
            outcomes[_kill_self_at(d, endpoint, address, phase, event)] += 1
            _no_duplicates(endpoint)
        if address.startswith("prewarm."):      # and once inside the step, by the test
            outcomes[_kill_at(d, endpoint, address, phase, rng.choice(DELAYS))] += 1
            _no_duplicates(endpoint)


def _no_duplicates(endpoint: str) -> None:
    vols, insts = _by_address(endpoint, "quickstart")
    assert all(n == 1 for n in vols.values()), vols
    assert all(n == 1 for a, n in insts.items() if "temporary" not in a), insts


def _dataset(endpoint: str) -> dict[str, str]:
    import boto3

    from planner.aws.seed import seed

    seed(endpoint, "us-east-1", buckets=["trainctl-demo-datasets", "trainctl-demo-checkpoints"])
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    want = {}
    for i in range(6):
        body = os.urandom(64 * 1024 + i)
        s3.put_object(Bucket="trainctl-demo-datasets", Key=f"tiny-imagenet/part-{i}.bin",
                      Body=body)
        want[f"part-{i}.bin"] = hashlib.sha256(body).hexdigest()
    return want


def _converge(d: Path, endpoint: str) -> int:
    for n in range(1, 4):
        r = run_cli("--endpoint-url", endpoint, "apply", "--auto-approve", cwd=d, input="",
                    timeout=300)
        assert "Traceback" not in r.stderr, r.stderr
        if run_cli("--endpoint-url", endpoint, "plan", "--detailed-exitcode",
                   cwd=d).returncode == 0:
            return n
    pytest.fail(f"not converged after 3 applies:\n{r.stdout}\n{r.stderr}")


def test_kill_9_at_every_point_then_apply_converges(tmp_path: Path,
                                                     moto_endpoint: str) -> None:
    rng = random.Random(12)
    d = tmp_path / "quickstart"
    shutil.copytree(EXAMPLES / "quickstart", d)
    want = _dataset(moto_endpoint)
    outcomes: Counter[str] = Counter()
    _chain(d, moto_endpoint, CREATE_STEPS, rng, outcomes)
    applies = _converge(d, moto_endpoint)
    vols, insts = _by_address(moto_endpoint, "quickstart")
    assert vols == Counter({"volume.datasets": 1, "volume.scratch": 1}), vols
    assert insts == Counter({"instance.trainer": 1}), insts      # no temporary left
    got = _files(d / ".trainctl" / "sandbox")
    assert {k: got.get(k) for k in want} == want

    # teardown: drop the instance and the scratch volume from the spec
    spec = (d / "trainctl.yaml").read_text()
    down = spec.split("\ninstances:")[0].replace("  scratch:\n    size_gib: 100\n", "")
    assert "  scratch:" not in down and "  trainer:" not in down
    (d / "trainctl.yaml").write_text(
        down.replace("defaults:\n", "defaults:\n  min_age_minutes: 0\n") + "\n")
    _chain(d, moto_endpoint, TEARDOWN_STEPS, rng, outcomes)
    applies_down = _converge(d, moto_endpoint)
    vols, insts = _by_address(moto_endpoint, "quickstart")
    plan = run_cli("--endpoint-url", moto_endpoint, "plan", cwd=d).stdout
    assert vols == Counter({"volume.datasets": 1}), (vols, plan)   # persistent: kept
    assert insts == Counter(), insts
    print(f"\ncrashes: {sum(outcomes.values())} kill points tried, {outcomes['killed']} "
          f"applies killed (kill -9), {outcomes['not reached']} not reached; converged "
          f"after {applies} apply(s) (create) and "
          f"{applies_down} (teardown); 0 duplicates, 0 temporary instances, "
          f"{len(want)} dataset files intact")
    assert outcomes["killed"] >= 10, outcomes
