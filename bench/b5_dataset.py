"""B5: `plan` when a 10,000-object dataset has not changed.

Setup (not timed): moto's server on a thread of this process; 10,000 small objects
written straight into its S3 store (PUTs through the API would take minutes on this
machine and are not what B5 measures); a spec with one instance and a `local-cache`
dataset of that prefix; the instance created by the direct engine (a plan targeted at
it, run by the executor); then the dataset recorded as synced exactly as the sync step
records it after a successful sync (`dataplane.record_digest`: the instance's
`trainctl:dataset-digest` tag gets `ds=sha256:<32 hex>` of the listing's manifest).

Measured in a fresh process, through the CLI's own path (`planner.workflow.make_plan`, as
`trainctl plan` runs it): the plan (every change must be a no-op), the API calls by
operation (no SSM operation; the S3 side is one ListObjectsV2 page per 1,000 objects),
whether planning imported the SSM module or ran a script at all, and the wall time of the
listing alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.emulator import REGION, connect, threaded_moto

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "bench-b5"
BUCKET = "bench-b5-data"
PREFIX = "ds/"
DATASET = "ds"
OBJECTS = 10_000
SPEC = f"""\
version: 1
project: {PROJECT}
region: {REGION}
defaults:
  availability_zone: {REGION}a
datasets:
  {DATASET}:
    source: s3://{BUCKET}/{PREFIX}
    strategy: local-cache
    path: /data/{DATASET}
instances:
  trainer:
    instance_type: g5.xlarge
    ami: ami-0123456789abcdef0
    iam_instance_profile: trainctl-ssm
    datasets: [{DATASET}]
"""


def seed_objects(n: int, bucket: str = BUCKET, prefix: str = PREFIX) -> None:
    """`n` small objects (a few bytes each, distinct contents) in the emulator's store."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    s3 = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    s3.create_bucket(bucket, REGION)
    for i in range(n):
        s3.put_object(bucket, f"{prefix}{i // 100:03d}/{i:06d}.bin", b"object %d\n" % i)


def bring_in_sync(endpoint: str, spec_path: str) -> dict[str, Any]:
    """Create the instance with the engine; record the dataset as the sync step does."""
    from planner.aws.read import read_live
    from planner.aws.seed import seed
    from planner.diff import diff
    from planner.engines.dataplane import record_digest
    from planner.engines.direct import DirectEngine
    from planner.executor import execute
    from planner.graph import build_graph
    from planner.loader import load_spec
    from planner.plan import PlanOptions
    from planner.rules import Overrides
    from planner.ssm import LocalRunner

    seed(endpoint, REGION)
    spec = load_spec(spec_path)
    aws = connect(endpoint)
    now = datetime.now(UTC)
    live = read_live(spec, aws, now=now)
    first = diff(spec, build_graph(spec), live, now=now)
    targeted = diff(spec, build_graph(spec), live, now=now,
                    options=PlanOptions(targets=("instance.trainer",)))
    sandbox = os.path.join(os.path.dirname(spec_path), ".trainctl", "sandbox")
    engine = DirectEngine(spec, aws, LocalRunner(sandbox), plan_id=targeted.plan_id,
                          overrides=Overrides())
    result = execute(targeted, engine, parallelism=1)
    if not result.ok:
        raise RuntimeError(f"B5 setup failed: {result.summary_line()}")
    iid = result.step("instance.trainer", "create").facts["id"]
    manifest = live.datasets[DATASET]
    tag = record_digest(engine, iid, DATASET, manifest.digest)
    return {"first_plan": {c.address: c.kind for c in first.changes},
            "instance": iid, "digest_tag": tag, "objects": manifest.objects}


def plan_worker(endpoint: str, spec_path: str) -> dict[str, Any]:
    """Runs in a fresh process: plan as `trainctl plan --endpoint-url` does."""
    from planner.aws import session
    from planner.cli import Options
    from planner.workflow import PlanRequest, make_plan

    contexts: list[Any] = []
    real_connect = session.connect

    def capturing_connect(*args: Any, **kwargs: Any) -> Any:
        aws = real_connect(*args, **kwargs)
        contexts.append(aws)
        return aws

    session.connect = capturing_connect   # to read the call counter of the plan's context
    opts = Options(file=spec_path, region=None, endpoint_url=endpoint, no_color=True)
    t0 = time.perf_counter()
    outcome = make_plan(PlanRequest(opts))
    spec, live, plan = outcome.spec, outcome.live, outcome.plan
    plan_s = time.perf_counter() - t0
    calls: Counter[str] = Counter()
    for aws in contexts:
        calls.update(aws.calls)
    ssm_imported = any(m in sys.modules for m in ("planner.ssm", "planner.aws.ssm"))
    clients = sorted({name for aws in contexts for name in aws._clients})

    from planner.aws.datasets_read import s3_manifest

    listing = connect(endpoint)
    t0, c0 = time.perf_counter(), time.process_time()
    manifest = s3_manifest(listing, spec.datasets[DATASET].s3_uri)
    list_s, list_cpu = time.perf_counter() - t0, time.process_time() - c0
    return {
        "objects": manifest.objects, "summary": plan.summary,
        "all_noop": all(c.is_noop for c in plan.changes),
        "changes": {c.address: c.kind for c in plan.changes},
        "calls": dict(sorted(calls.items())), "api_calls": sum(calls.values()),
        "list_pages": calls.get("ListObjectsV2", 0),
        "ssm_calls": sum(v for k, v in calls.items()
                         if k in ("SendCommand", "GetCommandInvocation",
                                  "DescribeInstanceInformation")),
        "clients_built": clients, "planner_ssm_imported": ssm_imported,
        "plan_s": round(plan_s, 3), "list_s": round(list_s, 3),
        "list_client_cpu_s": round(list_cpu, 3),
        "list_pages_alone": dict(listing.calls).get("ListObjectsV2", 0),
        "live_api_calls": live.api_calls,
    }


def run(objects: int = OBJECTS) -> dict[str, Any]:
    with threaded_moto() as endpoint, tempfile.TemporaryDirectory() as tmp:
        spec_path = os.path.join(tmp, "trainctl.yaml")
        with open(spec_path, "w", encoding="utf-8") as f:
            f.write(SPEC)
        t0 = time.perf_counter()
        seed_objects(objects)
        seed_s = time.perf_counter() - t0
        setup = bring_in_sync(endpoint, spec_path)
        out = subprocess.run(
            [sys.executable, "-m", "bench.b5_dataset", endpoint, spec_path],
            capture_output=True, text=True, check=True, cwd=ROOT,
        )
        measured = json.loads(out.stdout.strip().splitlines()[-1])
    pages = -(-objects // 1000)
    return {
        **measured, "seed_s": round(seed_s, 3), "setup": setup,
        "expected_pages": pages,
        "target_met": (measured["all_noop"] and measured["ssm_calls"] == 0
                       and not measured["planner_ssm_imported"]
                       and measured["list_pages"] == pages),
    }


if __name__ == "__main__":
    print(json.dumps(plan_worker(sys.argv[1], sys.argv[2])))
