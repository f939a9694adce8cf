"""A volume grown outside trainctl: `trainctl plan` / `apply` end to end on the moto server
(issue 10, item 7). The emulated instance's filesystem grows like a real one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_apply_cli import BASE, cli, ec2, live_volumes, no_changes, ok, project

from planner.tags import GIB, parse_mounted_tag

pytestmark = pytest.mark.slow


def _plan(d: Path, endpoint: str) -> dict[str, Any]:
    r = cli(d, endpoint, "plan", "--json")
    assert r.returncode == 0, r.stderr
    return {c["address"]: c for c in json.loads(r.stdout)["changes"]}


def _mounted(endpoint: str, address: str) -> Any:
    v = live_volumes(endpoint)[address][0]
    return parse_mounted_tag({t["Key"]: t["Value"] for t in v["Tags"]}["trainctl:mounted"])


def test_a_volume_grown_outside_trainctl_gets_its_filesystem_grown(tmp_path: Path,
                                                                   moto_endpoint: str) -> None:
    d = project(tmp_path)
    ok(cli(d, moto_endpoint, "apply", "--auto-approve"))
    no_changes(d, moto_endpoint)
    assert _mounted(moto_endpoint, "volume.data").fs_bytes == 10 * GIB
    vid = live_volumes(moto_endpoint)["volume.data"][0]["VolumeId"]
    ec2(moto_endpoint).modify_volume(VolumeId=vid, Size=25)       # by hand, in the console

    # the spec still says 10: drift on that volume only, the plan goes on
    changes = _plan(d, moto_endpoint)
    v = changes["volume.data"]
    assert [b["rule"] for b in v["blocked_by"]] == ["shrink"]
    assert "set volumes.data.size_gib to 25" in v["blocked_by"][0]["message"]
    assert changes["volume.scratch"]["actions"] == ["no-op"]
    text = cli(d, moto_endpoint, "plan")
    assert text.returncode == 0 and "shrink" in text.stdout

    # written into the spec: the volume matches, the filesystem (10 GiB) must grow
    (d / "trainctl.yaml").write_text(BASE.replace("size_gib: 10", "size_gib: 25"))
    changes = _plan(d, moto_endpoint)
    assert changes["volume.data"]["actions"] == ["no-op"]
    m = changes["mount.trainer.data"]
    assert m["actions"] == ["update"] and m["reason"] == "mount_because_volume_grew"
    assert (m["before"]["size_gib"], m["after"]["size_gib"]) == (10, 25)
    r = ok(cli(d, moto_endpoint, "apply", "--auto-approve"))
    assert "1 updated, 0 replaced, 0 deleted, 0 blocked; 0 failed" in r.stdout, r.stdout
    assert _mounted(moto_endpoint, "volume.data").fs_bytes == 25 * GIB
    no_changes(d, moto_endpoint)
