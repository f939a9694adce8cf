"""One boto3 session per command: lazy clients, an API-call counter, clean errors.

boto3/botocore are imported inside functions, so importing this module stays cheap.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from planner.errors import AwsAccessError

if TYPE_CHECKING:
    import boto3

USER_AGENT_EXTRA = "trainctl/0.1"
CONNECT_TIMEOUT = 10          # seconds
READ_TIMEOUT = 60
MAX_ATTEMPTS_AWS = 5          # botocore retry budget, against AWS and the emulator alike:
                              # loopback gets the same throttling and lost answers (issue 12)

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


RECORD_CALLS_ENV = "TRAINCTL_RECORD_AWS_CALLS"   # a file: one `service:Operation` a call
_RECORD_LOCK = threading.Lock()


def _recorder(service: str, path: str) -> Callable[..., None]:
    """A before-call hook appending `service:Operation` to PATH (tests check every call
    against `trainctl iam-policy`)."""
    def record(model: Any = None, **_: Any) -> None:
        if model is not None:
            with _RECORD_LOCK, open(path, "a", encoding="utf-8") as f:
                f.write(f"{service}:{model.name}\n")
    return record


def is_loopback(url: str | None) -> bool:
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
        self.max_attempts = max_attempts or MAX_ATTEMPTS_AWS
        self.calls: Counter[str] = Counter()
        self.target: Target | None = None     # set by open_aws
        self.account: str | None = None       # AWS itself: the account id (STS)
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
            # only the target resolve_target chose: botocore would otherwise send a
            # service to AWS_ENDPOINT_URL_EC2 / _S3 / ... or a profile's endpoint_url
            # while trainctl says it targets AWS
            "ignore_configured_endpoint_urls": True,
        }
        if service == "s3" and self.endpoint_url:
            options["s3"] = {"addressing_style": "path"}   # emulators have no bucket DNS
        kwargs: dict[str, Any] = {"region_name": self.region, "config": Config(**options)}
        if self.endpoint_url:
            kwargs["endpoint_url"] = self.endpoint_url
        c = self.session.client(service, **kwargs)
        c.meta.events.register("before-call", self._count)
        record = os.environ.get(RECORD_CALLS_ENV)
        if record:
            c.meta.events.register("before-call", _recorder(service, record))
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


@dataclass(frozen=True)
class Target:
    """Where a command's AWS calls go, and how that was chosen."""

    endpoint_url: str | None
    source: str                   # --endpoint-url | AWS_ENDPOINT_URL | emulator | aws
    detail: str = ""              # the emulator's record: "PATH, pid N"

    @property
    def emulator(self) -> bool:
        return self.source == SOURCE_EMULATOR

    @property
    def how(self) -> str:
        if self.emulator:
            return f"{EMULATOR_HOW} ({self.detail})"
        return "AWS default" if self.source == SOURCE_AWS else self.source

    def line(self, region: str, account: str | None = None) -> str:
        """The one line every command that talks to AWS prints first (on stderr)."""
        if self.emulator:
            return (f"Target: the local emulator at {self.endpoint_url} ({self.detail}), "
                    f"region {region}")
        if self.endpoint_url:
            return (f"Target: AWS endpoint {self.endpoint_url} (from {self.source}), "
                    f"region {region}")
        return f"Target: AWS account {account or '?'}, region {region}"


SOURCE_FLAG, SOURCE_ENV = "--endpoint-url", "AWS_ENDPOINT_URL"
SOURCE_EMULATOR, SOURCE_AWS = "emulator", "aws"
_announced: set[str] = set()
_accounts: dict[tuple[str | None, str], str] = {}
_announce_lock = threading.Lock()


