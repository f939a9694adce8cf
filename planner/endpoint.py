"""Endpoint URLs (`--endpoint-url`, AWS_ENDPOINT_URL, local.json): checked before use, so
`http://[::1` or `:99999` is a clear error, not a traceback or a misleading
"no credentials"."""

from __future__ import annotations

from urllib.parse import urlsplit


def endpoint_problem(url: object) -> str | None:
    """Why `url` is not an http(s) endpoint URL, or None when it is one."""
    if not isinstance(url, str) or not url.strip():
        return "empty: expected an URL such as https://ec2.us-east-1.amazonaws.com"
    try:
        parts = urlsplit(url)
        port = parts.port          # ValueError when not a number or out of 0-65535
    except ValueError as e:
        return f"{url!r} is not a valid URL: {e}"
    if parts.scheme not in ("http", "https"):
        return (f"{url!r} is not an http:// or https:// URL" if parts.scheme
                else f"{url!r} is not a URL (expected http://HOST[:PORT] or https://...)")
    if not parts.hostname:
        return f"{url!r} has no host"
    if port is not None and not 1 <= port <= 65535:
        return f"{url!r}: port {port} is out of range (1-65535)"
    if url != url.strip() or any(ord(c) < 33 or ord(c) == 127 for c in url):
        return f"{url!r} holds spaces or control characters"
    if parts.query or parts.fragment:
        return f"{url!r}: an endpoint URL takes no query or fragment"
    return None


def check_endpoint(url: str, source: str) -> str:
    """`url` when it is valid; else an EndpointError naming where it came from."""
    from planner.errors import TrainctlError

    problem = endpoint_problem(url)
    if problem:
        raise TrainctlError(f"{source}: invalid endpoint URL: {problem}")
    return url
