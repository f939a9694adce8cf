"""A fault-injecting HTTP proxy in front of the moto server (issue 12, item 3).

Every request to EC2, S3, SSM or IAM (told apart by the SigV4 credential scope) draws from
a seeded RNG: with probability `before` it is answered without running, by the service's
own throttling error (EC2 `RequestLimitExceeded` 400, S3 503 `SlowDown`, SSM
`ThrottlingException`, IAM `Throttling`) or a reset connection; with probability `after`
it runs upstream and the answer is lost (a 500 `InternalError`). Other requests pass.
"""

from __future__ import annotations

import http.client
import random
import re
import socket
import struct
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

SERVICES = ("ec2", "s3", "ssm", "iam")
_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/([a-z0-9-]+)/aws4_request")

_EC2_THROTTLE = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error>'
    "<Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message>"
    "</Error></Errors><RequestID>fault-proxy</RequestID></Response>")
_S3_SLOWDOWN = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    "<Message>Please reduce your request rate.</Message><RequestId>fault-proxy</RequestId>"
    "</Error>")
_IAM_THROTTLE = (
    '<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><Error>'
    "<Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error>"
    "<RequestId>fault-proxy</RequestId></ErrorResponse>")
_INTERNAL_XML = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error>'
    "<Code>InternalError</Code><Message>An internal error has occurred</Message>"
    "</Error></Errors><RequestID>fault-proxy</RequestID></Response>")


def service_of(headers: Any) -> str | None:
    m = _SCOPE.search(headers.get("Authorization", "") or "")
    return m.group(1) if m else None


def throttle(service: str) -> tuple[int, str, str]:
    """(status, content type, body) of the service's own throttling answer."""
    if service == "s3":
        return 503, "application/xml", _S3_SLOWDOWN
    if service == "ssm":
        return (400, "application/x-amz-json-1.1",
                '{"__type":"ThrottlingException","message":"Rate exceeded"}')
    if service == "iam":
        return 400, "text/xml", _IAM_THROTTLE
    return 400, "text/xml", _EC2_THROTTLE


def lost(service: str) -> tuple[int, str, str]:
    if service == "ssm":
        return (500, "application/x-amz-json-1.1",
                '{"__type":"InternalServerError","message":"lost answer"}')
    if service == "s3":
        return 500, "application/xml", _INTERNAL_XML.replace("<Response><Errors>", "").replace(
            "</Errors><RequestID>fault-proxy</RequestID></Response>", "")
    return 500, "text/xml", _INTERNAL_XML


class FaultProxy:
    """Start with `start()`; `url` is its endpoint; `counts` what it did, by kind."""

    def __init__(self, upstream: str, *, before: float = 0.2, after: float = 0.2,
                 seed: int = 12, once: dict[str, str] | None = None):
        self.upstream = urlsplit(upstream)
        self.before, self.after = before, after
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.enabled = True
        self.once = dict(once or {})    # API action -> fate, for its first call only
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _any(self) -> None:
                proxy.handle(self)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> FaultProxy:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _draw(self, service: str | None, body: bytes = b"") -> str:
        with self.lock:
            action = next((a for a in self.once if f"Action={a}&".encode() in body + b"&"),
                          None)
            if action is not None:
                fate = self.once.pop(action)
            elif not self.enabled or service not in SERVICES:
                fate = "pass"
            else:
                r = self.rng.random()
                if r < self.before:
                    fate = self.rng.choice(["throttle", "throttle", "reset"])
                elif r < self.before + self.after:
                    fate = "lost"
                else:
                    fate = "pass"
            self.counts[f"{service or 'other'} {fate}"] += 1
            self.counts["requests"] += 1
            return fate

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        service = service_of(h.headers)
        fate = self._draw(service, body)
        if fate == "reset":
            sock = h.connection
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            h.close_connection = True
            sock.close()
            return
        if fate == "throttle":
            self._answer(h, *throttle(str(service)))
            return
        status, headers, data = self._forward(h, body)
        if fate == "lost":
            self._answer(h, *lost(str(service)))
            return
        h.send_response(status)
        for k, v in headers:
            if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                h.send_header(k, v)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(data)

    def _forward(self, h: BaseHTTPRequestHandler, body: bytes) -> tuple[int, list[Any], bytes]:
        conn = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port,
                                          timeout=120)
        try:
            headers = {k: v for k, v in h.headers.items() if k.lower() != "connection"}
            conn.request(h.command, h.path, body=body, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.getheaders(), resp.read()
        finally:
            conn.close()

    def _answer(self, h: BaseHTTPRequestHandler, status: int, ctype: str, text: str) -> None:
        data = text.encode()
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(data)
