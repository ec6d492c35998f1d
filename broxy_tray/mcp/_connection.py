"""`open_connection`: a live MCP client session for one configured server.

The SDK's `mcp.Client` does the protocol work: it probes `server/discover`
(the stateless 2026-07-28 revision) and falls back to the `initialize`
handshake (2025-03-26 … 2025-11-25) on its own (`mode="auto"`). This module
picks the transport, bounds every step with a timeout, keeps the tool list
current, notices when the connection ends, and turns every failure into one
`ConnectError` with a one-line reason.

The session runs in a background task of its own, so a transport that fails
mid-session ends the connection (and `wait_closed()` returns) instead of
cancelling whatever the caller was doing inside `async with`.
"""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import anyio

from ._errors import (
    ConnectError,
    ConnectionLost,
    describe_network_error,
    format_seconds,
    host_port,
    http_status_reason,
    one_line,
    safe_url,
    walk,
)
from ._http import StatusRecorder, make_http_client
from ._log_budget import budget

if TYPE_CHECKING:
    import httpx2
    from mcp import Client
    from mcp.client.session import ClientSession
    from mcp_types import Tool

    from broxy_tray.config._model import ServerConfig

ToolsChangedCallback = Callable[[list["Tool"]], "Awaitable[None] | None"]

MAX_TOOL_PAGES = 1000
"""A paginator that never ends cannot hang a tools/list walk."""

TRANSPORT_ERROR_LOG_BURST = 10
""""transport error" warnings logged per server before the budget's ~1 line/s (`_log_budget`)."""

RELISTEN_ATTEMPTS = 3
"""How often a dropped `subscriptions/listen` stream is reopened before the connection counts as lost."""


