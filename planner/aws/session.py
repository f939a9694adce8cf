"""One boto3 session per command: lazy clients, an API-call counter, clean errors.

boto3/botocore are imported inside functions, so importing this module stays cheap.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from planner.errors import AwsAccessError
from planner.procs import pid_alive

if TYPE_CHECKING:
    import boto3

USER_AGENT_EXTRA = "trainctl/0.1"
CONNECT_TIMEOUT = 10          # seconds
READ_TIMEOUT = 60
MAX_ATTEMPTS_AWS = 5          # botocore retry budget against AWS
MAX_ATTEMPTS_LOOPBACK = 2     # an emulator on this machine: refused means down, fail fast

ACCESS_DENIED_CODES = frozenset({
    "AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthFailure",
})
BAD_CREDENTIAL_CODES = frozenset({
    "InvalidClientTokenId", "SignatureDoesNotMatch", "ExpiredToken", "ExpiredTokenException",
    "RequestExpired", "UnrecognizedClientException", "InvalidAccessKeyId",
})

NO_CREDENTIALS_MESSAGE = (
    "no AWS credentials found: configure a profile, set AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY, or run `trainctl local up` for the embedded emulator"
)


def _is_loopback(url: str | None) -> bool:
    host = urlparse(url).hostname if url else None
    return host in {"127.0.0.1", "localhost", "::1"}


class AwsContext:
    """A boto3 Session with lazily built clients that share one config and one counter.

    `calls` counts logical API calls (retries are not counted) by operation name,
    e.g. `calls["DescribeVolumes"]`; it is filled by a botocore `before-call` hook.
    """

    def __init__(self, session: boto3.Session, region: str, endpoint_url: str | None,
                 *, retry_mode: str = "standard", max_attempts: int | None = None):
        self.session = session
        self.region = region
        self.endpoint_url = endpoint_url
        self.retry_mode = retry_mode
        self.max_attempts = max_attempts or (
            MAX_ATTEMPTS_LOOPBACK if _is_loopback(endpoint_url) else MAX_ATTEMPTS_AWS
        )
        self.calls: Counter[str] = Counter()
        self._clients: dict[str, Any] = {}
        self._hooks: list[tuple[str, Callable[..., Any]]] = []
        self._lock = threading.Lock()

    # --- clients ---------------------------------------------------------------------

    def client(self, service: str) -> Any:
        """The client for `service`, built once (thread-safe) with trainctl's config."""
        with self._lock:
            c = self._clients.get(service)
            if c is None:
                c = self._make_client(service)
                self._clients[service] = c
            return c

    def _make_client(self, service: str) -> Any:
        from botocore.config import Config

        options: dict[str, Any] = {
            "retries": {"mode": self.retry_mode, "total_max_attempts": self.max_attempts},
            "connect_timeout": CONNECT_TIMEOUT,
            "read_timeout": READ_TIMEOUT,
            "user_agent_extra": USER_AGENT_EXTRA,
            "max_pool_connections": 32,
        }
        if service == "s3" and self.endpoint_url:
            options["s3"] = {"addressing_style": "path"}   # emulators have no bucket DNS
        kwargs: dict[str, Any] = {"region_name": self.region, "config": Config(**options)}
        if self.endpoint_url:
            kwargs["endpoint_url"] = self.endpoint_url
        c = self.session.client(service, **kwargs)
        c.meta.events.register("before-call", self._count)
        for event, handler in self._hooks:
            c.meta.events.register(event, handler)
        return c

    def _count(self, model: Any = None, **_: Any) -> None:
        if model is not None:
            with self._lock:
                self.calls[model.name] += 1

    def on(self, event: str, handler: Callable[..., Any]) -> None:
        """Register a botocore event handler on every client, present and future."""
        with self._lock:
            self._hooks.append((event, handler))
            clients = list(self._clients.values())
        for c in clients:
            c.meta.events.register(event, handler)

    @property
    def ec2(self) -> Any:
        return self.client("ec2")

    @property
    def s3(self) -> Any:
        return self.client("s3")

    @property
    def ssm(self) -> Any:
        return self.client("ssm")

    @property
    def iam(self) -> Any:
        return self.client("iam")

    def total_calls(self) -> int:
        with self._lock:
            return sum(self.calls.values())

    def __repr__(self) -> str:
        return f"AwsContext(region={self.region!r}, endpoint_url={self.endpoint_url!r})"


EMULATOR_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing",
                        "aws_session_token": "testing"}
EMULATOR_HOW = "local emulator"


def fast_timestamp(value: Any) -> Any:
    """botocore's timestamp parser, with ISO 8601 date-times (what EC2 and S3 listings
    carry) read by datetime.fromisoformat instead of dateutil: dateutil took 1.5 s of a
    10,000-object listing (docs/benchmarks.md, B5). Anything else goes to botocore."""
    if isinstance(value, str) and len(value) >= 19 and value[4] == "-" and value[10] == "T":
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            if parsed.tzinfo is not None:
                return parsed
    from botocore.utils import parse_timestamp

    return parse_timestamp(value)


