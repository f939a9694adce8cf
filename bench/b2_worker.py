"""One B2 measurement in a fresh process: graph + diff + JSON render, time and peak RSS."""

from __future__ import annotations

import json
import resource
import sys
import time

from bench.synthetic import NODES_PER_GROUP, NOW, live_of, spec_of
from planner.diff import diff
from planner.graph import build_graph
from planner.live import live_from_json, live_to_json
from planner.plan import plan_to_json


def main(n: int) -> None:
    groups = max(1, n // NODES_PER_GROUP)
    spec = spec_of(groups)
    snapshot = json.dumps(live_to_json(live_of(groups)))   # what --live-snapshot reads
    t0 = time.perf_counter()
    live = live_from_json(json.loads(snapshot))
    graph = build_graph(spec)
    plan = diff(spec, graph, live, now=NOW)
    out = json.dumps(plan_to_json(plan))
    elapsed = time.perf_counter() - t0
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"n": n, "nodes": graph.number_of_nodes(), "changes": len(plan.changes),
                      "seconds": round(elapsed, 3), "peak_rss_mb": round(rss_mb, 1),
                      "json_bytes": len(out)}))


if __name__ == "__main__":
    main(int(sys.argv[1]))
