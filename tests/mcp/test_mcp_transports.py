"""Each transport reaches a live session against real SDK servers, and follows tool-list changes."""

from __future__ import annotations

import anyio
import pytest
from mcp_testlib import SDK_SERVER, remote_config, serve, stdio_config

from broxy_tray.config._model import Transport
from broxy_tray.mcp import open_connection

TIMEOUTS = {"connect_timeout": 10, "request_timeout": 10}


async def _assert_follows_tool_changes(conn) -> None:
    changed = anyio.Event()
    seen: list[int] = []

    def on_change(tools):
        seen.append(len(tools))
        changed.set()

    conn.on_tools_changed = on_change
    before = len(conn.tools)
    result = await conn.session.call_tool("add_tool", {})
    assert result.content[0].text == str(before + 1)
    with anyio.fail_after(5):
        await changed.wait()
    assert seen[-1] == before + 1
    assert len(conn.tools) == before + 1
    assert conn.tools[-1].name.startswith("extra_")


@pytest.mark.parametrize(
    "transport, key",
    [(Transport.HTTP, "http"), (Transport.SSE, "sse"), (Transport.WEBSOCKET, "ws")],
)
async def test_remote_transport_lists_all_pages_and_follows_changes(sdk_servers, transport, key):
    async with open_connection(remote_config(transport, sdk_servers[key]), **TIMEOUTS) as conn:
        assert conn.protocol_version == "2026-07-28"
        assert (conn.server_name, conn.server_version) == ("sdk-test-server", "1.2.3")
        assert len(conn.tools) == 12  # three pages of five
        assert len({t.name for t in conn.tools}) == 12
        await _assert_follows_tool_changes(conn)
        assert len(await conn.refresh_tools()) == 13
        assert not conn.closed


async def test_stdio_sdk_server_lists_all_pages_and_follows_changes():
    server = stdio_config(SDK_SERVER, "stdio", "--tools", "12", "--page-size", "5")
    async with open_connection(server, **TIMEOUTS) as conn:
        assert conn.protocol_version == "2026-07-28"
        assert conn.server_name == "sdk-test-server"
        assert len(conn.tools) == 12
        assert isinstance(conn.pid, int)
        await _assert_follows_tool_changes(conn)


async def test_handshake_only_http_server_negotiates_initialize_and_notifies_changes():
    import sdk_server

    running = serve(sdk_server.build_server(12, 5, legacy_only=True).streamable_http_app())
    try:
        config = remote_config(Transport.HTTP, f"{running.base}/mcp")
        async with open_connection(config, **TIMEOUTS) as conn:
            assert conn.protocol_version == "2025-11-25"
            assert conn.server_name == "sdk-test-server"
            assert len(conn.tools) == 12
            await _assert_follows_tool_changes(conn)  # via notifications/tools/list_changed
    finally:
        running.stop()


async def test_session_is_usable_for_tool_calls(sdk_servers):
    async with open_connection(remote_config(Transport.HTTP, sdk_servers["http"]), **TIMEOUTS) as conn:
        result = await conn.client.call_tool("tool_3", {})
        assert result.content[0].text == "called tool_3"
        result = await conn.session.call_tool("tool_4", {})
        assert result.content[0].text == "called tool_4"


async def test_caller_exception_propagates_unwrapped(sdk_servers):
    with pytest.raises(KeyError):
        async with open_connection(remote_config(Transport.HTTP, sdk_servers["http"]), **TIMEOUTS):
            raise KeyError("mine")


@pytest.mark.parametrize("transport", [Transport.HTTP, Transport.SSE, Transport.WEBSOCKET])
async def test_server_going_away_ends_wait_closed(transport):
    from mcp_testlib import _sdk_apps

    key = {Transport.HTTP: "http", Transport.SSE: "sse", Transport.WEBSOCKET: "ws"}[transport]
    running = serve(_sdk_apps(3, 100)[key])
    url = {
        "http": f"{running.base}/mcp",
        "sse": f"{running.base}/sse",
        "ws": f"ws://127.0.0.1:{running.port}/ws",
    }[key]
    try:
        async with open_connection(remote_config(transport, url), **TIMEOUTS) as conn:
            await anyio.to_thread.run_sync(running.stop)
            with anyio.fail_after(8):
                reason = await conn.wait_closed()
            assert reason.reason
            assert "\n" not in reason.reason
    finally:
        running.stop()


async def test_websocket_junk_frames_are_skipped_within_a_log_budget(caplog):
    """A server sending frames that are not JSON-RPC still connects; the warnings about them are budgeted
    (before: two warnings per frame, one of them from the SDK session)."""
    import logging
    import uuid

    import sdk_server

    name = f"test.ws-junk.{uuid.uuid4().hex}"  # budgets are per logger
    caplog.set_level(logging.INFO, logger=name)
    running = serve(sdk_server.websocket_app(sdk_server.build_server(3, 1000), junk_frames=500))
    try:
        config = remote_config(Transport.WEBSOCKET, f"ws://127.0.0.1:{running.port}/ws")
        async with open_connection(config, log=logging.getLogger(name), **TIMEOUTS) as conn:
            assert len(conn.tools) == 3
    finally:
        running.stop()
    messages = [r.getMessage() for r in caplog.records]
    junk = [m for m in messages if m == "ignoring a WebSocket frame that is not JSON-RPC"]
    assert 1 <= len(junk) <= 12, len(junk)
    assert not [m for m in messages if m.startswith("transport error")]
