"""The test AS behaves like a hosted one: its own grant log, reuse detection, refresh-token expiry,
held and dropped answers, an injectable clock and an in-process transport."""

from __future__ import annotations

import threading
import time

import httpx2
import pytest

from authserver import AuthServer


def refresh(flow, mcp_server, token: str):
    return flow.token({"grant_type": "refresh_token", "refresh_token": token, "client_id": "public-app",
                       "resource": mcp_server.resource})


def test_grant_log_counts_rotation_and_reuse(auth_server, mcp_server, flow, public_client):
    first = flow.tokens("public-app")
    second = refresh(flow, mcp_server, first["refresh_token"]).json()
    assert refresh(flow, mcp_server, first["refresh_token"]).json()["error"] == "invalid_grant"  # reused
    assert refresh(flow, mcp_server, second["refresh_token"]).json()["error"] == "invalid_grant"  # family gone
    assert [g.outcome for g in auth_server.refresh_grants("public-app")] == ["issued", "reuse", "revoked"]
    assert auth_server.stats["reuse_detected"] == 1 and auth_server.stats["refreshed"] == 1
    assert auth_server.stats["invalid_grant"] == 2 and auth_server.stats["code_grants"] == 1
    assert all(g.token_age is not None and g.token_age >= 0 for g in auth_server.refresh_grants())
    auth_server.reset_log()
    assert auth_server.stats == {} and auth_server.grants == []


def test_refresh_token_expiry(make_auth_server, make_mcp_server, make_flow):
    now = [1_000_000.0]
    auth = make_auth_server(refresh_token_ttl=100, clock=lambda: now[0])
    rs = make_mcp_server(auth)
    flow = make_flow(auth)
    auth.add_client("public-app", redirect_uris=[flow.REDIRECT])
    tokens = flow.tokens("public-app")
    now[0] += 99
    fresh = refresh(flow, rs, tokens["refresh_token"]).json()
    assert "access_token" in fresh
    now[0] += 100  # the rotated token got its own 100 s
    r = refresh(flow, rs, fresh["refresh_token"])
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    assert [g.outcome for g in auth.refresh_grants()] == ["issued", "expired"]
    assert auth.refresh_grants()[0].token_age == pytest.approx(99)


def test_hold_processes_then_holds_the_answer(auth_server, mcp_server, flow, public_client):
    tokens = flow.tokens("public-app")
    auth_server.set_fault("token", "hold", times=1)
    results: list[httpx2.Response] = []
    t = threading.Thread(target=lambda: results.append(refresh(flow, mcp_server, tokens["refresh_token"])))
    t.start()
    end = time.monotonic() + 10
    while auth_server.stats["held"] == 0 and time.monotonic() < end:
        time.sleep(0.02)
    assert auth_server.stats["held"] == 1 and not results
    assert not auth_server.refresh_token_active(tokens["refresh_token"]), "rotated before the answer left"
    auth_server.release()
    t.join(10)
    assert results[0].status_code == 200 and auth_server.refresh_token_active(results[0].json()["refresh_token"])


def test_hold_with_delay_answers_late(auth_server, mcp_server, flow, public_client):
    tokens = flow.tokens("public-app")
    auth_server.set_fault("token", "hold", times=1, delay=0.3)
    with pytest.raises(httpx2.TimeoutException):
        flow.http.post(auth_server.token_endpoint, timeout=0.05, data={
            "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": "public-app",
            "resource": mcp_server.resource})
    assert [g.outcome for g in auth_server.refresh_grants()] == ["issued"], "the client gave up, the AS did not"


def test_drop_closes_the_connection_without_an_answer(auth_server, mcp_server, flow, public_client):
    tokens = flow.tokens("public-app")
    auth_server.set_fault("token", "drop", times=1)
    with pytest.raises(httpx2.RemoteProtocolError):
        refresh(flow, mcp_server, tokens["refresh_token"])
    assert auth_server.stats["dropped"] == 1 and auth_server.refresh_grants() == []
    assert refresh(flow, mcp_server, tokens["refresh_token"]).status_code == 200  # not consumed


async def test_in_process_transport_down_and_drop():
    auth = AuthServer()
    auth.attach("http://as.invalid")
    async with httpx2.AsyncClient(transport=auth.transport()) as http:
        assert (await http.get(auth.metadata_url())).json()["issuer"] == auth.issuer
        auth.set_fault("metadata", "drop", times=1)
        with pytest.raises(httpx2.RemoteProtocolError):
            await http.get(auth.metadata_url())
        auth.down = True
        with pytest.raises(httpx2.ConnectError):
            await http.get(auth.metadata_url())
    assert auth.count("metadata") == 2
