"""`trainctl validate` in a real subprocess: output, exit codes, no tracebacks, no boto3."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import EXAMPLES, ROOT, run_cli

LINE = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+):(?P<col>\d+): (?P<path>\S+): (?P<msg>.+)$")

BAD = {
    "syntax": "version: 1\nproject: x\n  region: [\n",
    "duplicate": "version: 1\nproject: a\nproject: b\nregion: us-east-1\n",
    "unknown-key": "version: 1\nproject: a\nregion: us-east-1\nvolume: {}\n",
    "wrong-type": "version: 1\nproject: a\nregion: us-east-1\nvolumes: {v: {size_gib: x}}\n",
    "enum": ("version: 1\nproject: a\nregion: us-east-1\n"
             "volumes: {v: {size_gib: 1, type: gp9, availability_zone: us-east-1a}}\n"),
    "s3": "version: 1\nproject: a\nregion: us-east-1\nstate: 's3://b/$(reboot)'\n",
    "empty": "",
    "not-mapping": "- 1\n",
    "bomb": "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
        f"{c}: &{c} [{','.join([f'*{p}'] * 9)}]\n"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)),
}


def _write(tmp_path: Path, text: str) -> Path:
    f = tmp_path / "trainctl.yaml"
    f.write_text(text)
    return f


def test_validate_ok(tmp_path: Path) -> None:
    src = EXAMPLES / "quickstart" / "trainctl.yaml"
    r = run_cli("-f", str(src), "validate")
    assert (r.returncode, r.stdout, r.stderr) == (
        0, f"OK: {src} (2 volumes, 1 instance, 1 dataset)\n", "")


def test_validate_reads_trainctl_yaml_in_the_current_folder() -> None:
    r = run_cli("validate", cwd=EXAMPLES / "multi-node")
    assert (r.returncode, r.stdout) == (
        0, "OK: trainctl.yaml (4 volumes, 4 instances, 1 dataset)\n")


@pytest.mark.parametrize("case", sorted(BAD))
def test_invalid_specs_exit_1_with_located_lines_and_no_traceback(tmp_path: Path,
                                                                  case: str) -> None:
    f = _write(tmp_path, BAD[case])
    r = run_cli("-f", str(f), "validate")
    assert r.returncode == 1
    assert "Traceback" not in r.stdout + r.stderr
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert lines
    for line in lines:
        m = LINE.match(line)
        assert m, line
        assert m["file"] == str(f)


def test_all_errors_at_once_on_the_command_line(tmp_path: Path) -> None:
    f = _write(tmp_path, "version: 1\nproject: A\nregion: us-east-1\n"
                         "volumes:\n  v: {size_gib: 0}\nextra: 1\n")
    r = run_cli("-f", str(f), "validate")
    assert r.returncode == 1
    assert r.stderr.splitlines() == [
        f"{f}:2:10: project: must be 1-40 characters of a-z, 0-9 and '-', starting with a "
        "letter or digit; got 'A'",
        f"{f}:5:3: volumes.v: no availability_zone here and no defaults.availability_zone",
        f"{f}:5:17: volumes.v.size_gib: must be at least 1; got 0",
        f"{f}:6:1: extra: unknown key 'extra' (expected one of: cost, datasets, defaults, "
        "instances, project, region, state, transfer, version, volumes)"]


def test_oversized_file_on_the_command_line(tmp_path: Path) -> None:
    f = tmp_path / "big.yaml"
    f.write_bytes(b"version: 1\n" + b"#" * (40 * 1024 * 1024) + b"\n")
    r = run_cli("-f", str(f), "validate")
    assert (r.returncode, r.stderr) == (
        1, f"{f}:1:1: (document): file is too large (40.0 MiB; the limit is 32 MiB)\n")


@pytest.mark.parametrize("target", ["missing.yaml", "."])
def test_unreadable_file(tmp_path: Path, target: str) -> None:
    r = run_cli("-f", target, "validate", cwd=tmp_path)
    assert r.returncode == 1
    assert r.stderr.startswith(f"{target}: cannot read the spec: ")
    assert "Traceback" not in r.stderr


def _modules_after(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    code = (
        "import sys\n"
        "from planner.cli import main\n"
        "try:\n"
        f"    main({args!r})\n"
        "except SystemExit as e:\n"
        "    print('exit', e.code)\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore'))\n"
        "assert not heavy, heavy\n"
    )
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True,
                          text=True, timeout=120, env={"PYTHONPATH": str(ROOT),
                                                       "PATH": "/usr/bin:/bin"})


@pytest.mark.parametrize(("args", "exit_code"), [
    (["--help"], 0),
    (["-f", str(EXAMPLES / "quickstart" / "trainctl.yaml"), "validate"], 0),
    (["-f", "missing.yaml", "validate"], 1),
])
def test_help_and_validate_do_not_import_boto3(tmp_path: Path, args: list[str],
                                                exit_code: int) -> None:
    r = _modules_after(args, tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == f"exit {exit_code}"
