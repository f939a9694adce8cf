"""The emulator the benchmarks run on: trainctl's own (`trainctl local up`, moto's server).

It runs in its own process, as it does for users: the server's CPU work does not
compete with the client for one interpreter lock (an in-process ThreadedMotoServer
would serialise them and distort B3's parallel timings). Its request log goes to
STATE_DIR/local.log, not to the benchmark's output.
"""

from __future__ import annotations

import logging
import os
import tempfile
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from planner.aws.session import AwsContext

REGION = "us-east-1"
FAKE_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": REGION}


@contextmanager
def emulator(state_dir: str | None = None) -> Iterator[tuple[str, str]]:
    """(endpoint, state_dir) of a fresh emulator, stopped on exit."""
    from planner import emulator as emu

    for k, v in FAKE_ENV.items():
        os.environ.setdefault(k, v)
    with tempfile.TemporaryDirectory(prefix="trainctl-bench-") as tmp:
        sdir = state_dir or os.path.join(tmp, ".trainctl")
        doc, _started = emu.start(sdir, region=REGION)
        try:
            yield str(doc["endpoint"]), sdir
        finally:
            emu.stop(sdir)


@contextmanager
def moto_endpoint() -> Iterator[str]:
    """The endpoint of a fresh emulator, stopped on exit."""
    with emulator() as (endpoint, _sdir):
        yield endpoint


def reset(endpoint: str) -> None:
    """Empty every emulated service (moto's reset API)."""
    req = urllib.request.Request(endpoint + "/moto-api/reset", method="POST")
    with urllib.request.urlopen(req, timeout=30) as resp:
        resp.read()


def connect(endpoint: str) -> AwsContext:
    """An AwsContext on the emulator with its fake credentials and a fresh call counter."""
    from planner.aws.session import connect as aws_connect

    return aws_connect(REGION, endpoint, emulator=True)


@contextmanager
def threaded_moto() -> Iterator[str]:
    """moto's server on a thread of this process, for benchmarks that seed its storage
    directly (B5: 10,000 objects in a second instead of 10,000 PUTs). Only use it where
    timings do not depend on the server having a core of its own."""
    from moto.server import ThreadedMotoServer

    for k, v in FAKE_ENV.items():
        os.environ.setdefault(k, v)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)    # no line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
