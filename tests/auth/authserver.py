"""A strict OAuth 2.1 authorization server for tests, served on 127.0.0.1.

It enforces what a real authorization server enforces, so that a lax client
fails against it:

* metadata: RFC 8414 and OpenID Connect discovery, each well-known variant
  switchable, issuer with or without a path;
* clients: pre-registered (exact redirect URIs, auth method, secret), dynamic
  registration (RFC 7591, validated), Client ID Metadata Documents (https URL
  client ids, documents registered in-process instead of fetched);
* ``/authorize``: ``response_type=code``, exact redirect URI match (RFC 8252
  §7.3 loopback-port leniency is a switch, off by default), PKCE S256 only,
  ``state`` required (switch), ``resource`` (RFC 8707) among known resources,
  ``scope`` within the server's scopes, ``iss`` in the response (RFC 9207);
  an invalid client or redirect URI gets a 400 page, never a redirect;
* ``/token``: authorization codes single-use, short-lived, bound to client,
  redirect URI, PKCE verifier and resource; refresh tokens rotated (reuse of a
  rotated token is ``invalid_grant`` and revokes the family); client
  authentication per the client's registered method (``none``,
  ``client_secret_basic`` with form-urlencoded credentials, ``client_secret_post``);
* ``/revoke`` (RFC 7009);
* opaque random access tokens bound to one ``resource`` with scopes and expiry,
  exposed to the resource server through :meth:`AuthServer.introspect`;
* a request log with secrets masked and per-endpoint counters;
* switchable faults per endpoint (500, malformed JSON, oversized body, slow,
  hang until :meth:`AuthServer.release`, ``invalid_client``, HTML, a dropped
  connection, and ``hold``: the request is *processed* — a refresh token
  rotated — but the answer is held back until release() or ``delay``, like a
  response that arrives after the client gave up);
* like the big hosted servers: configurable access-token lifetime, optional
  refresh-token lifetime, single-use rotating refresh tokens with reuse
  detection, and its own account of what happened (:attr:`AuthServer.grants`,
  :attr:`AuthServer.stats`), so tests count from the server, not the client;
* an injectable wall clock (``AuthServer(clock=...)``) and an in-process
  transport (:meth:`AuthServer.transport`) for simulated-time tests.

Usage::

    with AuthServer(issuer_path="/tenant", scopes=["mcp:read"]) as auth:
        auth.add_resource("http://127.0.0.1:1234/mcp")
        client = auth.add_client(redirect_uris=["http://127.0.0.1:5555/callback"])
        ...
        assert auth.count("authorize") == 1

Every switch lives in ``auth.config`` (an :class:`ASConfig`) and may be changed
while the server runs; it is read on every request.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import hmac
import html
import ipaddress
import json
import math
import re
import secrets
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple
from urllib.parse import parse_qsl, unquote_plus, urlencode, urlsplit, urlunsplit

import uvicorn
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

__all__ = [
    "ASConfig",
    "AuthServer",
    "ClientRecord",
    "Fault",
    "GrantRecord",
    "Introspection",
    "LoggedRequest",
    "ServerThread",
    "s256",
    "is_loopback_host",
]

WellKnown = Literal["oauth", "oidc_insert", "oidc_append"]
FaultKind = Literal["500", "malformed_json", "oversized", "slow", "hang", "invalid_client", "html", "drop", "hold"]
Endpoint = Literal["metadata", "authorize", "token", "register", "revoke", "jwks"]

SECRET_PARAMS = frozenset(
    {"client_secret", "code", "code_verifier", "refresh_token", "access_token", "token", "password", "assertion"}
)
MASK = "***"
_PKCE_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
_PKCE_CHALLENGE_S256 = re.compile(r"^[A-Za-z0-9\-_]{43}$")


def s256(verifier: str) -> str:
    """The RFC 7636 S256 code challenge for ``verifier``."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _token(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(24)}"


# --------------------------------------------------------------------------- configuration


@dataclass
class ASConfig:
    """Every switch of the authorization server (mutable at run time)."""

    # --- identity and discovery
    issuer_path: str = ""
    """Path part of the issuer ("" or e.g. "/tenant1"); endpoints live under it."""
    well_known: set[WellKnown] = field(default_factory=lambda: {"oauth"})
    """Which discovery documents exist: "oauth" = RFC 8414 path-inserted
    (/.well-known/oauth-authorization-server{path}); "oidc_insert" =
    /.well-known/openid-configuration{path}; "oidc_append" =
    {path}/.well-known/openid-configuration (the same URL as "oidc_insert"
    for an issuer without a path). Empty: no metadata at all (2025-03-26
    fallback endpoints /authorize, /token, /register still work when
    issuer_path is "")."""
    metadata_issuer: str | None = None
    """Advertise this ``issuer`` in the documents instead of the real one (mismatch tests)."""
    code_challenge_methods: list[str] | None = field(default_factory=lambda: ["S256"])
    """Advertised code_challenge_methods_supported; ``None`` omits the field. The
    server enforces S256 whatever it advertises."""
    cimd_supported: bool = False
    """Advertise (and accept) Client ID Metadata Documents (https URL client ids)."""
    iss_supported: bool = True
    """Advertise authorization_response_iss_parameter_supported (and, with
    authorize_iss="auto", put ``iss`` in authorization responses)."""
    registration: Literal["open", "reject", "off"] = "open"
    """"open": registration_endpoint advertised and served; "reject": advertised, every
    registration refused (403 access_denied); "off": not advertised, 404."""
    revocation: bool = True
    """Advertise and serve the revocation endpoint."""
    scopes: list[str] = field(default_factory=lambda: ["mcp:read", "mcp:write", "mcp:admin"])
    offline_access: bool = True
    """Add "offline_access" to the scopes (advertised and accepted)."""
    advertise_scopes: bool = True
    """Include scopes_supported in the metadata."""
    token_endpoint_auth_methods: list[str] = field(
        default_factory=lambda: ["client_secret_basic", "client_secret_post", "none"]
    )
    """Advertised token_endpoint_auth_methods_supported; also what DCR accepts."""
    extra_metadata: dict[str, Any] = field(default_factory=dict)
    """Merged into every metadata document last (may override anything)."""

    # --- authorization endpoint
    loopback_any_port: bool = False
    """RFC 8252 §7.3: for loopback redirect URIs, ignore the port when matching."""
    require_state: bool = True
    require_resource: bool = True
    """``resource`` required at /authorize, and at /token for both grants."""
    accept_any_resource: bool = False
    """Accept any absolute ``resource`` instead of only those added with add_resource()."""
    authorize_mode: Literal["approve", "deny", "wrong_state", "hang"] = "approve"
    """The automatic user: approve; decline (error=access_denied); approve but
    echo a wrong ``state``; or never answer until release() (then approve)."""
    authorize_iss: Literal["auto", "always", "never", "wrong"] = "auto"
    """``iss`` in authorization responses: "auto" = iff iss_supported; "always" =
    even if not advertised; "never" = missing; "wrong" = a different issuer."""
    default_scopes: list[str] = field(default_factory=list)
    """Granted when the authorization request has no ``scope``."""
    code_ttl: float = 60.0

    # --- token endpoint
    access_token_ttl: float = 3600.0
    """Access-token lifetime in seconds (``expires_in`` is its ceiling as an integer)."""
    omit_expires_in: bool = False
    issue_refresh_tokens: bool = True
    refresh_requires_offline_access: bool = False
    """Issue a refresh token only when offline_access was granted."""
    refresh_omit_new_token: bool = False
    """Refresh responses carry no new refresh token; the old one then stays valid."""
    refresh_invalid_grant: bool = False
    """Every refresh_token grant answers 400 invalid_grant."""
    revoke_family_on_reuse: bool = True
    """Presenting a rotated-out refresh token (or a used code) revokes the whole grant."""
    refresh_token_ttl: float | None = None
    """Refresh-token lifetime in seconds (None: no expiry); an expired one is invalid_grant."""
    reuse_grace: float = 0.0
    """Seconds during which the refresh token just rotated out may be presented again (a client
    whose answer got lost retries), as Okta's grace period or Auth0's reuse interval; 0: strict."""


