"""WebSocket transport (`ws://`, `wss://`, subprotocol `mcp`) over httpx2's WebSocket support.

The SDK 2.x dropped its WebSocket client, so this produces the same
read/write memory-stream pair the SDK session consumes: one JSON-RPC message
per text frame in each direction.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager, suppress
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable

import anyio

from ._errors import ConnectError, host_port, http_status_reason, safe_url
from ._log_budget import budget

if TYPE_CHECKING:
    import httpx2

SUBPROTOCOL = "mcp"
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
"""A tools/list page can be large; httpx2's 64 KiB default is far too small."""
KEEPALIVE_INTERVAL = 20.0


@asynccontextmanager
async def websocket_transport(
    url: str,
    *,
    client: httpx2.AsyncClient,
    log: logging.Logger,
    keepalive_timeout: float,
    on_lost: Callable[[str], None] | None = None,
) -> AsyncIterator[tuple[Any, Any]]:
    """Open the WebSocket and yield `(read_stream, write_stream)` for `mcp.Client`.

    `client` is entered and closed here. `on_lost(reason)` is called once if
    the socket ends while in use (not when we close it ourselves).
    """
    import httpx2.websockets as hws
    import mcp_types as types
    import wsproto.events
    from mcp.shared.message import SessionMessage

    closing = False
    reported = False

    def lost(reason: str) -> None:
        nonlocal reported
        if closing or reported:
            return
        reported = True
        log.info("%s", reason)
        if on_lost is not None:
            on_lost(reason)

    async with client:
        try:
            ws_cm = client.websocket(
                url,
                subprotocols=[SUBPROTOCOL],
                follow_redirects=False,
                max_message_size_bytes=MAX_MESSAGE_BYTES,
                keepalive_ping_interval_seconds=KEEPALIVE_INTERVAL,
                keepalive_ping_timeout_seconds=keepalive_timeout,
            )
            ws = await ws_cm.__aenter__()
        except hws.WebSocketUpgradeError as e:
            response = e.response
            status = response.status_code
            if 300 <= status < 400:
                raise ConnectError(f"HTTP {status} redirect at {safe_url(url)} (not followed)") from None
            if status < 300:
                raise ConnectError(f"server at {safe_url(url)} did not upgrade to WebSocket (HTTP {status})") from None
            raise ConnectError(http_status_reason(status, url)) from None

        try:
            if ws.subprotocol != SUBPROTOCOL:
                raise ConnectError(f"server at {safe_url(url)} did not accept the '{SUBPROTOCOL}' WebSocket subprotocol")

            read_writer, read_stream = anyio.create_memory_object_stream[Any](0)
            write_stream, write_reader = anyio.create_memory_object_stream[SessionMessage](0)

            async def reader() -> None:
                junk_budget = budget(log, "WebSocket frames", 10)
                async with read_writer:
                    while True:
                        try:
                            event = await ws.receive()
                        except hws.WebSocketDisconnect as e:
                            detail = f": {e.reason}" if e.reason else ""
                            lost(f"server closed the WebSocket (code {e.code}{detail})")
                            return
                        except (hws.HTTPXWSException, anyio.EndOfStream, anyio.ClosedResourceError):
                            lost(f"WebSocket connection to {host_port(url)} dropped")
                            return
                        if isinstance(event, wsproto.events.TextMessage):
                            data: str | bytes = event.data
                        elif isinstance(event, wsproto.events.BytesMessage):
                            data = bytes(event.data)  # lenient: some servers send JSON in binary frames
                        else:
                            continue
                        try:
                            item = SessionMessage(types.jsonrpc_message_adapter.validate_json(data, by_name=False))
                        except ValueError:
                            # budgeted, and not handed to the session (it would log it again, unbudgeted)
                            if junk_budget.take(1):
                                log.warning("ignoring a WebSocket frame that is not JSON-RPC")
                            continue
                        try:
                            await read_writer.send(item)
                        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                            return

            async def writer() -> None:
                try:
                    async with write_reader:
                        async for message in write_reader:
                            text = message.message.model_dump_json(by_alias=True, exclude_unset=True)
                            await ws.send_text(text)
                except (hws.HTTPXWSException, anyio.BrokenResourceError, anyio.ClosedResourceError):
                    lost(f"WebSocket connection to {host_port(url)} dropped")

            async with anyio.create_task_group() as tg:
                tg.start_soon(reader)
                tg.start_soon(writer)
                try:
                    yield read_stream, write_stream
                finally:
                    closing = True
                    for s in (read_stream, write_stream):
                        s.close()
                    tg.cancel_scope.cancel()
        finally:
            # Always a plain exit: it cancels the session's background tasks and
            # sends the close frame; whatever is propagating keeps propagating.
            # (Not wrapped in a new cancel scope: the session holds a task group
            # entered outside it; its own close is shielded.)
            with suppress(Exception):
                await ws_cm.__aexit__(None, None, None)
