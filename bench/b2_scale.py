"""B2: graph + diff + JSON render at 1k/10k/100k resources, each run in a fresh process.

Each size runs `repeat` times; the row keeps the fastest wall time (the run least
disturbed by whatever else shares the machine), the CPU time of that run, and the
highest peak RSS seen.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SIZES = (1_000, 10_000, 100_000)
REPEAT = 3


def measure(n: int, repeat: int = REPEAT) -> dict:
    runs = []
    for _ in range(repeat):
        out = subprocess.run([sys.executable, "-m", "bench.b2_worker", str(n)],
                             capture_output=True, text=True, check=True, cwd=ROOT)
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    best = min(runs, key=lambda r: r["seconds"])
    return {**best, "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
            "all_seconds": [r["seconds"] for r in runs], "runs": repeat}


def run(sizes: tuple[int, ...] = SIZES, repeat: int = REPEAT) -> dict:
    rows = [measure(n, repeat) for n in sizes]
    by_n = {r["n"]: r for r in rows}
    growth = cpu_growth = None
    if 10_000 in by_n and 100_000 in by_n:
        growth = round(by_n[100_000]["seconds"] / max(by_n[10_000]["seconds"], 1e-9), 1)
        cpu_growth = round(by_n[100_000]["cpu_seconds"]
                           / max(by_n[10_000]["cpu_seconds"], 1e-9), 1)
    ten_k = by_n.get(10_000)
    met = None
    if ten_k and growth is not None:
        met = ten_k["seconds"] <= 2 and ten_k["peak_rss_mb"] <= 250 and growth <= 12
    return {"rows": rows, "growth_10k_to_100k": growth,
            "cpu_growth_10k_to_100k": cpu_growth, "target_met": met}
