"""The optional Streamable HTTP endpoint: a real SDK client through the bearer-protected facade on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import socket
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

import pytest
from proxy_testlib import MINIMAL_SERVER, PYTHON, running_app, save

from broxy_tray.auth._store import MemoryStore
from broxy_tray.proxy import EndpointManager

DOWNSTREAM_SECRET = "downstream-secret-value-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def endpoint_config(port: int | None, http_url: str | None = None) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "mcpServers": {
            "files": {"command": PYTHON, "args": [MINIMAL_SERVER, "--tools", "3"]},
            "more": {"command": PYTHON, "args": [MINIMAL_SERVER, "--tools", "2"]},
        },
        "presets": {"coding": {"servers": ["files"], "tools": ["more__tool_1"]}},
    }
    if http_url is not None:
        cfg["mcpServers"]["web"] = {"url": http_url, "headers": {"Authorization": f"Bearer {DOWNSTREAM_SECRET}"}}
    if port is not None:
        cfg["endpoint"] = {"port": port}
    return cfg


@asynccontextmanager
async def endpoint_app(path: Path) -> AsyncIterator[tuple[Any, EndpointManager]]:
    """The app plus its endpoint manager: the app's own once app.py carries the patch, else one driven
    here the way the patch drives it (apply after each reload, close before shutdown)."""
    async with running_app(path) as r:
        manager = getattr(r.app, "endpoint", None)
        own = manager is None
        if own:
            manager = EndpointManager(r.app, token_store=MemoryStore())
            await manager.apply(r.app.config)
        try:
            yield r, manager
        finally:
            if own:
                await manager.close()


@asynccontextmanager
async def sdk_client(url: str, token: str | None, *, mode: str = "legacy", **headers: str) -> AsyncIterator[Any]:
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    hdrs = dict(headers)
    if token is not None:
        hdrs["Authorization"] = f"Bearer {token}"
    async with httpx2.AsyncClient(headers=hdrs, timeout=30) as http:
        async with Client(streamable_http_client(url, http_client=http), mode=mode, cache=None) as client:
            yield client


async def raw_post(url: str, body: dict[str, Any], headers: dict[str, str]) -> Any:
    import httpx2

    async with httpx2.AsyncClient(timeout=10) as http:
        return await http.post(url, json=body, headers={
            "Accept": "application/json, text/event-stream", "Content-Type": "application/json", **headers,
        })


INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}


@pytest.fixture
def endpoint_path(tmp_path) -> tuple[Path, int]:
    port = free_port()
    path = tmp_path / "mcp.json"
    save(path, endpoint_config(port))
    return path, port


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_a_real_sdk_client_lists_and_calls_a_downstream_tool(endpoint_path, mode):
    path, port = endpoint_path
    async with endpoint_app(path) as (r, manager):
        assert manager.error is None and manager.port == port
        await r.wait_available("files", "more")
        token = await manager.token.get()
        async with sdk_client(f"http://127.0.0.1:{port}/mcp", token, mode=mode) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            assert names == {"files__tool_0", "files__tool_1", "files__tool_2", "more__tool_0", "more__tool_1"}
            result = await client.call_tool("files__tool_1", {})
            assert result.content[0].text == "called tool_1"


async def test_localhost_host_works_too(endpoint_path):
    path, port = endpoint_path
    async with endpoint_app(path) as (r, manager):
        await r.wait_available("files")
        async with sdk_client(f"http://localhost:{port}/mcp", await manager.token.get()) as client:
            assert (await client.call_tool("files__tool_0", {})).content[0].text == "called tool_0"


async def test_preset_path_hides_what_the_preset_hides(endpoint_path):
    from mcp.shared.exceptions import MCPError

    path, port = endpoint_path
    async with endpoint_app(path) as (r, manager):
        await r.wait_available("files", "more")
        token = await manager.token.get()
        async with sdk_client(f"http://127.0.0.1:{port}/presets/coding/mcp", token) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            assert names == {"files__tool_0", "files__tool_1", "files__tool_2", "more__tool_1"}
            with pytest.raises(MCPError) as e:
                await client.call_tool("more__tool_0", {})
            assert e.value.code == -32602
            assert (await client.call_tool("more__tool_1", {})).content[0].text == "called tool_1"


async def test_unknown_preset_is_a_404_json_error(endpoint_path):
    path, port = endpoint_path
    async with endpoint_app(path) as (r, manager):
        token = await manager.token.get()
        resp = await raw_post(f"http://127.0.0.1:{port}/presets/nope/mcp", INIT, {"Authorization": f"Bearer {token}"})
        assert resp.status_code == 404
        assert "no preset 'nope'" in resp.json()["error"]["message"]
        resp = await raw_post(f"http://127.0.0.1:{port}/elsewhere", INIT, {"Authorization": f"Bearer {token}"})
        assert resp.status_code == 404


async def test_missing_or_wrong_bearer_is_401(endpoint_path):
    import httpx2

    path, port = endpoint_path
    url = f"http://127.0.0.1:{port}/mcp"
    async with endpoint_app(path) as (r, manager):
        token = await manager.token.get()
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {token}"},
                        {"Authorization": f"Bearer {token}x"}, {"Authorization": token}):
            resp = await raw_post(url, INIT, headers)
            assert resp.status_code == 401, headers
            assert resp.headers["www-authenticate"].startswith("Bearer")
            assert token not in resp.text
        with pytest.raises(Exception):
            async with sdk_client(url, "wrong") as client:
                await client.list_tools()
        # the right one passes
        resp = await raw_post(url, INIT, {"Authorization": f"Bearer {token}"})
        assert resp.status_code == 200
        assert isinstance(httpx2.Response, type)


async def test_foreign_host_is_rejected(endpoint_path):
    path, port = endpoint_path
    url = f"http://127.0.0.1:{port}/mcp"
    async with endpoint_app(path) as (r, manager):
        auth = {"Authorization": f"Bearer {await manager.token.get()}"}
        for host in ("evil.example.com", f"evil.example.com:{port}", "127.0.0.1", f"127.0.0.1:{port + 1}",
                     f"attacker.localhost:{port}"):
            resp = await raw_post(url, INIT, {**auth, "Host": host})
            assert resp.status_code == 421, host


async def test_foreign_origin_is_rejected_and_loopback_origin_accepted(endpoint_path):
    path, port = endpoint_path
    url = f"http://127.0.0.1:{port}/mcp"
    async with endpoint_app(path) as (r, manager):
        auth = {"Authorization": f"Bearer {await manager.token.get()}"}
        for origin in ("https://evil.example.com", "http://127.0.0.1.evil.com", "null", f"http://evil.com:{port}"):
            resp = await raw_post(url, INIT, {**auth, "Origin": origin})
            assert resp.status_code == 403, origin
        for origin in (f"http://localhost:{port}", "http://127.0.0.1:6274", "http://[::1]:1234"):
            resp = await raw_post(url, INIT, {**auth, "Origin": origin})
            assert resp.status_code == 200, origin


async def test_listens_on_loopback_only(endpoint_path):
    path, port = endpoint_path
    async with endpoint_app(path) as (r, manager):
        assert listening(port)
        sock = manager._endpoint._sock
        assert sock.getsockname() == ("127.0.0.1", port)


async def test_port_change_on_reload_moves_the_listener_and_removal_stops_it(tmp_path, endpoint_path):
    path, port = endpoint_path
    async with endpoint_app(path) as (r, manager):
        token = await manager.token.get()
        assert listening(port)
        new_port = free_port()
        save(path, endpoint_config(new_port))
        await r.app.reload()
        await manager.apply(r.app.config)  # what the app.py patch does at the end of _reload_once
        assert manager.port == new_port
        assert not listening(port)
        assert listening(new_port)
        await r.wait_available("files")
        async with sdk_client(f"http://127.0.0.1:{new_port}/mcp", token) as client:  # same token
            assert (await client.call_tool("files__tool_2", {})).content[0].text == "called tool_2"
        cfg = endpoint_config(new_port)
        cfg["endpoint"]["enabled"] = False
        save(path, cfg)
        await r.app.reload()
        await manager.apply(r.app.config)
        assert manager.port is None and manager.error is None
        assert not listening(new_port)


async def test_endpoint_absent_means_nothing_listens(tmp_path):
    port = free_port()
    path = tmp_path / "mcp.json"
    save(path, endpoint_config(None))
    async with endpoint_app(path) as (r, manager):
        assert r.app.config.endpoint is None
        assert manager.port is None and manager.url is None
        assert manager.token is None  # not even created
        assert not listening(port)


async def test_busy_port_is_a_clear_error(endpoint_path, caplog):
    path, port = endpoint_path
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", port))
        busy.listen(1)
        with caplog.at_level(logging.ERROR, logger="broxy_tray.proxy._http_endpoint"):
            async with endpoint_app(path) as (r, manager):
                assert manager.port is None
                assert manager.error == f"the HTTP endpoint could not listen on 127.0.0.1:{port}: the port is already in use"
                assert manager.error in caplog.text
    # a later apply (e.g. the next reload) retries
    async with endpoint_app(path) as (r, manager):
        assert manager.port == port and manager.error is None


async def test_token_is_created_once_and_kept(tmp_path):
    from dataclasses import replace

    from broxy_tray.config._model import EndpointConfig

    path = tmp_path / "mcp.json"
    save(path, endpoint_config(None))
    store = MemoryStore()
    async with running_app(path) as r:
        config = replace(r.app.config, endpoint=EndpointConfig(port=free_port()))
        first = EndpointManager(r.app, token_store=store)
        await first.apply(config)
        token = await first.token.get()
        assert len(token) >= 43
        assert (await store.load("bearer-token")).tokens.access_token == token
        await first.close()
        second = EndpointManager(r.app, token_store=store)
        await second.apply(config)
        assert second.port == config.endpoint.port
        assert await second.token.get() == token
        await second.close()


async def test_token_and_downstream_credentials_never_leak(tmp_path, http_server, caplog):
    port = free_port()
    path = tmp_path / "mcp.json"
    save(path, endpoint_config(port, http_server))
    url = f"http://127.0.0.1:{port}/mcp"
    with caplog.at_level(logging.DEBUG):
        async with endpoint_app(path) as (r, manager):
            await r.wait_available("files", "web")
            token = await manager.token.get()
            auth = {"Authorization": f"Bearer {token}"}
            resp = await raw_post(url, INIT, auth)
            assert resp.status_code == 200
            session = {"Mcp-Session-Id": resp.headers["mcp-session-id"], "MCP-Protocol-Version": "2025-11-25"}
            texts = [resp.text, json.dumps(dict(resp.headers))]
            await raw_post(url, {"jsonrpc": "2.0", "method": "notifications/initialized"}, {**auth, **session})
            for i, (method, params) in enumerate([
                ("tools/list", {}),
                ("tools/call", {"name": "web__tool_1", "arguments": {}}),
                ("tools/call", {"name": "web__nope", "arguments": {}}),
                ("resources/list", {}),
                ("prompts/list", {}),
            ]):
                resp = await raw_post(url, {"jsonrpc": "2.0", "id": i + 2, "method": method, "params": params},
                                      {**auth, **session})
                assert resp.status_code == 200
                texts += [resp.text, json.dumps(dict(resp.headers))]
            assert "web__tool_1" in texts[2] and "called tool_1" in texts[4]
            for text in texts:
                assert DOWNSTREAM_SECRET not in text
                assert token not in text
    for record in caplog.records:
        assert token not in record.getMessage()
    assert token not in caplog.text



async def test_after_an_app_restart_a_stale_session_gets_404_and_the_client_starts_over(endpoint_path):
    """Streamable HTTP spec: a request with a session id the server does not know is answered 404 Not Found,
    which tells the client to initialize a new session, same URL, same token."""
    import asyncio

    from mcp.shared.exceptions import MCPError

    from broxy_tray.app import App

    path, port = endpoint_path
    store = MemoryStore()  # the token's storage outlives the app, like the keyring does
    url = f"http://127.0.0.1:{port}/mcp"

    async def start_app() -> App:
        app = App(path, watch=False)
        app.endpoint = EndpointManager(app, token_store=store)
        await app.start()
        while "files" not in app.sessions:
            await asyncio.sleep(0.05)
        return app

    app = await start_app()
    try:
        token = await app.endpoint.token.get()
        answer = await raw_post(url, INIT, {"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200
        stale = answer.headers["mcp-session-id"]
        async with sdk_client(url, token) as client:
            assert (await client.call_tool("files__tool_1", {})).content[0].text == "called tool_1"
            assert app.store.state.clients.http == 2  # the raw session and this client's
            await app.shutdown()
            app = await start_app()
            assert await app.endpoint.token.get() == token
            with pytest.raises(MCPError) as e:  # the old session is gone: the SDK client hears the 404
                await client.call_tool("files__tool_1", {})
            assert "404" in str(e.value) or "not found" in str(e.value).lower() or "terminated" in str(e.value).lower()
        listed = {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}
        answer = await raw_post(url, listed, {"Authorization": f"Bearer {token}", "Mcp-Session-Id": stale,
                                              "Mcp-Protocol-Version": "2025-11-25"})
        assert answer.status_code == 404, answer.text
        async with sdk_client(url, token) as client:  # starting over: same URL, same token
            assert (await client.call_tool("files__tool_1", {})).content[0].text == "called tool_1"
            assert app.store.state.clients.http == 1
    finally:
        await app.shutdown()
