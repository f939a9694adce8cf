"""Run every benchmark, print a table, write bench/results.json.

`python -m bench [B1 B2 ...]` runs a subset.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

BENCHES = {
    "B1": ("bench.b1_calls", "API calls to read live state (N=100, 1000)"),
    "B2": ("bench.b2_cli", "`plan --live-snapshot --json` / `validate` vs a bare CSafeLoader "
                           "load, 1k/10k/100k (and the planning core alone)"),
    "B3": ("bench.b3_apply", "wide apply, 100 ms per mutating call, parallelism 1 vs 10"),
    "B4": ("bench.b4_startup", "`trainctl --help` / `validate` median wall time"),
    "B5": ("bench.b5_dataset", "plan on an unchanged 10,000-object dataset"),
    "B6": ("bench.b6_dataplane", "dataset sync step vs bare s5cmd / aws CLI, "
                                 "10,000 x 4 KiB and 8 x 64 MiB, and the no-op"),
    "B7": ("bench.b7_demo_apply", "the demo's apply end to end, 50 ms per API call, vs the "
                                  "critical path"),
}


def _summary(bid: str, r: Any) -> str:
    if bid == "B1":
        return "; ".join(f"N={x['n']}: {x['trainctl_calls']} calls (AWS: {x['aws_calls']}) vs "
                         f"{x['baseline_calls']} one-per-resource ({x['ratio']}x)" for x in r)
    if bid == "B2":
        rows = "; ".join(f"{x['n']:,}: plan {x['plan_s']} s ({x['plan_over_bare']}x bare), "
                         f"validate {x['validate_s']} s ({x['validate_over_bare']}x)"
                         for x in r["rows"])
        growth = r["growth_10k_to_100k"]
        line = rows + (f"; 10k->100k plan x{growth['plan']}" if growth else "")
        core = r.get("core")
        if core:
            line += "; core " + ", ".join(f"{x['n']:,}: {x['seconds']} s" for x in core["rows"])
        return line
    if bid == "B3":
        line = (f"{r['steps']} steps: p=1 {r['serial_s']} s, p={r['parallelism']} "
                f"{r['parallel_s']} s (x{r['speedup']}); bound {r['lower_bound_s']} s "
                f"(x{r['parallel_over_bound']}); emulator-bound max x{r['emulator_bound_speedup']}")
        every = r.get("every_call_delayed")
        if every:
            line += (f"; every call delayed: {every['serial_s']} s -> {every['parallel_s']} s "
                     f"(x{every['speedup']})")
        return line
    if bid == "B4":
        return f"--help {r['help_median_s']} s, validate {r['validate_median_s']} s (median)"
    if bid == "B5":
        return (f"{r['objects']:,} objects: all no-op {r['all_noop']}, SSM calls "
                f"{r['ssm_calls']}, ListObjectsV2 pages {r['list_pages']}, listing "
                f"{r['list_s']} s, plan {r['plan_s']} s, {r['api_calls']} API calls")
    if bid == "B6":
        return "; ".join(f"{x['tool']} {x['objects']:,} x {x['object_bytes'] // 1024} KiB: "
                         f"{x['trainctl_s']} s vs cp {x['raw_cp_s']} / sync {x['raw_sync_s']} s "
                         f"({x['trainctl_over_raw']}x), no-op {x['noop_s']} s, "
                         f"{x['noop_copied']} copied" for x in r)
    if bid == "B7":
        types = ", ".join(f"{k} {v['seconds']} s" for k, v in r["by_step_type"].items())
        return (f"apply {r['apply_s']} s ({r['steps']} steps: {types}); critical path "
                f"{r['critical_path_measured_s']} s measured, {r['critical_path_injected_s']} s "
                f"of injected latency")
    return json.dumps(r)[:200]


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as f:
        model = next((line.split(":", 1)[1].strip() for line in f
                      if line.startswith("model name")), "")
    return {"python": platform.python_version(), "platform": platform.platform(),
            "cpus": os.cpu_count(), "cpu_model": model}


def _met(result: object) -> object:
    if isinstance(result, list):
        return all(r.get("target_met") is not False for r in result)
    return result.get("target_met")  # type: ignore[attr-defined]


def _tag(met: object) -> str:
    if met is None:
        return "-"
    return "met" if met else "MISSED"


def main(argv: list[str]) -> int:
    chosen = [a.upper() for a in argv] or list(BENCHES)
    unknown = [b for b in chosen if b not in BENCHES]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(BENCHES)}",
              file=sys.stderr)
        return 2
    out_path = Path(__file__).with_name("results.json")
    results = json.loads(out_path.read_text()) if out_path.exists() else {}
    results["machine"] = machine()
    results["date"] = datetime.now(UTC).strftime("%Y-%m-%d")
    table = Table(title="trainctl benchmarks")
    for col in ("id", "what", "result", "target met"):
        table.add_column(col)
    for bid in chosen:
        module, what = BENCHES[bid]
        print(f"running {bid}: {what} ...", file=sys.stderr, flush=True)
        result = importlib.import_module(module).run()
        results[bid] = result
        table.add_row(bid, what, _summary(bid, result), _tag(_met(result)))
        out_path.write_text(json.dumps(results, indent=2) + "\n")    # after each benchmark
    out_path.write_text(json.dumps(results, indent=2) + "\n")
    Console().print(table)
    print(f"wrote {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
