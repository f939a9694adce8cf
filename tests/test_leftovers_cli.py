"""Through the CLI on a real moto server: a prewarm killed with -9 leaves its temporary
instance holding the persistent volume; the dataset is dropped; the next plan shows the
cleanup, apply does it (the volume survives) and `plan --destroy` works."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import run_cli

SPEC = """\
version: 1
project: leak
region: us-east-1
defaults:
  availability_zone: us-east-1a
  min_age_minutes: 0
datasets:
  tiny:
    source: s3://leak-datasets/tiny/
    strategy: prewarmed-ebs
    volume: datasets
volumes:
  datasets: {size_gib: 50, persistent: true}
instances:
  trainer:
    instance_type: g5.xlarge
    ami: ami-0123456789abcdef0
    iam_instance_profile: trainctl-ssm
    mounts:
      - {volume: datasets, device: /dev/sdf, path: /data, read_only: true}
    datasets: [tiny]
"""

DROPPED = re.sub(r"datasets:\n  tiny:\n(    .*\n)+", "", SPEC).replace(
    "    datasets: [tiny]\n", "")


def _cli(d: Path, endpoint: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("--endpoint-url", endpoint, *args, cwd=d, input="", timeout=300)


def _ok(r: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert r.returncode == 0, f"rc={r.returncode}\n{r.stdout}\n{r.stderr}"
    return r


def _temporaries(ec2) -> dict[str, str]:
    res = ec2.describe_instances(Filters=[{"Name": "tag:trainctl:temporary",
                                           "Values": ["true"]}])["Reservations"]
    return {i["InstanceId"]: i["State"]["Name"] for r in res for i in r["Instances"]}


@pytest.mark.slow
def test_kill_9_during_prewarm_then_dataset_dropped(moto_endpoint: str,
                                                    tmp_path: Path) -> None:
    import boto3

    from planner.aws.seed import seed

    assert "tiny" not in DROPPED and "prewarmed-ebs" not in DROPPED
    d = tmp_path / "proj"
    d.mkdir()
    (d / "trainctl.yaml").write_text(SPEC)
    seed(moto_endpoint, "us-east-1", buckets=["leak-datasets"])
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    for n in range(300):       # enough files that the sync takes a moment
        s3.put_object(Bucket="leak-datasets", Key=f"tiny/part-{n:04}.bin", Body=b"d" * 256)
    ec2 = boto3.client("ec2", endpoint_url=moto_endpoint, region_name="us-east-1")

    proc = subprocess.Popen(
        [sys.executable, "-m", "planner", "--endpoint-url", moto_endpoint, "apply",
         "--auto-approve"], cwd=d, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, start_new_session=True, env=dict(os.environ))
    held = None
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            vols = ec2.describe_volumes(Filters=[
                {"Name": "tag:trainctl:address", "Values": ["volume.datasets"]}])["Volumes"]
            temps = _temporaries(ec2)
            atts = [a["InstanceId"] for v in vols for a in v.get("Attachments", ())]
            if any(t in atts for t in temps):
                held = next(t for t in temps if t in atts)
                break
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        out = proc.communicate()[0]
    assert held is not None, f"the prewarm never attached the volume:\n{out.decode()}"
    assert _temporaries(ec2)[held] == "running"
    vid = ec2.describe_volumes(Filters=[{"Name": "tag:trainctl:address",
                                         "Values": ["volume.datasets"]}])["Volumes"][0][
        "VolumeId"]
    # the dead apply's lock: taken over by hand, as its message says
    status = _ok(_cli(d, moto_endpoint, "lock", "status")).stdout
    lock_id = re.search(r"lock id (\w+)", status)
    if lock_id:
        _ok(_cli(d, moto_endpoint, "lock", "release", lock_id.group(1)))

    (d / "trainctl.yaml").write_text(DROPPED)
    plan = _ok(_cli(d, moto_endpoint, "plan", "--no-color")).stdout
    assert f"- prewarm.tiny@{held} ({held})" in plan, plan
    assert re.search(r"[1-9]\d* to delete", plan), plan
    destroy = _ok(_cli(d, moto_endpoint, "plan", "--destroy", "--no-color")).stdout
    assert f"prewarm.tiny@{held}" in destroy and "persistent" in destroy

    r = _ok(_cli(d, moto_endpoint, "apply", "--auto-approve", "--no-color"))
    assert _temporaries(ec2)[held] == "terminated", r.stdout + r.stderr
    vol = ec2.describe_volumes(VolumeIds=[vid])["Volumes"][0]
    assert vol["State"] in ("in-use", "available")
    trainer = [a["InstanceId"] for a in vol["Attachments"]]
    assert held not in trainer
    again = _ok(_cli(d, moto_endpoint, "plan", "--no-color")).stdout
    assert "No changes" in again, again
    _ok(_cli(d, moto_endpoint, "plan", "--destroy"))
    _ok(_cli(d, moto_endpoint, "plan", "--destroy", "-o", "d.json"))
    _ok(_cli(d, moto_endpoint, "apply", "d.json"))
    assert ec2.describe_volumes(VolumeIds=[vid])["Volumes"][0]["State"] != "deleted"
