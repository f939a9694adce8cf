"""B6: the data plane against the raw tools.

trainctl's dataset sync step, as apply runs it on the emulator (`steps.sync_dataset`
through the LocalRunner: sync.sh with its checks, into an emulated instance's sandbox),
against a bare `s5cmd cp` and a bare `s5cmd sync` of the same objects from the same
emulated S3 into a fresh folder, in one run; the same for the aws CLI fallback
(`aws s3 cp --recursive`, `aws s3 sync`). Two shapes: many small objects, a few big
ones. Then the no-op: the step again on the unchanged dataset copies nothing and costs
about one listing (`s5cmd ls` / `aws s3 ls --recursive` of the prefix, timed beside it).

The emulated S3 runs on a thread of this process (objects are seeded straight into its
store); while a command runs this process only waits on it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.emulator import REGION, threaded_moto

BUCKET = "b6-datasets"
SHAPES = {"small": (10_000, 4 * 1024), "large": (8, 64 * 1024 * 1024)}
TOOLS = ("s5cmd", "aws")


def seed(prefix: str, count: int, size: int) -> None:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    s3 = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    if BUCKET not in s3.buckets:
        s3.create_bucket(BUCKET, REGION)
    block = os.urandom(min(size, 1024 * 1024))
    for i in range(count):
        body = (block * (size // len(block) + 1))[:size - 8] + b"%08d" % i
        s3.put_object(BUCKET, f"{prefix}{i // 100:03d}/{i:06d}.bin", body)


class _Runner:
    """planner.ssm.LocalRunner with PATH limited to one of the two tools."""

    def __init__(self, sandbox_root: str, endpoint: str, tool_dir: str):
        from planner.ssm import LocalRunner

        class Only(LocalRunner):
            def _environ(self, sandbox: str) -> dict[str, str]:
                env = super()._environ(sandbox)
                env["PATH"] = os.pathsep.join([tool_dir, "/usr/local/bin", "/usr/bin", "/bin"])
                return env

        self.runner = Only.for_endpoint(sandbox_root, endpoint, REGION)


def _tool_dir(root: Path, tool: str) -> str:
    from planner.ssm import venv_bin

    d = root / f"bin-{tool}"
    d.mkdir(exist_ok=True)
    (d / tool).symlink_to(Path(venv_bin()) / tool)
    return str(d)


def _timed(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return round(time.perf_counter() - t0, 2)


def _raw_commands(tool: str, uri: str, dest: str) -> dict[str, list[str]]:
    from planner.ssm import venv_bin

    exe = os.path.join(venv_bin(), tool)
    if tool == "s5cmd":
        return {"cp": [exe, "cp", uri + "*", dest + "/"],
                "sync": [exe, "sync", uri + "*", dest + "/"],
                "list": [exe, "ls", uri + "*"]}
    return {"cp": [exe, "s3", "cp", "--recursive", "--no-progress", uri, dest + "/"],
            "sync": [exe, "s3", "sync", "--no-progress", uri, dest + "/"],
            "list": [exe, "s3", "ls", "--recursive", uri]}


def measure(tool: str, shape: str, endpoint: str, root: Path) -> dict[str, Any]:
    from planner.dataplane import steps
    from planner.ssm import emulator_env

    count, size = SHAPES[shape]
    uri = f"s3://{BUCKET}/{shape}/"
    env = {**os.environ, **emulator_env(endpoint, REGION)}
    runner = _Runner(str(root / f"sandbox-{tool}-{shape}"), endpoint,
                     str(root / f"bin-{tool}")).runner
    iid = "i-b6"

    def step() -> tuple[float, Any]:
        t0 = time.perf_counter()
        r = steps.sync_dataset(runner, iid, uri=uri, path="/data/ds", expect_objects=count,
                               expect_bytes=count * size, timeout=3600)
        if not r.ok:
            raise RuntimeError(f"sync step failed: {r.output[-2000:]}")
        return round(time.perf_counter() - t0, 2), r

    raw = _raw_commands(tool, uri, str(root / "raw"))
    out: dict[str, Any] = {"tool": tool, "shape": shape, "objects": count, "object_bytes": size}
    for name in ("cp", "sync"):
        shutil.rmtree(root / "raw", ignore_errors=True)
        out[f"raw_{name}_s"] = _timed(raw[name], env)
    shutil.rmtree(root / "raw", ignore_errors=True)
    out["trainctl_s"], first = step()
    out["copied"] = first.data.get("copied")
    out["noop_s"], again = step()
    out["noop_copied"] = again.data.get("copied")
    out["list_s"] = _timed(raw["list"], env)
    shutil.rmtree(runner.sandbox(iid), ignore_errors=True)
    best = min(out["raw_cp_s"], out["raw_sync_s"])
    out["trainctl_over_raw"] = round(out["trainctl_s"] / best, 2)
    out["noop_over_list"] = round(out["noop_s"] / max(out["list_s"], 1e-9), 2)
    out["target_met"] = out["trainctl_over_raw"] <= 1.15 and out["noop_copied"] == 0
    return out


def run(shapes: tuple[str, ...] = tuple(SHAPES), tools: tuple[str, ...] = TOOLS,
        sizes: dict[str, tuple[int, int]] | None = None) -> list[dict[str, Any]]:
    if sizes:
        SHAPES.update(sizes)
    rows = []
    with tempfile.TemporaryDirectory(prefix="trainctl-b6-") as tmp, threaded_moto() as ep:
        root = Path(tmp)
        for tool in tools:
            _tool_dir(root, tool)
        for shape in shapes:
            count, size = SHAPES[shape]
            seed(f"{shape}/", count, size)
            for tool in tools:
                rows.append(measure(tool, shape, ep, root))
    return rows
