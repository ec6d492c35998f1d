"""The whole sign-in against the strict test authorization server and a protected SDK server.

The "user" is `signin_testlib.Browser`, which completes each sign-in
automatically without logging anything itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest

from broxy_tray.auth import (
    AuthSettings,
    BearerAuth,
    ClientSettings,
    MemoryStore,
    ServerAuth,
)
from broxy_tray.config import ServerConfig, Transport
from broxy_tray.mcp import ConnectError, open_connection
from signin_testlib import Browser, free_port


class Harness:
    def __init__(self, rs: Any, **settings: Any) -> None:
        self.rs = rs
        self.store = MemoryStore()
        self.browser = Browser()
        self.events: list[Any] = []
        self.http = httpx2.AsyncClient(timeout=10)
        self.settings = AuthSettings(server_id="srv", server_name="Test Server", server_url=rs.url,
                                     authorization_timeout=settings.pop("authorization_timeout", 10),
                                     request_timeout=settings.pop("request_timeout", 10), **settings)
        self.clock_offset = 0.0
        self.auth = ServerAuth(self.settings, store=self.store, http=self.http, open_browser=self.browser,
                               on_event=self.events.append, clock=lambda: time.time() + self.clock_offset)

    def server(self) -> ServerConfig:
        return ServerConfig(id="srv", name="Test Server", transport=Transport.HTTP, url=self.rs.url)

    def connect(self, timeout: float = 20):
        return open_connection(self.server(), connect_timeout=timeout, request_timeout=timeout,
                               auth=BearerAuth(self.auth))

    async def close(self) -> None:
        await self.http.aclose()


@pytest.fixture
async def harness_for():
    made: list[Harness] = []

    def make(rs, **settings) -> Harness:
        h = Harness(rs, **settings)
        made.append(h)
        return h

    yield make
    for h in made:
        await h.close()


def events(h: Harness, kind: str) -> list[str]:
    return [e.message for e in h.events if e.kind == kind]


async def test_dynamic_registration_flow_end_to_end(auth_server, mcp_server, harness_for):
    h = harness_for(mcp_server)
    async with h.connect() as conn:
        assert {t.name for t in conn.tools} >= {"echo", "whoami"}
        result = await conn.session.call_tool("whoami", {})
        assert "mcp:read" in result.content[0].text
    assert auth_server.count("register") == 1
    assert auth_server.count("authorize") == 1
    assert auth_server.count("token") == 1
    assert len(h.browser.opened) == 1
    query = parse_qs(urlsplit(h.browser.opened[0]).query)
    assert query["code_challenge_method"] == ["S256"] and query["resource"] == [mcp_server.url]
    assert len(query["state"][0]) >= 32
    assert h.auth.sign_ins == 1
    kinds = [e.kind for e in h.events]
    assert kinds[:5] == ["challenge", "discovered", "client", "authorize", "token"]
    entry = await h.store.load("srv")
    assert entry.tokens.resource == mcp_server.url and entry.registration_for(auth_server.issuer).kind == "dynamic"


async def test_second_connection_reuses_token_and_registration(auth_server, mcp_server, harness_for):
    h = harness_for(mcp_server)
    async with h.connect():
        pass
    async with h.connect():
        pass
    assert (auth_server.count("register"), auth_server.count("authorize")) == (1, 1)


@pytest.mark.parametrize("method", ["none", "client_secret_basic", "client_secret_post"])
async def test_preregistered_client_each_auth_method(auth_server, mcp_server, harness_for, method):
    port = free_port()
    redirect = f"http://127.0.0.1:{port}/cb"
    secret = None if method == "none" else "pre-secret-value-123"
    auth_server.add_client("pre-app", client_secret=secret, auth_method=method, redirect_uris=[redirect])
    h = harness_for(mcp_server, client=ClientSettings(client_id="pre-app", client_secret=secret,
                                                      token_endpoint_auth_method=method), redirect_uri=redirect)
    async with h.connect() as conn:
        assert conn.tools
    assert auth_server.count("register") == 0
    assert parse_qs(urlsplit(h.browser.opened[0]).query)["redirect_uri"] == [redirect]


async def test_client_metadata_document(make_auth_server, make_mcp_server, harness_for):
    auth = make_auth_server(cimd_supported=True, registration="off")
    rs = make_mcp_server(auth)
    redirect = f"http://localhost:{free_port()}/callback"
    url = "https://app.example.com/broxy-client.json"
    auth.add_cimd_document(url, {"client_id": url, "client_name": "broxy", "redirect_uris": [redirect],
                                 "token_endpoint_auth_method": "none"})
    h = harness_for(rs, client=ClientSettings(client_id_metadata_url=url), redirect_uri=redirect)
    async with h.connect() as conn:
        assert conn.tools
    assert parse_qs(urlsplit(h.browser.opened[0]).query)["client_id"] == [url]
    assert auth.count("register") == 0


@pytest.mark.parametrize(
    ("as_switches", "rs_switches"),
    [
        ({"issuer_path": "/tenant1"}, {}),
        ({"issuer_path": "/tenant1", "well_known": {"oidc_insert"}}, {}),
        ({"issuer_path": "/tenant1", "well_known": {"oidc_append"}}, {}),
        ({"well_known": {"oidc_insert"}}, {}),
        ({}, {"prm_locations": {"root"}, "challenge_resource_metadata": False}),
        ({}, {"prm_locations": {"path"}, "challenge_resource_metadata": False}),
    ],
    ids=["8414-path", "oidc-insert-path", "oidc-append-path", "oidc-root", "prm-root-no-hint", "prm-path-no-hint"],
)
async def test_discovery_variants_sign_in(make_auth_server, make_mcp_server, harness_for, as_switches, rs_switches):
    auth = make_auth_server(**as_switches)
    rs = make_mcp_server(auth, **rs_switches)
    h = harness_for(rs)
    async with h.connect() as conn:
        assert conn.tools
    assert auth.count("token") == 1


async def test_no_prm_uses_configured_issuer(make_auth_server, make_mcp_server, harness_for):
    auth = make_auth_server()
    rs = make_mcp_server(auth, prm_locations=set(), challenge_resource_metadata=False)
    h = harness_for(rs, configured_issuer=auth.issuer)
    async with h.connect() as conn:
        assert conn.tools
    assert any("from configuration" in m for m in events(h, "discovered"))


@pytest.mark.parametrize("metadata", [True, False], ids=["origin-metadata", "default-endpoints"])
async def test_no_prm_falls_back_to_server_origin(make_auth_server, make_mcp_server, harness_for, metadata):
    """2025-03-26: the AS lives on the MCP server's origin; without metadata, /authorize /token /register."""
    auth = make_auth_server(**({} if metadata else {"well_known": set()}))
    rs = make_mcp_server(auth, embed_auth_server=True, prm_locations=set(), challenge_resource_metadata=False)
    h = harness_for(rs)
    async with h.connect() as conn:
        assert conn.tools
    (found,) = events(h, "discovered")
    assert "from server origin" in found and ("default endpoints" in found) is (not metadata)


