"""The optional Streamable HTTP endpoint: the proxy facade on 127.0.0.1, behind a bearer token.

Turned on by the top-level `"endpoint": {"port": 3335}` of `mcp.json`
(`Config.endpoint`). `EndpointManager.apply(config)` starts, moves (port
change) or stops it; `close()` stops it for good. It runs uvicorn on the
app's own asyncio loop, on a socket bound here to 127.0.0.1 only (binding
ourselves also turns a busy port into `manager.error` instead of uvicorn's
`sys.exit`).

Paths: `/mcp` serves everything, `/presets/<name>/mcp` what that preset
allows (an unknown or invalid preset answers 404 with a JSON error). Every
HTTP session (and every single 2026-07-28 request) gets its own facade
client, exactly like one `broxy-tray stdio` connection.

Every request must pass, in this order:
- Host: `127.0.0.1:<port>` or `localhost:<port>`, else 421 (DNS rebinding);
- Origin, if present: a loopback origin (`http(s)://127.0.0.1|localhost|[::1][:any port]`), else 403;
- `Authorization: Bearer <token>`, compared in constant time, else 401.

The token is generated once per install (`secrets.token_urlsafe(32)`) and
kept in secure storage under its own keyring service, `broxy-tray-endpoint`
(username `bearer-token`), apart from the servers' entries so that no server
id can ever name it. It is never logged; `broxy-tray client-config --http`
prints it, deliberately, to stdout.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import secrets
import socket
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

if TYPE_CHECKING:
    from broxy_tray.config import Config

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
TOKEN_SERVICE = "broxy-tray-endpoint"
"""Keyring service of the endpoint's bearer token (separate from the servers' `broxy-tray` entries)."""
TOKEN_ID = "bearer-token"
STOP_TIMEOUT = 3.0
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost")
_LOOPBACK_ORIGIN_HOSTS = ("127.0.0.1", "localhost", "::1")


# -- the token ---------------------------------------------------------------


class EndpointToken:
    """The endpoint's bearer token in a `CredentialStore` (created on first use)."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self._token: str | None = None
        self._lock = asyncio.Lock()

    @property
    def persistent(self) -> bool:
        """False when secure storage is unavailable (the token then lasts for this run only)."""
        return getattr(self.store, "available", True) is not False

    async def get(self) -> str:
        async with self._lock:
            if self._token is not None:
                return self._token
            entry = await self.store.load(TOKEN_ID)
            token = entry.tokens.access_token if entry is not None and entry.tokens is not None else None
            if not token:
                from broxy_tray.auth._store import StoredAuth
                from broxy_tray.auth._tokens import TokenSet

                token = secrets.token_urlsafe(32)
                await self.store.save(TOKEN_ID, StoredAuth(tokens=TokenSet(access_token=token)))
                log.info("created the HTTP endpoint's bearer token (kept in secure storage)")
            from broxy_tray import _logging

            _logging.register_secrets([token])
            self._token = token
            return token

    async def reset(self) -> str:
        """Replace the token (clients must be given the new one)."""
        async with self._lock:
            self._token = None
            await self.store.delete(TOKEN_ID)
        return await self.get()


def default_token_store(like: Any | None = None) -> Any:
    """The store of the endpoint token: the keyring, service `broxy-tray-endpoint`.

    With `like` (the app's credential store): a keyring store with the same backend and timeout when
    that is a keyring store, else (an in-memory store: tests, the probe) an in-memory one.
    """
    from broxy_tray.auth._keyring_store import KeyringStore

    if like is None:
        return KeyringStore(service=TOKEN_SERVICE)
    if isinstance(like, KeyringStore):
        return KeyringStore(service=TOKEN_SERVICE, timeout=like.timeout, backend=like._backend)
    from broxy_tray.auth._store import MemoryStore

    return MemoryStore()


# -- the ASGI app --------------------------------------------------------------


def _json_response(status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None) -> Any:
    body = json.dumps({"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": message}}).encode()

    async def respond(send: Any) -> None:
        await send({
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                        (b"connection", b"close"), *(headers or [])],  # refused: its body is never read
        })
        await send({"type": "http.response.body", "body": body})

    return respond


