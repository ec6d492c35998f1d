"""The loopback redirect receiver of the browser sign-in (RFC 8252 §7.3, RFC 9207).

A one-shot HTTP/1.1 server on a loopback address that waits for the
authorization server's redirect, checks it, answers the browser with a small
page and shuts down. Plain `asyncio` streams and a deliberately tiny parser:
only `GET <path>?<query>` with a bounded head is understood; everything else
is refused without being read further.

Rules, in the order they are applied to a request for the callback path:

1. `state` must be present once and equal the expected value (constant-time
   compare). Otherwise the request may be a stray or forged one: it is
   answered with a generic "not accepted" page, counted, and the receiver
   keeps waiting for the real redirect until the caller's timeout (whose
   error then mentions the rejected responses).
2. With the right `state`, the response is *the* response and settles the
   flow one way or the other. `iss` (RFC 9207 §2.4, also on error responses):
   present → must equal the expected issuer by simple string comparison;
   absent → refused only when the AS advertised
   `authorization_response_iss_parameter_supported`. A mismatch is a possible
   mix-up attack: the flow fails, the code is not used and nothing the AS
   sent is displayed.
3. `error=access_denied` → `AuthorizationDenied`; another `error` →
   `AuthorizationErrorResponse` carrying the (charset-checked) code and a
   sanitized, length-capped description for the log, never rendered.
4. Otherwise exactly one non-empty `code` → `CallbackResult`.

The listening socket binds a loopback address only (127.0.0.1 for
`127.0.0.1` and `localhost` redirect URIs, ::1 for `[::1]`), never a
wildcard. Nothing here logs the code, the state or a request's query.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hmac
import html
import ipaddress
import logging
import os
import re
import socket
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from ._errors import AuthError
from ._urls import is_loopback_host

log = logging.getLogger(__name__)

MAX_HEAD_BYTES = 8192
"""Cap on a request's line plus headers; a longer head gets 431 and is dropped."""
DEFAULT_READ_TIMEOUT = 10.0
"""Seconds a connection may take to deliver its request head."""
MAX_CONNECTIONS = 64
"""Open connections at most; beyond it the oldest one still sending its head is dropped."""
_MAX_QUERY_FIELDS = 32
_WRITE_TIMEOUT = 5.0
_MAX_DESCRIPTION = 200
_MAX_NAME = 200

# RFC 6749 §4.1.2.1: error = 1*( %x20-21 / %x23-5B / %x5D-7E ), same set for the description.
_ERROR_CHARS = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]+")
_NOT_ERROR_CHARS = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")
# RFC 6749 Appendix A.11: code = 1*VSCHAR
_VSCHARS = re.compile(r"[\x20-\x7e]+")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")

# ------------------------------------------------------------------ public types


@dataclass(frozen=True)
class CallbackResult:
    """An accepted authorization response: the code (kept out of `repr`) and the `iss` seen, if any."""

    code: str = field(repr=False)
    iss: str | None = None


class CallbackError(AuthError):
    """The sign-in redirect failed or could not be received.

    `reason` is the stable, URL-free part; `url` the redirect URI or issuer
    concerned, when there is one.
    """

    def __init__(self, reason: str, url: str | None = None) -> None:
        self.reason = reason
        self.url = url
        super().__init__(f"{reason} ({url})" if url else reason)


class AuthorizationDenied(CallbackError):
    """The authorization server answered `error=access_denied`: the user (or the server) declined."""

    def __init__(self, url: str | None = None) -> None:
        super().__init__("you declined the sign-in", url)


class AuthorizationErrorResponse(CallbackError):
    """The authorization server answered with an `error` other than `access_denied`.

    `error` is the RFC 6749 error code (or "invalid error code" when it used
    characters the grammar forbids); `description` the server's
    `error_description`, sanitized and capped, for the log only, or None.
    """

    def __init__(self, error: str, description: str | None, url: str | None = None) -> None:
        self.error = error
        self.description = description
        super().__init__(f"the authorization server refused the sign-in: {error}", url)