async def test_step_up_unions_scopes_and_retries(auth_server, mcp_server, harness_for):
    h = harness_for(mcp_server)
    async with h.connect() as conn:
        result = await conn.session.call_tool("admin_echo", {"text": "hi"})
        assert not result.is_error, result
    assert h.auth.sign_ins == 2
    scopes = [set(parse_qs(urlsplit(u).query).get("scope", [""])[0].split()) for u in h.browser.opened]
    assert "mcp:admin" not in scopes[0]
    assert scopes[1] >= scopes[0] | {"mcp:admin"}, "step-up asks for held ∪ challenged"


async def test_step_up_gives_up_after_three_attempts(make_auth_server, make_mcp_server, harness_for):
    auth = make_auth_server()
    rs = make_mcp_server(auth, always_insufficient_scope=True)
    h = harness_for(rs)
    async with h.connect() as conn:
        with pytest.raises(Exception):
            await conn.session.call_tool("admin_echo", {"text": "hi"})
    assert h.auth.sign_ins <= 4  # one to connect, at most three for the call
    assert "still requires more scope after 3 authorizations" in str(h.auth.last_error)


async def test_refresh_on_401_without_browser(auth_server, mcp_server, harness_for):
    h = harness_for(mcp_server)
    async with h.connect() as conn:
        auth_server.expire_access_tokens()
        await conn.session.call_tool("echo", {"text": "again"})
    assert auth_server.count("authorize") == 1 and h.auth.sign_ins == 1
    assert len(events(h, "refreshed")) == 1
    grants = [r for r in auth_server.requests("token") if r.form.get("grant_type") == "refresh_token"]
    assert len(grants) == 1 and grants[0].form.get("resource") == mcp_server.url


async def test_proactive_refresh_before_expiry(make_auth_server, make_mcp_server, harness_for):
    auth = make_auth_server(access_token_ttl=300)
    rs = make_mcp_server(auth)
    h = harness_for(rs)
    async with h.connect():
        pass
    before = (await h.store.load("srv")).tokens
    assert before.expires_at - time.time() > 250
    h.clock_offset = 300 - 59  # 59 s before expiry: inside the 60 s margin, so due
    async with h.connect():
        pass  # the still valid token was used at once; the refresh runs in the background
    assert h.auth.refresh_waits == 0
    if h.auth.refreshing is not None:
        await h.auth.refreshing
    after = (await h.store.load("srv")).tokens
    assert after.access_token != before.access_token
    assert auth.count("authorize") == 1 and len(events(h, "refreshed")) >= 1


async def _connect_error(h: Harness, timeout: float = 15) -> str:
    with pytest.raises(ConnectError):
        async with h.connect(timeout):
            pass
    assert h.auth.last_error is not None
    entry = await h.store.load("srv")
    assert entry is None or entry.tokens is None, "no token kept after a failure"
    return str(h.auth.last_error)


