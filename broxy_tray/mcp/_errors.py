"""The one exception type this package raises, and the translation of whatever
the SDK, httpx2 or the OS raised into a reason a person can act on.

Nothing here imports the SDK or httpx2 at module level: the classes are
recognised by module and name, so `import broxy_tray.mcp` stays cheap.
"""

from __future__ import annotations

import errno

from collections.abc import Iterator
from urllib.parse import urlsplit

_MAX_REASON = 300


class ConnectError(Exception):
    """Connecting to (or staying connected to) one MCP server failed.

    `reason` is one line, meant for the tray menu ("Error: <reason>"). It never
    carries header values, tokens or query strings.
    """

    def __init__(self, reason: str) -> None:
        self.reason = one_line(reason)
        super().__init__(self.reason)


class ConnectionLost(ConnectError):
    """An established connection ended: the transport dropped or the child exited."""


def one_line(text: str, limit: int = _MAX_REASON) -> str:
    """Collapse whitespace (newlines included) and cap the length."""
    text = " ".join(str(text).split())
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text or "unknown error"


def format_seconds(seconds: float) -> str:
    return f"{seconds:g} s"


def safe_url(url: str) -> str:
    """`url` without userinfo, query or fragment (they can carry secrets)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid url>"
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return f"{parts.scheme}://{netloc}{parts.path}"


def host_port(url: str) -> str:
    """`host:port` of `url`, with the scheme's default port filled in."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    if port is None:
        port = {"https": 443, "wss": 443, "http": 80, "ws": 80}.get(parts.scheme, 0)
    return f"{host}:{port}" if port else host


def host_of(url: str) -> str:
    return urlsplit(url).hostname or "?"


def walk(exc: BaseException) -> Iterator[BaseException]:
    """Every exception reachable from `exc`: group members, causes and contexts (cycle-safe)."""
    seen: set[int] = set()
    stack = [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        if isinstance(e, BaseExceptionGroup):
            stack.extend(reversed(e.exceptions))
        if e.__cause__ is not None:
            stack.append(e.__cause__)
        if e.__context__ is not None:  # even when suppressed: httpcore2 hides the OS error that way
            stack.append(e.__context__)


def _is(e: BaseException, module_prefix: str, *names: str) -> bool:
    t = type(e)
    for klass in t.__mro__:
        if klass.__module__.startswith(module_prefix) and klass.__name__ in names:
            return True
    return False


def http_status_reason(status: int, url: str) -> str:
    if status == 401:
        return "requires authorization (HTTP 401)"
    if status == 403:
        return "access denied (HTTP 403)"
    return f"HTTP {status} at {safe_url(url)}"


def describe_network_error(exc: BaseException, url: str, phase: str, timeout: float) -> str | None:
    """A reason for a network-level failure anywhere in `exc`'s tree, or None if there is none."""
    import ssl

    found = list(walk(exc))
    for e in found:
        if isinstance(e, ssl.SSLCertVerificationError):
            code = getattr(e, "verify_code", None)
            message = (getattr(e, "verify_message", "") or str(e)).lower()
            if code == 62 or "hostname mismatch" in message or "doesn't match" in message:
                return f"TLS certificate does not match {host_of(url)}"
            if "expired" in message:
                return f"TLS certificate expired for {host_of(url)}"
            return f"TLS certificate not trusted for {host_of(url)}"
    for e in found:
        if isinstance(e, ssl.SSLError):
            return f"TLS handshake failed with {host_port(url)}"
    for e in found:
        if isinstance(e, ConnectionRefusedError):
            return f"connection refused at {host_port(url)}"
    for e in found:
        if type(e).__name__ == "gaierror":
            return f"cannot resolve host {host_of(url)}"
    for e in found:
        if isinstance(e, OSError) and e.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
            return f"network unreachable for {host_port(url)}"
    for e in found:
        if _is(e, "httpx2", "ConnectTimeout", "PoolTimeout"):
            return f"timed out after {format_seconds(timeout)} connecting to {host_port(url)}"
        if _is(e, "httpx2", "ReadTimeout", "WriteTimeout"):
            return f"timed out after {format_seconds(timeout)} during {phase}"
    for e in found:
        if _is(e, "httpx2", "ConnectError"):
            return f"cannot connect to {host_port(url)}"
        if _is(e, "httpx2", "RemoteProtocolError", "ReadError", "WriteError", "NetworkError"):
            return f"connection to {host_port(url)} dropped during {phase}"
        if _is(e, "httpx2", "UnsupportedProtocol", "InvalidURL"):
            return f"invalid server URL {safe_url(url)}"
    for e in found:
        if isinstance(e, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
            return f"connection to {host_port(url)} dropped during {phase}"
    return None