class Fault(NamedTuple):
    kind: FaultKind
    times: int | None = None  # None: every request until cleared
    delay: float = 0.0  # for "slow"
    size: int = 4 * 1024 * 1024  # for "oversized"


@dataclass
class ClientRecord:
    client_id: str
    client_secret: str | None
    auth_method: str
    redirect_uris: list[str]
    grant_types: list[str] = field(default_factory=lambda: ["authorization_code", "refresh_token"])
    response_types: list[str] = field(default_factory=lambda: ["code"])
    scope: str | None = None
    kind: Literal["preregistered", "dcr", "cimd"] = "preregistered"
    metadata: dict[str, Any] = field(default_factory=dict)


class Introspection(NamedTuple):
    active: bool
    scopes: tuple[str, ...]
    resource: str | None
    expires_at: float | None
    client_id: str | None = None


@dataclass
class LoggedRequest:
    method: str
    path: str
    endpoint: str
    query: dict[str, str]
    form: dict[str, str]
    json: Any
    auth_scheme: str | None
    status: int | None = None


@dataclass
class _Code:
    client_id: str
    redirect_uri: str
    challenge: str
    resource: str | None
    scopes: tuple[str, ...]
    expires_at: float
    grant_id: str
    used: bool = False


@dataclass
class _Access:
    client_id: str
    scopes: tuple[str, ...]
    resource: str | None
    expires_at: float
    grant_id: str
    revoked: bool = False


@dataclass
class _Refresh:
    client_id: str
    scopes: tuple[str, ...]
    resource: str | None
    grant_id: str
    active: bool = True
    issued_at: float = 0.0
    expires_at: float | None = None
    rotated_at: float | None = None


@dataclass
class GrantRecord:
    """One token-endpoint grant as the server saw it (its own clock)."""

    at: float
    grant_type: str
    client_id: str
    outcome: str  # issued | reuse | revoked | expired | unknown | refused | error
    token_age: float | None = None  # refresh grants: seconds since the presented refresh token was issued


class _Drop(Exception):
    """Close the connection without an answer (fault "drop", or a held answer at shutdown)."""


class _DropFilter:
    """Keeps the intended drops out of uvicorn's error log."""

    @staticmethod
    def filter(record: Any) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, _Drop)


class _OAuthError(Exception):
    def __init__(self, error: str, description: str, status: int = 400, headers: dict[str, str] | None = None):
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        return JSONResponse(
            {"error": self.error, "error_description": self.description},
            status_code=self.status,
            headers={"Cache-Control": "no-store", **self.headers},
        )


# --------------------------------------------------------------------------- uvicorn in a thread


