"""Sign-in inside the running app: status countdown, browser once, saved as disabled on cancel/timeout."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from broxy_tray.app import App, IntentError
from broxy_tray.auth import MemoryStore
from broxy_tray.state import AuthNotice, ServerStatus
from signin_testlib import Browser

UNUSUAL = """{
\t"authorizationTimeoutSeconds": %(timeout)s,
\t"mcpServers": {
\t\t"files": {"command": "${NO_SUCH_VAR:-true}", "enabled": false, "x-note": "keep"},
\t\t"secured" :  {
\t\t\t"name": "Secured MCP", "url": "%(url)s",
\t\t\t"headers": {"X-Team": "${TEAM:-t1}"},
\t\t\t"zz-unknown": [1, 2]
\t\t}
\t}
}
"""


class Recorder:
    def __init__(self, app: App) -> None:
        self.notices: list[AuthNotice] = []
        self.statuses: list[tuple[str, str, int | None]] = []
        app.store.subscribe(self._on)

    def _on(self, state, event) -> None:
        if isinstance(event, AuthNotice):
            self.notices.append(event)
        for s in state.servers:
            item = (s.id, s.status.value, s.seconds_left)
            if not self.statuses or self.statuses[-1] != item:
                self.statuses.append(item)


async def until(pred, timeout: float = 20.0, what: str = "condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def status(app: App, sid: str):
    s = app.store.state.server(sid)
    return s.status if s else None


@pytest.fixture
async def running_app(tmp_path):
    apps: list[App] = []

    async def start(text: str, browser: Browser, store=None) -> tuple[App, Path, Recorder]:
        path = tmp_path / "mcp.json"
        path.write_text(text)
        app = App(path, credentials=store or MemoryStore(), open_browser=browser, environ={})
        rec = Recorder(app)
        await app.start()
        apps.append(app)
        return app, path, rec

    yield start
    for app in apps:
        await app.shutdown()


async def test_enabling_oauth_server_signs_in_and_becomes_available(auth_server, mcp_server, running_app):
    browser = Browser()
    app, path, rec = await running_app(UNUSUAL % {"timeout": 30, "url": mcp_server.url}, browser)
    await until(lambda: status(app, "secured") is ServerStatus.AVAILABLE, what="available")
    assert len(browser.opened) == 1 and auth_server.count("authorize") == 1
    seen = [st for sid, st, _ in rec.statuses if sid == "secured"]
    assert seen.index("Authorization") < seen.index("Connecting", seen.index("Authorization")) < seen.index("Available")
    started = next(n for n in rec.notices if n.action == "started")
    assert started.seconds_left == 30 and started.url == browser.opened[0]
    assert [n.action for n in rec.notices if n.server == "secured"] == ["started", "succeeded"]
    assert app.store.state.server("secured").auth_url is None


async def _cancel_or_timeout(make_auth_server, make_mcp_server, running_app, *, cancel: bool):
    auth = make_auth_server(authorize_mode="hang")
    rs = make_mcp_server(auth)
    browser = Browser(follow=True)
    text = UNUSUAL % {"timeout": 30 if cancel else 2, "url": rs.url}
    app, path, rec = await running_app(text, browser)
    await until(lambda: status(app, "secured") is ServerStatus.AUTHORIZATION, what="authorization")
    if cancel:
        await until(lambda: app.store.state.server("secured").seconds_left in (28, 29), timeout=5, what="countdown")
        assert await app.cancel_authorization("secured") is True
    await until(lambda: status(app, "secured") is ServerStatus.DISABLED, timeout=15, what="disabled")
    auth.release()
    after = path.read_text()
    assert after == text.replace('\t\t\t"zz-unknown": [1, 2]\n', '\t\t\t"zz-unknown": [1, 2],\n\t\t\t"enabled": false\n'), \
        "only the one value was added; placeholders, tabs, unknown keys survive"
    detail = app.store.state.server("secured").detail
    return detail, rec, browser


async def test_cancel_saves_disabled_with_reason(make_auth_server, make_mcp_server, running_app):
    detail, rec, browser = await _cancel_or_timeout(make_auth_server, make_mcp_server, running_app, cancel=True)
    assert detail == "sign-in cancelled"
    assert [n.action for n in rec.notices if n.server == "secured"][-1] == "cancelled"
    ticks = [s for sid, st, s in rec.statuses if sid == "secured" and st == "Authorization"]
    assert ticks[0] == 30 and 28 in ticks or 29 in ticks, "the countdown ticks every second"


async def test_timeout_saves_disabled_with_reason(make_auth_server, make_mcp_server, running_app):
    detail, rec, browser = await _cancel_or_timeout(make_auth_server, make_mcp_server, running_app, cancel=False)
    assert "no sign-in response arrived within 2 s" in detail
    assert len(browser.opened) == 1


async def test_enable_again_retries(auth_server, mcp_server, running_app):
    text = UNUSUAL.replace('"zz-unknown": [1, 2]', '"zz-unknown": [1, 2], "enabled": false')
    browser = Browser()
    app, path, rec = await running_app(text % {"timeout": 30, "url": mcp_server.url}, browser)
    assert status(app, "secured") is ServerStatus.DISABLED and browser.opened == []
    await app.set_enabled("secured", True)
    await until(lambda: status(app, "secured") is ServerStatus.AVAILABLE, what="signed in after enabling")
    assert len(browser.opened) == 1


async def test_restart_reuses_tokens_without_browser(auth_server, mcp_server, running_app, tmp_path):
    store = MemoryStore()
    browser = Browser()
    app, path, _ = await running_app(UNUSUAL % {"timeout": 30, "url": mcp_server.url}, browser, store)
    await until(lambda: status(app, "secured") is ServerStatus.AVAILABLE)
    await app.shutdown()
    second = App(path, credentials=store, open_browser=browser, environ={})
    await second.start()
    try:
        await until(lambda: status(second, "secured") is ServerStatus.AVAILABLE)
    finally:
        await second.shutdown()
    assert len(browser.opened) == 1
    assert auth_server.count("authorize") == 1 and auth_server.count("register") == 1


async def test_five_servers_each_their_own_flow(auth_server, make_mcp_server, running_app):
    servers = [make_mcp_server(auth_server) for _ in range(5)]
    cfg = {"authorizationTimeoutSeconds": 30,
           "mcpServers": {f"s{i}": {"url": rs.url} for i, rs in enumerate(servers)}}
    browser = Browser()
    app, path, rec = await running_app(json.dumps(cfg), browser)
    await until(lambda: all(status(app, f"s{i}") is ServerStatus.AVAILABLE for i in range(5)), timeout=40)
    assert len(browser.opened) == 5
    resources = sorted(dict(p.split("=", 1) for p in urlsplit(u).query.split("&"))["resource"] for u in browser.opened)
    assert len(set(resources)) == 5, "each flow asked for its own server"
    states = [dict(p.split("=", 1) for p in urlsplit(u).query.split("&"))["state"] for u in browser.opened]
    assert len(set(states)) == 5
    for i in range(5):
        stored = await app.credentials.load(f"s{i}")
        assert stored.tokens.resource == servers[i].url


async def test_two_needs_open_one_browser(make_auth_server, make_mcp_server, running_app):
    auth = make_auth_server(authorize_mode="hang")
    rs = make_mcp_server(auth)
    browser = Browser()
    app, path, rec = await running_app(UNUSUAL % {"timeout": 30, "url": rs.url}, browser)
    await until(lambda: status(app, "secured") is ServerStatus.AUTHORIZATION)
    await app.authorize("secured")  # a second need for the same server joins the first
    await app.retry("secured")  # and a reconnect while it waits does not start another
    await asyncio.sleep(1.0)
    assert status(app, "secured") is ServerStatus.AUTHORIZATION
    auth.release()
    assert len(browser.opened) == 1 and auth.count("authorize") == 1
    assert len([n for n in rec.notices if n.action == "started"]) == 1


async def test_intent_errors(auth_server, mcp_server, running_app):
    app, path, rec = await running_app(UNUSUAL % {"timeout": 30, "url": mcp_server.url}, Browser())
    with pytest.raises(IntentError, match="no server 'nope'"):
        await app.authorize("nope")
    with pytest.raises(IntentError, match="files is not an OAuth server"):
        await app.authorize("files")
    await until(lambda: status(app, "secured") is ServerStatus.AVAILABLE)
    with pytest.raises(IntentError, match="no sign-in is running for secured"):
        await app.cancel_authorization("secured")


async def test_sign_out_revokes_and_disables(auth_server, mcp_server, running_app):
    app, path, rec = await running_app(UNUSUAL % {"timeout": 30, "url": mcp_server.url}, Browser())
    await until(lambda: status(app, "secured") is ServerStatus.AVAILABLE)
    stored = await app.credentials.load("secured")
    await app.sign_out("secured")
    assert auth_server.count("revoke") == 2
    assert not auth_server.refresh_token_active(stored.tokens.refresh_token)
    assert (await app.credentials.load("secured")).tokens is None
    await until(lambda: status(app, "secured") is ServerStatus.DISABLED)
    assert app.store.state.server("secured").detail == "signed out"
    assert json.loads(path.read_text().replace("${", "$${"))["mcpServers"]["secured"]["enabled"] is False


async def test_background_refresh_before_expiry(make_auth_server, make_mcp_server, running_app):
    auth = make_auth_server(access_token_ttl=4)  # a short token is due at half its life: 2 s after issue
    rs = make_mcp_server(auth)
    app, path, rec = await running_app(UNUSUAL % {"timeout": 30, "url": rs.url}, Browser())
    await until(lambda: status(app, "secured") is ServerStatus.AVAILABLE)
    first = (await app.credentials.load("secured")).tokens
    await until(lambda: app.credentials._entries["secured"].tokens.access_token != first.access_token,  # noqa: SLF001
                timeout=15, what="a background refresh")
    fresh = (await app.credentials.load("secured")).tokens
    assert fresh.refresh_token != first.refresh_token, "the AS rotated the refresh token"
    assert not auth.refresh_token_active(first.refresh_token)
    assert auth.count("authorize") == 1 and status(app, "secured") is ServerStatus.AVAILABLE


async def test_refresh_without_new_refresh_token_keeps_the_old(make_auth_server, make_mcp_server, running_app):
    auth = make_auth_server(access_token_ttl=4, refresh_omit_new_token=True)
    rs = make_mcp_server(auth)
    app, path, rec = await running_app(UNUSUAL % {"timeout": 30, "url": rs.url}, Browser())
    await until(lambda: status(app, "secured") is ServerStatus.AVAILABLE)
    first = (await app.credentials.load("secured")).tokens
    await until(lambda: app.credentials._entries["secured"].tokens.access_token != first.access_token, timeout=15)  # noqa: SLF001
    assert (await app.credentials.load("secured")).tokens.refresh_token == first.refresh_token


async def test_authorization_server_down_keeps_available_then_recovers(make_auth_server, make_mcp_server, running_app):
    auth = make_auth_server(access_token_ttl=20)  # due at 10 s; three failures wait about 1 + 2 + 4 s
    rs = make_mcp_server(auth)
    app, path, rec = await running_app(UNUSUAL % {"timeout": 30, "url": rs.url}, Browser())
    await until(lambda: status(app, "secured") is ServerStatus.AVAILABLE)
    first = (await app.credentials.load("secured")).tokens
    auth.set_fault("token", "500", times=3)  # the refreshes due in ~10 s fail three times (backoff 1, 2, 4 s)
    seen = set()
    await until(lambda: seen.add(status(app, "secured")) or
                app.credentials._entries["secured"].tokens.access_token != first.access_token,  # noqa: SLF001
                timeout=30, what="recovery after the AS came back")
    assert seen == {ServerStatus.AVAILABLE}, "never left Available on a transient fault"
    assert auth.count("authorize") == 1, "no browser for a transient fault"
    grants = [r for r in auth.requests("token") if r.form.get("grant_type") == "refresh_token"]
    assert len(grants) >= 4


async def test_invalid_grant_leads_to_sign_in(make_auth_server, make_mcp_server, running_app):
    auth = make_auth_server(refresh_invalid_grant=True)
    rs = make_mcp_server(auth)
    browser = Browser()
    app, path, rec = await running_app(UNUSUAL % {"timeout": 30, "url": rs.url}, browser)
    await until(lambda: status(app, "secured") is ServerStatus.AVAILABLE)
    auth.expire_access_tokens()
    await app.retry("secured")  # the reconnect meets a 401; refresh is refused; the user signs in again
    await until(lambda: len(browser.opened) == 2, what="a second sign-in")
    await until(lambda: status(app, "secured") is ServerStatus.AVAILABLE)


async def test_app_log_has_no_secrets(make_auth_server, make_mcp_server, running_app, caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    auth = make_auth_server(access_token_ttl=4)
    rs = make_mcp_server(auth)
    app, path, rec = await running_app(UNUSUAL % {"timeout": 30, "url": rs.url}, Browser())
    await until(lambda: status(app, "secured") is ServerStatus.AVAILABLE)
    first = (await app.credentials.load("secured")).tokens
    await until(lambda: app.credentials._entries["secured"].tokens.access_token != first.access_token, timeout=15)  # noqa: SLF001
    entry = await app.credentials.load("secured")
    await app.sign_out("secured")
    secrets = [first.access_token, first.refresh_token, entry.tokens.access_token, entry.tokens.refresh_token]
    reg = entry.registration_for(auth.issuer)
    if reg.client_secret:
        secrets.append(reg.client_secret)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "signed out" in text and "token obtained" in text
    for secret in secrets:
        assert secret not in text


async def test_unusable_keyring_falls_back_and_the_state_says_so(auth_server, mcp_server, tmp_path):
    from keyring.backends import fail

    from broxy_tray.auth import KEYRING_UNAVAILABLE, KeyringStore

    path = tmp_path / "mcp.json"
    path.write_text(UNUSUAL % {"timeout": 30, "url": mcp_server.url})
    app = App(path, credentials=KeyringStore(backend=fail.Keyring(), timeout=2), open_browser=Browser(), environ={})
    await app.start()
    try:
        await until(lambda: app.store.state.storage == KEYRING_UNAVAILABLE, what="the storage line")
        await until(lambda: status(app, "secured") is ServerStatus.AVAILABLE, what="signed in, in memory")
    finally:
        await app.shutdown()