class IssuerMismatch(CallbackError):
    """The response's `iss` is wrong or missing (RFC 9207): a possible mix-up attack; the code was not used."""


class CallbackTimeout(CallbackError):
    """No acceptable authorization response arrived in time; `rejected` counts refused ones."""

    def __init__(self, reason: str, url: str | None = None, *, rejected: int = 0) -> None:
        self.rejected = rejected
        super().__init__(reason, url)


class LoopbackListenError(CallbackError):
    """The receiver could not listen on its loopback address and port."""


class LoopbackPortInUse(LoopbackListenError):
    """The fixed port of the redirect URI is taken by another program."""

    def __init__(self, port: int, url: str | None = None) -> None:
        self.port = port
        super().__init__(f"port {port} for the redirect URI is in use by another program", url)


# ------------------------------------------------------------------ pages


def _clean_text(value: str, limit: int) -> str:
    """One line of printable text, capped — for a name shown on a page."""
    value = _CONTROL.sub(" ", value).strip()
    return value if len(value) <= limit else value[: limit - 1] + "…"


def sanitize_for_log(value: str, limit: int = _MAX_DESCRIPTION) -> str:
    """A value from the network made safe for one log line: RFC 6749's charset only, capped."""
    value = _NOT_ERROR_CHARS.sub("?", value)
    return value if len(value) <= limit else value[: limit - 3] + "..."


