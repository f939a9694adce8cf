"""B2: graph + diff + JSON render at 1k/10k/100k resources, each in a fresh process."""

from __future__ import annotations

import json
import subprocess
import sys

SIZES = (1_000, 10_000, 100_000)


def run(sizes: tuple[int, ...] = SIZES) -> dict:
    rows = []
    for n in sizes:
        out = subprocess.run([sys.executable, "-m", "bench.b2_worker", str(n)],
                             capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    by_n = {r["n"]: r for r in rows}
    growth = None
    if 10_000 in by_n and 100_000 in by_n:
        growth = round(by_n[100_000]["seconds"] / max(by_n[10_000]["seconds"], 1e-9), 1)
    ten_k = by_n.get(10_000)
    met = None
    if ten_k and growth is not None:
        met = ten_k["seconds"] <= 2 and ten_k["peak_rss_mb"] <= 250 and growth <= 12
    return {"rows": rows, "growth_10k_to_100k": growth, "target_met": met}
