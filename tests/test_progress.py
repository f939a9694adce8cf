"""ApplyProgress on a terminal: whole statuses and addresses, and a plain summary with ids."""

from __future__ import annotations

import io
import re

from rich.console import Console

from planner.executor import Step, StepEvent
from planner.plan import Action
from planner.progress import ApplyProgress

LONG = ("mounted /dev/nvme1n1 at /data with an ext4 filesystem; the fstab entry by UUID "
        "was written and verified")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def twenty_steps() -> list[Step]:
    steps: list[Step] = []
    for i in range(10):
        steps += [(f"volume.data-{i}", Action.CREATE), (f"mount.node-{i}.data-{i}", Action.UPDATE)]
    return steps


def run_on_terminal(steps: list[Step], events: list[StepEvent], width: int = 100) -> str:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=width, height=12, color_system=None)
    with ApplyProgress(steps, console=console) as progress:
        assert progress.live
        for e in events:
            progress(e)
    return ANSI.sub("", out.getvalue())


def test_terminal_table_keeps_status_and_address_whole_and_prints_ids_after() -> None:
    steps = twenty_steps()
    events = [StepEvent(a, act, "started") for a, act in steps]
    events += [StepEvent(a, act, "finished", message=LONG, elapsed=1.25,
                         facts={"id": f"vol-0abc{k:013d}"})
               for k, (a, act) in enumerate(steps[:-1])]          # the last one still runs
    text = run_on_terminal(steps, events)

    summary_at = text.index("create volume.data-0: done")
    table, summary = text[:summary_at], text[summary_at:]
    assert "…" in table                                        # the message is what is cut
    for a, act in steps[:-1]:
        assert re.search(rf"done +{re.escape(f'{act.value} {a}')} +\d+\.\ds ", table), a
    assert re.search(r"running +update mount\.node-9\.data-9 +\d+\.\ds", table)
    lines = summary.splitlines()
    assert len(lines) == 19                                    # one per ended step, none cut
    for k, (a, act) in enumerate(steps[:-1]):
        assert lines[k] == (f"{act.value} {a}: done (1.2s) id=vol-0abc{k:013d}: {LONG}")


def test_terminal_summary_covers_failed_skipped_and_blocked_steps() -> None:
    steps: list[Step] = [("volume.a", Action.CREATE), ("attachment.i.a", Action.CREATE),
                         ("volume.b", Action.DELETE)]
    events = [
        StepEvent("volume.b", Action.DELETE, "skipped", "blocked: volume.b is persistent"),
        StepEvent("volume.a", Action.CREATE, "started"),
        StepEvent("volume.a", Action.CREATE, "failed", "no snapshot", elapsed=0.5),
        StepEvent("attachment.i.a", Action.CREATE, "skipped",
                  "skipped (upstream failed: volume.a)"),
    ]
    text = run_on_terminal(steps, events, width=60)
    tail = text.splitlines()[-3:]
    assert tail == ["create volume.a: failed (0.5s): no snapshot",
                    "create attachment.i.a: skipped (upstream failed: volume.a)",
                    "delete volume.b: blocked: volume.b is persistent"]
