"""Run every benchmark, print a table, write bench/results.json.

`python -m bench [B1 B2 ...]` runs a subset.
"""

from __future__ import annotations

import importlib
import json
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

BENCHES = {
    "B1": ("bench.b1_calls", "API calls to read live state (N=100, 1000)"),
    "B2": ("bench.b2_scale", "graph + diff + JSON render at 1k/10k/100k"),
    "B3": ("bench.b3_apply", "wide apply, 100 ms per mutating call, parallelism 1 vs 10"),
    "B4": ("bench.b4_startup", "`trainctl --help` / `validate` median wall time"),
    "B5": ("bench.b5_dataset", "plan on an unchanged 10,000-object dataset"),
}


def _summary(bid: str, result: object) -> str:
    if bid == "B1":
        return "; ".join(f"N={r['n']}: {r['trainctl_calls']} calls vs {r['baseline_calls']} "
                         f"({r['ratio']}x)" for r in result)  # type: ignore[attr-defined]
    if bid == "B2":
        rows = "; ".join(f"{r['n']}: {r['seconds']} s, {r['peak_rss_mb']} MB"
                         for r in result["rows"])  # type: ignore[index]
        return f"{rows}; 10k->100k x{result['growth_10k_to_100k']}"  # type: ignore[index]
    return ", ".join(f"{k}={v}" for k, v in result.items()  # type: ignore[attr-defined]
                     if k not in ("target_met", "rows"))


def _met(result: object) -> object:
    if isinstance(result, list):
        return all(r.get("target_met") is not False for r in result)
    return result.get("target_met")  # type: ignore[attr-defined]


def main(argv: list[str]) -> int:
    chosen = [a.upper() for a in argv] or list(BENCHES)
    out_path = Path(__file__).with_name("results.json")
    results = json.loads(out_path.read_text()) if out_path.exists() else {}
    results["machine"] = {"python": platform.python_version(), "platform": platform.platform(),
                          "cpus": __import__("os").cpu_count()}
    results["date"] = datetime.now(UTC).strftime("%Y-%m-%d")
    table = Table(title="trainctl benchmarks")
    for col in ("id", "what", "result", "target met"):
        table.add_column(col)
    for bid in chosen:
        module, what = BENCHES[bid]
        result = importlib.import_module(module).run()
        results[bid] = result
        table.add_row(bid, what, _summary(bid, result), str(_met(result)))
    out_path.write_text(json.dumps(results, indent=2) + "\n")
    Console().print(table)
    print(f"wrote {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
