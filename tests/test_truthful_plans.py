"""Plans that tell the truth, end to end on the moto server: what waits for a blocked
change is blocked too (and apply does exactly the rest), `--detailed-exitcode`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli

pytestmark = pytest.mark.slow

SPEC = """\
version: 1
project: truth
region: us-east-1
defaults:
  availability_zone: us-east-1a
  min_age_minutes: {min_age}
volumes:
  data: {{size_gib: 10, persistent: true{encrypted}}}
{extra_volume}instances:
  trainer:
    instance_type: {itype}
    ami: ami-0123456789abcdef0
    mounts:
      - {{volume: data, device: /dev/sdf, path: /data}}
{extra_mount}"""


def spec(*, min_age: int = 0, itype: str = "t3.micro", extra: bool = False,
         encrypted: bool = False) -> str:
    return SPEC.format(
        min_age=min_age, itype=itype, encrypted=", encrypted: true" if encrypted else "",
        extra_volume="  extra: {size_gib: 5}\n" if extra else "",
        extra_mount="      - {volume: extra, device: /dev/sdg, path: /extra}\n" if extra else "")


def cli(d: Path, endpoint: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("--endpoint-url", endpoint, *args, cwd=d, input="")


def ok(r: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert r.returncode == 0, f"rc={r.returncode}\n{r.stdout}\n{r.stderr}"
    return r


def plan_json(d: Path, endpoint: str, *args: str) -> dict[str, Any]:
    r = ok(cli(d, endpoint, "plan", "--json", *args))
    return json.loads(r.stdout)  # type: ignore[no-any-return]


def changes(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["address"]: c for c in doc["changes"]}


def rules_of(c: dict[str, Any]) -> list[str]:
    return [b["rule"] for b in c["blocked_by"]]


@pytest.fixture
def applied(tmp_path: Path, moto_endpoint: str) -> Path:
    d = tmp_path / "proj"
    d.mkdir()
    (d / "trainctl.yaml").write_text(spec())
    ok(cli(d, moto_endpoint, "apply", "--auto-approve"))
    assert cli(d, moto_endpoint, "plan", "--detailed-exitcode").returncode == 0
    return d


def test_what_waits_for_a_blocked_instance_replace_is_blocked_and_apply_does_the_rest(
        applied: Path, moto_endpoint: str) -> None:
    d = applied
    # the trainer was just launched: min-age blocks its replace; the new volume's
    # attachment and mount need the new trainer first
    (d / "trainctl.yaml").write_text(spec(min_age=60, itype="t3.small", extra=True))
    doc = plan_json(d, moto_endpoint)
    by = changes(doc)
    assert rules_of(by["instance.trainer"]) == ["min-age"]
    for addr in ("attachment.trainer.extra", "mount.trainer.extra"):
        assert rules_of(by[addr]) == ["depends-on-blocked"], by[addr]
        assert "instance.trainer" in by[addr]["blocked_by"][0]["message"]
    assert by["volume.extra"]["blocked_by"] == []
    assert doc["summary"] == {"create": 1, "update": 0, "replace": 0, "delete": 0,
                              "no-op": 3, "blocked": 3}

    text = ok(cli(d, moto_endpoint, "plan")).stdout
    assert "Plan: 1 to create, 0 to update, 0 to replace, 0 to delete, 3 blocked." in text
    assert "! blocked (depends-on-blocked): mount.trainer.extra waits for" in text
    assert cli(d, moto_endpoint, "plan", "--detailed-exitcode").returncode == 2

    r = ok(cli(d, moto_endpoint, "apply", "--auto-approve"))
    assert r.stdout.strip().splitlines()[-2] == (
        "Apply: 1 created, 0 updated, 0 replaced, 0 deleted, 3 blocked; 0 failed, 0 skipped.")
    after = changes(plan_json(d, moto_endpoint))
    assert after["volume.extra"]["actions"] == ["no-op"]          # done
    assert rules_of(after["attachment.trainer.extra"]) == ["depends-on-blocked"]
    # the graph shows them blocked too
    ok(cli(d, moto_endpoint, "plan", "-o", "plan.json"))
    mermaid = ok(run_cli("graph", "--plan", "plan.json", cwd=d)).stdout
    assert "blocked: depends-on-blocked" in mermaid


def test_what_waits_for_a_blocked_persistent_volume_replace_is_blocked(
        applied: Path, moto_endpoint: str) -> None:
    d = applied
    # encrypting the persistent volume replaces it: blocked (persistent); so are its
    # attachment and mount, and the trainer's replace (whose terminate waits for the
    # detach), though min-age is 0; a new volume mounted elsewhere goes ahead
    (d / "trainctl.yaml").write_text(spec(itype="t3.small", encrypted=True).replace(
        "instances:\n", "  other: {size_gib: 5}\ninstances:\n  second:\n"
        "    instance_type: t3.micro\n    ami: ami-0123456789abcdef0\n"
        "    mounts:\n      - {volume: other, device: /dev/sdh, path: /other}\n"))
    doc = plan_json(d, moto_endpoint)
    by = changes(doc)
    assert rules_of(by["volume.data"]) == ["persistent"]
    for addr in ("instance.trainer", "attachment.trainer.data", "mount.trainer.data"):
        assert rules_of(by[addr]) == ["depends-on-blocked"], addr
        assert "waits for volume.data," in by[addr]["blocked_by"][0]["message"]
    assert doc["summary"]["blocked"] == 4 and doc["summary"]["create"] == 4
    r = ok(cli(d, moto_endpoint, "apply", "--auto-approve"))
    assert r.stdout.strip().splitlines()[-2] == (
        "Apply: 4 created, 0 updated, 0 replaced, 0 deleted, 4 blocked; 0 failed, 0 skipped.")



def test_detailed_exitcode(applied: Path, moto_endpoint: str) -> None:
    d = applied
    assert cli(d, moto_endpoint, "plan", "--detailed-exitcode").returncode == 0
    # only blocked changes: still drift, exit 2
    (d / "trainctl.yaml").write_text(spec(min_age=60, itype="t3.small"))
    doc = plan_json(d, moto_endpoint)
    assert doc["summary"]["blocked"] == 1 and doc["summary"]["replace"] == 0
    assert cli(d, moto_endpoint, "plan", "--detailed-exitcode").returncode == 2
    # --destroy: the persistent volume's delete is blocked, the rest is not: 2
    (d / "trainctl.yaml").write_text(spec())
    assert cli(d, moto_endpoint, "plan", "--destroy", "--detailed-exitcode").returncode == 2
    # an error is 1, never 0 or 2
    (d / "trainctl.yaml").write_text(spec() + "bogus: 1\n")
    assert cli(d, moto_endpoint, "plan", "--detailed-exitcode").returncode == 1
    assert cli(d, moto_endpoint, "plan", "--destroy", "--detailed-exitcode").returncode == 1


def test_detailed_exitcode_destroy_with_nothing_left_is_0(tmp_path: Path,
                                                         moto_endpoint: str) -> None:
    d = tmp_path / "empty"
    d.mkdir()
    (d / "trainctl.yaml").write_text(spec())
    assert cli(d, moto_endpoint, "plan", "--destroy", "--detailed-exitcode").returncode == 0
    assert cli(d, moto_endpoint, "plan", "--detailed-exitcode").returncode == 2


def test_a_dataset_refill_is_an_update_that_says_what_changed(tmp_path: Path,
                                                              moto_endpoint: str) -> None:
    import os
    import shutil

    import boto3
    from conftest import EXAMPLES

    from planner.aws.seed import seed

    d = tmp_path / "quickstart"
    shutil.copytree(EXAMPLES / "quickstart", d)
    seed(moto_endpoint, "us-east-1",
         buckets=["trainctl-demo-datasets", "trainctl-demo-checkpoints"])
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    for i in range(3):
        s3.put_object(Bucket="trainctl-demo-datasets", Key=f"tiny-imagenet/part-{i}.bin",
                      Body=os.urandom(2048))
    ok(cli(d, moto_endpoint, "apply", "--auto-approve"))
    s3.put_object(Bucket="trainctl-demo-datasets", Key="tiny-imagenet/part-3.bin",
                  Body=os.urandom(1000))
    c = changes(plan_json(d, moto_endpoint))["prewarm.tiny-imagenet"]
    assert c["actions"] == ["update"], c
    assert (c["before"]["objects"], c["after"]["objects"]) == (3, 4)
    assert (c["before"]["bytes"], c["after"]["bytes"]) == (3 * 2048, 3 * 2048 + 1000)
    text = ok(cli(d, moto_endpoint, "plan")).stdout
    assert "~ objects" in text and "3 -> 4" in text
    assert "1 to update" in text and "0 to create" in text


def test_an_instance_terminated_outside_trainctl_reads_as_such(applied: Path,
                                                               moto_endpoint: str) -> None:
    import boto3

    d = applied
    iid = changes(plan_json(d, moto_endpoint))["instance.trainer"]["id"]
    ec2 = boto3.client("ec2", endpoint_url=moto_endpoint, region_name="us-east-1")
    ec2.terminate_instances(InstanceIds=[iid])
    c = changes(plan_json(d, moto_endpoint))["instance.trainer"]
    assert c["actions"] == ["create"] and c["reason"] == "create_because_deleted_outside"
    text = ok(cli(d, moto_endpoint, "plan")).stdout
    assert f"instance.trainer will be created: {iid} was terminated outside trainctl" in text
    ok(cli(d, moto_endpoint, "apply", "--auto-approve"))
    assert cli(d, moto_endpoint, "plan", "--detailed-exitcode").returncode == 0
