"""B4: median wall time of `trainctl --help` and `trainctl validate` on quickstart."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS = 11


def _median(cmd: list[str]) -> float:
    times = []
    for _ in range(RUNS):
        t0 = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True, cwd=ROOT)
        times.append(time.perf_counter() - t0)
    return round(statistics.median(times), 3)


def run() -> dict:
    exe = str(Path(sys.executable).with_name("trainctl"))
    spec = str(ROOT / "examples" / "quickstart" / "trainctl.yaml")
    help_s = _median([exe, "--help"])
    validate_s = _median([exe, "-f", spec, "validate"])
    return {"help_median_s": help_s, "validate_median_s": validate_s, "runs": RUNS,
            "target_met": help_s <= 0.4 and validate_s <= 0.4}
