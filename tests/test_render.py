"""Plan renderers (text, Markdown), the JSON plan file as goldens, and `trainctl show`.

Regenerate the golden files with `UPDATE_GOLDENS=1 pytest tests/test_render.py`.
"""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, run_cli

from planner.export import graph_from_plan
from planner.plan import (
    Action,
    Block,
    Change,
    CostSummary,
    DataLocation,
    Plan,
    PlanOptions,
    PlanWarning,
    Reason,
    ResourceType,
    Rule,
    plan_from_json,
    plan_to_json,
)
from planner.render.markdown import render_markdown
from planner.render.text import render_text

GOLDEN = Path(__file__).resolve().parent / "golden"
ANSI = "\x1b["

C, U, D, N = Action.CREATE, Action.UPDATE, Action.DELETE, Action.NOOP


def sample_plan() -> Plan:
    """Every action, a blocked persistent delete, a blocked modify-pending update,
    a replace with replace_paths, warnings and an exceeded cost limit."""
    changes = (
        Change("dataset.imagenet", ResourceType.DATASET, (N,), Reason.NO_CHANGE,
               after={"stage": "s3://acme-staging/imagenet/"}),
        Change("volume.scratch", ResourceType.VOLUME, (C,), Reason.CREATE_BECAUSE_MISSING,
               after={"size_gib": 200, "type": "gp3", "availability_zone": "us-east-1a",
                      "tags": {"team": "ml-research"}}),
        Change("volume.imagenet-cache", ResourceType.VOLUME, (U,), Reason.UPDATE_BECAUSE_DRIFT,
               id="vol-0aaaaaaaaaaaaaaa1",
               before={"size_gib": 500, "type": "gp3", "iops": 3000},
               after={"size_gib": 800, "type": "gp3", "iops": 6000},
               blocked_by=(Block(Rule.MODIFY_PENDING,
                                 "a modification of vol-0aaaaaaaaaaaaaaa1 is still optimizing; "
                                 "it can run after 2026-11-22T23:10:00Z"),)),
        Change("volume.checkpoints", ResourceType.VOLUME, (D, C),
               Reason.REPLACE_BECAUSE_CANNOT_UPDATE, id="vol-0bbbbbbbbbbbbbbb2",
               before={"size_gib": 100, "availability_zone": "us-east-1a", "type": "gp3"},
               after={"size_gib": 100, "availability_zone": "us-east-1b", "type": "gp3"},
               replace_paths=("availability_zone",)),
        Change("instance.trainer", ResourceType.INSTANCE, (C, D),
               Reason.REPLACE_BECAUSE_CANNOT_UPDATE, id="i-0ccccccccccccccc3",
               before={"instance_type": "g5.xlarge", "ami": "ami-0123456789abcdef0"},
               after={"instance_type": "g5.2xlarge", "ami": "ami-0fedcba9876543210"},
               replace_paths=("ami",)),
        Change("attachment.trainer.scratch", ResourceType.ATTACHMENT, (C,),
               Reason.ATTACH_BECAUSE_NOT_ATTACHED, after={"device": "/dev/sdg"},
               depends_on=("instance.trainer", "volume.scratch")),
        Change("mount.trainer.scratch", ResourceType.MOUNT, (C,),
               Reason.MOUNT_BECAUSE_NOT_MOUNTED,
               after={"path": "/scratch", "filesystem": "ext4"},
               depends_on=("attachment.trainer.scratch",)),
        Change("volume.old-cache", ResourceType.VOLUME, (D,), Reason.DELETE_BECAUSE_NOT_IN_SPEC,
               id="vol-0ddddddddddddddd4", before={"size_gib": 100, "type": "gp2"},
               blocked_by=(Block(Rule.PERSISTENT,
                                 "volume.old-cache is persistent; name it with --allow-delete "
                                 "to delete it"),)),
        Change("instance.old-helper", ResourceType.INSTANCE, (D,),
               Reason.DELETE_BECAUSE_NOT_IN_SPEC, id="i-0eeeeeeeeeeeeeee5",
               before={"instance_type": "t3.small"}),
    )
    return Plan(
        project="llm-finetune", region="us-east-1", created_at="2026-11-22T21:00:00Z",
        spec_digest="sha256:" + "1" * 64, live_digest="sha256:" + "2" * 64,
        changes=changes,
        warnings=(
            PlanWarning("instance.trainer", Rule.COST,
                        "hourly cost $1.21/h after apply exceeds max_hourly_usd $1.00"),
            PlanWarning(None, Rule.COST, "no spot price for g5.2xlarge; using 40% of "
                        "on-demand"),
        ),
        cost=CostSummary(hourly_usd_before=1.0, hourly_usd_after=1.2124,
                         daily_usd_after=29.0976, accumulated_usd=12.5,
                         exceeded=("max_hourly_usd",)),
        options=PlanOptions(destroy=False, targets=()),
        cost_enforced=False,
        data_locations=(
            DataLocation("imagenet", "trainer", "prewarmed-ebs", "/data/imagenet"),
            DataLocation("laion", "trainer", "direct-s3", "s3://acme-datasets/laion/"),
        ),
    )


