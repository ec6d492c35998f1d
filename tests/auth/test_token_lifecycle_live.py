"""The token lifecycle over real HTTP: the loopback AS (rotating refresh tokens, reuse detection) and
protected SDK servers, MCP sessions making real tool calls. Counts are the AS's own."""

from __future__ import annotations

import asyncio
import json
import math
import time

import httpx2

from broxy_tray.app import App
from broxy_tray.auth import AuthSettings, BearerAuth, MemoryStore, ServerAuth
from broxy_tray.config import ServerConfig, Transport
from broxy_tray.mcp import open_connection
from broxy_tray.state import ServerStatus
from signin_testlib import Browser


async def until(pred, timeout: float = 30.0, what: str = "condition"):  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


async def test_short_lifetimes_refresh_once_per_lifetime_under_traffic(make_auth_server, make_mcp_server, tmp_path):
    """L = 5 s and 25 s, tool calls all the time: no storm, no early refresh, no reuse."""
    lifetimes = {"five": 5, "twentyfive": 25}
    auths = {sid: make_auth_server(access_token_ttl=lt) for sid, lt in lifetimes.items()}
    servers = {sid: make_mcp_server(auths[sid]) for sid in lifetimes}
    path = tmp_path / "mcp.json"
    path.write_text(json.dumps({"mcpServers": {sid: {"url": rs.url} for sid, rs in servers.items()}}))
    browser = Browser()
    app = App(path, credentials=MemoryStore(), open_browser=browser, environ={})
    await app.start()
    try:
        await until(lambda: all(app.store.state.server(s).status is ServerStatus.AVAILABLE for s in lifetimes),
                    what="both servers available")
        window = 27.0
        started = time.monotonic()
        calls = 0
        while time.monotonic() - started < window:
            for sid in lifetimes:
                conn = app.sessions.get(sid)
                assert conn is not None, f"{sid} lost its session"
                result = await conn.session.call_tool("echo", {"text": str(calls)})
                assert result.content[0].text == str(calls)
                calls += 1
            await asyncio.sleep(0.02)
        elapsed = time.monotonic() - started
        waits = {sid: app.auth.auth_for(app.config.server(sid), app.config).server_auth.refresh_waits
                 for sid in lifetimes}
    finally:
        await app.shutdown()
    assert calls > 100 and len(browser.opened) == 2
    for sid, lifetime in lifetimes.items():
        auth = auths[sid]
        grants = auth.refresh_grants()
        assert all(g.outcome == "issued" for g in grants), grants
        assert auth.stats["reuse_detected"] == 0 and auth.stats["invalid_grant"] == 0
        assert all(g.token_age >= 0.45 * lifetime for g in grants), "refreshed before half its lifetime"
        # once per (half) lifetime: L/2 apart, so at most elapsed / (L/2) + 1 — not one per call
        assert math.floor(elapsed / lifetime) <= len(grants) <= math.ceil(elapsed / (0.45 * lifetime)) + 1, \
            (sid, len(grants), elapsed)
    assert waits["twentyfive"] == 0, "a call never waited: the token was refreshed 12 s before expiry"


class _Auth:
    """A ServerAuth over real HTTP whose wall clock the test can move ahead (the expiry is wall-clock time)."""

    def __init__(self, rs) -> None:  # type: ignore[no-untyped-def]
        self.offset = 0.0
        self.http = httpx2.AsyncClient(timeout=10)
        self.server = ServerConfig(id="srv", name="Srv", transport=Transport.HTTP, url=rs.url)
        settings = AuthSettings(server_id="srv", server_name="Srv", server_url=rs.url, authorization_timeout=20)
        self.auth = ServerAuth(settings, store=MemoryStore(), http=self.http, open_browser=Browser(),
                               clock=lambda: time.time() + self.offset)

    def connect(self):  # type: ignore[no-untyped-def]
        return open_connection(self.server, connect_timeout=20, request_timeout=20, auth=BearerAuth(self.auth))


async def test_two_hundred_calls_at_expiry_cause_one_refresh_grant(make_auth_server, make_mcp_server):
    auth = make_auth_server(access_token_ttl=3600)
    rs = make_mcp_server(auth)
    h = _Auth(rs)
    try:
        async with h.connect() as conn:
            auth.set_fault("token", "hold", delay=1.0)  # the refresh takes a second: the calls pile up on it
            auth.expire_access_tokens()
            h.offset = 3601  # and the client sees it expired too
            results = await asyncio.wait_for(asyncio.gather(
                *(conn.session.call_tool("echo", {"text": str(i)}) for i in range(200))), 60)
    finally:
        await h.http.aclose()
    assert [r.content[0].text for r in results] == [str(i) for i in range(200)]
    assert len(auth.refresh_grants()) == 1 and auth.stats["reuse_detected"] == 0
    assert auth.count("authorize") == 1
    assert h.auth.refresh_waits >= 1


async def test_calls_never_wait_for_a_refresh_while_the_token_is_valid(make_auth_server, make_mcp_server):
    auth = make_auth_server(access_token_ttl=3600)
    rs = make_mcp_server(auth)
    h = _Auth(rs)
    try:
        async with h.connect() as conn:
            auth.set_fault("token", "hold")  # the refresh is held until released: a waiting call would hang
            h.offset = 3000  # past the due time (12 min before expiry), still valid
            results = await asyncio.wait_for(asyncio.gather(
                *(conn.session.call_tool("echo", {"text": str(i)}) for i in range(50))), 30)
            assert len(results) == 50 and h.auth.refresh_waits == 0
            await until(lambda: auth.stats["held"] == 1, what="the background refresh")
            assert h.auth.refreshing is not None, "one refresh in flight for all 50 calls"
            auth.release()
            fresh = await h.auth.refreshing
            assert auth.introspect(fresh.access_token).active
    finally:
        await h.http.aclose()
    assert len(auth.refresh_grants()) == 1


async def test_refused_refresh_keeps_the_token_then_one_sign_in_for_many_calls(make_auth_server, make_mcp_server):
    auth = make_auth_server(access_token_ttl=3600, refresh_invalid_grant=True)
    rs = make_mcp_server(auth)
    h = _Auth(rs)
    try:
        async with h.connect() as conn:
            h.offset = 3000  # due: the background refresh is refused
            await conn.session.call_tool("echo", {"text": "due"})
            await until(lambda: auth.stats["invalid_grant"] == 1, what="the refused refresh")
            await until(lambda: h.auth.refreshing is None, what="the refresh to end")
            kept = await h.auth.tokens()
            assert kept.refresh_token is None and auth.introspect(kept.access_token).active
            for i in range(5):  # still valid: used, no new refresh, no browser
                await conn.session.call_tool("echo", {"text": str(i)})
            assert auth.stats["refresh_grants"] == 1 and auth.count("authorize") == 1
            auth.expire_access_tokens()
            h.offset = 3601  # expired now: the calls all need the one sign-in
            results = await asyncio.wait_for(asyncio.gather(
                *(conn.session.call_tool("echo", {"text": str(i)}) for i in range(20))), 60)
    finally:
        await h.http.aclose()
    assert len(results) == 20
    assert auth.count("authorize") == 2 and len(h.auth._open_browser.opened) == 2, "one more browser tab, not 20"  # noqa: SLF001