class ServerThread:
    """Serves an ASGI app with uvicorn on 127.0.0.1:<ephemeral> in a background thread."""

    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int = 0, on_stop: Any = None) -> None:
        self.app = app
        self.host = host
        self._requested_port = port
        self.port: int | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._on_stop = on_stop
        self._error: BaseException | None = None

    @property
    def origin(self) -> str:
        assert self.port is not None, "server not started"
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # inherited by accepted sockets: no Nagle stalls
        sock.bind((self.host, self._requested_port))
        sock.listen(128)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            lifespan="auto",
            interface="asgi3",
            access_log=False,
            timeout_graceful_shutdown=1,
            timeout_keep_alive=5,
        )
        server = uvicorn.Server(config)
        self._server = server
        import logging

        logging.getLogger("uvicorn.error").addFilter(_DropFilter())

        def run() -> None:
            try:
                asyncio.run(server.serve(sockets=[sock]))
            except BaseException as exc:  # pragma: no cover - surfaced by start()/stop()
                self._error = exc
            finally:
                sock.close()

        self._thread = threading.Thread(target=run, name=f"uvicorn-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if self._error is not None or not self._thread.is_alive():
                raise RuntimeError(f"server failed to start: {self._error!r}")
            if time.monotonic() > deadline:
                raise TimeoutError("server did not start")
            time.sleep(0.005)

    def signal_stop(self) -> None:
        """Ask the server to shut down without waiting (stop() then waits)."""
        if self._on_stop is not None:
            self._on_stop()
        if self._server is not None:
            self._server.should_exit = True

    def stop(self, timeout: float = 5.0) -> None:
        self.signal_stop()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive() and self._server is not None:
                self._server.force_exit = True
                self._thread.join(timeout)
        self._server = None
        self._thread = None


# --------------------------------------------------------------------------- the server


class AuthServer:
    """The authorization server. A context manager; see the module docstring."""

    def __init__(self, config: ASConfig | None = None, *, clock: Any = time.time, **overrides: Any) -> None:
        self.config = dataclasses.replace(config or ASConfig(), **overrides)
        self.clock = clock
        """The wall clock of every expiry and of the grant log (a fake one for simulated time)."""
        self.down = False
        """In-process transport only: every request fails to connect (the server is down)."""
        self.grants: list[GrantRecord] = []
        self.stats: Counter[str] = Counter()
        """refresh_grants, refreshed, reuse_detected, invalid_grant, code_grants, held, dropped, refused."""
        self._lock = threading.RLock()
        self._origin: str | None = None
        self._thread: ServerThread | None = None
        self._closing = threading.Event()
        self.gate = threading.Event()
        """Cleared: "hang" behaviours wait. release() sets it."""
        self.resources: set[str] = set()
        self.clients: dict[str, ClientRecord] = {}
        self.cimd_documents: dict[str, dict[str, Any]] = {}
        self.faults: dict[str, Fault] = {}
        self.log: list[LoggedRequest] = []
        self.counts: Counter[str] = Counter()
        self.registrations: list[dict[str, Any]] = []
        """Bodies of accepted dynamic registrations (the client's metadata)."""
        self.authorization_requests: list[dict[str, str]] = []
        """Query parameters of every /authorize request (nothing secret in them)."""
        self._codes: dict[str, _Code] = {}
        self._access: dict[str, _Access] = {}
        self._refresh: dict[str, _Refresh] = {}
        self._revoked_grants: set[str] = set()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> AuthServer:
        self._closing.clear()
        self._thread = ServerThread(self.asgi, on_stop=self._closing.set)
        self._thread.start()
        self._origin = self._thread.origin
        return self

    def stop(self) -> None:
        self._closing.set()
        if self._thread is not None:
            self._thread.stop()
            self._thread = None

    def signal_stop(self) -> None:
        """Begin shutting down (several servers can then stop() in parallel)."""
        self._closing.set()
        if self._thread is not None:
            self._thread.signal_stop()

    def __enter__(self) -> AuthServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def attach(self, origin: str) -> None:
        """Serve from someone else's server (the resource server embeds us)."""
        self._origin = origin

    # ------------------------------------------------------------------ URLs

    @property
    def origin(self) -> str:
        if self._origin is None:
            raise RuntimeError("authorization server not started")
        return self._origin

    @property
    def port(self) -> int:
        return int(self.origin.rsplit(":", 1)[1])

    @property
    def issuer(self) -> str:
        return self.origin + self.config.issuer_path

    def url(self, endpoint: str) -> str:
        return f"{self.issuer}/{endpoint}"

    @property
    def authorization_endpoint(self) -> str:
        return self.url("authorize")

    @property
    def token_endpoint(self) -> str:
        return self.url("token")

    @property
    def registration_endpoint(self) -> str:
        return self.url("register")

    @property
    def revocation_endpoint(self) -> str:
        return self.url("revoke")

    def metadata_url(self, variant: WellKnown = "oauth") -> str:
        return self.origin + self._well_known_path(variant)

    def _well_known_path(self, variant: WellKnown) -> str:
        p = self.config.issuer_path
        if variant == "oauth":
            return "/.well-known/oauth-authorization-server" + p
        if variant == "oidc_insert":
            return "/.well-known/openid-configuration" + p
        return p + "/.well-known/openid-configuration"

    # ------------------------------------------------------------------ test-facing helpers

    def add_resource(self, resource: str) -> None:
        with self._lock:
            self.resources.add(resource)

    def add_client(
        self,
        client_id: str | None = None,
        *,
        client_secret: str | None = None,
        auth_method: str | None = None,
        redirect_uris: list[str],
        grant_types: list[str] | None = None,
        scope: str | None = None,
    ) -> ClientRecord:
        """Pre-register a client. ``auth_method`` defaults to ``none`` without a
        secret and ``client_secret_basic`` with one."""
        if auth_method is None:
            auth_method = "client_secret_basic" if client_secret else "none"
        if auth_method != "none" and not client_secret:
            client_secret = secrets.token_urlsafe(24)
        if auth_method == "none":
            client_secret = None
        rec = ClientRecord(
            client_id=client_id or f"pre_{secrets.token_hex(6)}",
            client_secret=client_secret,
            auth_method=auth_method,
            redirect_uris=list(redirect_uris),
            grant_types=list(grant_types or ["authorization_code", "refresh_token"]),
            scope=scope,
            kind="preregistered",
        )
        with self._lock:
            self.clients[rec.client_id] = rec
        return rec

    def forget_client(self, client_id: str) -> None:
        """Drop a client (its credentials now fail with invalid_client)."""
        with self._lock:
            self.clients.pop(client_id, None)

    def add_cimd_document(self, url: str, document: dict[str, Any]) -> None:
        """Make ``url`` resolvable as a Client ID Metadata Document (instead of fetching it)."""
        with self._lock:
            self.cimd_documents[url] = document

    def set_fault(
        self,
        endpoint: Endpoint,
        kind: FaultKind,
        *,
        times: int | None = None,
        delay: float = 0.0,
        size: int = 4 * 1024 * 1024,
    ) -> None:
        """Make ``endpoint`` misbehave (``times`` requests, or until clear_faults()).

        500: HTTP 500 with a JSON error. malformed_json: 200, application/json,
        truncated JSON. oversized: 200 with a ``size``-byte JSON body. slow:
        sleep ``delay`` then answer normally. hang: never answer until
        release() (or shutdown); as a timeout, the client gives up. drop: close the
        connection without an answer (after ``delay``). hold: process the request
        (a refresh token is rotated) but hold the answer until release() or for
        ``delay`` seconds. invalid_client: 401 invalid_client. html:
        200 text/html (a login page where JSON was expected)."""
        with self._lock:
            self.faults[endpoint] = Fault(kind, times, delay, size)

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()

    def release(self) -> None:
        """Let every hanging request (authorize_mode="hang", fault "hang") proceed."""
        self.gate.set()

    def count(self, endpoint: str) -> int:
        """Number of requests seen for an endpoint: "metadata", "authorize", "token",
        "register", "revoke", "jwks" or "unknown"; or the number of requests to a
        path when ``endpoint`` starts with "/"."""
        with self._lock:
            if endpoint.startswith("/"):
                return sum(1 for r in self.log if r.path == endpoint)
            return self.counts[endpoint]

    def requests(self, endpoint: str | None = None) -> list[LoggedRequest]:
        with self._lock:
            return [r for r in self.log if endpoint is None or r.endpoint == endpoint]

    def reset_log(self) -> None:
        with self._lock:
            self.log.clear()
            self.counts.clear()
            self.grants.clear()
            self.stats.clear()

    def refresh_grants(self, client_id: str | None = None, outcome: str | None = None) -> list[GrantRecord]:
        """The refresh_token grants seen, optionally of one client and one outcome."""
        with self._lock:
            return [g for g in self.grants if g.grant_type == "refresh_token"
                    and (client_id is None or g.client_id == client_id)
                    and (outcome is None or g.outcome == outcome)]

    def introspect(self, token: str) -> Introspection:
        """What the resource server needs to know about an access token."""
        with self._lock:
            rec = self._access.get(token)
            if rec is None:
                return Introspection(False, (), None, None, None)
            active = not rec.revoked and rec.grant_id not in self._revoked_grants and self.clock() < rec.expires_at
            return Introspection(active, rec.scopes, rec.resource, rec.expires_at, rec.client_id)

    def refresh_token_active(self, token: str) -> bool:
        with self._lock:
            rec = self._refresh.get(token)
            return bool(rec and rec.active and rec.grant_id not in self._revoked_grants)

    def expire_access_tokens(self) -> None:
        """Make every access token issued so far expired (without waiting)."""
        with self._lock:
            for rec in self._access.values():
                rec.expires_at = min(rec.expires_at, self.clock() - 1)

    @property
    def all_scopes(self) -> list[str]:
        s = list(self.config.scopes)
        if self.config.offline_access and "offline_access" not in s:
            s.append("offline_access")
        return s

    # ------------------------------------------------------------------ metadata

    def metadata(self, oidc: bool = False) -> dict[str, Any]:
        c = self.config
        doc: dict[str, Any] = {
            "issuer": c.metadata_issuer or self.issuer,
            "authorization_endpoint": self.authorization_endpoint,
            "token_endpoint": self.token_endpoint,
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_methods_supported": list(c.token_endpoint_auth_methods),
        }
        if c.advertise_scopes:
            doc["scopes_supported"] = self.all_scopes
        if c.code_challenge_methods is not None:
            doc["code_challenge_methods_supported"] = list(c.code_challenge_methods)
        if c.registration != "off":
            doc["registration_endpoint"] = self.registration_endpoint
        if c.revocation:
            doc["revocation_endpoint"] = self.revocation_endpoint
            doc["revocation_endpoint_auth_methods_supported"] = list(c.token_endpoint_auth_methods)
        doc["client_id_metadata_document_supported"] = c.cimd_supported
        doc["authorization_response_iss_parameter_supported"] = c.iss_supported
        if oidc:
            doc["jwks_uri"] = self.url("jwks")
            doc["subject_types_supported"] = ["public"]
            doc["id_token_signing_alg_values_supported"] = ["RS256"]
        doc.update(c.extra_metadata)
        return doc

    # ------------------------------------------------------------------ ASGI

    def _route(self, path: str) -> tuple[str, Any]:
        c = self.config
        for variant in ("oauth", "oidc_insert", "oidc_append"):
            if variant in c.well_known and path == self._well_known_path(variant):  # type: ignore[arg-type]
                return "metadata", variant
        p = c.issuer_path
        table = {
            p + "/authorize": "authorize",
            p + "/token": "token",
            p + "/register": "register",
            p + "/revoke": "revoke",
            p + "/jwks": "jwks",
        }
        return table.get(path, "unknown"), None

    async def asgi(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":  # pragma: no cover
            return
        request = Request(scope, receive)
        try:
            response = await self.handle(request)
        except _Drop:
            # close the connection without an answer: start a response, then fail (the server drops it)
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"100")]})
            raise
        await response(scope, receive, send)

    def transport(self) -> Any:
        """An httpx2 transport that serves this server in-process, on the caller's event loop.

        No sockets and no threads, so a test on a virtual-time loop can make thousands of grants
        in simulated hours. `down` makes every request fail to connect; a "drop" fault becomes
        a closed connection."""
        import httpx2

        server = self

        class _InProcess(httpx2.AsyncBaseTransport):
            # a minimal ASGI call (httpx2.ASGITransport probes for trio with an import on every request)
            async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
                if server.down:
                    with server._lock:
                        server.stats["refused"] += 1
                    raise httpx2.ConnectError("connection refused (authorization server down)", request=request)
                body = await request.aread()
                scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                         "method": request.method, "scheme": request.url.scheme, "path": request.url.path,
                         "raw_path": request.url.raw_path.split(b"?")[0], "query_string": request.url.query,
                         "root_path": "", "headers": [(k.lower(), v) for k, v in request.headers.raw],
                         "client": ("127.0.0.1", 1), "server": (request.url.host, request.url.port or 80)}
                sent = False
                out: dict[str, Any] = {"body": b""}

                async def receive() -> dict[str, Any]:
                    nonlocal sent
                    if sent:
                        return {"type": "http.disconnect"}
                    sent = True
                    return {"type": "http.request", "body": body, "more_body": False}

                async def send(message: dict[str, Any]) -> None:
                    if message["type"] == "http.response.start":
                        out["status"], out["headers"] = message["status"], message.get("headers", [])
                    elif message["type"] == "http.response.body":
                        out["body"] += message.get("body", b"")

                try:
                    await server.asgi(scope, receive, send)
                except _Drop:
                    raise httpx2.RemoteProtocolError("server disconnected without a response",
                                                     request=request) from None
                return httpx2.Response(out["status"], headers=out["headers"], content=out["body"], request=request)

        return _InProcess()

    async def handle(self, request: Request) -> Response:
        """Answer one HTTP request (usable from an embedding app)."""
        endpoint, variant = self._route(request.url.path)
        body = await request.body()
        form_multi: list[tuple[str, str]] = []
        js: Any = None
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype == "application/x-www-form-urlencoded":
            try:
                form_multi = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
            except UnicodeDecodeError:
                form_multi = []
        elif ctype == "application/json" and body:
            try:
                js = json.loads(body)
            except ValueError:
                js = None
        auth_header = request.headers.get("authorization")
        entry = LoggedRequest(
            method=request.method,
            path=request.url.path,
            endpoint=endpoint,
            query={k: (MASK if k in SECRET_PARAMS else v) for k, v in request.query_params.multi_items()},
            form={k: (MASK if k in SECRET_PARAMS else v) for k, v in form_multi},
            json=_mask_json(js),
            auth_scheme=auth_header.split(" ", 1)[0] if auth_header else None,
        )
        with self._lock:
            self.log.append(entry)
            self.counts[endpoint] += 1
        response = await self._dispatch(request, endpoint, variant, form_multi, js, body, ctype)
        entry.status = response.status_code
        return response

    async def _dispatch(
        self,
        request: Request,
        endpoint: str,
        variant: Any,
        form_multi: list[tuple[str, str]],
        js: Any,
        body: bytes,
        ctype: str,
    ) -> Response:
        if endpoint == "unknown":
            return JSONResponse({"error": "not_found"}, status_code=404)
        if endpoint == "register" and self.config.registration == "off":
            return JSONResponse({"error": "not_found"}, status_code=404)
        if endpoint == "revoke" and not self.config.revocation:
            return JSONResponse({"error": "not_found"}, status_code=404)

        fault = self._take_fault(endpoint)
        if fault is not None and fault.kind == "hold":
            response = await self._answer(request, endpoint, variant, form_multi, js, ctype)
            with self._lock:
                self.stats["held"] += 1
            if fault.delay > 0:
                await asyncio.sleep(fault.delay)
            elif not await self._wait_gate():
                raise _Drop()
            return response
        if fault is not None:
            answer = await self._apply_fault(fault)
            if answer is not None:
                return answer
        return await self._answer(request, endpoint, variant, form_multi, js, ctype)

    async def _answer(
        self, request: Request, endpoint: str, variant: Any, form_multi: list[tuple[str, str]], js: Any, ctype: str
    ) -> Response:
        try:
            if endpoint == "metadata":
                if request.method != "GET":
                    return Response(status_code=405, headers={"Allow": "GET"})
                return JSONResponse(self.metadata(oidc=variant != "oauth"))
            if endpoint == "jwks":
                return JSONResponse({"keys": []})
            if endpoint == "authorize":
                if request.method != "GET":
                    return Response(status_code=405, headers={"Allow": "GET"})
                return await self._authorize(request)
            if request.method != "POST":
                return Response(status_code=405, headers={"Allow": "POST"})
            if endpoint == "register":
                return self._register(js, ctype)
            if ctype != "application/x-www-form-urlencoded":
                raise _OAuthError("invalid_request", "body must be application/x-www-form-urlencoded")
            if endpoint == "token":
                return self._token(form_multi, request.headers.get("authorization"))
            if endpoint == "revoke":
                return self._revoke(form_multi, request.headers.get("authorization"))
        except _OAuthError as err:
            return err.response()
        return JSONResponse({"error": "not_found"}, status_code=404)  # pragma: no cover

    def _take_fault(self, endpoint: str) -> Fault | None:
        with self._lock:
            fault = self.faults.get(endpoint)
            if fault is None:
                return None
            if fault.times is not None:
                if fault.times <= 1:
                    del self.faults[endpoint]
                else:
                    self.faults[endpoint] = fault._replace(times=fault.times - 1)
            return fault

    async def _wait_gate(self) -> bool:
        """Wait for release() or shutdown; True if released."""
        while not self.gate.is_set():
            if self._closing.is_set():
                return False
            await asyncio.sleep(0.02)
        return True

    async def _apply_fault(self, fault: Fault) -> Response | None:
        kind = fault.kind
        if kind == "500":
            return JSONResponse({"error": "server_error", "error_description": "injected fault"}, status_code=500)
        if kind == "malformed_json":
            return Response('{"access_token": "tru', status_code=200, media_type="application/json")
        if kind == "oversized":
            pad = "x" * max(0, fault.size - 40)
            return Response('{"padding": "' + pad + '"}', status_code=200, media_type="application/json")
        if kind == "html":
            return HTMLResponse("<html><body>Please log in</body></html>", status_code=200)
        if kind == "invalid_client":
            return _OAuthError("invalid_client", "injected fault", 401).response()
        if kind == "slow":
            await asyncio.sleep(fault.delay)
            return None
        if kind == "drop":
            if fault.delay > 0:
                await asyncio.sleep(fault.delay)
            with self._lock:
                self.stats["dropped"] += 1
            raise _Drop()
        if kind == "hang":
            if not await self._wait_gate():
                return Response(status_code=503)
            return None
        raise ValueError(f"unknown fault {kind!r}")  # pragma: no cover

    # ------------------------------------------------------------------ clients

    def _lookup_client(self, client_id: str) -> tuple[ClientRecord | None, str]:
        """The client for an id, or None with a reason."""
        if client_id.startswith("https://") or client_id.startswith("http://"):
            if not self.config.cimd_supported:
                rec = self.clients.get(client_id)
                return (rec, "") if rec else (None, "unknown client_id (URL client ids are not supported)")
            return self._cimd_client(client_id)
        rec = self.clients.get(client_id)
        return (rec, "") if rec else (None, "unknown client_id")

    def _cimd_client(self, url: str) -> tuple[ClientRecord | None, str]:
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            return None, "client_id metadata document URL must be https"
        if not parts.path or parts.path == "/":
            return None, "client_id metadata document URL must have a path"
        if parts.fragment or parts.username or parts.password:
            return None, "client_id metadata document URL must not have a fragment or credentials"
        if any(seg in (".", "..") for seg in parts.path.split("/")):
            return None, "client_id metadata document URL must not contain dot segments"
        doc = self.cimd_documents.get(url)
        if doc is None:
            return None, "client_id metadata document could not be retrieved"
        if not isinstance(doc, dict):
            return None, "client_id metadata document is not a JSON object"
        if doc.get("client_id") != url:
            return None, "client_id in the metadata document does not match its URL"
        method = doc.get("token_endpoint_auth_method", "none")
        if method in ("client_secret_basic", "client_secret_post", "client_secret_jwt") or "client_secret" in doc:
            return None, "client_id metadata documents cannot use client secrets"
        if method != "none":
            return None, f"unsupported token_endpoint_auth_method {method!r}"
        uris = doc.get("redirect_uris")
        if not isinstance(uris, list) or not uris or not all(isinstance(u, str) for u in uris):
            return None, "client_id metadata document has no redirect_uris"
        grant_types = doc.get("grant_types", ["authorization_code"])
        return (
            ClientRecord(
                client_id=url,
                client_secret=None,
                auth_method="none",
                redirect_uris=list(uris),
                grant_types=list(grant_types) if isinstance(grant_types, list) else ["authorization_code"],
                response_types=list(doc.get("response_types", ["code"])),
                scope=doc.get("scope"),
                kind="cimd",
                metadata=dict(doc),
            ),
            "",
        )

    def _redirect_matches(self, registered: list[str], presented: str) -> bool:
        if presented in registered:
            return True
        if not self.config.loopback_any_port:
            return False
        p = urlsplit(presented)
        if p.scheme != "http" or not is_loopback_host(p.hostname) or p.hostname == "localhost":
            return False
        for r in registered:
            q = urlsplit(r)
            if (
                q.scheme == "http"
                and q.hostname == p.hostname
                and q.path == p.path
                and q.query == p.query
                and q.fragment == p.fragment
            ):
                return True
        return False

    # ------------------------------------------------------------------ /authorize

    async def _authorize(self, request: Request) -> Response:
        items = request.query_params.multi_items()
        with self._lock:
            self.authorization_requests.append(dict(items))
        counts = Counter(k for k, _ in items)
        q = dict(items)
        client_id = q.get("client_id")
        if not client_id or counts["client_id"] > 1:
            return _error_page("missing or repeated client_id")
        with self._lock:
            client, why = self._lookup_client(client_id)
        if client is None:
            return _error_page(why)
        redirect_uri = q.get("redirect_uri")
        if not redirect_uri or counts["redirect_uri"] > 1:
            return _error_page("missing or repeated redirect_uri")
        if not self._redirect_matches(client.redirect_uris, redirect_uri):
            return _error_page("redirect_uri is not registered for this client")

        state = q.get("state")

        def fail(error: str, description: str) -> Response:
            return self._redirect(redirect_uri, {"error": error, "error_description": description}, state)

        if q.get("response_type") != "code":
            return fail("unsupported_response_type", "response_type must be code")
        repeated = [k for k, n in counts.items() if n > 1]
        if repeated:
            return fail("invalid_request", f"repeated parameter(s): {', '.join(sorted(repeated))}")
        if "authorization_code" not in client.grant_types:
            return fail("unauthorized_client", "client may not use the authorization_code grant")
        challenge = q.get("code_challenge")
        method = q.get("code_challenge_method")
        if not challenge:
            return fail("invalid_request", "code_challenge required (PKCE)")
        if method != "S256":
            return fail("invalid_request", "code_challenge_method must be S256")
        if not _PKCE_CHALLENGE_S256.match(challenge):
            return fail("invalid_request", "malformed code_challenge")
        if self.config.require_state and not state:
            return fail("invalid_request", "state required")
        resource = q.get("resource")
        if resource is None:
            if self.config.require_resource:
                return fail("invalid_target", "resource required")
        else:
            problem = self._check_resource(resource)
            if problem:
                return fail("invalid_target", problem)
        if "scope" in q:
            scopes = tuple(q["scope"].split())
            unknown = [s for s in scopes if s not in self.all_scopes]
            if unknown or not scopes:
                return fail("invalid_scope", f"unknown scope(s): {' '.join(unknown)}")
        else:
            scopes = tuple(self.config.default_scopes)

        mode = self.config.authorize_mode
        if mode == "hang":
            if not await self._wait_gate():
                return Response(status_code=503)
        if mode == "deny":
            return self._redirect(
                redirect_uri, {"error": "access_denied", "error_description": "the user declined"}, state
            )

        code = _token("code")
        with self._lock:
            self._codes[code] = _Code(
                client_id=client.client_id,
                redirect_uri=redirect_uri,
                challenge=challenge,
                resource=resource,
                scopes=scopes,
                expires_at=self.clock() + self.config.code_ttl,
                grant_id=secrets.token_hex(8),
            )
        if mode == "wrong_state":
            state = (state or "") + "-tampered"
        return self._redirect(redirect_uri, {"code": code}, state)

    def _check_resource(self, resource: str) -> str | None:
        parts = urlsplit(resource)
        if not parts.scheme or not parts.netloc:
            return "resource must be an absolute URI"
        if parts.fragment or "#" in resource:
            return "resource must not contain a fragment"
        if self.config.accept_any_resource:
            return None
        with self._lock:
            if resource not in self.resources:
                return f"unknown resource {resource}"
        return None

    def _redirect(self, redirect_uri: str, params: dict[str, str], state: str | None) -> Response:
        params = dict(params)
        if state is not None:
            params["state"] = state
        mode = self.config.authorize_iss
        if mode == "always" or (mode == "auto" and self.config.iss_supported):
            params["iss"] = self.issuer
        elif mode == "wrong":
            params["iss"] = "http://127.0.0.1:1/not-the-issuer"
        parts = urlsplit(redirect_uri)
        query = parts.query + ("&" if parts.query else "") + urlencode(params)
        return RedirectResponse(urlunsplit(parts._replace(query=query)), status_code=302)

    # ------------------------------------------------------------------ client authentication

    def _authenticate(self, form: dict[str, str], counts: Counter[str], authorization: str | None) -> ClientRecord:
        def bad(description: str) -> _OAuthError:
            return _OAuthError(
                "invalid_client", description, 401, {"WWW-Authenticate": 'Basic realm="test-as"'}
            )

        presented: str
        secret: str | None = None
        if counts["client_id"] > 1 or counts["client_secret"] > 1:
            raise _OAuthError("invalid_request", "repeated client credentials")
        if authorization:
            scheme, _, cred = authorization.partition(" ")
            if scheme.lower() != "basic":
                raise bad("unsupported Authorization scheme")
            try:
                raw = base64.b64decode(cred.strip(), validate=True).decode("utf-8")
            except (ValueError, UnicodeDecodeError):
                raise bad("malformed Basic credentials") from None
            if ":" not in raw:
                raise bad("malformed Basic credentials")
            enc_id, _, enc_secret = raw.partition(":")
            client_id = unquote_plus(enc_id)
            secret = unquote_plus(enc_secret)
            presented = "client_secret_basic"
            if "client_secret" in form:
                raise _OAuthError("invalid_request", "more than one client authentication method")
            if "client_id" in form and form["client_id"] != client_id:
                raise bad("client_id in the body differs from the Basic credentials")
        elif "client_secret" in form:
            presented = "client_secret_post"
            client_id = form.get("client_id", "")
            secret = form["client_secret"]
            if not client_id:
                raise bad("client_id required")
        else:
            presented = "none"
            client_id = form.get("client_id", "")
            if not client_id:
                raise bad("client authentication required (client_id missing)")
        client, why = self._lookup_client(client_id)
        if client is None:
            raise bad(why)
        if client.auth_method != presented:
            raise bad(f"client must authenticate with {client.auth_method}, not {presented}")
        if client.auth_method != "none":
            assert client.client_secret is not None
            if not hmac.compare_digest((secret or "").encode(), client.client_secret.encode()):
                raise bad("client authentication failed")
        return client

    # ------------------------------------------------------------------ /token

    def _token(self, form_multi: list[tuple[str, str]], authorization: str | None) -> Response:
        form = dict(form_multi)
        counts = Counter(k for k, _ in form_multi)
        repeated = [k for k, n in counts.items() if n > 1 and k not in ("client_id", "client_secret")]
        with self._lock:
            client = self._authenticate(form, counts, authorization)
            if repeated:
                raise _OAuthError("invalid_request", f"repeated parameter(s): {', '.join(sorted(repeated))}")
            grant_type = form.get("grant_type")
            if not grant_type:
                raise _OAuthError("invalid_request", "grant_type required")
            if grant_type not in ("authorization_code", "refresh_token"):
                raise _OAuthError("unsupported_grant_type", f"unsupported grant_type {grant_type}")
            if grant_type not in client.grant_types:
                raise _OAuthError("unauthorized_client", f"client is not registered for {grant_type}")
            if grant_type == "authorization_code":
                self.stats["code_grants"] += 1
                body = self._grant_code(client, form)
            else:
                body = self._grant_refresh(client, form)
        return JSONResponse(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    def _grant_code(self, client: ClientRecord, form: dict[str, str]) -> dict[str, Any]:
        code = form.get("code")
        if not code:
            raise _OAuthError("invalid_request", "code required")
        verifier = form.get("code_verifier")
        if not verifier:
            raise _OAuthError("invalid_request", "code_verifier required")
        rec = self._codes.get(code)
        if rec is None:
            raise _OAuthError("invalid_grant", "unknown authorization code")
        if rec.used:
            if self.config.revoke_family_on_reuse:
                self._revoked_grants.add(rec.grant_id)
            raise _OAuthError("invalid_grant", "authorization code already used")
        if self.clock() > rec.expires_at:
            raise _OAuthError("invalid_grant", "authorization code expired")
        if rec.client_id != client.client_id:
            raise _OAuthError("invalid_grant", "authorization code was issued to another client")
        # The code is spent by any attempt that got this far (OAuth 2.1 §4.1.3).
        rec.used = True
        if form.get("redirect_uri") != rec.redirect_uri:
            raise _OAuthError("invalid_grant", "redirect_uri does not match the authorization request")
        if not _PKCE_VERIFIER.match(verifier):
            raise _OAuthError("invalid_grant", "malformed code_verifier")
        if not hmac.compare_digest(s256(verifier), rec.challenge):
            raise _OAuthError("invalid_grant", "PKCE verification failed")
        resource = form.get("resource")
        if resource is None and self.config.require_resource:
            raise _OAuthError("invalid_target", "resource required")
        if resource is not None and resource != rec.resource:
            raise _OAuthError("invalid_target", "resource differs from the authorization request")
        return self._issue(client, rec.scopes, rec.resource, rec.grant_id, with_refresh=True)

    def _grant_refresh(self, client: ClientRecord, form: dict[str, str]) -> dict[str, Any]:
        self.stats["refresh_grants"] += 1
        rec = self._refresh.get(form.get("refresh_token") or "")
        age = self.clock() - rec.issued_at if rec is not None else None
        try:
            body = self._grant_refresh_checked(client, form, rec)
        except _OAuthError as err:
            outcome = {"refresh token already used (rotated)": "reuse", "refresh token revoked": "revoked",
                       "refresh token expired": "expired", "unknown refresh token": "unknown"}.get(
                           err.description, "refused" if err.error == "invalid_grant" else "error")
            if err.error == "invalid_grant":
                self.stats["invalid_grant"] += 1
            if outcome == "reuse":
                self.stats["reuse_detected"] += 1
            self.grants.append(GrantRecord(self.clock(), "refresh_token", client.client_id, outcome, age))
            raise
        self.stats["refreshed"] += 1
        self.grants.append(GrantRecord(self.clock(), "refresh_token", client.client_id, "issued", age))
        return body

    def _grant_refresh_checked(self, client: ClientRecord, form: dict[str, str], rec: _Refresh | None) -> dict[str, Any]:
        token = form.get("refresh_token")
        if not token:
            raise _OAuthError("invalid_request", "refresh_token required")
        if self.config.refresh_invalid_grant:
            raise _OAuthError("invalid_grant", "refresh token rejected (injected)")
        if rec is None:
            raise _OAuthError("invalid_grant", "unknown refresh token")
        if rec.client_id != client.client_id:
            raise _OAuthError("invalid_grant", "refresh token was issued to another client")
        if rec.grant_id in self._revoked_grants:
            raise _OAuthError("invalid_grant", "refresh token revoked")
        in_grace = rec.rotated_at is not None and self.clock() - rec.rotated_at <= self.config.reuse_grace
        if not rec.active and not in_grace:
            if self.config.revoke_family_on_reuse:
                self._revoked_grants.add(rec.grant_id)
            raise _OAuthError("invalid_grant", "refresh token already used (rotated)")
        if rec.expires_at is not None and self.clock() >= rec.expires_at:
            raise _OAuthError("invalid_grant", "refresh token expired")
        resource = form.get("resource")
        if resource is None and self.config.require_resource:
            raise _OAuthError("invalid_target", "resource required")
        if resource is not None and resource != rec.resource:
            raise _OAuthError("invalid_target", "resource differs from the original grant")
        scopes = rec.scopes
        if "scope" in form:
            asked = tuple(form["scope"].split())
            if not set(asked) <= set(rec.scopes):
                raise _OAuthError("invalid_scope", "scope exceeds the original grant")
            scopes = asked
        rotate = not self.config.refresh_omit_new_token
        if rotate and rec.active:
            rec.active, rec.rotated_at = False, self.clock()
        return self._issue(client, scopes, rec.resource, rec.grant_id, with_refresh=rotate, refresh_scopes=rec.scopes)

    def _issue(
        self,
        client: ClientRecord,
        scopes: tuple[str, ...],
        resource: str | None,
        grant_id: str,
        *,
        with_refresh: bool,
        refresh_scopes: tuple[str, ...] | None = None,
    ) -> dict[str, Any]:
        c = self.config
        access = _token("at")
        self._access[access] = _Access(
            client_id=client.client_id,
            scopes=scopes,
            resource=resource,
            expires_at=self.clock() + c.access_token_ttl,
            grant_id=grant_id,
        )
        body: dict[str, Any] = {"access_token": access, "token_type": "Bearer"}
        if not c.omit_expires_in:
            body["expires_in"] = max(1, math.ceil(c.access_token_ttl))
        if scopes:
            body["scope"] = " ".join(scopes)
        allowed = (
            with_refresh
            and c.issue_refresh_tokens
            and "refresh_token" in client.grant_types
            and (not c.refresh_requires_offline_access or "offline_access" in (refresh_scopes or scopes))
        )
        if allowed:
            refresh = _token("rt")
            now = self.clock()
            self._refresh[refresh] = _Refresh(
                client_id=client.client_id,
                scopes=refresh_scopes or scopes,
                resource=resource,
                grant_id=grant_id,
                issued_at=now,
                expires_at=now + c.refresh_token_ttl if c.refresh_token_ttl is not None else None,
            )
            body["refresh_token"] = refresh
        return body

    # ------------------------------------------------------------------ /revoke

    def _revoke(self, form_multi: list[tuple[str, str]], authorization: str | None) -> Response:
        form = dict(form_multi)
        counts = Counter(k for k, _ in form_multi)
        with self._lock:
            client = self._authenticate(form, counts, authorization)
            token = form.get("token")
            if not token:
                raise _OAuthError("invalid_request", "token required")
            hint = form.get("token_type_hint")
            if hint is not None and hint not in ("access_token", "refresh_token"):
                raise _OAuthError("unsupported_token_type", f"unsupported token_type_hint {hint}")
            acc = self._access.get(token)
            ref = self._refresh.get(token)
            rec = acc or ref
            if rec is not None and rec.client_id != client.client_id:
                raise _OAuthError("invalid_request", "token was not issued to this client")
            if acc is not None:
                acc.revoked = True
            if ref is not None:
                ref.active = False
                # RFC 7009 §2.1: revoking a refresh token also invalidates the grant's access tokens.
                self._revoked_grants.add(ref.grant_id)
        return Response(status_code=200, headers={"Cache-Control": "no-store"})

    # ------------------------------------------------------------------ /register

    def _register(self, js: Any, ctype: str) -> Response:
        c = self.config
        if c.registration == "reject":
            return JSONResponse(
                {"error": "access_denied", "error_description": "dynamic client registration is disabled"},
                status_code=403,
            )

        def bad(error: str, description: str) -> Response:
            return JSONResponse({"error": error, "error_description": description}, status_code=400)

        if ctype != "application/json" or not isinstance(js, dict):
            return bad("invalid_client_metadata", "body must be a JSON object (application/json)")
        uris = js.get("redirect_uris")
        if not isinstance(uris, list) or not uris or not all(isinstance(u, str) for u in uris):
            return bad("invalid_redirect_uri", "redirect_uris must be a non-empty array of strings")
        for uri in uris:
            problem = _check_redirect_uri(uri)
            if problem:
                return bad("invalid_redirect_uri", f"{uri}: {problem}")
        method = js.get("token_endpoint_auth_method", "client_secret_basic")
        if method not in c.token_endpoint_auth_methods:
            return bad("invalid_client_metadata", f"token_endpoint_auth_method {method!r} not supported")
        grant_types = js.get("grant_types", ["authorization_code"])
        if (
            not isinstance(grant_types, list)
            or not grant_types
            or not set(grant_types) <= {"authorization_code", "refresh_token"}
        ):
            return bad("invalid_client_metadata", f"unsupported grant_types {grant_types!r}")
        response_types = js.get("response_types", ["code"])
        if not isinstance(response_types, list) or set(response_types) != {"code"}:
            return bad("invalid_client_metadata", f"unsupported response_types {response_types!r}")
        if "authorization_code" not in grant_types:
            return bad("invalid_client_metadata", "grant_types must include authorization_code")
        scope = js.get("scope")
        if scope is not None:
            if not isinstance(scope, str) or not set(scope.split()) <= set(self.all_scopes):
                return bad("invalid_client_metadata", f"unknown scope in {scope!r}")
        app_type = js.get("application_type")
        if app_type is not None and app_type not in ("native", "web"):
            return bad("invalid_client_metadata", f"application_type {app_type!r}")
        client_id = f"dcr_{secrets.token_hex(8)}"
        secret = None if method == "none" else secrets.token_urlsafe(32)
        rec = ClientRecord(
            client_id=client_id,
            client_secret=secret,
            auth_method=method,
            redirect_uris=list(uris),
            grant_types=list(grant_types),
            response_types=list(response_types),
            scope=scope,
            kind="dcr",
            metadata=dict(js),
        )
        with self._lock:
            self.clients[client_id] = rec
            self.registrations.append(dict(js))
        out = {k: v for k, v in js.items() if k not in ("client_secret", "client_id", "client_secret_expires_at")}
        out.update(
            client_id=client_id,
            client_id_issued_at=int(self.clock()),
            token_endpoint_auth_method=method,
            grant_types=list(grant_types),
            response_types=list(response_types),
        )
        if secret is not None:
            out["client_secret"] = secret
            out["client_secret_expires_at"] = 0
        return JSONResponse(out, status_code=201, headers={"Cache-Control": "no-store"})


# --------------------------------------------------------------------------- helpers


def _check_redirect_uri(uri: str) -> str | None:
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError:
        return "not a valid URI"
    if parts.fragment or "#" in uri:
        return "must not contain a fragment"
    if parts.scheme == "https" and parts.hostname:
        return None
    if parts.scheme == "http":
        if not is_loopback_host(parts.hostname):
            return "http is allowed only for loopback hosts"
        if port is None:
            return "loopback redirect URI must include a port"
        return None
    return "must be https, or http on a loopback host"


def _error_page(reason: str) -> HTMLResponse:
    return HTMLResponse(
        f"<!doctype html><title>Authorization error</title><h1>Authorization error</h1><p>{html.escape(reason)}</p>",
        status_code=400,
    )


def _mask_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: (MASK if k in SECRET_PARAMS else _mask_json(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_json(v) for v in value]
    return value
