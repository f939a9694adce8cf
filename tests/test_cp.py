"""`trainctl cp` on the emulator: real subprocesses, the moto server's S3, the instance's
side run by bash with s5cmd in its sandbox folder."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import boto3
import pytest
from conftest import run_cli

pytestmark = pytest.mark.slow

SPEC = """\
version: 1
project: cpops
region: us-east-1
defaults: {availability_zone: us-east-1a, min_age_minutes: 0}
instances:
  trainer:
    instance_type: t3.micro
    ami: ami-0123456789abcdef0
  evaluator:
    instance_type: t3.micro
    ami: ami-0123456789abcdef0
"""


def _cli(d: Path, endpoint: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("--endpoint-url", endpoint, *args, cwd=d, input="")


def _ok(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def _iid(endpoint: str, name: str) -> str:
    ec2 = boto3.client("ec2", endpoint_url=endpoint, region_name="us-east-1")
    res = ec2.describe_instances(Filters=[
        {"Name": "tag:trainctl:address", "Values": [f"instance.{name}"]},
        {"Name": "instance-state-name", "Values": ["running"]}])["Reservations"]
    return str(res[0]["Instances"][0]["InstanceId"])


@pytest.fixture
def world(tmp_path: Path, moto_endpoint: str) -> dict[str, Any]:
    d = tmp_path / "proj"
    d.mkdir()
    (d / "trainctl.yaml").write_text(SPEC)
    _ok(_cli(d, moto_endpoint, "apply", "--auto-approve"))
    sandbox = d / ".trainctl" / "sandbox"
    return {"d": d, "ep": moto_endpoint,
            "trainer": sandbox / _iid(moto_endpoint, "trainer"),
            "evaluator": sandbox / _iid(moto_endpoint, "evaluator")}


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_folder_onto_the_instance_changed_files_only(world: dict[str, Any]) -> None:
    d, ep = world["d"], world["ep"]
    src = d / "configs"
    (src / "sub").mkdir(parents=True)
    (src / "a.yaml").write_text("lr: 0.1\n")
    (src / "sub" / "b.yaml").write_text("batch: 64\n")
    out = _ok(_cli(d, ep, "cp", "configs", "trainer:/scratch/configs"))
    assert "2 of 2 files" in out
    on_instance = world["trainer"] / "scratch" / "configs"
    assert _tree(on_instance) == _tree(src)
    again = _ok(_cli(d, ep, "cp", "configs", "trainer:/scratch/configs"))
    assert "0 of 2 files" in again
    (src / "a.yaml").write_text("lr: 0.05\n")
    third = _ok(_cli(d, ep, "cp", "configs", "trainer:/scratch/configs"))
    assert "1 of 2 files" in third
    assert (on_instance / "a.yaml").read_text() == "lr: 0.05\n"


def test_fetch_checkpoints_from_the_instance(world: dict[str, Any]) -> None:
    d, ep = world["d"], world["ep"]
    ckpt = world["trainer"] / "scratch" / "checkpoints"
    (ckpt / "step-100").mkdir(parents=True)
    (ckpt / "step-100" / "model.pt").write_bytes(b"\x00weights" * 1000)
    (ckpt / "latest").write_text("step-100\n")
    local = d / "ckpt"
    local.mkdir()
    (local / "mine.txt").write_text("kept")             # nothing at DST is deleted
    out = _ok(_cli(d, ep, "cp", "trainer:/scratch/checkpoints", "./ckpt"))
    assert "2 of 2 files" in out
    assert _tree(local) == {**_tree(ckpt), "mine.txt": b"kept"}
    assert "0 of 2 files" in _ok(_cli(d, ep, "cp", "trainer:/scratch/checkpoints", "./ckpt"))
    (ckpt / "latest").unlink()                           # gone on the instance...
    _ok(_cli(d, ep, "cp", "trainer:/scratch/checkpoints", "./ckpt"))
    assert (local / "latest").exists()                   # ...never deleted here
    (local / "latest").unlink()                          # and not brought back from a
    _ok(_cli(d, ep, "cp", "trainer:/scratch/checkpoints", "./ckpt"))   # stale transfer copy
    assert not (local / "latest").exists()


def test_single_files_into_a_folder_and_between_instances(world: dict[str, Any]) -> None:
    d, ep = world["d"], world["ep"]
    (d / "train.py").write_text("print('train')\n")
    (d / "eval.py").write_text("print('eval')\n")
    _ok(_cli(d, ep, "cp", "train.py", "eval.py", "trainer:/scratch/code/"))
    code = world["trainer"] / "scratch" / "code"
    assert _tree(code) == {"train.py": b"print('train')\n", "eval.py": b"print('eval')\n"}
    _ok(_cli(d, ep, "cp", "trainer:/scratch/code", "evaluator:/work/code"))
    assert _tree(world["evaluator"] / "work" / "code") == _tree(code)
    _ok(_cli(d, ep, "cp", "trainer:/scratch/code/train.py", "./fetched.py"))
    assert (d / "fetched.py").read_text() == "print('train')\n"


def test_s3_to_and_from_the_instance(world: dict[str, Any]) -> None:
    d, ep = world["d"], world["ep"]
    s3 = boto3.client("s3", endpoint_url=ep, region_name="us-east-1")
    s3.create_bucket(Bucket="acme-ckpt")
    s3.put_object(Bucket="acme-ckpt", Key="run-7/step-1/m.pt", Body=b"m1")
    s3.put_object(Bucket="acme-ckpt", Key="run-7/latest", Body=b"step-1")
    _ok(_cli(d, ep, "cp", "s3://acme-ckpt/run-7/", "trainer:/scratch/resume"))
    assert _tree(world["trainer"] / "scratch" / "resume") == {"step-1/m.pt": b"m1",
                                                              "latest": b"step-1"}
    _ok(_cli(d, ep, "cp", "trainer:/scratch/resume", "s3://acme-ckpt/copy/"))
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="acme-ckpt", Prefix="copy/")["Contents"]}
    assert keys == {"copy/step-1/m.pt", "copy/latest"}


def test_keys_that_escape_the_destination_are_refused(world: dict[str, Any]) -> None:
    d, ep = world["d"], world["ep"]
    s3 = boto3.client("s3", endpoint_url=ep, region_name="us-east-1")
    s3.create_bucket(Bucket="evil")
    s3.put_object(Bucket="evil", Key="p/ok.txt", Body=b"ok")
    s3.put_object(Bucket="evil", Key="p/../../escaped.txt", Body=b"pwned")
    r = _cli(d, ep, "cp", "s3://evil/p/", "./dest")
    assert r.returncode == 1 and "not safe relative paths" in r.stderr
    assert "Traceback" not in r.stderr
    assert not list(d.parent.rglob("escaped.txt"))
    assert not (d / "dest" / "ok.txt").exists()          # nothing copied


def test_bad_sides_are_clear_errors(world: dict[str, Any]) -> None:
    d, ep = world["d"], world["ep"]
    for args, msg in [(("nosuch:/x", "./y"), "no instance 'nosuch'"),
                      (("trainer:relative", "./y"), "must be absolute"),
                      (("a", "b"), "nothing remote"),
                      (("missing-file", "trainer:/x/"), "no such file or folder")]:
        r = _cli(d, ep, "cp", *args)
        assert r.returncode == 1, (args, r.stdout, r.stderr)
        assert msg in r.stderr and "Traceback" not in r.stderr
