"""The Pulumi engine end to end: `trainctl apply --engine pulumi` against the moto server,
through the real `pulumi` CLI and the pulumi-aws plugin. This machine cannot install
them (every way in downloads a binary at run time), so each test skips here with the
reason; on a machine with the CLI they prove what only the CLI can: the programs deploy,
the preview cross-check passes on a real preview, and `up --plan` honours it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from test_apply_cli import cli, live_instances, live_volumes, ok, project

from planner.engines.pulumi.backend import local_backend_dir

needs_cli = pytest.mark.skipif(
    shutil.which("pulumi") is None,
    reason="needs the pulumi CLI and the pulumi-aws plugin, which this machine cannot "
           "install")
pytestmark = [needs_cli, pytest.mark.slow]

STORAGE = """\
version: 1
project: itest
region: us-east-1
defaults:
  availability_zone: us-east-1a
  min_age_minutes: 0
volumes:
  data: {size_gib: 10, persistent: true}
  scratch: {size_gib: 20}
"""
COMPUTE = STORAGE + """\
instances:
  trainer:
    instance_type: t3.micro
    ami: ami-0123456789abcdef0
    mounts:
      - {volume: data, device: /dev/sdf, path: /data}
      - {volume: scratch, device: /dev/sdg, path: /scratch}
"""


def pulumi(d: Path, endpoint: str, *args: str) -> Any:
    return cli(d, endpoint, "apply", "--auto-approve", "--engine", "pulumi", *args,
               timeout=900)


def stack_state(d: Path, program: str, project_name: str = "itest") -> dict[str, Any]:
    path = (Path(local_backend_dir(str(d / ".trainctl"))) / ".pulumi" / "stacks"
            / f"trainctl-{program}" / f"{project_name}.json")
    return json.loads(path.read_text())


def addresses_in(state: dict[str, Any]) -> dict[str, dict[str, Any]]:
    resources = state["checkpoint"]["latest"].get("resources") or []
    return {r["urn"].rsplit("::", 1)[-1]: r for r in resources
            if not r["type"].startswith("pulumi:")}


def no_changes(d: Path, endpoint: str) -> None:
    r = cli(d, endpoint, "plan", "--detailed-exitcode")
    assert r.returncode == 0, r.stdout + r.stderr


def test_storage_stack_preview_and_up(tmp_path, moto_endpoint):
    d = project(tmp_path, STORAGE)
    ok(pulumi(d, moto_endpoint))
    vols = live_volumes(moto_endpoint)
    assert set(vols) == {"volume.data", "volume.scratch"}
    assert all(len(v) == 1 for v in vols.values())
    state = addresses_in(stack_state(d, "storage"))
    assert {"volume.data", "volume.scratch"} <= set(state)
    assert state["volume.data"]["id"] == vols["volume.data"][0]["VolumeId"]
    assert state["volume.data"].get("protect") is True
    assert state["volume.data"].get("retainOnDelete") is True
    assert not state["volume.scratch"].get("protect")
    no_changes(d, moto_endpoint)
    ok(pulumi(d, moto_endpoint))           # nothing to do: no duplicate, no change
    assert {k: len(v) for k, v in live_volumes(moto_endpoint).items()} == \
        {"volume.data": 1, "volume.scratch": 1}


def test_compute_stack_preview_and_up_with_mounts(tmp_path, moto_endpoint):
    d = project(tmp_path, COMPUTE)
    r = ok(pulumi(d, moto_endpoint))
    assert "failed" not in r.stderr
    assert live_instances(moto_endpoint) == {"instance.trainer": 1}
    compute = addresses_in(stack_state(d, "compute"))
    assert {"instance.trainer", "attachment.trainer.data",
            "attachment.trainer.scratch"} <= set(compute)
    vols = live_volumes(moto_endpoint)
    assert vols["volume.data"][0]["State"] == "in-use"
    no_changes(d, moto_endpoint)


def test_a_persistent_volume_is_kept_on_destroy(tmp_path, moto_endpoint):
    d = project(tmp_path, COMPUTE)
    ok(pulumi(d, moto_endpoint))
    data_id = live_volumes(moto_endpoint)["volume.data"][0]["VolumeId"]
    ok(pulumi(d, moto_endpoint, "--destroy"))
    vols = live_volumes(moto_endpoint)
    assert [v["VolumeId"] for v in vols["volume.data"]] == [data_id]
    assert "volume.scratch" not in vols
    assert live_instances(moto_endpoint) == {}
    # still the storage stack's, still protected: a later pass cannot drop it
    state = addresses_in(stack_state(d, "storage"))
    assert state["volume.data"]["id"] == data_id and state["volume.data"]["protect"]


def test_a_volume_made_by_the_direct_engine_is_imported(tmp_path, moto_endpoint):
    d = project(tmp_path, STORAGE)
    ok(cli(d, moto_endpoint, "apply", "--auto-approve", "--engine", "direct"))
    before = {k: [v["VolumeId"] for v in vs] for k, vs in live_volumes(moto_endpoint).items()}
    ok(pulumi(d, moto_endpoint))
    after = {k: [v["VolumeId"] for v in vs] for k, vs in live_volumes(moto_endpoint).items()}
    assert after == before                   # adopted, never made again nor replaced
    state = addresses_in(stack_state(d, "storage"))
    assert state["volume.data"]["id"] == before["volume.data"][0]
    assert state["volume.scratch"]["id"] == before["volume.scratch"][0]
    no_changes(d, moto_endpoint)


def test_a_deleted_volume_goes_through_the_checked_preview(tmp_path, moto_endpoint):
    d = project(tmp_path, STORAGE)
    ok(pulumi(d, moto_endpoint))
    (d / "trainctl.yaml").write_text(STORAGE.replace("  scratch: {size_gib: 20}\n", ""))
    ok(pulumi(d, moto_endpoint))
    assert set(live_volumes(moto_endpoint)) == {"volume.data"}
    assert "volume.scratch" not in addresses_in(stack_state(d, "storage"))


def test_no_stack_is_left_locked_or_pending_after_an_apply(tmp_path, moto_endpoint):
    from planner.engines.pulumi.recovery import local_troubles

    d = project(tmp_path, COMPUTE)
    ok(pulumi(d, moto_endpoint))
    assert local_troubles(local_backend_dir(str(d / ".trainctl"))) == []
