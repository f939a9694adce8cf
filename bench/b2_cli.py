"""B2 (whole command): `trainctl plan --live-snapshot FILE --json` and `trainctl validate`
as a user runs them, next to a bare `yaml.load(..., Loader=yaml.CSafeLoader)` of the
same file, on generated YAML specs of 1k, 10k and 100k resources.

Each round runs bare, validate and plan of one size back to back (fresh processes, wall
time from outside, stdout to /dev/null as when piped to a file); the ratios are taken
within a round, so a machine that slows down between rounds moves all three alike. The
figure is the median over the rounds; every round is kept.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.synthetic import NODES_PER_GROUP, live_of, spec_yaml

ROOT = Path(__file__).resolve().parent.parent
SIZES = (1_000, 10_000, 100_000)
ROUNDS = 3
BARE = ("import sys, yaml\n"
        "with open(sys.argv[1], encoding='utf-8') as f:\n"
        "    yaml.load(f, Loader=yaml.CSafeLoader)\n")


def _files(folder: Path, n: int) -> tuple[Path, Path]:
    from planner.live import live_to_json
    from planner.loader import load_spec

    groups = max(1, n // NODES_PER_GROUP)
    spec_file = folder / f"spec-{n}.yaml"
    spec_file.write_text(spec_yaml(groups), encoding="utf-8")
    snapshot = folder / f"live-{n}.json"
    snapshot.write_text(json.dumps(live_to_json(live_of(groups, load_spec(str(spec_file))))))
    return spec_file, snapshot


def _wall(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=True,
                   cwd=ROOT)
    return time.perf_counter() - t0


def measure(n: int, folder: Path, rounds: int = ROUNDS) -> dict:
    spec_file, snapshot = _files(folder, n)
    exe = str(Path(sys.executable).with_name("trainctl"))
    commands = {
        "bare": [sys.executable, "-c", BARE, str(spec_file)],
        "validate": [exe, "-f", str(spec_file), "validate"],
        "plan": [exe, "-f", str(spec_file), "plan", "--live-snapshot", str(snapshot),
                 "--json"],
    }
    runs = [{name: round(_wall(cmd), 3) for name, cmd in commands.items()}
            for _ in range(rounds)]
    med = {name: statistics.median(r[name] for r in runs) for name in commands}
    return {"n": n, "yaml_bytes": spec_file.stat().st_size,
            "bare_s": med["bare"], "validate_s": med["validate"], "plan_s": med["plan"],
            "validate_over_bare": round(statistics.median(
                r["validate"] / r["bare"] for r in runs), 2),
            "plan_over_bare": round(statistics.median(r["plan"] / r["bare"] for r in runs), 2),
            "rounds": runs}


def run(sizes: tuple[int, ...] = SIZES, rounds: int = ROUNDS, *, core: bool = True) -> dict:
    """The whole commands; with `core`, also the planning core alone (bench.b2_scale)."""
    with tempfile.TemporaryDirectory(prefix="trainctl-b2cli-") as tmp:
        rows = [measure(n, Path(tmp), rounds) for n in sizes]
    by_n = {r["n"]: r for r in rows}
    growth: dict[str, list[float]] = {}
    if 10_000 in by_n and 100_000 in by_n:
        small, big = by_n[10_000]["rounds"], by_n[100_000]["rounds"]
        growth = {cmd: [round(b[cmd] / a[cmd], 1) for a, b in zip(small, big, strict=True)]
                  for cmd in ("plan", "validate", "bare")}
    ten_k = by_n.get(10_000)
    met = None
    if ten_k and growth:
        met = (ten_k["plan_over_bare"] <= 4 and ten_k["validate_over_bare"] <= 3
               and max(growth["plan"]) <= 12 and max(growth["validate"]) <= 12)
    out = {"rows": rows, "growth_10k_to_100k": growth, "target_met": met}
    if core:
        from bench import b2_scale

        out["core"] = b2_scale.run(sizes)
        if met is not None and out["core"]["target_met"] is not None:
            out["target_met"] = met and out["core"]["target_met"]
    return out
