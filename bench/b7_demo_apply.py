"""B7: `make demo`'s apply as a user sees it, end to end on the emulator.

The quickstart spec (examples/quickstart), its sample dataset put in the emulated S3 as
`make demo` does, then the product's plan (read_live + diff, datasets included) and
apply (executor + direct engine + LocalRunner: the SSM scripts really run here, the
dataset bytes really move), with DELAY injected before every API call (EC2, S3, IAM,
SSM: AWS answers nothing in 0 ms). Reported: the wall time, the time per step type, and
next to it the critical path of the plan's dependency graph weighted two ways:
- by the injected latency alone (DELAY x the step's API calls): what the API's latency
  forces whatever the tool does;
- by each step's measured duration: what no schedule of these steps can beat.
The gap between the two is time inside steps that is not API latency (scripts, waiters,
the emulator's own CPU); the gap between the second and the wall time is the executor's.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.b3_apply import longest_path
from bench.emulator import REGION, connect, emulator

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "quickstart"
DELAY = 0.050
DATASET_URI = "s3://trainctl-demo-datasets/tiny-imagenet/"


class CallLatency:
    """Sleeps `delay` before every API call; counts calls per running step."""

    def __init__(self, delay: float):
        self.delay = delay
        self.local = threading.local()
        self.lock = threading.Lock()
        self.calls: Counter[tuple[str, str]] = Counter()
        self.outside = 0

    def before_call(self, **_: Any) -> None:
        step = getattr(self.local, "step", None)
        with self.lock:
            if step is None:
                self.outside += 1
            else:
                self.calls[step] += 1
        time.sleep(self.delay)

    def on_event(self, ev: Any) -> None:
        if ev.event == "started":
            self.local.step = (ev.address, ev.action.value)
        elif ev.event in ("finished", "failed", "skipped"):
            self.local.step = None


def _upload_sample(aws: Any) -> int:
    bucket, prefix = DATASET_URI[5:].split("/", 1)
    n = 0
    for path in sorted((EXAMPLE / "sample-data").rglob("*")):
        if path.is_file():
            key = prefix + path.relative_to(EXAMPLE / "sample-data").as_posix()
            aws.s3.upload_file(str(path), bucket, key)
            n += 1
    return n


def _step_type(address: str, action: str) -> str:
    return f"{action} {address.split('.', 1)[0]}"


def run(delay: float = DELAY, parallelism: int = 10) -> dict[str, Any]:
    from planner import emulator as emu
    from planner.aws.fresh import AwsFreshRead
    from planner.aws.read import read_live
    from planner.aws.seed import seed
    from planner.diff import diff
    from planner.engines.direct import DirectEngine
    from planner.executor import execute
    from planner.graph import build_graph
    from planner.guards import Guards
    from planner.journal import Journal, journal_path
    from planner.loader import load_spec
    from planner.rules import Overrides
    from planner.ssm import LocalRunner

    with tempfile.TemporaryDirectory(prefix="trainctl-b7-") as tmp:
        spec_file = Path(tmp) / "trainctl.yaml"
        shutil.copy(EXAMPLE / "trainctl.yaml", spec_file)
        spec = load_spec(str(spec_file))
        with emulator(os.path.join(tmp, ".trainctl")) as (endpoint, state_dir):
            seed(endpoint, REGION, buckets=emu.spec_buckets(spec))
            aws = connect(endpoint)
            objects = _upload_sample(aws)
            latency = CallLatency(delay)
            aws.on("before-call", latency.before_call)
            t_plan = time.perf_counter()
            now = datetime.now(UTC)
            plan = diff(spec, build_graph(spec), read_live(spec, aws, now=now), now=now)
            plan_s = time.perf_counter() - t_plan
            plan_calls = latency.outside
            ssm = LocalRunner.for_endpoint(os.path.join(state_dir, "sandbox"), endpoint,
                                           REGION)
            engine = DirectEngine(spec, aws, ssm, plan_id=plan.plan_id, overrides=Overrides())
            guards = Guards(spec, Overrides(), AwsFreshRead(aws), ssm)
            with Journal(journal_path(state_dir, plan.plan_id), plan.plan_id) as journal:
                t0 = time.perf_counter()
                result = execute(plan, engine, guards=guards, parallelism=parallelism,
                                 journal=journal,
                                 on_event=latency.on_event)
                apply_s = time.perf_counter() - t0
            if not result.ok:
                failed = [f"{s.label}: {s.message}" for s in result.by_status("failed")][:3]
                raise RuntimeError(f"B7 apply failed: {failed}")
            synced = sum(1 for p in Path(state_dir, "sandbox").rglob("*") if p.is_file())
    durations = {(s.address, s.action.value): float(s.elapsed or 0.0) for s in result.steps}
    by_type: dict[str, dict[str, float]] = defaultdict(lambda: {"steps": 0, "seconds": 0.0,
                                                                "api_calls": 0})
    for key, seconds in durations.items():
        row = by_type[_step_type(*key)]
        row["steps"] += 1
        row["seconds"] = round(row["seconds"] + seconds, 3)
        row["api_calls"] += latency.calls.get(key, 0)
    injected = {k: delay * n for k, n in latency.calls.items()}
    cp_injected, path_injected = longest_path(plan.changes, injected)
    cp_measured, path_measured = longest_path(plan.changes, durations)
    return {
        "delay_ms": round(delay * 1000), "parallelism": parallelism,
        "dataset_objects": objects, "files_in_sandbox": synced,
        "plan_s": round(plan_s, 3), "plan_api_calls": plan_calls,
        "apply_s": round(apply_s, 3), "steps": len(result.steps),
        "api_calls": sum(latency.calls.values()),
        "by_step_type": dict(sorted(by_type.items(), key=lambda kv: -kv[1]["seconds"])),
        "critical_path_injected_s": round(cp_injected, 3),
        "critical_path_injected": path_injected,
        "critical_path_measured_s": round(cp_measured, 3),
        "critical_path_measured": path_measured,
        "apply_over_measured_path": round(apply_s / max(cp_measured, 1e-9), 2),
        "inside_steps_not_latency_s": round(cp_measured - cp_injected, 3),
        "target_met": None,
    }
