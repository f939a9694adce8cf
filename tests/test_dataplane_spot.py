"""The spot watcher against a fake IMDSv2 on 127.0.0.1 and the moto server's S3."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from test_dataplane_support import BashTransport, s3_client, s3_env, tool_path

from planner.dataplane import steps

TOKEN = "fake-imds-token"
NOTICE = {"action": "terminate", "time": "2026-11-22T21:40:00Z"}


class FakeImds:
    def __init__(self) -> None:
        self.notice = False
        self.polls = 0
        self.unauthorized = 0
        imds = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_PUT(self) -> None:
                if (self.path == "/latest/api/token"
                        and self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")):
                    self._send(200, TOKEN)
                else:
                    self._send(400, "bad token request")

            def do_GET(self) -> None:
                if self.headers.get("X-aws-ec2-metadata-token") != TOKEN:
                    imds.unauthorized += 1
                    self._send(401, "")
                elif self.path == "/latest/meta-data/spot/instance-action":
                    imds.polls += 1
                    if imds.notice:
                        self._send(200, json.dumps(NOTICE))
                    else:
                        self._send(404, "Not Found")
                else:
                    self._send(404, "Not Found")

            def _send(self, code: int, body: str) -> None:
                data = body.encode()
                self.send_response(code)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def imds() -> Iterator[FakeImds]:
    server = FakeImds()
    try:
        yield server
    finally:
        server.close()


def _wait(cond, seconds: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.2)
    return bool(cond())


def _alive(pid: int) -> bool:
    """The process exists and is not a zombie (the watcher is not our child)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.parametrize("tool", ["s5cmd", "aws"])
def test_spot_notice_syncs_checkpoints_and_leaves_a_marker(
        tool: str, imds: FakeImds, moto_endpoint: str, tmp_path: Path) -> None:
    s3 = s3_client(moto_endpoint)
    s3.create_bucket(Bucket="h7-ckpt")
    env = {**s3_env(moto_endpoint), "PATH": tool_path(tmp_path, tool),
           "TRAINCTL_IMDS_URL": imds.url, "TRAINCTL_POLL_SECONDS": "1"}
    t = BashTransport(tmp_path / "sandbox", env)
    iid = "i-0spot"
    ck = t.sandbox(iid) / "scratch" / "ckpt"
    (ck / "step-5").mkdir(parents=True)
    (ck / "step-5" / "model.pt").write_bytes(b"m" * 3000)
    (ck / "latest").write_text("step-5")

    r = steps.install_spot_watcher(t, iid, path="/scratch/ckpt", sync_to="s3://h7-ckpt/run/")
    assert r.ok, r.output
    assert r.data["mode"] == "nohup"
    pid = int(r.data["pid"])
    try:
        assert r.data["changed"] is True
        # installing again leaves the running watcher alone
        r2 = steps.install_spot_watcher(t, iid, path="/scratch/ckpt",
                                        sync_to="s3://h7-ckpt/run/")
        assert r2.ok and int(r2.data["pid"]) == pid and r2.data["changed"] is False

        # it polls, and nothing is synced without a notice
        assert _wait(lambda: imds.polls >= 2, 15), "the watcher never polled IMDS"
        assert imds.unauthorized == 0                 # IMDSv2: every GET carries the token
        assert s3.list_objects_v2(Bucket="h7-ckpt").get("KeyCount", 0) == 0
        marker = ck / ".trainctl-spot-notice"
        assert not marker.exists()

        imds.notice = True

        def keys() -> set[str]:
            return {o["Key"] for o in s3.list_objects_v2(Bucket="h7-ckpt").get("Contents", [])}

        want = {"run/step-5/model.pt", "run/latest"}
        assert _wait(lambda: keys() == want, 15), f"checkpoints not in S3: {keys()}"
        assert _wait(marker.exists, 15)
        doc = json.loads(marker.read_text())
        assert doc["synced"] is True and json.loads(doc["notice"]) == NOTICE
        assert doc["sync_to"] == "s3://h7-ckpt/run/"
        assert _wait(lambda: not _alive(pid), 15), "the watcher did not exit after the notice"
        assert ".trainctl-spot-notice" not in {k.rsplit("/", 1)[-1] for k in keys()}
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)


def test_watcher_file_and_pid_are_where_the_install_says(imds: FakeImds,
                                                         tmp_path: Path) -> None:
    env = {"PATH": tool_path(tmp_path, "aws"), "TRAINCTL_IMDS_URL": imds.url,
           "TRAINCTL_POLL_SECONDS": "1"}
    t = BashTransport(tmp_path / "sandbox", env)
    r = steps.install_spot_watcher(t, "i-1", path="/ck", sync_to="s3://b/x/")
    assert r.ok, r.output
    pid = int(r.data["pid"])
    try:
        sb = t.sandbox("i-1")
        watcher = sb / "usr" / "local" / "lib" / "trainctl" / "spot-watcher.sh"
        assert watcher.is_file() and os.access(watcher, os.X_OK)
        pid_file = sb / "var" / "run" / "trainctl" / "spot-watcher.pid"
        assert pid_file.read_text().strip() == str(pid)
        # a changed configuration replaces the running watcher
        r2 = steps.install_spot_watcher(t, "i-1", path="/ck", sync_to="s3://b/other/")
        assert r2.ok and r2.data["changed"] is True and int(r2.data["pid"]) != pid
        assert _wait(lambda: not _alive(pid), 10)
        pid = int(r2.data["pid"])
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)


def test_watcher_stops_when_its_sandbox_is_gone(imds: FakeImds, tmp_path: Path) -> None:
    env = {"PATH": tool_path(tmp_path, "aws"), "TRAINCTL_IMDS_URL": imds.url,
           "TRAINCTL_POLL_SECONDS": "1"}
    t = BashTransport(tmp_path / "sandbox", env)
    r = steps.install_spot_watcher(t, "i-gone", path="/ck", sync_to="s3://b/x/")
    assert r.ok, r.output
    pid = int(r.data["pid"])
    try:
        assert _wait(lambda: imds.polls >= 1, 15)
        shutil.rmtree(t.sandbox("i-gone"))
        assert _wait(lambda: not _alive(pid), 15), "the watcher outlived its sandbox"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)


def test_an_emulated_instance_without_an_imds_url_starts_no_watcher(tmp_path: Path) -> None:
    """No metadata service behind an emulated instance: the operator's own 169.254.169.254
    (off loopback, or the operator's EC2 host) is never polled."""
    t = BashTransport(tmp_path / "sandbox", {"PATH": tool_path(tmp_path, "aws")})
    r = steps.install_spot_watcher(t, "i-emu", path="/ck", sync_to="s3://b/x/")
    assert r.ok, r.output
    assert r.data["mode"] == "none" and "no instance metadata service" in r.data["reason"]
    assert "pid" not in r.data
    assert not (t.sandbox("i-emu") / "var" / "run" / "trainctl" / "spot-watcher.pid").exists()
