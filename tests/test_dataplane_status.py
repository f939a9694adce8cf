"""The status line: only a well-formed final "ok" is a success."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from planner.dataplane import scripts
from planner.dataplane.status import ScriptResult, parse_status, truncate_output

OK = 'TRAINCTL_STATUS {"status": "ok", "objects": 3}'


@pytest.mark.parametrize("output", [
    "",
    None,
    "   \n\n",
    "garbage\nmore garbage",
    "TRAINCTL_STATUS",
    "TRAINCTL_STATUS ",
    'TRAINCTL_STATUS {"status": "ok"',                 # truncated JSON
    'TRAINCTL_STATUS {"status": "ok", "x": [1, 2',
    "TRAINCTL_STATUS not json",
    'TRAINCTL_STATUS ["ok"]',
    'TRAINCTL_STATUS {"objects": 3}',                  # no status field
    'TRAINCTL_STATUS {"status": "OK"}',
    'TRAINCTL_STATUS {"status": "success"}',
    'TRAINCTL_STATUS {"status": true}',
    ' TRAINCTL_STATUS {"status": "ok"}',                # not at the start of a line
    'echo TRAINCTL_STATUS {"status": "ok"}',
    'TRAINCTL_STATUS{"status": "ok"}',
])
def test_unparsable_is_unknown_never_ok(output: str | None) -> None:
    r = parse_status(output)
    assert r.state == "unknown"
    assert not r.ok
    assert r.output == (output or "")
    assert r.data["reason"]


def test_ok_line_with_fields() -> None:
    r = parse_status("copying...\n" + OK + "\n")
    assert r.ok and r.state == "ok"
    assert r.data == {"objects": 3}


def test_last_status_line_wins() -> None:
    out = OK + "\nmore\nTRAINCTL_STATUS {\"status\": \"failed\", \"error\": \"boom\"}\ntail"
    r = parse_status(out)
    assert r.state == "failed" and r.data["error"] == "boom"
    out2 = 'TRAINCTL_STATUS {"status": "failed"}\n' + OK
    assert parse_status(out2).ok


def test_ok_then_broken_line_is_unknown() -> None:
    assert parse_status(OK + '\nTRAINCTL_STATUS {"status": "ok"').state == "unknown"


def test_ok_then_nonzero_exit_is_failed() -> None:
    r = parse_status(OK, exit_code=3)
    assert r.state == "failed" and "3" in r.data["error"]
    assert parse_status(OK, exit_code=0).ok
    assert parse_status('TRAINCTL_STATUS {"status": "failed"}', exit_code=1).state == "failed"


def test_result_is_frozen_and_explains_itself() -> None:
    r = ScriptResult("failed", {"error": "disk full", "line": 7, "command": "cp a b"}, "x" * 10)
    with pytest.raises(AttributeError):
        r.state = "ok"  # type: ignore[misc]
    msg = r.message()
    assert "disk full" in msg and "line 7" in msg and "cp a b" in msg
    assert ScriptResult("ok").message() == "ok"


def test_truncate_output_keeps_head_and_tail() -> None:
    text = "HEAD" + "m" * 10_000 + "TAIL"
    cut = truncate_output(text, 400)
    assert len(cut) <= 400
    assert cut.startswith("HEAD") and cut.endswith("TAIL")
    assert "characters cut" in cut
    assert truncate_output("short", 400) == "short"
    assert truncate_output(text, 0) == ""


def _run_lib_script(body: str, env: dict[str, str] | None = None
                    ) -> subprocess.CompletedProcess[str]:
    script = "#!/usr/bin/env bash\nset -euo pipefail\n" + scripts._lib() + body
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30,
                          env={**os.environ, **(env or {})})


@pytest.mark.parametrize("body", ["finish_ok\n", "fail boom\n", "false\n", "exit 0\n",
                                  "echo $UNSET_H7\n", "kill -TERM $$\nsleep 5\n"])
def test_scripts_leave_no_temporary_files(tmp_path: Path, body: str) -> None:
    p = _run_lib_script(body, {"TMPDIR": str(tmp_path)})
    assert parse_status(p.stdout, p.returncode).state == ("ok" if body == "finish_ok\n"
                                                          else "failed")
    assert list(tmp_path.iterdir()) == []


def test_script_printing_ok_then_failing_is_not_ok() -> None:
    p = _run_lib_script("trainctl_emit ok\nfalse\n")
    r = parse_status(p.stdout)
    assert p.returncode != 0
    assert r.state == "failed"
    assert r.data["command"] == "false"
    assert parse_status(p.stdout, p.returncode).state == "failed"


def test_script_stopping_without_status_reports_failed() -> None:
    for body in ("exit 0\n", "echo $UNSET_VARIABLE_H7\n", "exit 4\n"):
        p = _run_lib_script(body)
        r = parse_status(p.stdout, p.returncode)
        assert r.state == "failed", (body, p.stdout)


def test_failing_command_is_reported_with_line_and_command() -> None:
    p = _run_lib_script("echo before\nls /nonexistent-h7-dir\nfinish_ok\n")
    r = parse_status(p.stdout)
    assert r.state == "failed"
    assert r.data["command"] == "ls /nonexistent-h7-dir"
    assert r.data["exit_code"] == 2
    assert isinstance(r.data["line"], int)


def test_status_json_escapes_every_character() -> None:
    nasty = 'q"uo\\te\nnew\tline\rcr\x01\x02\x1f end $(x) `y` \'z\' é ✓'
    body = ("field_s value " + scripts.quote_value(nasty) + "\nfield_n count 42\n"
            "field_n notnum 007\nfield_b flag true\nfinish_ok\n")
    p = _run_lib_script(body)
    assert p.returncode == 0, p.stdout + p.stderr
    r = parse_status(p.stdout)
    assert r.ok
    assert r.data == {"value": nasty, "count": 42, "notnum": "007", "flag": True}
    line = [ln for ln in p.stdout.splitlines() if ln.startswith("TRAINCTL_STATUS ")][-1]
    assert json.loads(line.split(" ", 1)[1])["value"] == nasty


# --- "refused": a safety refusal is a failure (issue 10, item 3) ----------------------------

def test_refused_is_a_failure_never_a_success() -> None:
    line = 'TRAINCTL_STATUS {"status": "refused", "error": "e", "detail": "d"}'
    r = parse_status(line, exit_code=1)
    assert r.state == "refused" and not r.ok
    assert r.message() == "refused: e (d)\n--- output ---\n" + line
    assert not parse_status(line, exit_code=0).ok
    assert not parse_status(line).ok


def test_refused_through_ssm_stays_refused() -> None:
    from planner.aws.ssm import AwsSsm

    out = 'TRAINCTL_STATUS {"status": "refused", "error": "device holds data"}\n'
    r = AwsSsm._result({"Status": "Failed", "StandardOutputContent": out, "ResponseCode": 1})
    assert r.state == "refused" and not r.ok


def test_a_script_that_refuses_ends_with_that_status(tmp_path: Path) -> None:
    from test_dataplane_support import BashTransport

    from planner.dataplane import steps

    t = BashTransport(tmp_path / "sandbox")
    r = steps.mount(t, "i-1", volume_id="vol-0123456789abcdef0", device="/dev/sdf",
                    path="/data", read_only=False, filesystem="ext4", may_format=False)
    assert r.state == "refused", r.output
    assert r.data["error"] == "device holds data but no known filesystem"
    assert r.output.count("TRAINCTL_STATUS") == 1       # the exit trap adds no other line
    assert not (t.sandbox("i-1") / "data").exists()