_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body{{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;
color:#1d1d1f;background:#fff;line-height:1.5}}
h1{{font-size:1.35rem;font-weight:600}}
@media (prefers-color-scheme:dark){{body{{color:#eee;background:#1d1d1f}}}}
</style>
</head>
<body>
<h1>{heading}</h1>
<p>{text}</p>
</body>
</html>
"""

_SECURITY_HEADERS = (
    ("Cache-Control", "no-store"),
    ("Pragma", "no-cache"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Content-Type-Options", "nosniff"),
    (
        "Content-Security-Policy",
        "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
)

_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    421: "Misdirected Request",
    431: "Request Header Fields Too Large",
    505: "HTTP Version Not Supported",
}


def _page(heading: str, text: str) -> bytes:
    """A self-contained page; every argument is escaped here."""
    h, t = html.escape(heading, quote=True), html.escape(text, quote=True)
    return _PAGE.format(title=h, heading=h, text=t).encode("utf-8")


def _response(status: int, body: bytes, extra: tuple[tuple[str, str], ...] = ()) -> bytes:
    lines = [
        f"HTTP/1.1 {status} {_REASONS[status]}",
        "Content-Type: text/html; charset=utf-8",
        f"Content-Length: {len(body)}",
        "Connection: close",
        *(f"{k}: {v}" for k, v in _SECURITY_HEADERS),
        *(f"{k}: {v}" for k, v in extra),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _simple(status: int, extra: tuple[tuple[str, str], ...] = ()) -> bytes:
    return _response(status, _page(f"{status} {_REASONS[status]}", "broxy-tray sign-in receiver."), extra)


# ------------------------------------------------------------------ address rules


def _bind_address(host: str) -> tuple[str, str]:
    """(bind address, host as written in the redirect URI) for a loopback host, else ValueError."""
    h = host.strip().lower()
    if h.startswith("[") and h.endswith("]"):
        h = h[1:-1]
    if h == "localhost":
        return "127.0.0.1", "localhost"
    try:
        ip = ipaddress.ip_address(h)
    except ValueError:
        raise ValueError(f"redirect URI host must be 127.0.0.1, localhost or [::1], not {host!r}") from None
    if not ip.is_loopback or (isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None):
        raise ValueError(f"redirect URI host must be a loopback address, not {host!r}")
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ip), f"[{ip}]"
    return str(ip), str(ip)


def _check_path(path: str) -> str:
    if not path.startswith("/"):
        raise ValueError(f"redirect URI path must start with '/': {path!r}")
    if any(c in path for c in "?#") or _CONTROL.search(path) or " " in path:
        raise ValueError("redirect URI path must not contain '?', '#', spaces or control characters")
    return path


def _listening_socket(address: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if os.name == "nt":
            # Without it another process could bind the same port and steal the redirect.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_EXCLUSIVEADDRUSE, 1)  # type: ignore[attr-defined]
        else:
            # Rebinding a stable port right after a previous sign-in (TIME_WAIT) must work;
            # on POSIX this still refuses a port another socket listens on.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((address, port))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


_IN_USE = {errno.EADDRINUSE, 10048}  # 10048: WSAEADDRINUSE
_WIN_ACCESS = 10013  # WSAEACCES: taken with SO_EXCLUSIVEADDRUSE by another process


# ------------------------------------------------------------------ the receiver


@dataclass
class _Final:
    """Internal: the answer to the request that ends the flow, and the flow's outcome."""

    answer: bytes
    result: CallbackResult | None
    error: CallbackError | None


@dataclass
class _Conn:
    writer: asyncio.StreamWriter
    task: asyncio.Task[None] | None
    head_done: bool = False


class LoopbackReceiver:
    """One-shot receiver of the authorization redirect on a loopback address.

    ``async with LoopbackReceiver(...) as r:`` starts it and closes it;
    between, ``r.redirect_uri`` goes into the authorization request and
    ``await r.wait(timeout)`` returns the `CallbackResult` or raises a
    `CallbackError` subclass. It stops listening and drops every connection
    as soon as the one valid callback is answered, on `close()`, on timeout
    and when `wait()` is cancelled.
    """

    def __init__(
        self,
        *,
        state: str,
        issuer: str,
        iss_required: bool,
        path: str = "/callback",
        port: int = 0,
        host: str = "127.0.0.1",
        server_name: str = "the server",
        read_timeout: float = DEFAULT_READ_TIMEOUT,
    ) -> None:
        if not state:
            raise ValueError("state must not be empty")
        if not 0 <= port <= 65535:
            raise ValueError(f"invalid port {port}")
        self._state = state.encode("utf-8")
        self._issuer = issuer
        self._iss_required = iss_required
        self._path = _check_path(path)
        self._requested_port = port
        self._bind_host, self._uri_host = _bind_address(host)
        self._server_name = _clean_text(server_name, _MAX_NAME) or "the server"
        self._read_timeout = read_timeout
        self._server: asyncio.base_events.Server | None = None
        self._port: int | None = None
        self._conns: dict[int, _Conn] = {}
        self._next_id = 0
        self._outcome: asyncio.Future[CallbackResult] | None = None
        self._settled = False
        self._closed = False
        self._rejected = 0

    @classmethod
    def for_redirect_uri(
        cls,
        redirect_uri: str | None,
        *,
        state: str,
        issuer: str,
        iss_required: bool,
        port: int = 0,
        server_name: str = "the server",
        read_timeout: float = DEFAULT_READ_TIMEOUT,
    ) -> LoopbackReceiver:
        """A receiver for a configured redirect URI (None → `http://127.0.0.1:<ephemeral>/callback`).

        A port written in the URI wins; otherwise `port` (e.g. the one a stored
        registration is bound to), else an ephemeral one. Only `http` on a
        loopback host, without query or fragment, is accepted (ValueError).
        """
        if redirect_uri is None:
            return cls(state=state, issuer=issuer, iss_required=iss_required, port=port,
                       server_name=server_name, read_timeout=read_timeout)
        parts = urlsplit(redirect_uri)
        if parts.scheme.lower() != "http":
            raise ValueError(f"redirect URI must use http on a loopback address: {redirect_uri}")
        if parts.query or parts.fragment or "#" in redirect_uri or "?" in redirect_uri:
            raise ValueError(f"redirect URI must not have a query or fragment: {redirect_uri}")
        if parts.username is not None or parts.password is not None:
            raise ValueError(f"redirect URI must not contain user information: {redirect_uri}")
        host = parts.hostname or ""
        if not host or not is_loopback_host(host):
            raise ValueError(f"redirect URI host must be 127.0.0.1, localhost or [::1]: {redirect_uri}")
        try:
            uri_port = parts.port
        except ValueError:
            raise ValueError(f"redirect URI has an invalid port: {redirect_uri}") from None
        return cls(
            state=state,
            issuer=issuer,
            iss_required=iss_required,
            path=parts.path or "/",
            port=uri_port if uri_port is not None else port,
            host=host,
            server_name=server_name,
            read_timeout=read_timeout,
        )

    # -------------------------------------------------------------- properties

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the receiver is not started")
        return self._port

    @property
    def redirect_uri(self) -> str:
        """`http://<host>:<port><path>`, the host as configured (`localhost` stays `localhost`)."""
        return f"http://{self._uri_host}:{self.port}{self._path}"

    @property
    def rejected(self) -> int:
        """How many responses with a missing or wrong `state` were refused so far."""
        return self._rejected

    @property
    def closed(self) -> bool:
        return self._closed

    # -------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        if self._server is not None or self._closed:
            raise RuntimeError("a LoopbackReceiver can be started only once")
        where = f"http://{self._uri_host}:{self._requested_port}{self._path}" if self._requested_port else None
        try:
            sock = _listening_socket(self._bind_host, self._requested_port)
        except OSError as exc:
            if self._requested_port and (
                exc.errno in _IN_USE or (os.name == "nt" and getattr(exc, "winerror", None) == _WIN_ACCESS)
            ):
                raise LoopbackPortInUse(self._requested_port, where) from None
            if self._requested_port and exc.errno == errno.EACCES:
                raise LoopbackListenError(
                    f"port {self._requested_port} for the redirect URI cannot be opened (permission denied)", where
                ) from None
            raise LoopbackListenError(
                f"cannot listen on {self._bind_host} port {self._requested_port} for the redirect URI: "
                f"{exc.strerror or exc}",
                where,
            ) from None
        self._outcome = asyncio.get_running_loop().create_future()
        try:
            self._server = await asyncio.start_server(self._handle, sock=sock, limit=MAX_HEAD_BYTES, backlog=128)
        except BaseException:
            sock.close()
            raise
        self._port = sock.getsockname()[1]
        log.info("waiting for the sign-in redirect on %s", self.redirect_uri)

    async def wait(self, timeout: float | None = None) -> CallbackResult:
        """The accepted response, or the `CallbackError` that ended the flow.

        Raises `CallbackTimeout` after `timeout` seconds (None: no limit).
        Returning, raising or being cancelled, it leaves the receiver closed.
        """
        if self._outcome is None:
            raise RuntimeError("start() the receiver before waiting on it")
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.shield(self._outcome)
        except TimeoutError:
            if self._outcome.done():  # settled in the same instant
                return self._outcome.result()
            reason = f"no sign-in response arrived within {timeout:g} s"
            if self._rejected:
                n = self._rejected
                reason += (
                    f"; {n} response{'s' if n != 1 else ''} with a missing or wrong state "
                    f"{'were' if n != 1 else 'was'} rejected"
                )
            log.info("sign-in redirect: %s", reason)
            raise CallbackTimeout(reason, self.redirect_uri, rejected=self._rejected) from None
        finally:
            self.close()

    def close(self) -> None:
        """Stop listening and drop every connection now; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._shutdown(keep=None)
        if self._outcome is not None and not self._outcome.done():
            self._outcome.set_exception(CallbackError("the sign-in was stopped before a response arrived"))
            self._outcome.exception()  # retrieved: no "never retrieved" warning if nobody waits
        log.debug("sign-in receiver closed")

    async def aclose(self) -> None:
        """`close()`, then wait until the connection handlers have finished."""
        self.close()
        tasks = [c.task for c in self._conns.values() if c.task is not None and c.task is not asyncio.current_task()]
        if tasks:
            await asyncio.wait(tasks, timeout=_WRITE_TIMEOUT)

    async def __aenter__(self) -> LoopbackReceiver:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _shutdown(self, keep: int | None) -> None:
        if self._server is not None:
            self._server.close()  # closes the listening socket at once
        for cid, conn in list(self._conns.items()):
            if cid != keep:
                conn.writer.transport.abort()

    def _settle(self, result: CallbackResult | None, error: CallbackError | None) -> None:
        if self._outcome is None or self._outcome.done():
            return
        if error is not None:
            self._outcome.set_exception(error)
        else:
            assert result is not None
            self._outcome.set_result(result)

    # -------------------------------------------------------------- connections

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._settled or self._closed:
            writer.transport.abort()
            return
        cid = self._next_id
        self._next_id += 1
        conn = _Conn(writer, asyncio.current_task())
        self._evict_if_crowded()
        self._conns[cid] = conn
        try:
            await self._serve(cid, conn, reader, writer)
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._conns.pop(cid, None)
            writer.close()

    def _evict_if_crowded(self) -> None:
        if len(self._conns) < MAX_CONNECTIONS:
            return
        for cid, conn in self._conns.items():
            if not conn.head_done:
                log.debug("sign-in receiver: too many connections, dropping the oldest idle one")
                conn.writer.transport.abort()
                self._conns.pop(cid)
                return

    async def _serve(
        self, cid: int, conn: _Conn, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            async with asyncio.timeout(self._read_timeout):
                head = await reader.readuntil(b"\r\n\r\n")
        except TimeoutError:
            log.debug("sign-in receiver: a connection sent no complete request in time; dropped")
            return
        except (asyncio.LimitOverrunError, ValueError):
            log.info("sign-in receiver: refused an oversized request")
            await self._send(writer, _simple(431))
            return
        except asyncio.IncompleteReadError:
            return
        conn.head_done = True
        if self._settled or self._closed:
            return
        answer = self._dispatch(head)
        if isinstance(answer, bytes):
            await self._send(writer, answer)
            return
        # The flow is decided: nobody else gets in; answer this browser, then report.
        self._settled = True
        self._shutdown(keep=cid)
        try:
            await self._send(writer, answer.answer)
        finally:
            self._settle(answer.result, answer.error)
            self.close()

    async def _send(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(data)
        with contextlib.suppress(TimeoutError, ConnectionError, OSError):
            async with asyncio.timeout(_WRITE_TIMEOUT):
                await writer.drain()
        writer.close()

    # -------------------------------------------------------------- requests

    def _dispatch(self, head: bytes) -> bytes | _Final:
        """The answer to a request that leaves the receiver waiting, or the `_Final` one."""
        lines = head[:-4].decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not _TOKEN.fullmatch(parts[0]):
            return _simple(400)
        method, target, version = parts
        if version not in ("HTTP/1.1", "HTTP/1.0"):
            return _simple(505) if version.startswith("HTTP/") else _simple(400)
        hosts = []
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep or not _TOKEN.fullmatch(name):
                return _simple(400)
            if name.lower() == "host":
                hosts.append(value.strip())
        if len(hosts) > 1 or (version == "HTTP/1.1" and not hosts):
            return _simple(400)
        if hosts and not _loopback_host_header(hosts[0]):
            # A DNS-rebound name pointing at us: not a browser following our redirect URI.
            log.info("sign-in receiver: refused a request for a non-loopback Host")
            return _simple(421)
        if method != "GET":
            log.info("sign-in receiver: refused a %s request", sanitize_for_log(method, 16))
            return _simple(405, (("Allow", "GET"),))
        if not target.startswith("/"):
            return _simple(400)
        path, _, query = target.partition("?")
        if path != self._path:
            log.info("sign-in receiver: 404 for %s", sanitize_for_log(path, 80))
            return _simple(404)
        return self._callback(query)

    def _callback(self, query: str) -> bytes | _Final:
        log.info("sign-in receiver: a callback arrived")
        try:
            params = parse_qs(query, keep_blank_values=True, max_num_fields=_MAX_QUERY_FIELDS)
        except ValueError:
            params = None
        states = params.get("state", []) if params is not None else []
        if len(states) != 1 or not hmac.compare_digest(states[0].encode("utf-8"), self._state):
            self._rejected += 1
            log.warning(
                "sign-in receiver: rejected a response with a missing or wrong state "
                "(a stray or forged request); still waiting for the real one"
            )
            return _response(400, self._not_accepted_page())
        return self._final(params or {})

    def _final(self, params: dict[str, list[str]]) -> _Final:
        """Decide the flow for a response with the right state."""

        def fail(error: CallbackError, page: bytes) -> _Final:
            log.warning("sign-in receiver: response refused: %s", error.reason)
            return _Final(_response(400, page), None, error)

        for name in ("code", "iss", "error", "error_description", "error_uri"):
            if len(params.get(name, [])) > 1:
                return fail(
                    CallbackError(f"the sign-in response repeats the {name} parameter", self._issuer),
                    self._not_accepted_page(),
                )
        iss = params["iss"][0] if "iss" in params else None
        if iss is None and self._iss_required:
            return fail(
                IssuerMismatch(
                    "the sign-in response does not name its authorization server (iss), "
                    "although the server announces that it does (RFC 9207); the response was not used",
                    self._issuer,
                ),
                self._not_accepted_page(),
            )
        if iss is not None and not hmac.compare_digest(iss.encode("utf-8"), self._issuer.encode("utf-8")):
            log.warning("sign-in receiver: iss of the response was %r", sanitize_for_log(iss, 120))
            return fail(
                IssuerMismatch(
                    "the sign-in response names another authorization server (iss) than the one asked "
                    "— a possible mix-up attack; the response was not used",
                    self._issuer,
                ),
                self._not_accepted_page(),
            )
        if "error" in params:
            raw = params["error"][0]
            code = raw if _ERROR_CHARS.fullmatch(raw) and len(raw) <= 64 else "invalid error code"
            if code == "access_denied":
                log.info("sign-in receiver: the sign-in was declined (access_denied)")
                return _Final(_response(200, self._declined_page()), None, AuthorizationDenied(self._issuer))
            desc_raw = params.get("error_description", [None])[0]
            desc = sanitize_for_log(desc_raw) if desc_raw else None
            if desc is not None:
                log.warning("sign-in receiver: authorization error %s: %s", code, desc)
            return fail(AuthorizationErrorResponse(code, desc, self._issuer), self._failed_page(code))
        codes = params.get("code", [])
        if not codes or not codes[0] or not _VSCHARS.fullmatch(codes[0]):
            return fail(
                CallbackError("the sign-in response carries neither a usable code nor an error", self._issuer),
                self._not_accepted_page(),
            )
        log.info("sign-in receiver: response accepted")
        return _Final(_response(200, self._success_page()), CallbackResult(codes[0], iss), None)

    # -------------------------------------------------------------- pages

    def _success_page(self) -> bytes:
        return _page(f"Signed in to {self._server_name}", "You can close this tab and return to broxy-tray.")

    def _declined_page(self) -> bytes:
        return _page(f"Sign-in to {self._server_name} was declined", "You can close this tab.")

    def _failed_page(self, error: str) -> bytes:
        return _page(
            f"Sign-in to {self._server_name} failed",
            f"The authorization server answered with the error “{error}”. "
            "broxy-tray shows the details. You can close this tab.",
        )

    def _not_accepted_page(self) -> bytes:
        return _page(
            "This sign-in response was not accepted",
            "broxy-tray did not use it. If you are signing in, finish in the tab that broxy-tray opened; "
            "otherwise you can close this tab.",
        )


def _loopback_host_header(value: str) -> bool:
    host = value.strip()
    if host.startswith("["):
        end = host.find("]")
        if end < 0:
            return False
        name = host[1:end]
    else:
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return bool(name) and is_loopback_host(name)


__all__ = [
    "AuthorizationDenied",
    "AuthorizationErrorResponse",
    "CallbackError",
    "CallbackResult",
    "CallbackTimeout",
    "IssuerMismatch",
    "LoopbackListenError",
    "LoopbackPortInUse",
    "LoopbackReceiver",
]