@pytest.mark.parametrize(
    ("as_switches", "rs_switches", "fragment"),
    [
        ({"authorize_iss": "wrong"}, {}, "iss"),
        ({"metadata_issuer": "https://evil.example.com"}, {}, "issuer"),
        ({}, {"prm_resource": "http://127.0.0.1:1/other"}, "resource"),
        ({"code_challenge_methods": ["plain"]}, {}, "authorization server does not support PKCE S256"),
        ({"registration": "reject"}, {}, "dynamic client registration"),
        ({"authorize_mode": "deny"}, {}, "declined"),
    ],
    ids=["iss-mismatch", "metadata-issuer-mismatch", "prm-resource-mismatch", "no-s256", "dcr-rejected", "declined"],
)
async def test_sign_in_failures(make_auth_server, make_mcp_server, harness_for, as_switches, rs_switches, fragment):
    auth = make_auth_server(**as_switches)
    rs = make_mcp_server(auth, **rs_switches)
    h = harness_for(rs)
    message = await _connect_error(h)
    assert fragment in message


async def test_state_mismatch_is_rejected_then_times_out(make_auth_server, make_mcp_server, harness_for):
    auth = make_auth_server(authorize_mode="wrong_state")
    rs = make_mcp_server(auth)
    h = harness_for(rs, authorization_timeout=1.5)
    message = await _connect_error(h)
    assert "no sign-in response arrived within 1.5 s" in message and "wrong state was rejected" in message
    assert auth.count("token") == 0, "the code from a mismatched state is never used"


@pytest.mark.parametrize(
    ("fault", "fragment"),
    [
        ("500", "returned server_error"),
        ("malformed_json", "not a JSON object"),
        ("oversized", "too large"),
        ("invalid_client", "invalid_client"),
    ],
)
async def test_token_endpoint_faults(auth_server, mcp_server, harness_for, fault, fragment):
    auth_server.set_fault("token", fault, times=10)
    h = harness_for(mcp_server)
    assert fragment in await _connect_error(h)


async def test_invalid_client_re_registers_once(auth_server, mcp_server, harness_for):
    auth_server.set_fault("token", "invalid_client", times=1)
    h = harness_for(mcp_server)
    async with h.connect() as conn:
        assert conn.tools
    assert auth_server.count("register") == 2 and auth_server.count("authorize") == 2


async def test_authorization_server_that_never_answers_times_out(auth_server, mcp_server, harness_for):
    auth_server.set_fault("metadata", "hang")
    h = harness_for(mcp_server, request_timeout=1)
    try:
        message = await _connect_error(h)
    finally:
        auth_server.release()
    assert "timed out" in message or "failed" in message


async def test_two_needs_open_one_browser(auth_server, mcp_server, harness_for):
    h = harness_for(mcp_server)
    first, second = await asyncio.gather(h.auth.sign_in(), h.auth.sign_in())
    assert first == second and len(h.browser.opened) == 1 and auth_server.count("authorize") == 1


async def test_cancel_sign_in(make_auth_server, make_mcp_server, harness_for):
    auth = make_auth_server(authorize_mode="hang")
    rs = make_mcp_server(auth)
    h = harness_for(rs, authorization_timeout=30)
    task = asyncio.ensure_future(h.auth.sign_in())
    while not h.auth.signing_in or not h.browser.opened:
        await asyncio.sleep(0.02)
    assert h.auth.cancel() is True
    from broxy_tray.auth import SignInCancelled

    with pytest.raises(SignInCancelled):
        await task
    auth.release()
    assert events(h, "cancelled") == ["sign-in cancelled"]


async def test_authorization_header_disables_oauth(auth_server, mcp_server):
    server = ServerConfig(id="srv", name="S", transport=Transport.HTTP, url=mcp_server.url,
                          headers={"authorization": "Bearer user-managed-token"})
    assert server.has_authorization_header
    with pytest.raises(ConnectError, match=r"requires authorization \(HTTP 401\)"):
        async with open_connection(server, connect_timeout=5, request_timeout=5):
            pass
    assert auth_server.count("metadata") == 0 and auth_server.count("register") == 0


async def test_full_flow_logs_no_secrets(auth_server, mcp_server, harness_for, caplog):
    caplog.set_level(logging.DEBUG)
    h = harness_for(mcp_server)
    async with h.connect() as conn:
        await conn.session.call_tool("admin_echo", {"text": "hi"})  # step-up: a second sign-in
        auth_server.expire_access_tokens()
        await conn.session.call_tool("echo", {"text": "after refresh"})
    entry = await h.store.load("srv")
    secrets = [entry.tokens.access_token, entry.tokens.refresh_token]
    reg = entry.registration_for(auth_server.issuer)
    if reg.client_secret:
        secrets.append(reg.client_secret)
    secrets += auth_server.issued_secrets() if hasattr(auth_server, "issued_secrets") else []
    text = "\n".join(r.getMessage() for r in caplog.records) + "\n".join(e.message for e in h.events)
    assert "token obtained" in text
    for secret in secrets:
        assert secret and secret not in text
    for record in auth_server.requests("token"):
        for key in ("code", "code_verifier", "refresh_token"):
            value = record.form.get(key)
            assert value in (None, "***"), "the AS log masks secrets too"
