"""B4: median wall time of `trainctl --help` and `trainctl validate` on quickstart.

Each command runs `runs` times as a fresh process (the installed `trainctl` script, as
users run it); the median is the figure. The imports of one `validate` are checked too:
it must not load boto3, botocore or networkx (`python -X importtime`).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS = 11
HEAVY = ("boto3", "botocore", "networkx", "moto", "rich")


def _times(cmd: list[str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True, cwd=ROOT)
        times.append(time.perf_counter() - t0)
    return times


def imported(args: list[str]) -> set[str]:
    """Top-level packages a `python -m planner ARGS` run imports."""
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "planner", *args],
                         capture_output=True, text=True, check=True, cwd=ROOT)
    names = set()
    for line in out.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names


def run(runs: int = RUNS) -> dict:
    exe = str(Path(sys.executable).with_name("trainctl"))
    spec = str(ROOT / "examples" / "quickstart" / "trainctl.yaml")
    help_t = _times([exe, "--help"], runs)
    validate_t = _times([exe, "-f", spec, "validate"], runs)
    help_s = round(statistics.median(help_t), 3)
    validate_s = round(statistics.median(validate_t), 3)
    heavy = {"help": sorted(set(HEAVY) & imported(["--help"])),
             "validate": sorted(set(HEAVY) & imported(["-f", spec, "validate"]))}
    return {"help_median_s": help_s, "validate_median_s": validate_s, "runs": runs,
            "help_min_s": round(min(help_t), 3), "validate_min_s": round(min(validate_t), 3),
            "heavy_imports": heavy,
            "target_met": help_s <= 0.4 and validate_s <= 0.4}
