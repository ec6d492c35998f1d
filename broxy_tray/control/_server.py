"""The running instance's end of the control channel.

`ControlServer(app, path)` listens on a Unix socket (0600, in a 0700
directory; the peer's uid is checked on every connection) or, on Windows, a
named pipe. It runs on the app's asyncio loop and turns each request into
one App intent. Start it only while holding the instance lock: `start()`
replaces a stale socket file left by a killed instance, which is only safe
when no other instance can be starting on the same config.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
import stat
from pathlib import Path
from typing import Any, Awaitable, Callable

from .. import __version__
from ._paths import check_socket_path, ensure_private_dir
from ._peer import peer_credentials
from ._protocol import (
    E_BAD_REQUEST,
    E_BUSY,
    E_FORBIDDEN,
    E_INTENT,
    E_INTERNAL,
    E_TIMEOUT,
    E_UNAVAILABLE,
    MAX_REQUEST,
    PROTOCOL_VERSION,
    ControlError,
    ProtocolError,
    decode,
    encode,
    error,
    ok,
    read_line,
    request_id_of,
    server_json,
    validate_request,
)

log = logging.getLogger(__name__)

IDLE_TIMEOUT = 10.0  # seconds a command connection may wait between requests (and for its first)
COMMAND_TIMEOUT = 60.0  # seconds one command may take before the client is told it is still running
MAX_CONNECTIONS = 64  # command connections (the CLI); relays have their own slots, so they never lock it out
MAX_RELAYS = 512  # connections switched to MCP (`broxy-tray stdio` bridges): long-lived by design
CLOSE_GRACE = 2.0  # seconds close() lets a command in progress finish


class ControlServer:
    """Serves the control protocol for one `App` on `path`; call `start()` and `close()` on the app's loop."""

    def __init__(
        self,
        app: Any,
        path: Path | str,
        *,
        idle_timeout: float = IDLE_TIMEOUT,
        command_timeout: float = COMMAND_TIMEOUT,
        max_connections: int = MAX_CONNECTIONS,
        max_relays: int = MAX_RELAYS,
        max_request: int = MAX_REQUEST,
        config_path: Path | str | None = None,
    ) -> None:
        self.app = app
        self.path = Path(path) if os.name != "nt" else path  # a pipe name stays a str
        self.idle_timeout = idle_timeout
        self.command_timeout = command_timeout
        self.max_connections = max_connections
        self.max_relays = max_relays
        self.max_request = max_request
        self.config_path = config_path
        """When set, the socket path is recorded in this config's instance lock while we listen."""
        self._server: Any = None
        self._pipe_servers: list[Any] = []
        self._identity: tuple[int, int] | None = None  # (st_dev, st_ino) of our socket file
        self._connections: dict[asyncio.Task[Any], bool] = {}  # command connections: task -> busy with a command
        self._relays: set[asyncio.Task[Any]] = set()  # connections that carry MCP now
        self._background: set[asyncio.Task[Any]] = set()
        self._closing = False

    # -- lifecycle --

    async def start(self) -> None:
        if os.name == "nt":  # pragma: no cover - Windows only
            await self._start_pipe()
            return
        path = self.path
        check_socket_path(path)
        ensure_private_dir(path.parent)
        await self._clear_stale(path)
        sock = _bind_private(path)
        try:
            self._server = await asyncio.start_unix_server(self._on_connection, sock=sock, limit=self.max_request)
        except BaseException:
            sock.close()
            _unlink_quietly(path)
            raise
        st = os.stat(path)
        self._identity = (st.st_dev, st.st_ino)
        if self.config_path is not None:
            from .._instance import record_socket

            record_socket(self.config_path, path)  # how a client from another environment finds us
        log.info("control channel listening on %s", path)

    async def close(self) -> None:
        """Stop accepting, let a command in progress finish (briefly), drop the rest, remove the socket."""
        self._closing = True
        if self.config_path is not None and self._identity is not None:
            from .._instance import record_socket

            record_socket(self.config_path, None)  # first: a bridge now reads "starting or stopping", not "hung"
        if self._server is not None:
            self._server.close()
        for s in self._pipe_servers:  # pragma: no cover - Windows only
            s.close()
        idle = [t for t, busy in self._connections.items() if not busy]
        for t in idle:
            t.cancel()
        busy = [t for t, b in self._connections.items() if b]
        if busy:
            await asyncio.wait(busy, timeout=CLOSE_GRACE)
        rest = list(self._connections) + list(self._relays)
        for t in rest:
            t.cancel()
        if rest:
            await asyncio.wait(rest, timeout=CLOSE_GRACE)
        if self._server is not None:
            try:
                await asyncio.wait_for(self._server.wait_closed(), CLOSE_GRACE)
            except asyncio.TimeoutError:
                pass
            self._server = None
        self._remove_socket()

    def _remove_socket(self) -> None:
        """Unlink the socket file, but only if it is still ours."""
        if self._identity is None:
            return
        try:
            st = os.lstat(self.path)
            if (st.st_dev, st.st_ino) == self._identity:
                os.unlink(self.path)
        except OSError:
            pass
        self._identity = None

    async def _clear_stale(self, path: Path) -> None:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            raise ControlError(f"{path} is a directory; cannot create the control socket there")
        if stat.S_ISSOCK(st.st_mode):
            if await _answers(path):
                raise ControlError(f"another process is already listening on {path}")
            log.info("replacing a stale control socket %s", path)
        else:
            log.warning("replacing %s, which is not a socket", path)
        _unlink_quietly(path)

    # -- connections --

    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if self._closing:
            writer.close()
            return
        self._connections[task] = False
        try:
            if len(self._connections) > self.max_connections:
                await _send(writer, error(None, E_BUSY, "too many control connections; try again"))
                return
            if not self._peer_allowed(writer):
                await _send(writer, error(None, E_FORBIDDEN, "this broxy-tray belongs to another user"))
                return
            await self._serve(task, reader, writer)
        except (ConnectionError, asyncio.CancelledError):
            pass
        except Exception:  # never let one connection take the server down
            log.exception("control connection failed")
        finally:
            self._connections.pop(task, None)
            self._relays.discard(task)
            writer.close()
            try:
                await asyncio.wait_for(writer.wait_closed(), 1.0)
            except (Exception, asyncio.CancelledError):
                pass

    def _peer_allowed(self, writer: asyncio.StreamWriter) -> bool:
        if os.name == "nt":  # pragma: no cover - the pipe's default DACL admits only this user (and admins)
            return True
        sock = writer.get_extra_info("socket")
        try:
            uid, pid = peer_credentials(sock)
        except (OSError, AttributeError) as e:
            log.warning("control connection refused: cannot tell who the peer is (%s)", e)
            return False
        if uid != os.geteuid():
            log.warning("control connection refused: peer uid %s (pid %s) is not the owner (uid %s)",
                        uid, pid, os.geteuid())
            return False
        return True

    async def _serve(self, task: asyncio.Task[Any], reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while not self._closing:
            try:
                line = await asyncio.wait_for(read_line(reader, self.max_request), self.idle_timeout)
            except asyncio.TimeoutError:
                await _send(writer, error(None, E_TIMEOUT, f"no complete request within {self.idle_timeout:g} s"))
                return
            except ProtocolError as e:  # too large: the stream is out of step, so answer and hang up
                await _send(writer, error(None, e.code, str(e)))
                return
            if line is None:
                return
            if not line.strip():
                continue
            self._connections[task] = True
            after: Callable[[], None] | _Relay | None = None
            try:
                response, after = await self._handle(line)
            finally:
                self._connections[task] = False
            if isinstance(after, _Relay) and len(self._relays) >= self.max_relays:
                response, after = error(response.get("id"), E_BUSY, "too many MCP connections; try again"), None
            if isinstance(after, _Relay):
                # The connection leaves the command slots: relays live long and must not lock the CLI out.
                self._connections.pop(task, None)
                self._relays.add(task)
            await _send(writer, response)
            if isinstance(after, _Relay):
                # From here on the connection carries MCP (JSON-RPC lines) until the peer closes it.
                from ..proxy._relay import relay

                await relay(after.proxy, reader, writer, preset=after.preset)
                return
            if after is not None:
                after()

    async def _handle(self, line: bytes) -> tuple[dict[str, Any], Callable[[], None] | _Relay | None]:
        rid = None
        try:
            obj = decode(line)
            rid = request_id_of(obj)
            cmd, server = validate_request(obj)
            if cmd == "mcp":
                return ok(rid, {"protocol": "mcp", "framing": "ndjson"}), self._relay_for(obj)
        except ProtocolError as e:
            return error(rid, e.code, str(e)), None
        try:
            result, after = await self._run(cmd, server)
        except ProtocolError as e:
            return error(rid, e.code, str(e)), None
        except Exception as e:
            from ..app import IntentError

            if isinstance(e, IntentError):
                return error(rid, E_INTENT, str(e)), None
            log.exception("control command %s failed", cmd)
            return error(rid, E_INTERNAL, f"{cmd} failed: {type(e).__name__}: {e}"), None
        return ok(rid, result), after

    # -- commands --

    def _relay_for(self, obj: dict[str, Any]) -> "_Relay":
        """Check an `mcp` request: the app must offer the proxy, and the preset (if any) must exist."""
        preset = obj.get("preset")
        if preset is not None and (not isinstance(preset, str) or not preset):
            raise ProtocolError(E_BAD_REQUEST, '"preset" must be a non-empty string')
        proxy = getattr(self.app, "proxy", None)
        if proxy is None:
            raise ProtocolError(E_UNAVAILABLE, "this broxy-tray instance does not offer the MCP endpoint")
        from ..proxy._facade import PresetError

        try:
            proxy.check_preset(preset)
        except PresetError as e:
            raise ProtocolError(E_INTENT, str(e)) from None
        return _Relay(proxy, preset)

    async def _run(self, cmd: str, name: str | None) -> tuple[dict[str, Any], Callable[[], None] | None]:
        app = self.app
        if cmd == "ping":
            return self._identity_json(), None
        if cmd == "status":
            return self._status_json(), None
        if cmd == "reload":
            await self._bounded(cmd, app.reload())
            return {"configError": app.store.state.config_error, "servers": len(app.store.state.servers)}, None
        if cmd == "secrets":
            return await self._bounded(cmd, app.secrets_changed()), None
        if cmd == "quit":
            # Answer first, then ask the runner to stop: the reply must not race the shutdown.
            return {"quitting": True, "pid": os.getpid()}, app.request_quit
        assert name is not None
        sid = self._resolve(name)
        result: dict[str, Any] = {}
        if cmd in ("enable", "disable"):
            changed = await self._bounded(cmd, app.set_enabled(sid, cmd == "enable"))
            result["changed"] = bool(changed)
        elif cmd == "auth":
            await self._bounded(cmd, app.authorize(sid))
        elif cmd == "cancel":
            result["cancelled"] = bool(await self._bounded(cmd, app.cancel_authorization(sid)))
        elif cmd == "logout":
            await self._bounded(cmd, app.sign_out(sid))
        elif cmd == "retry":
            await self._bounded(cmd, app.retry(sid))
        state = app.store.state.server(sid)
        result["server"] = server_json(state) if state is not None else None
        return result, None

    async def _bounded(self, cmd: str, coro: Awaitable[Any]) -> Any:
        """Run an intent; past the timeout the client hears so, and the intent goes on in the background."""
        task = asyncio.ensure_future(coro)
        try:
            return await asyncio.wait_for(asyncio.shield(task), self.command_timeout)
        except asyncio.TimeoutError:
            self._background.add(task)
            task.add_done_callback(self._background.discard)
            task.add_done_callback(_log_background_result)
            raise ProtocolError(E_TIMEOUT, f"{cmd} is still running after {self.command_timeout:g} s; "
                                           "see broxy-tray status") from None

    def _resolve(self, name: str) -> str:
        """A server id, or a display name that names exactly one server (any case)."""
        servers = self.app.store.state.servers
        if any(s.id == name for s in servers):
            return name
        folded = name.casefold()
        matches = [s.id for s in servers if s.name.casefold() == folded]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise ProtocolError(E_BAD_REQUEST, f"{name!r} is the name of several servers; use an id: {', '.join(matches)}")
        return name  # the app's own check reports an unknown server

    def _identity_json(self) -> dict[str, Any]:
        return {
            "protocol": PROTOCOL_VERSION,
            "version": __version__,
            "pid": os.getpid(),
            "configPath": str(self.app.config_path),
        }

    def _status_json(self) -> dict[str, Any]:
        state = self.app.store.state
        return {
            "app": {
                **self._identity_json(),
                "configError": state.config_error,
                "summary": state.summary,
                "storage": state.storage,
                "clients": state.clients.as_json(),
                "revision": state.revision,
            },
            "servers": [server_json(s) for s in state.servers],
        }

    # -- Windows --

    async def _start_pipe(self) -> None:  # pragma: no cover - Windows only, untested here
        """A named pipe served by the Proactor loop (the Windows default).

        The pipe is created with the default security descriptor, which grants
        write access only to its creator, SYSTEM and administrators, so another
        ordinary user cannot send a request. FILE_FLAG_FIRST_PIPE_INSTANCE
        (set by asyncio for the first instance) makes creation fail if another
        process already owns the name.
        """
        loop = asyncio.get_running_loop()
        start_serving_pipe = getattr(loop, "start_serving_pipe", None)
        if start_serving_pipe is None:
            raise ControlError("the control channel needs the Proactor event loop on Windows")

        def factory() -> asyncio.StreamReaderProtocol:
            reader = asyncio.StreamReader(limit=self.max_request)
            return asyncio.StreamReaderProtocol(reader, self._on_connection)

        try:
            self._pipe_servers = await start_serving_pipe(factory, str(self.path))
        except OSError as e:
            raise ControlError(f"cannot create the control pipe {self.path}: {e}") from None


class _Relay:
    """Answer the request, then hand the connection to the proxy."""

    def __init__(self, proxy: Any, preset: str | None) -> None:
        self.proxy = proxy
        self.preset = preset


async def _send(writer: asyncio.StreamWriter, message: dict[str, Any]) -> None:
    from .._redact import redact_obj

    writer.write(encode(redact_obj(message)))  # no expanded `${VAR}` value in any reply (status, errors)
    await asyncio.wait_for(writer.drain(), 10.0)


def _log_background_result(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("a control command finished late with an error: %s", task.exception())


def _bind_private(path: Path) -> socket.socket:
    """A listening socket at `path`, mode 0600 from the moment it is visible there.

    Bound under a temporary name in the (private) directory, chmodded, then
    renamed into place: no window with looser permissions, no process-wide umask.
    """
    tmp = path.with_name(f".{os.getpid()}.tmp")
    _unlink_quietly(tmp)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(os.fspath(tmp))
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
        sock.listen(128)
        sock.setblocking(False)
    except OSError as e:
        sock.close()
        _unlink_quietly(tmp)
        raise ControlError(f"cannot listen on {path}: {e.strerror or e}") from None
    return sock


async def _answers(path: Path) -> bool:
    """Does a live process accept connections on this socket file?"""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_unix_connection(os.fspath(path)), 2.0)
    except (ConnectionRefusedError, FileNotFoundError):
        return False
    except asyncio.TimeoutError:
        return True  # a full backlog still means someone listens
    except OSError as e:
        if e.errno in (errno.ECONNREFUSED, errno.ENOENT):
            return False
        raise ControlError(f"cannot check {path}: {e.strerror or e}") from None
    writer.close()
    try:
        await writer.wait_closed()
    except Exception:
        pass
    return True


def _unlink_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


async def serve_app(app: Any, config_path: Any) -> ControlServer | None:
    """Start the control channel for a running app (call after the instance lock is held).

    Returns None, after logging why, when the channel cannot be opened: the app
    keeps running, only `broxy-tray status`/`enable`/… will not reach it.
    """
    from ._paths import control_path

    path = None
    try:
        path = control_path(config_path)
        server = ControlServer(app, path, config_path=config_path)
        await server.start()
    except ControlError as e:
        if path is not None:  # a bridge or the CLI then says "running, but <path> does not answer" at once
            from .._instance import record_socket

            record_socket(config_path, path)
        log.warning("control channel unavailable (%s); status, enable, … will not reach this instance", e)
        return None
    return server