class Connection:
    """One live MCP session. Created by `open_connection`, valid inside its `async with`."""

    def __init__(
        self,
        server: ServerConfig,
        *,
        connect_timeout: float,
        request_timeout: float,
        auth: httpx2.Auth | None,
        log: logging.Logger,
    ) -> None:
        self.server = server
        self.connect_timeout = connect_timeout
        self.request_timeout = request_timeout
        self._auth = auth
        self._log = log
        self.protocol_version: str = ""
        self.server_name: str | None = None
        self.server_version: str | None = None
        self.tools: list[Tool] = []
        self.on_tools_changed: ToolsChangedCallback | None = None
        """Called with the new tool list after the server announced a change and it was re-listed."""
        self.pid: int | None = None
        """The child's PID (stdio only)."""
        self._client: Client | None = None
        self._phase = "connect"
        self._transport_reason: str | None = None
        self._recorder = StatusRecorder()
        self._closed = anyio.Event()
        self._close_reason: ConnectionLost | None = None
        self._stopping = False
        self._tools_dirty = anyio.Event()
        self._tools_lock = anyio.Lock()

    # -- public surface ---------------------------------------------------------

    @property
    def client(self) -> Client:
        """The SDK's `mcp.Client` (its `call_tool` re-lists and retries on a stale-schema rejection)."""
        if self._client is None:
            raise RuntimeError("connection is not open")
        return self._client

    @property
    def session(self) -> ClientSession:
        """The SDK's `ClientSession`, for tool calls by the proxy."""
        return self.client.session

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    @property
    def close_reason(self) -> ConnectionLost | None:
        return self._close_reason

    async def wait_closed(self) -> ConnectionLost:
        """Wait until the connection ends on its own; returns why (never raises it)."""
        await self._closed.wait()
        assert self._close_reason is not None
        return self._close_reason

    async def refresh_tools(self) -> list[Tool]:
        """Re-list every page of tools/list; updates and returns `tools`.

        Raises:
            ConnectError: the request failed or took longer than `request_timeout`.
        """
        if self.closed:
            raise ConnectError(self._close_reason.reason if self._close_reason else "connection closed")
        try:
            with anyio.fail_after(self.request_timeout):
                return await self._list_tools()
        except ConnectError:
            raise
        except TimeoutError:
            raise ConnectError(f"timed out after {format_seconds(self.request_timeout)} during tools/list") from None
        except Exception as e:
            raise ConnectError(self._describe(e, "tools/list", self.request_timeout)) from e

    # -- internals ----------------------------------------------------------------

    async def _list_tools(self) -> list[Tool]:
        import mcp_types as types

        async with self._tools_lock:
            session = self.session
            tools: list[Tool] = []
            cursor: str | None = None
            seen: set[str] = set()
            for _ in range(MAX_TOOL_PAGES):
                params = types.PaginatedRequestParams(cursor=cursor) if cursor is not None else None
                page = await session.list_tools(params=params)
                tools.extend(page.tools)
                cursor = page.next_cursor
                if cursor is None or cursor in seen:
                    break
                seen.add(cursor)
            else:
                self._log.warning("tools/list did not end after %d pages; using what was listed", MAX_TOOL_PAGES)
            self.tools = tools
            return tools

    def _mark_closed(self, reason: str) -> None:
        if self._closed.is_set():
            return
        if self._stopping:
            self._close_reason = ConnectionLost("connection closed")
        else:
            self._close_reason = ConnectionLost(reason)
            self._log.info("connection to %s lost: %s", self.server.id, self._close_reason.reason)
        self._closed.set()

    def _on_transport_gone(self, reason: str) -> None:
        """A transport noticed its end (the child exited, the socket closed)."""
        if self._transport_reason is None:
            self._transport_reason = reason
        self._mark_closed(reason)

    async def _on_message(self, message: Any) -> None:
        import mcp_types as types

        if isinstance(message, Exception):
            # budgeted: a server sending junk on every line must not flood the log
            if budget(self._log, "transport error", TRANSPORT_ERROR_LOG_BURST).take(1):
                self._log.warning("transport error: %s", one_line(type(message).__name__ + ": " + str(message), 200))
        elif isinstance(message, types.ToolListChangedNotification):
            self._tools_dirty.set()

    async def _tools_worker(self) -> None:
        """Re-list after change announcements (bursts coalesce) and tell the owner."""
        while True:
            await self._tools_dirty.wait()
            self._tools_dirty = anyio.Event()
            try:
                tools = await self.refresh_tools()
            except ConnectError as e:
                self._log.warning("re-listing tools after a change failed: %s", e.reason)
                continue
            callback = self.on_tools_changed
            if callback is None:
                continue
            try:
                result = callback(tools)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                self._log.exception("on_tools_changed callback raised")

    async def _listen_loop(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        """2026-07-28: tool-list changes arrive on a `subscriptions/listen` stream.

        Reports started once the first subscription is acknowledged (or could
        not be opened), so the first tools/list comes after it. A dropped
        stream is reopened, and the tools re-listed; `RELISTEN_ATTEMPTS`
        failures in a row end the connection.
        """
        try:
            await self._listen_rounds(task_status)
        finally:
            with suppress(RuntimeError):  # already reported started
                task_status.started()

    async def _listen_rounds(self, task_status: Any) -> None:
        import mcp_types as types
        from mcp.client.subscriptions import ListenNotSupportedError, SubscriptionLost
        from mcp.shared.exceptions import MCPError

        client = self.client
        failures = 0
        opened_before = False
        while True:
            try:
                async with client.listen(tools_list_changed=True) as subscription:
                    if not opened_before:
                        task_status.started()
                    else:
                        self._tools_dirty.set()  # changes may have happened while it was down
                    opened_before = True
                    failures = 0
                    async for _event in subscription:
                        self._tools_dirty.set()
                self._log.debug("the server ended the change subscription; reopening it")
            except ListenNotSupportedError:
                return
            except MCPError as e:
                if not opened_before and e.code in (types.METHOD_NOT_FOUND, types.INVALID_REQUEST):
                    self._log.info("server does not offer subscriptions/listen; tool changes will not be noticed")
                    return
                failures += 1
                self._log.info("change subscription failed: %s", one_line(e.error.message, 200))
            except SubscriptionLost:
                failures += 1
                self._log.info("change subscription dropped; reopening it")
            except Exception as e:  # TimeoutError, or a transport fault surfaced through the SDK
                failures += 1
                self._log.info("change subscription failed: %s", type(e).__name__)
            if failures >= RELISTEN_ATTEMPTS:
                self._mark_closed(f"lost the connection to {self._where()}")
                return
            await anyio.sleep(0.2 * 2**failures)

    def _where(self) -> str:
        if self.server.url:
            return host_port(self.server.url)
        return self.server.command or self.server.id

    def _describe(self, exc: BaseException, phase: str, timeout: float) -> str:
        """One line a person can act on, for whatever `exc` is."""
        from mcp.shared.exceptions import MCPError

        for e in walk(exc):
            if isinstance(e, ConnectError):
                return e.reason
        if self._transport_reason is not None:
            return self._transport_reason
        url = self.server.url or ""
        if url:
            reason = describe_network_error(exc, url, phase, timeout)
            if reason is not None:
                return reason
            for e in walk(exc):
                response = getattr(e, "response", None)
                if type(e).__name__ == "HTTPStatusError" and response is not None:
                    status = response.status_code
                    if 300 <= status < 400:
                        return f"HTTP {status} redirect at {safe_url(str(response.request.url))} (not followed)"
                    return http_status_reason(status, str(response.request.url))
            if self._recorder.status is not None:
                status = self._recorder.status
                if 300 <= status < 400:
                    where = f" to {self._recorder.location}" if self._recorder.location else ""
                    return f"HTTP {status} redirect{where} from {safe_url(self._recorder.url)} (not followed)"
                return http_status_reason(status, self._recorder.url)
        for e in walk(exc):
            if isinstance(e, MCPError):
                return self._describe_mcp_error(e, phase, timeout)
        for e in walk(exc):
            if isinstance(e, TimeoutError):
                return f"timed out after {format_seconds(timeout)} during {phase}"
        for e in walk(exc):
            if isinstance(e, RuntimeError) and "protocol version" in str(e).lower():
                return one_line(f"no protocol version in common with the server ({e})")
        leaf = next((e for e in walk(exc) if not isinstance(e, BaseExceptionGroup)), exc)
        if type(leaf).__module__.startswith(("httpx2", "httpcore2")):
            return f"{phase} failed: {type(leaf).__name__}"  # their messages can carry full URLs
        return one_line(f"{phase} failed: {type(leaf).__name__}: {leaf}")

    def _describe_mcp_error(self, e: Any, phase: str, timeout: float) -> str:
        import mcp_types as types

        code = e.code
        if code == types.REQUEST_TIMEOUT:
            return f"timed out after {format_seconds(timeout)} during {phase}"
        if code == types.CONNECTION_CLOSED:
            return f"connection to {self._where()} closed during {phase}"
        if code == types.UNSUPPORTED_PROTOCOL_VERSION:
            supported = (e.error.data or {}).get("supported") if isinstance(e.error.data, dict) else None
            if supported:
                return one_line(f"no protocol version in common with the server (it supports {', '.join(map(str, supported))})")
            return "no protocol version in common with the server"
        return one_line(f"server error during {phase}: {e.error.message} ({code})")

    def _make_transport(self) -> Any:
        from broxy_tray.config._model import Transport

        server = self.server
        transport = server.transport
        if transport is Transport.STDIO:
            from ._stdio import StdioTransport

            stdio = StdioTransport(server, log=self._log, on_exit=self._on_transport_gone)
            self._stdio = stdio
            return stdio
        url = server.url or ""
        client = make_http_client(
            server,
            connect_timeout=self.connect_timeout,
            request_timeout=self.request_timeout,
            auth=self._auth,
            recorder=self._recorder,
        )
        if transport is Transport.HTTP:
            from mcp.client.streamable_http import streamable_http_client

            return _owning(client, streamable_http_client(url, http_client=client))
        if transport is Transport.SSE:
            from mcp.client.sse import sse_client

            def factory(headers: Any = None, timeout: Any = None, auth: Any = None) -> Any:
                return client

            return _watch_eof(
                sse_client(url, httpx_client_factory=factory),
                lambda: self._on_transport_gone(f"SSE stream from {host_port(url)} ended"),
            )
        if transport is Transport.WEBSOCKET:
            from ._websocket import websocket_transport

            return websocket_transport(
                url,
                client=client,
                log=self._log,
                keepalive_timeout=self.request_timeout,
                on_lost=self._on_transport_gone,
            )
        raise ConnectError(f"unsupported transport: {transport}")  # pragma: no cover

    async def _run(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        """Connect, list tools, report ready, then hold the session until it ends or we stop."""
        import mcp_types as types
        from mcp import Client
        from mcp_types.version import MODERN_PROTOCOL_VERSIONS

        import broxy_tray

        started = False
        transport = _phased(self._make_transport(), self)
        client = Client(
            transport,
            mode="auto",
            read_timeout_seconds=self.request_timeout,
            message_handler=self._on_message,
            client_info=types.Implementation(name="broxy-tray", version=broxy_tray.__version__),
            cache=None,
        )
        try:
            with anyio.CancelScope() as deadline:
                deadline.deadline = anyio.current_time() + self.connect_timeout
                async with client:
                    self._client = client
                    self.protocol_version = client.protocol_version
                    info = client.server_info
                    self.server_name = info.name if info is not None else None
                    self.server_version = (info.version or None) if info is not None else None
                    self.pid = getattr(getattr(self, "_stdio", None), "pid", None)
                    capabilities = client.server_capabilities
                    async with anyio.create_task_group() as tg:
                        if (
                            self.protocol_version in MODERN_PROTOCOL_VERSIONS
                            and capabilities.tools is not None
                            and capabilities.tools.list_changed
                        ):
                            # Subscribe before the first listing, so no change falls in between.
                            self._phase = "subscriptions/listen"
                            await tg.start(self._listen_loop)
                        self._phase = "tools/list"
                        await self._list_tools()
                        deadline.deadline = math.inf
                        self._log.info(
                            "connected to %s (protocol %s, %d tools)",
                            self.server.id,
                            self.protocol_version,
                            len(self.tools),
                        )
                        tg.start_soon(self._tools_worker)
                        started = True
                        task_status.started()
                        await self._closed.wait()
                        tg.cancel_scope.cancel()
            if deadline.cancelled_caught and not started:
                raise ConnectError(self._timeout_reason())
        except ConnectError:
            if started:
                self._mark_closed(self._transport_reason or "connection closed")
                return
            raise
        except Exception as e:
            if started:
                self._mark_closed(self._describe(e, "the session", self.request_timeout))
                return
            raise ConnectError(self._describe(e, self._phase, self.connect_timeout)) from e
        finally:
            self._client = None
            self._mark_closed(self._transport_reason or "connection closed")

    def _timeout_reason(self) -> str:
        if self._transport_reason is not None:
            return self._transport_reason
        return f"timed out after {format_seconds(self.connect_timeout)} during {self._phase}"


@asynccontextmanager
async def _phased(transport: Any, conn: Connection) -> AsyncIterator[Any]:
    """Enter the transport, then move the connection's phase on to the handshake."""
    conn._phase = "connect"
    async with transport as streams:
        conn._phase = "initialize"
        conn._recorder.reset()
        yield streams


@asynccontextmanager
async def _owning(client: Any, transport: Any) -> AsyncIterator[Any]:
    """Enter `client` around `transport` (the SDK leaves a passed-in client open)."""
    async with client:
        async with transport as streams:
            yield streams


@asynccontextmanager
async def _watch_eof(transport: Any, on_eof: Callable[[], None]) -> AsyncIterator[Any]:
    """Interpose on the read stream to notice when the transport ends it."""
    async with transport as (read_stream, write_stream):
        writer, reader = anyio.create_memory_object_stream[Any](0)

        async def pump() -> None:
            async with writer:
                try:
                    async for item in read_stream:
                        await writer.send(item)
                except (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream):
                    pass
            if not stopping:
                on_eof()

        stopping = False
        async with anyio.create_task_group() as tg:
            tg.start_soon(pump)
            try:
                yield reader, write_stream
            finally:
                stopping = True
                reader.close()
                tg.cancel_scope.cancel()


def _validate(server: ServerConfig) -> None:
    from broxy_tray.config._model import Transport

    if server.problems:
        raise ConnectError(server.problems[0].message)
    if server.transport is None:
        raise ConnectError("no transport configured")
    if server.transport is Transport.STDIO:
        if not server.command:
            raise ConnectError("no command configured")
        return
    if not server.url:
        raise ConnectError("no url configured")
    scheme = urlsplit(server.url).scheme.lower()
    allowed = ("ws", "wss", "http", "https") if server.transport is Transport.WEBSOCKET else ("http", "https")
    if scheme not in allowed:
        raise ConnectError(f"invalid url scheme for {server.transport.value}: {scheme or 'none'}")


class _Opening:
    """The `async with` behind `open_connection`.

    The session lives in a background task of a task group entered here and
    left in `__aexit__` without the caller's exception, so that exception
    propagates as it is (not wrapped in an ExceptionGroup), and a transport
    failure never cancels the caller's block.
    """

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._tg: Any = None

    async def __aenter__(self) -> Connection:
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        try:
            await self._tg.start(self._conn._run)
        except BaseException:
            await self._tg.__aexit__(None, None, None)
            raise
        return self._conn

    async def __aexit__(self, *exc: Any) -> bool:
        conn = self._conn
        conn._stopping = True
        conn._mark_closed("connection closed")
        await self._tg.__aexit__(None, None, None)
        return False


def open_connection(
    server: ServerConfig,
    *,
    connect_timeout: float,
    request_timeout: float,
    auth: httpx2.Auth | None = None,
    log: logging.Logger | None = None,
) -> AbstractAsyncContextManager[Connection]:
    """Connect to `server`, negotiate the protocol, list all tools, and yield the `Connection`.

    `connect_timeout` bounds connecting, the handshake and the first
    tools/list together; `request_timeout` bounds each later request. Leaving
    the block (or cancelling the task) closes the session and, for stdio,
    ends the child and its process group.

    Raises (on entering):
        ConnectError: connecting failed; `.reason` says why in one line.
    """
    _validate(server)
    conn = Connection(
        server,
        connect_timeout=connect_timeout,
        request_timeout=request_timeout,
        auth=auth,
        log=log or logging.getLogger("broxy_tray.mcp"),
    )
    return _Opening(conn)