def connect(region: str, endpoint_url: str | None, *, retry_mode: str = "standard",
            max_attempts: int | None = None, profile: str | None = None,
            emulator: bool = False) -> AwsContext:
    """One boto3 Session for `region` (and `endpoint_url`, when set). Builds no client yet.

    `emulator`: use the emulator's fake credentials (it needs none of the user's).
    """
    import boto3
    import botocore.session

    creds = EMULATOR_CREDENTIALS if emulator else {}
    core = botocore.session.get_session()
    core.get_component("response_parser_factory").set_parser_defaults(
        timestamp_parser=fast_timestamp)
    with aws_errors():
        session = boto3.Session(region_name=region, profile_name=profile,
                                botocore_session=core, **creds)
    return AwsContext(session, region, endpoint_url, retry_mode=retry_mode,
                      max_attempts=max_attempts)


def open_aws(cli_endpoint: str | None, state_dir: str, region: str, *,
             retry_mode: str = "standard") -> tuple[AwsContext, str]:
    """resolve_endpoint + connect: the AwsContext commands use, and how it was chosen."""
    endpoint, how = resolve_endpoint(cli_endpoint, state_dir)
    aws = connect(region, endpoint, retry_mode=retry_mode,
                  emulator=how.startswith(EMULATOR_HOW))
    return aws, how


def resolve_endpoint(cli_endpoint: str | None, state_dir: str) -> tuple[str | None, str]:
    """Where AWS calls go, and how that was chosen (for messages and `local status`).

    Order: `--endpoint-url`; the emulator recorded in STATE_DIR/local.json when its pid
    is alive; else None (boto3 decides, honouring AWS_ENDPOINT_URL itself).
    """
    if cli_endpoint:
        return cli_endpoint, "--endpoint-url"
    path = os.path.join(state_dir, "local.json")
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
        endpoint, pid = doc.get("endpoint"), int(doc.get("pid", 0))
    except (OSError, ValueError, TypeError, AttributeError):
        endpoint, pid = None, 0
    if isinstance(endpoint, str) and endpoint and pid_alive(pid):
        return endpoint, f"{EMULATOR_HOW} ({path}, pid {pid})"
    if os.environ.get("AWS_ENDPOINT_URL"):
        return None, "AWS_ENDPOINT_URL"
    return None, "AWS default"


def _client_error_message(e: Any) -> str:
    err = e.response.get("Error", {}) if hasattr(e, "response") else {}
    code = str(err.get("Code") or "Unknown")
    message = str(err.get("Message") or "").strip().replace("\n", " ")
    op = getattr(e, "operation_name", None) or "?"
    if code in ACCESS_DENIED_CODES:
        return f"access denied: {op}: {message or code}"
    if code in BAD_CREDENTIAL_CODES:
        return f"AWS credentials rejected: {op}: {code}: {message}".rstrip(": ")
    return f"AWS error: {code}: {message} ({op})" if message else f"AWS error: {code} ({op})"


@contextlib.contextmanager
def aws_errors() -> Iterator[None]:
    """Turn botocore exceptions into AwsAccessError with a one-line message.

    Anything else (including TrainctlError) passes through unchanged.
    """
    try:
        yield
    except Exception as e:
        msg = _translate(e)
        if msg is None:
            raise
        raise AwsAccessError(msg) from e


def _translate(e: BaseException) -> str | None:
    """The message for a botocore exception, or None when `e` is not one."""
    if not type(e).__module__.startswith("botocore"):
        return None
    from botocore import exceptions as bx

    if isinstance(e, bx.NoCredentialsError | bx.PartialCredentialsError):
        return NO_CREDENTIALS_MESSAGE
    if isinstance(e, bx.ProfileNotFound):
        return f"AWS profile not found: {e.kwargs.get('profile')}"
    if isinstance(e, bx.NoRegionError):
        return "no AWS region: set `region:` in the spec, pass --region, or set AWS_REGION"
    if isinstance(e, bx.EndpointConnectionError | bx.ConnectTimeoutError):
        url = e.kwargs.get("endpoint_url", "?")
        hint = " (is the emulator running? `trainctl local up`)" if _is_loopback(url) else ""
        return f"cannot reach AWS endpoint URL: {url}{hint}"
    if isinstance(e, bx.ReadTimeoutError):
        return f"AWS endpoint did not answer in time: {e.kwargs.get('endpoint_url', '?')}"
    if isinstance(e, bx.ClientError):
        return _client_error_message(e)
    if isinstance(e, bx.BotoCoreError):
        return f"AWS error: {' '.join(str(e).split())}"
    return None
