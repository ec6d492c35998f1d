"""Switchable faults, the hang/release gate, the request log and its masking."""

from __future__ import annotations

import json
import threading
import time

import httpx2
import pytest


def test_authorize_hangs_until_released(auth_server, mcp_server, flow, public_client):
    auth_server.config.authorize_mode = "hang"
    # An invalid request is answered at once (400 page); a valid one hangs.
    assert flow.authorize("nobody").status_code == 400
    auth_server.reset_log()
    results: list[httpx2.Response] = []
    t = threading.Thread(target=lambda: results.append(flow.authorize("public-app")))
    t.start()
    time.sleep(0.3)
    assert not results and auth_server.count("authorize") == 1
    auth_server.release()
    t.join(5)
    assert "code" in flow.callback(results[0])


def test_hang_fault_ends_at_shutdown(make_auth_server):
    auth = make_auth_server()
    auth.set_fault("token", "hang")
    results: list[object] = []

    def call() -> None:
        try:
            results.append(httpx2.post(auth.token_endpoint, data={"grant_type": "x"}, timeout=5).status_code)
        except httpx2.HTTPError as exc:
            results.append(exc)

    t = threading.Thread(target=call)
    t.start()
    time.sleep(0.2)
    started = time.monotonic()
    auth.stop()
    t.join(5)
    assert time.monotonic() - started < 2
    assert results  # 503 or a closed connection, but it did end


@pytest.mark.parametrize("kind", ["500", "malformed_json", "oversized", "invalid_client", "html"])
def test_token_faults(auth_server, mcp_server, flow, public_client, kind):
    auth_server.set_fault("token", kind, times=1, size=2_000_000)
    code, verifier = flow.code("public-app")
    r = flow.exchange("public-app", code, verifier)
    if kind == "500":
        assert r.status_code == 500
    elif kind == "malformed_json":
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
        with pytest.raises(json.JSONDecodeError):
            json.loads(r.text)
    elif kind == "oversized":
        assert r.status_code == 200 and len(r.content) >= 1_900_000
    elif kind == "invalid_client":
        assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    else:
        assert r.headers["content-type"].startswith("text/html")
    # times=1: the next request is served normally (the code was not consumed by the fault).
    r = flow.exchange("public-app", code, verifier)
    assert r.status_code == 200, r.text


def test_slow_fault(auth_server):
    auth_server.set_fault("metadata", "slow", delay=0.3)
    started = time.monotonic()
    assert httpx2.get(auth_server.metadata_url()).status_code == 200
    assert time.monotonic() - started >= 0.3
    auth_server.set_fault("metadata", "slow", delay=0.4)
    with pytest.raises(httpx2.TimeoutException):
        httpx2.get(auth_server.metadata_url(), timeout=0.1)
    auth_server.clear_faults()
    assert httpx2.get(auth_server.metadata_url(), timeout=0.2).status_code == 200


def test_request_log_counts_and_masks(auth_server, mcp_server, flow, public_client):
    tokens = flow.tokens("public-app")
    flow.token({"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": "public-app",
                "resource": mcp_server.resource})
    assert auth_server.count("authorize") == 1
    assert auth_server.count("token") == 2
    assert auth_server.count("register") == 0
    assert auth_server.count("metadata") == 0
    assert auth_server.count(auth_server.config.issuer_path + "/token") == 2
    dumped = repr(auth_server.log)
    assert tokens["refresh_token"] not in dumped and tokens["access_token"] not in dumped
    first, second = auth_server.requests("token")
    assert first.form["code"] == "***" and first.form["code_verifier"] == "***"
    assert first.form["grant_type"] == "authorization_code" and first.form["resource"] == mcp_server.resource
    assert second.form["refresh_token"] == "***" and second.status == 200
    reg = httpx2.post(auth_server.registration_endpoint,
                      json={"redirect_uris": ["https://a.example/cb"], "client_secret": "should-not-appear"})
    assert reg.status_code == 201
    assert "should-not-appear" not in repr(auth_server.log)
    assert auth_server.authorization_requests[0]["state"] == "st-123"


def test_resource_server_counts(auth_server, mcp_server, flow, public_client):
    httpx2.get(mcp_server.prm_url())
    httpx2.post(mcp_server.url, json={})
    assert mcp_server.count("prm") == 1 and mcp_server.count("mcp_401") == 1
    mcp_server.reset_log()
    assert mcp_server.count("prm") == 0