def empty_plan() -> Plan:
    return Plan(
        project="llm-finetune", region="us-east-1", created_at="2026-11-22T21:00:00Z",
        spec_digest="sha256:" + "1" * 64, live_digest="sha256:" + "2" * 64,
        changes=(Change("volume.scratch", ResourceType.VOLUME, (N,), Reason.NO_CHANGE,
                        id="vol-0123"),),
        cost=CostSummary(hourly_usd_before=0.1, hourly_usd_after=0.1, daily_usd_after=2.4),
    )


def check_golden(name: str, actual: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDENS") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
        return
    assert path.exists(), f"missing golden {path}: run with UPDATE_GOLDENS=1 to create it"
    expected = path.read_text(encoding="utf-8")
    assert actual == expected, f"{name} differs from its golden (UPDATE_GOLDENS=1 rewrites it)"


# --- goldens -------------------------------------------------------------------------


def test_golden_text() -> None:
    check_golden("plan.txt", render_text(sample_plan(), color=False))


def test_golden_json() -> None:
    check_golden("plan.json", json.dumps(plan_to_json(sample_plan()), indent=2) + "\n")


def test_golden_json_reads_back() -> None:
    doc = json.loads((GOLDEN / "plan.json").read_text(encoding="utf-8"))
    assert plan_from_json(doc) == sample_plan()


def test_golden_markdown() -> None:
    check_golden("plan.md", render_markdown(sample_plan(), graph_from_plan(sample_plan())))


# --- text ----------------------------------------------------------------------------


def test_text_symbols_per_action() -> None:
    lines = render_text(sample_plan(), color=False).splitlines()
    assert "  + volume.scratch" in lines
    assert "  ~ volume.imagenet-cache (vol-0aaaaaaaaaaaaaaa1)" in lines
    assert "-/+ volume.checkpoints (vol-0bbbbbbbbbbbbbbb2)" in lines
    assert "+/- instance.trainer (i-0ccccccccccccccc3)" in lines
    assert "  - instance.old-helper (i-0eeeeeeeeeeeeeee5)" in lines
    assert "  - volume.old-cache (vol-0ddddddddddddddd4)" in lines


def test_text_reasons_diffs_and_replacement() -> None:
    text = render_text(sample_plan(), color=False)
    assert "# volume.scratch will be created: it does not exist yet" in text
    assert "# volume.old-cache will be deleted: it is no longer in the spec" in text
    assert re.search(r"~ size_gib = 500 -> 800\n", text)
    assert re.search(r'~ availability_zone = "us-east-1a" -> "us-east-1b"  # forces replacement',
                     text)
    # instance_type changes too, but only ami forces the replacement
    assert re.search(r'~ instance_type = "g5.xlarge" -> "g5.2xlarge"\n', text)
    assert re.search(r"  # forces replacement\n", text.split("ami")[-1])
    assert "+ size_gib          = 200" in text
    assert "(2 unchanged attributes hidden)" in text  # checkpoints: size_gib and type


def test_text_blocked_marking() -> None:
    text = render_text(sample_plan(), color=False)
    assert ("! blocked (persistent): volume.old-cache is persistent; name it with "
            "--allow-delete to delete it") in text
    assert "! blocked (modify-pending): a modification of vol-0aaaaaaaaaaaaaaa1" in text


def test_text_summary_warnings_cost() -> None:
    text = render_text(sample_plan(), color=False)
    assert "Plan: 3 to create, 0 to update, 2 to replace, 1 to delete, 2 blocked." in text
    assert "! instance.trainer (cost): hourly cost $1.21/h" in text
    assert "Cost: $1.00/h -> $1.21/h (+$0.21/h), $29.10/day after apply, $12.50" in text
    assert "! cost limit exceeded: max_hourly_usd" in text


def test_text_noop_is_counted_not_listed() -> None:
    text = render_text(sample_plan(), color=False)
    assert "dataset.imagenet" not in text
    assert "1 unchanged, not listed." in text


def test_text_no_changes() -> None:
    text = render_text(empty_plan(), color=False)
    assert "No changes. Live state matches the spec." in text
    assert "volume.scratch" not in text
    assert "Plan:" not in text


def test_text_not_applyable_when_cost_enforced() -> None:
    p = sample_plan()
    enforced = Plan(**{**p.__dict__, "cost_enforced": True})
    assert "not applyable" in render_text(enforced, color=False)
    assert "not applyable" not in render_text(p, color=False)


def test_text_no_ansi_without_color() -> None:
    assert ANSI not in render_text(sample_plan(), color=False)
    assert ANSI not in render_text(empty_plan(), color=False)


def test_text_ansi_with_color() -> None:
    colored = render_text(sample_plan(), color=True)
    assert ANSI in colored
    assert "\x1b[1;31m" in colored or "\x1b[31;1m" in colored  # bold red: blocked
    stripped = re.sub(r"\x1b\[[0-9;]*m", "", colored)
    assert stripped == render_text(sample_plan(), color=False)


def test_text_does_not_read_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "20")
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert ANSI in render_text(sample_plan(), color=True)
    assert ANSI not in render_text(sample_plan(), color=False)


