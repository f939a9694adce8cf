"""One B2 measurement in a fresh process: graph + diff + JSON render, time and peak RSS.

What `trainctl plan --live-snapshot FILE --json` does after loading the spec: parse the
snapshot, build the graph, diff, render the plan file's JSON. The spec is built in memory
(YAML loading is not part of B2), the snapshot is serialised before the clock starts.
The plan JSON is rendered compact; `--json` and `-o` indent it (see docs/benchmarks.md).
"""

from __future__ import annotations

import json
import resource
import sys
import time

from bench.synthetic import NODES_PER_GROUP, NOW, live_of, spec_of
from planner.diff import diff
from planner.gcpause import gc_paused
from planner.graph import build_graph
from planner.live import live_from_json, live_to_json
from planner.plan import plan_to_json


def peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM). Not ru_maxrss: after fork + exec Linux keeps the
    parent's high-water mark there, so a worker started by a big parent reads big."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(n: int) -> None:
    groups = max(1, n // NODES_PER_GROUP)
    spec = spec_of(groups)
    snapshot = json.dumps(live_to_json(live_of(groups, spec)))   # what --live-snapshot reads
    rss_before_mb = peak_rss_mb()
    t0, c0 = time.perf_counter(), time.process_time()
    with gc_paused():            # as the plan command runs (planner.commands.plan)
        live = live_from_json(json.loads(snapshot))
        graph = build_graph(spec)
        plan = diff(spec, graph, live, now=NOW)
        out = json.dumps(plan_to_json(plan))
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    rss_mb = peak_rss_mb()
    print(json.dumps({"n": n, "nodes": graph.number_of_nodes(), "changes": len(plan.changes),
                      "summary": plan.summary, "seconds": round(elapsed, 3),
                      "cpu_seconds": round(cpu, 3), "peak_rss_mb": round(rss_mb, 1),
                      "rss_before_mb": round(rss_before_mb, 1), "json_bytes": len(out)}))


if __name__ == "__main__":
    main(int(sys.argv[1]))