def open_aws(cli_endpoint: str | None, state_dir: str, region: str, *,
             retry_mode: str = "standard", announce: bool = True) -> tuple[AwsContext, str]:
    """resolve_target + connect: the AwsContext commands use, and how it was chosen.

    The first call of a process says on stderr what it targets (for AWS itself: the
    account, from one STS GetCallerIdentity call, which also proves the credentials).
    """
    target = resolve_target(cli_endpoint, state_dir)
    aws = connect(region, target.endpoint_url, retry_mode=retry_mode,
                  emulator=target.emulator)
    aws.target = target
    if target.endpoint_url is None:
        aws.account = account_of(aws)
    if announce:
        line = target.line(region, aws.account)
        with _announce_lock:
            fresh = line not in _announced
            _announced.add(line)
        if fresh:
            import sys

            print(line, file=sys.stderr, flush=True)
    return aws, target.how


def account_of(aws: AwsContext) -> str:
    """The AWS account id (one STS call per process and profile)."""
    key = (aws.session.profile_name, aws.region)
    if key not in _accounts:
        with aws_errors():
            _accounts[key] = str(aws.client("sts").get_caller_identity()["Account"])
    return _accounts[key]


def resolve_target(cli_endpoint: str | None, state_dir: str) -> Target:
    """Order: `--endpoint-url`; the emulator recorded in STATE_DIR/local.json, which must
    answer (a recorded emulator that does not is an error, never a silent switch to the
    default credentials); `AWS_ENDPOINT_URL`, used exactly as the flag is; else AWS."""
    from planner.endpoint import check_endpoint
    from planner.statedir import check_state_dir

    check_state_dir(state_dir)           # every AWS command: .trainctl is usable, or say why
    if cli_endpoint is not None:
        return Target(check_endpoint(cli_endpoint, "--endpoint-url"), SOURCE_FLAG)
    path = os.path.join(state_dir, "local.json")
    if os.path.lexists(path):
        return _recorded_emulator(state_dir, path)
    env = os.environ.get("AWS_ENDPOINT_URL")
    if env is not None:       # set but blank is an error, as `--endpoint-url ''` is
        return Target(check_endpoint(env.strip(), "AWS_ENDPOINT_URL"), SOURCE_ENV)
    return Target(None, SOURCE_AWS)


def _recorded_emulator(state_dir: str, path: str) -> Target:
    from planner import emulator
    from planner.filecheck import FileCheckError

    ways_out = ("start it again with `trainctl local up`, or forget it with `trainctl local "
                "down` (later commands then use your AWS configuration)")
    try:
        doc = emulator.read_state(state_dir)      # checked against LOCAL_SCHEMA
    except FileCheckError as e:
        raise emulator.EmulatorError(f"{e}\nthe emulator it records cannot be used; "
                                     f"{ways_out}") from None
    if doc is None or not isinstance(doc.get("endpoint"), str):
        raise emulator.EmulatorError(f"{path} is unreadable, so the emulator it records "
                                     f"cannot be used; {ways_out}")
    endpoint = str(doc["endpoint"])
    try:
        pid = int(doc.get("pid", 0))
    except (TypeError, ValueError):
        pid = 0
    if emulator.running(state_dir) is None or not emulator.answers(endpoint, timeout=2.0):
        raise emulator.EmulatorError(
            f"the emulator recorded in {path} ({endpoint}, pid {pid}) does not answer; "
            f"nothing was sent anywhere else; {ways_out}")
    return Target(endpoint, SOURCE_EMULATOR, f"{path}, pid {pid}")


def resolve_endpoint(cli_endpoint: str | None, state_dir: str) -> tuple[str | None, str]:
    """resolve_target as (endpoint URL or None, how it was chosen)."""
    target = resolve_target(cli_endpoint, state_dir)
    return target.endpoint_url, target.how


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
        hint = " (is the emulator running? `trainctl local up`)" if is_loopback(url) else ""
        return f"cannot reach AWS endpoint URL: {url}{hint}"
    if isinstance(e, bx.ReadTimeoutError):
        return f"AWS endpoint did not answer in time: {e.kwargs.get('endpoint_url', '?')}"
    if isinstance(e, bx.ClientError):
        return _client_error_message(e)
    if isinstance(e, bx.BotoCoreError):
        return f"AWS error: {' '.join(str(e).split())}"
    return None