def test_text_user_strings_are_not_markup() -> None:
    p = sample_plan()
    c = Change("volume.x", ResourceType.VOLUME, (C,), Reason.CREATE_BECAUSE_MISSING,
               after={"tags": {"k": "[bold]v[/bold]"}})
    text = render_text(Plan(**{**p.__dict__, "changes": (c,)}), color=True)
    assert "[bold]v[/bold]" in text


# --- markdown ------------------------------------------------------------------------


def test_markdown_sections() -> None:
    md = render_markdown(sample_plan(), None)
    assert md.startswith("## trainctl plan: `llm-finetune` in `us-east-1`\n")
    assert ("**Plan:** 3 to create, 0 to update, 2 to replace, 1 to delete, 2 blocked "
            "(1 unchanged).") in md
    deleting = md[md.index("> **Warning: this plan deletes"):].split("\n\n")[0]
    for addr in ("volume.checkpoints", "instance.trainer", "instance.old-helper"):
        assert f"`{addr}`" in deleting
    assert "forced by `availability_zone`" in deleting
    # a blocked delete is not a deletion: it is listed with the blocked changes
    assert "`volume.old-cache`" not in deleting and "`volume.scratch`" not in deleting
    blocked = md[md.index("> **Blocked: 2 changes"):].split("\n\n")[0]
    assert "`volume.old-cache`" in blocked and "blocked by `persistent`" in blocked
    assert "`volume.imagenet-cache`" in blocked
    assert "> **Caution: cost limits exceeded:** max_hourly_usd" in md
    assert ("- `-` delete `volume.old-cache`: it is no longer in the spec "
            "(**blocked**: `persistent`)") in md
    assert "`dataset.imagenet`" not in md.split("```mermaid")[0]
    assert "<details><summary>Dependency graph</summary>" in md
    mermaid = md.split("```mermaid\n")[1].split("```")[0]
    assert mermaid.startswith("flowchart LR\n")
    assert "attachment_trainer_scratch --> mount_trainer_scratch" in mermaid
    assert "class volume_old_cache act_delete_blocked" in mermaid


def test_markdown_without_changes_has_no_alert() -> None:
    md = render_markdown(empty_plan(), None)
    assert "**No changes.**" in md
    assert "Warning" not in md and "### Changes" not in md


def test_markdown_escapes_table_pipes() -> None:
    p = sample_plan()
    c = Change("volume.x", ResourceType.VOLUME, (D,), Reason.DELETE_BECAUSE_NOT_IN_SPEC,
               blocked_by=(Block(Rule.PROTECTED, "a | b\nc"),))
    md = render_markdown(Plan(**{**p.__dict__, "changes": (c,)}), None)
    assert "a \\| b c" in md


# --- `trainctl show` -----------------------------------------------------------------


@pytest.fixture
def plan_file(tmp_path: Path) -> Path:
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan_to_json(sample_plan()), indent=2))
    return path