def _header(scope: Any, name: bytes) -> str | None:
    values = [v for k, v in scope.get("headers", []) if k.lower() == name]
    if len(values) != 1:
        return None if not values else "\x00"  # repeated: never valid
    return values[0].decode("latin-1")


def is_loopback_origin(origin: str) -> bool:
    try:
        parts = urlsplit(origin)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and (parts.hostname or "") in _LOOPBACK_ORIGIN_HOSTS and \
        not parts.path.strip("/") and not parts.query and not parts.username


class _EndpointApp:
    """ASGI: the Host/Origin/bearer checks, then `/mcp` or `/presets/<name>/mcp` to a session manager."""

    def __init__(self, endpoint: _Endpoint) -> None:
        self.endpoint = endpoint

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        ep = self.endpoint
        host = _header(scope, b"host")
        if host not in {f"{h}:{ep.port}" for h in _LOOPBACK_HOSTS}:
            await _json_response(421, "Misdirected request: wrong Host header")(send)
            return
        origin = _header(scope, b"origin")
        if origin is not None and not is_loopback_origin(origin):
            await _json_response(403, "Forbidden: foreign Origin")(send)
            return
        auth = _header(scope, b"authorization") or ""
        scheme, _, given = auth.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), ep.token.encode()):
            await _json_response(401, "Unauthorized: a valid bearer token is required",
                                 [(b"www-authenticate", b'Bearer realm="broxy-tray"')])(send)
            return
        path = scope.get("path", "")
        preset: str | None
        if path in ("/mcp", "/mcp/"):
            preset = None
        elif path.startswith("/presets/") and path.rstrip("/").endswith("/mcp"):
            preset = unquote(path[len("/presets/"):].rstrip("/")[: -len("/mcp")])
            if not preset or "/" in preset:
                await _json_response(404, "Not found")(send)
                return
            from ._facade import PresetError

            try:
                ep.proxy.check_preset(preset)
            except PresetError as e:
                await _json_response(404, str(e))(send)
                return
        else:
            await _json_response(404, "Not found: use /mcp or /presets/<name>/mcp")(send)
            return
        manager = await ep.manager_for(preset)
        await manager.handle_request(scope, receive, send)


