"""`make bench` cannot rot: every benchmark runs at a tiny size and its structural facts
hold (call counts, plan shapes, no SSM during plan). Never a timing assert."""

from __future__ import annotations

import pytest

from bench import (
    b1_calls,
    b2_cli,
    b2_scale,
    b3_apply,
    b4_startup,
    b5_dataset,
    b6_dataplane,
    b7_demo_apply,
)
from bench.__main__ import _summary

pytestmark = pytest.mark.slow


def test_b1_reads_in_constant_calls() -> None:
    (row,) = b1_calls.run((10,))
    assert (row["volumes"], row["instances"]) == (5, 5)
    assert row["baseline_calls"] == 10                   # one describe per resource
    assert row["trainctl_calls"] == row["aws_calls"] <= 10
    by_op = row["calls_by_operation"]
    assert by_op["DescribeVolumes"] == by_op["DescribeInstances"] == 1
    assert max(by_op.values()) == 1                      # nothing per resource
    assert f"N=10: {row['trainctl_calls']} calls" in _summary("B1", [row])


def test_b1_aws_page_arithmetic() -> None:
    assert b1_calls.aws_calls(4, 500, 500) == 4
    assert b1_calls.aws_calls(4, 1000, 1000) == 5
    assert b1_calls.aws_calls(4, 1001, 2500) == 8


def test_b2_plans_a_synthetic_snapshot() -> None:
    result = b2_scale.run((100,), repeat=1)
    (row,) = result["rows"]
    assert row["nodes"] == 100
    # a quarter of the groups missing, a quarter drifted, one orphan volume
    assert row["summary"] == {"create": 24, "update": 12, "replace": 0, "delete": 1,
                              "no-op": 64, "blocked": 0}
    assert row["json_bytes"] > 0 and row["peak_rss_mb"] > 0
    assert result["growth_10k_to_100k"] is None and result["target_met"] is None


def test_b2_times_the_whole_commands() -> None:
    result = b2_cli.run((100,), rounds=1, core=False)
    (row,) = result["rows"]
    assert row["n"] == 100 and row["yaml_bytes"] > 0
    assert len(row["rounds"]) == 1 and set(row["rounds"][0]) == {"bare", "validate", "plan"}
    assert row["plan_s"] > 0 and row["validate_over_bare"] > 0
    assert result["growth_10k_to_100k"] == {} and result["target_met"] is None
    assert "100: plan " in _summary("B2", result)


def test_b3_wide_apply_on_the_emulator() -> None:
    r = b3_apply.run(instances=2, volumes=4, delay=0.01, repeat=1,
                     repeat_parallel=1, every_call=False)
    assert r["plan"] == {"create": 10} and r["steps"] == 10
    assert r["delayed_calls"] == 10                      # one mutating call per step
    assert r["calls_per_run"]["CreateVolume"] == 4
    assert r["calls_per_run"]["RunInstances"] == 2
    assert r["calls_per_run"]["AttachVolume"] == 4
    assert r["ssm_runs"] == 0                            # no mount steps in the plan
    assert r["replan_changes_after"] == 0                # applied: nothing left to do
    assert len(r["critical_path"]) == 2 and r["critical_path"][-1].startswith(
        "create attachment.")
    assert r["lower_bound_s"] >= r["critical_path_s"] > 0
    assert "every_call_delayed" not in r
    assert "10 steps" in _summary("B3", r)


def test_b3_latency_hook_only_delays_mutating_calls() -> None:
    assert b3_apply.is_mutating("CreateVolume") and b3_apply.is_mutating("RunInstances")
    assert b3_apply.is_mutating("AttachVolume") and b3_apply.is_mutating("TerminateInstances")
    assert not b3_apply.is_mutating("DescribeVolumes")
    spec = b3_apply.wide_spec(8, 40)
    assert len(spec.instances) == 8 and len(spec.volumes) == 40
    assert sum(len(i.mounts) for i in spec.instances.values()) == 40


def test_b4_startup_imports_nothing_heavy() -> None:
    r = b4_startup.run(runs=1)
    assert r["heavy_imports"] == {"help": [], "validate": []}
    assert r["help_median_s"] > 0 and r["validate_median_s"] > 0


def test_b5_unchanged_dataset_plans_no_op_without_ssm() -> None:
    r = b5_dataset.run(50)
    assert r["setup"]["first_plan"] == {"instance.trainer": "create",
                                        "sync.trainer.ds": "create"}
    assert r["setup"]["digest_tag"].startswith("ds=sha256:")
    assert r["all_noop"] and r["changes"] == {"instance.trainer": "no-op",
                                              "sync.trainer.ds": "no-op"}
    assert r["objects"] == 50 and r["list_pages"] == r["expected_pages"] == 1
    assert r["ssm_calls"] == 0 and not r["planner_ssm_imported"]
    assert "ssm" not in r["clients_built"]
    assert r["target_met"] is True
    assert "SSM calls 0" in _summary("B5", r)


def test_b6_sync_step_against_the_raw_tools() -> None:
    rows = b6_dataplane.run(sizes={"small": (20, 1024), "large": (1, 1024 * 1024)})
    assert [(r["tool"], r["shape"]) for r in rows] == [
        ("s5cmd", "small"), ("aws", "small"), ("s5cmd", "large"), ("aws", "large")]
    for r in rows:
        assert r["copied"] == r["objects"] and r["noop_copied"] == 0
        assert r["raw_cp_s"] > 0 and r["raw_sync_s"] > 0 and r["trainctl_over_raw"] > 0
    assert "s5cmd 20 x 1 KiB" in _summary("B6", rows)


def test_b7_demo_apply_by_step_type() -> None:
    r = b7_demo_apply.run(delay=0.01)
    assert r["dataset_objects"] > 0 and r["files_in_sandbox"] >= r["dataset_objects"]
    assert set(r["by_step_type"]) >= {"create volume", "create instance", "create prewarm",
                                      "create attachment", "create mount"}
    assert r["critical_path_measured"][0] == "create volume.datasets"
    assert r["critical_path_measured_s"] >= r["critical_path_injected_s"] > 0
    assert "apply " in _summary("B7", r)