def test_show_text(plan_file: Path) -> None:
    r = run_cli("show", str(plan_file))
    assert r.returncode == 0, r.stderr
    assert r.stdout == render_text(sample_plan(), color=False)
    assert ANSI not in r.stdout


def test_show_json_is_the_plan_file(plan_file: Path) -> None:
    r = run_cli("show", str(plan_file), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == plan_to_json(sample_plan())
    assert r.stdout == json.dumps(plan_to_json(sample_plan()), indent=2) + "\n"


def test_show_markdown(plan_file: Path) -> None:
    r = run_cli("show", str(plan_file), "--markdown")
    assert r.returncode == 0, r.stderr
    assert r.stdout == render_markdown(sample_plan(), None)
    assert "```mermaid" in r.stdout


def test_show_json_and_markdown_exclude_each_other(plan_file: Path) -> None:
    r = run_cli("show", str(plan_file), "--json", "--markdown")
    assert r.returncode != 0
    assert "Traceback" not in r.stderr


def _show_on_tty(plan_file: Path, env: dict[str, str], *args: str) -> str:
    """Run `trainctl show` with stdout on a pseudo-terminal; return what it printed."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "planner", *args, "show", str(plan_file)],
        stdout=slave, stderr=subprocess.PIPE, cwd=ROOT, env={**os.environ, **env},
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=60) == 0, proc.stderr.read() if proc.stderr else ""
    return b"".join(chunks).decode()


def test_show_colours_on_a_terminal_and_honours_no_color(plan_file: Path) -> None:
    assert ANSI in _show_on_tty(plan_file, {})
    assert ANSI not in _show_on_tty(plan_file, {"NO_COLOR": "1"})
    assert ANSI not in _show_on_tty(plan_file, {}, "--no-color")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{not json", "invalid JSON at line 1"),
        ("", "invalid JSON"),
        ("\xff\xfe garbage", "not UTF-8"),
        ('{"hello": "world"}', "no format_version"),
        ("[1, 2, 3]", "not a JSON object"),
        ('{"format_version": "2", "changes": []}', "format_version '2' is not supported"),
        ('{"format_version": "1", "project": "p"}', "not a valid plan file:"),
        ("[" * 100000, "not a plan file: JSON nested too deeply"),
    ],
    ids=["corrupt", "empty", "binary", "foreign", "list", "version", "truncated", "deep"],
)
def test_show_bad_plan_file(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "plan.json"
    if content.startswith("\xff"):
        path.write_bytes(b"\xff\xfe garbage")
    else:
        path.write_text(content)
    r = run_cli("show", str(path))
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert lines[0].startswith(f"{path}: ")
    assert expected in lines[0]
    if content.startswith('{"format_version": "1"'):
        # Schema problems: every one at once, each on its own FILE: path: message line.
        assert len(lines) == 2, r.stderr
        assert lines[1].startswith(f"{path}: (document): missing required key ")
        for key in ("region", "created_at", "spec_digest", "live_digest", "changes"):
            assert f"'{key}'" in lines[1]
    else:
        assert len(lines) == 1, r.stderr
    assert r.stdout == ""


def test_show_tampered_plan(plan_file: Path) -> None:
    doc = json.loads(plan_file.read_text())
    doc["live_digest"] = "sha256:" + "3" * 64
    plan_file.write_text(json.dumps(doc))
    r = run_cli("show", str(plan_file))
    assert r.returncode == 1
    assert r.stderr.strip().endswith("plan_id does not match its contents")


def test_show_missing_file(tmp_path: Path) -> None:
    r = run_cli("show", str(tmp_path / "nope.json"))
    assert r.returncode == 1
    assert r.stderr.strip() == f"{tmp_path / 'nope.json'}: no such plan file"
    assert "Traceback" not in r.stderr


def test_unset_values_are_hidden_and_new_ids_are_known_after_apply() -> None:
    create = Change(
        address="attachment.t.v", type=ResourceType.ATTACHMENT, actions=(Action.CREATE,),
        reason=Reason.CREATE_BECAUSE_MISSING,
        after={"device": None, "instance": "t", "instance_id": None, "volume_id": None},
    )
    plan = Plan(project="p", region="us-east-1", created_at="2026-11-22T21:00:00Z",
                spec_digest="sha256:0", live_digest="sha256:0", changes=(create,))
    text = render_text(plan, color=False)
    assert '+ instance_id = (known after apply)' in text
    assert '+ volume_id   = (known after apply)' in text
    assert "device" not in text and "null" not in text