def _session_manager_class() -> Any:
    """A `StreamableHTTPSessionManager` whose sessions are served by the proxy facade, one client each.

    Leans on two internals of mcp 2.3 (`_handle_request` for the modern
    per-request path, `_serve_opening_request` for a new handshake session);
    everything else (session ids, idle timeout, limits, DELETE) is the SDK's.
    """
    import anyio
    from anyio.abc import TaskStatus
    from mcp.server._streamable_http_modern import handle_modern_request
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager, _send_and_report_status
    from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
    from mcp.shared.inbound import MCP_PROTOCOL_VERSION_HEADER

    class ProxySessionManager(StreamableHTTPSessionManager):
        def __init__(self, proxy: Any, preset: str | None, **kwargs: Any) -> None:
            from mcp.server import Server

            super().__init__(app=Server("broxy-tray"), **kwargs)  # `app` only lends its (empty) lifespan
            self.proxy = proxy
            self.preset = preset

        async def _handle_request(self, scope: Any, receive: Any, send: Any) -> None:
            header = MCP_PROTOCOL_VERSION_HEADER.encode("ascii")
            pv = next((v.decode("latin-1") for k, v in scope["headers"] if k == header), None)
            if pv is not None and pv not in HANDSHAKE_PROTOCOL_VERSIONS:
                from ._facade import _Client

                client = _Client(self.proxy, self.preset)  # one 2026-07-28 request: one facade client
                self.proxy._clients.add(client)
                try:
                    await handle_modern_request(client.server, self.security_settings, self.json_response,
                                                self._lifespan_state, scope, receive, send)
                finally:
                    self.proxy._clients.discard(client)
                    client.close()
                return
            await super()._handle_request(scope, receive, send)

        async def _serve_opening_request(self, http_transport: Any, scope: Any, receive: Any, send: Any) -> None:
            session_id = http_transport.mcp_session_id
            proxy, preset = self.proxy, self.preset

            async def run_server(*, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
                async with http_transport.connect() as (read_stream, write_stream):
                    task_status.started()
                    try:
                        idle_scope = http_transport.idle_scope or anyio.CancelScope()
                        with idle_scope:
                            await proxy.serve(read_stream, write_stream, preset=preset, kind="http")
                    except Exception:
                        log.exception("HTTP endpoint: a session crashed")
                    finally:
                        await self._discard_session(session_id, http_transport)

            established = False
            try:
                assert self._task_group is not None
                await self._task_group.start(run_server)
                status = await _send_and_report_status(http_transport.handle_request, scope, receive, send)
                established = status is not None and status < 400
            finally:
                if not established:
                    await self._discard_session(session_id, http_transport)

    return ProxySessionManager


class _Endpoint:
    """One listening endpoint (one port): uvicorn on a socket bound to 127.0.0.1, plus session managers."""

    def __init__(self, app: Any, port: int, token: str) -> None:
        self.app = app
        self.port = port
        self.token = token
        self._managers: dict[str | None, Any] = {}
        self._manager_lock = asyncio.Lock()
        self._hosts: list[asyncio.Task[None]] = []
        self._server: Any = None
        self._serving: asyncio.Task[None] | None = None
        self._sock: socket.socket | None = None

    @property
    def proxy(self) -> Any:
        return self.app.proxy

    def bind(self) -> None:
        """Bind 127.0.0.1:port now (raises OSError, e.g. when the port is taken)."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            if hasattr(socket, "SO_REUSEADDR") and not _windows():
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            elif hasattr(socket, "SO_EXCLUSIVEADDRUSE"):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_EXCLUSIVEADDRUSE, 1)  # type: ignore[attr-defined]
            sock.bind((HOST, self.port))
            sock.listen(128)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        self._sock = sock

    async def start(self) -> None:
        import uvicorn

        class _Server(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self):  # type: ignore[no-untyped-def]
                yield  # the app owns the signals (tray, headless runner), not uvicorn

        from ._http_guard import IDLE_TIMEOUT, ConnectionGuard

        self.guard = ConnectionGuard()
        config = uvicorn.Config(
            _EndpointApp(self), host=HOST, port=self.port, lifespan="off", log_config=None,
            access_log=False, server_header=False, timeout_graceful_shutdown=1, ws="none",
            http=self.guard.protocol(), timeout_keep_alive=IDLE_TIMEOUT, backlog=self.guard.backlog,
        )
        self._server = _Server(config)
        assert self._sock is not None
        self._serving = asyncio.get_running_loop().create_task(
            self._server.serve(sockets=[self._sock]), name=f"http-endpoint:{self.port}"
        )
        while not self._server.started:
            if self._serving.done():
                self._serving.result()
                raise OSError(f"the HTTP endpoint on {HOST}:{self.port} did not start")
            await asyncio.sleep(0.01)
        self._sock.listen(self.guard.listen_queue)  # asyncio keeps accepting `backlog` at a time

    async def manager_for(self, preset: str | None) -> Any:
        manager = self._managers.get(preset)
        if manager is not None:
            return manager
        async with self._manager_lock:
            manager = self._managers.get(preset)
            if manager is None:
                from ._preload import preload_proxy

                await preload_proxy()  # importing the SDK here, racing the app's preload thread, broke both imports
                manager = _session_manager_class()(self.proxy, preset, security_settings=None)
                started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                self._hosts.append(asyncio.get_running_loop().create_task(
                    self._host(manager, started), name=f"http-endpoint-sessions:{preset or '*'}"
                ))
                await started
                self._managers[preset] = manager
        return manager

    @staticmethod
    async def _host(manager: Any, started: asyncio.Future[None]) -> None:
        """Keep one session manager's `run()` open (its task group hosts the sessions) until cancelled."""
        try:
            async with manager.run():
                started.set_result(None)
                await asyncio.Event().wait()
        except BaseException as e:
            if not started.done():
                started.set_exception(e if isinstance(e, Exception) else RuntimeError("cancelled"))
            raise

    async def stop(self) -> None:
        for t in self._hosts:  # ends every session (and its open streams) first
            t.cancel()
        if self._hosts:
            await asyncio.wait(self._hosts, timeout=STOP_TIMEOUT)
        self._hosts = []
        self._managers = {}
        if self._server is not None and self._serving is not None:
            self._server.should_exit = True
            done, _ = await asyncio.wait({self._serving}, timeout=STOP_TIMEOUT)
            if not done:
                self._server.force_exit = True
                done, _ = await asyncio.wait({self._serving}, timeout=STOP_TIMEOUT)
            if not done:
                self._serving.cancel()
                with contextlib.suppress(BaseException):
                    await self._serving
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _windows() -> bool:
    import sys

    return sys.platform == "win32"


# -- lifecycle -----------------------------------------------------------------


class EndpointManager:
    """Starts, moves and stops the endpoint to match `Config.endpoint`; one per `App`.

    `error` is the last start failure (e.g. the port is taken), for the UI; None when fine or off.
    """

    def __init__(self, app: Any, *, token_store: Any | None = None) -> None:
        self.app = app
        self._token_store = token_store
        self.token: EndpointToken | None = None
        self._endpoint: _Endpoint | None = None
        self._lock = asyncio.Lock()
        self._closed = False
        self.error: str | None = None

    @property
    def port(self) -> int | None:
        """The port listening now (None when off or failed)."""
        return self._endpoint.port if self._endpoint is not None else None

    @property
    def url(self) -> str | None:
        return f"http://{HOST}:{self.port}/mcp" if self.port is not None else None

    def _token(self) -> EndpointToken:
        if self.token is None:
            store = self._token_store
            if store is None:
                store = default_token_store(getattr(self.app, "credentials", None))
            self.token = EndpointToken(store)
        return self.token

    async def apply(self, config: Config | None) -> None:
        """Match the running endpoint to `config.endpoint` (None or absent: stop it)."""
        async with self._lock:
            if self._closed:
                return
            wanted = config.endpoint.port if config is not None and config.endpoint is not None else None
            current = self._endpoint
            if current is not None and current.port == wanted:
                return
            if current is not None:
                self._endpoint = None
                await current.stop()
                log.info("HTTP endpoint on %s:%d stopped", HOST, current.port)
            self.error = None
            if wanted is None:
                return
            try:
                token = await self._token().get()
            except Exception as e:
                self.error = f"the HTTP endpoint is off: its token could not be read from secure storage ({type(e).__name__})"
                log.error("%s", self.error)
                return
            endpoint = _Endpoint(self.app, wanted, token)
            try:
                endpoint.bind()
                await endpoint.start()
            except OSError as e:
                await endpoint.stop()
                reason = "the port is already in use" if _in_use(e) else (e.strerror or str(e))
                self.error = f"the HTTP endpoint could not listen on {HOST}:{wanted}: {reason}"
                log.error("%s", self.error)
                return
            self._endpoint = endpoint
            if not self._token().persistent:
                log.warning("secure storage is unavailable: the HTTP endpoint's token lasts for this run only")
            log.info("HTTP endpoint listening on http://%s:%d/mcp", HOST, wanted)

    async def close(self) -> None:
        async with self._lock:
            self._closed = True
            endpoint, self._endpoint = self._endpoint, None
            if endpoint is not None:
                await endpoint.stop()
                log.info("HTTP endpoint on %s:%d stopped", HOST, endpoint.port)
        store = self._token_store if self.token is None else self.token.store
        if self._token_store is None and self.token is not None:
            closer = getattr(store, "close", None)
            if closer is not None:
                closer()


def _in_use(e: OSError) -> bool:
    import errno

    return e.errno in (errno.EADDRINUSE, getattr(errno, "WSAEADDRINUSE", -1), 10048)
