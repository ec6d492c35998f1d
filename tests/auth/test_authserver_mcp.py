"""The protected MCP server: PRM, bearer validation, audience binding, 401/403 challenges."""

from __future__ import annotations

import json

import httpx2
import pytest

ACCEPT = {"Accept": "application/json, text/event-stream"}
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}},
}


def _rpc_result(r: httpx2.Response) -> dict:
    """The JSON-RPC message in a JSON or SSE response."""
    if r.headers["content-type"].startswith("text/event-stream"):
        data = [line[5:].strip() for line in r.text.splitlines() if line.startswith("data:")]
        return json.loads(data[-1])
    return r.json()


class Session:
    """A raw Streamable HTTP session: initialize, then requests with Mcp-Session-Id."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.token = token
        self.http = httpx2.Client(timeout=5)
        r = self.post(INIT)
        assert r.status_code == 200, r.text
        self.sid = r.headers["mcp-session-id"]
        r = self.post({"jsonrpc": "2.0", "method": "notifications/initialized"})
        assert r.status_code == 202, r.text

    def post(self, message: dict, token: str | None = None) -> httpx2.Response:
        headers = {**ACCEPT, "Authorization": f"Bearer {token or self.token}", "MCP-Protocol-Version": "2025-11-25"}
        if getattr(self, "sid", None):
            headers["Mcp-Session-Id"] = self.sid
        return self.http.post(self.url, json=message, headers=headers)

    def call(self, tool: str, args: dict, token: str | None = None) -> httpx2.Response:
        return self.post({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": tool, "arguments": args}}, token)

    def close(self) -> None:
        self.http.close()


def _params(challenge: str) -> dict[str, str]:
    """Naive parse of the server's own (simple, quoted) challenge."""
    assert challenge.startswith("Bearer ")
    out = {}
    for part in challenge[len("Bearer "):].split('", '):
        k, _, v = part.partition("=")
        out[k.strip()] = v.strip().strip('"')
    return out


def test_prm_documents(auth_server, mcp_server):
    for url in (mcp_server.prm_url("path"), mcp_server.prm_url("root")):
        doc = httpx2.get(url).json()
        assert doc["resource"] == mcp_server.url
        assert doc["authorization_servers"] == [auth_server.issuer]
        assert doc["scopes_supported"] == ["mcp:read"]
    assert mcp_server.prm_url("path").endswith("/.well-known/oauth-protected-resource/mcp")

    mcp_server.config.prm_locations = {"root"}
    assert httpx2.get(mcp_server.prm_url("path")).status_code == 404
    assert httpx2.get(mcp_server.prm_url("root")).status_code == 200
    mcp_server.config.prm_locations = set()
    assert httpx2.get(mcp_server.prm_url("root")).status_code == 404

    mcp_server.config.prm_locations = {"path"}
    mcp_server.config.prm_resource = "http://127.0.0.1:1/elsewhere"
    mcp_server.config.scopes_supported = ["mcp:read", "mcp:write"]
    doc = httpx2.get(mcp_server.prm_url()).json()
    assert doc["resource"] == "http://127.0.0.1:1/elsewhere"
    assert doc["scopes_supported"] == ["mcp:read", "mcp:write"]


def test_401_challenge_without_token(auth_server, mcp_server):
    r = httpx2.post(mcp_server.url, json=INIT, headers=ACCEPT)
    assert r.status_code == 401
    challenge = r.headers["www-authenticate"]
    assert challenge == f'Bearer scope="mcp:read", resource_metadata="{mcp_server.prm_url("path")}"'
    assert "error=" not in challenge

    mcp_server.config.prm_locations = {"root"}
    assert _params(httpx2.post(mcp_server.url, json=INIT).headers["www-authenticate"])["resource_metadata"] == (
        mcp_server.prm_url("root")
    )
    mcp_server.config.challenge_resource_metadata = False
    mcp_server.config.challenge_scope = False
    assert httpx2.post(mcp_server.url, json=INIT).headers["www-authenticate"] == "Bearer"
    # GET (the SSE stream) and DELETE are protected too.
    assert httpx2.get(mcp_server.url).status_code == 401
    assert httpx2.delete(mcp_server.url).status_code == 401


def test_invalid_and_revoked_tokens(auth_server, mcp_server, flow, public_client):
    r = httpx2.post(mcp_server.url, json=INIT, headers={**ACCEPT, "Authorization": "Bearer not-a-token"})
    assert r.status_code == 401
    assert _params(r.headers["www-authenticate"])["error"] == "invalid_token"
    tokens = flow.tokens("public-app")
    r = httpx2.post(mcp_server.url, json=INIT, headers={**ACCEPT, "Authorization": f"bearer {tokens['access_token']}"})
    assert r.status_code == 200  # scheme is case-insensitive
    httpx2.post(auth_server.revocation_endpoint, data={"token": tokens["access_token"], "client_id": "public-app"})
    r = httpx2.post(mcp_server.url, json=INIT, headers={**ACCEPT, "Authorization": f"Bearer {tokens['access_token']}"})
    assert r.status_code == 401
    r = httpx2.post(mcp_server.url, json=INIT, headers={**ACCEPT, "Authorization": f"Basic {tokens['access_token']}"})
    assert r.status_code == 401 and "error=" not in r.headers["www-authenticate"]


def test_audience_binding(auth_server, make_mcp_server, flow, public_client):
    a = make_mcp_server(auth_server)
    b = make_mcp_server(auth_server)
    tokens = flow.tokens("public-app", resource=a.resource)
    headers = {**ACCEPT, "Authorization": f"Bearer {tokens['access_token']}"}
    assert httpx2.post(a.url, json=INIT, headers=headers).status_code == 200
    r = httpx2.post(b.url, json=INIT, headers=headers)
    assert r.status_code == 401
    assert _params(r.headers["www-authenticate"])["error"] == "invalid_token"
    assert b.count("mcp_ok") == 0


def test_insufficient_scope_and_step_up(auth_server, mcp_server, flow, public_client):
    read = flow.tokens("public-app", scope="mcp:read")["access_token"]
    s = Session(mcp_server.url, read)
    try:
        r = s.call("echo", {"text": "hi"})
        assert r.status_code == 200 and _rpc_result(r)["result"]["content"][0]["text"] == "hi"

        r = s.call("admin_echo", {"text": "hi"})
        assert r.status_code == 403
        challenge = r.headers["www-authenticate"]
        p = _params(challenge)
        assert challenge.startswith('Bearer error="insufficient_scope", scope="mcp:read mcp:admin", resource_metadata="')
        assert p["resource_metadata"] == mcp_server.prm_url("path")

        mcp_server.config.step_up_scope = "missing"
        assert _params(s.call("admin_echo", {"text": "hi"}).headers["www-authenticate"])["scope"] == "mcp:admin"

        admin = flow.tokens("public-app", scope="mcp:read mcp:admin")["access_token"]
        r = s.call("admin_echo", {"text": "hi"}, token=admin)
        assert r.status_code == 200 and _rpc_result(r)["result"]["content"][0]["text"] == "admin:hi"

        mcp_server.config.always_insufficient_scope = True
        assert s.call("admin_echo", {"text": "hi"}, token=admin).status_code == 403
        assert s.call("echo", {"text": "hi"}, token=admin).status_code == 200
        assert mcp_server.count("mcp_403") == 3
    finally:
        s.close()


def test_token_without_base_scope_is_403(auth_server, mcp_server, flow, public_client):
    token = flow.tokens("public-app", scope="mcp:write")["access_token"]
    r = httpx2.post(mcp_server.url, json=INIT, headers={**ACCEPT, "Authorization": f"Bearer {token}"})
    assert r.status_code == 403
    p = _params(r.headers["www-authenticate"])
    assert p["error"] == "insufficient_scope" and p["scope"] == "mcp:read"


def test_whoami_reports_the_token(auth_server, mcp_server, flow, public_client):
    token = flow.tokens("public-app", scope="mcp:read")["access_token"]
    s = Session(mcp_server.url, token)
    try:
        who = json.loads(_rpc_result(s.call("whoami", {}))["result"]["content"][0]["text"])
        assert who == {"client_id": "public-app", "scopes": ["mcp:read"], "resource": mcp_server.resource}
    finally:
        s.close()


@pytest.mark.parametrize("json_response", [True, False])
def test_json_or_sse_responses(auth_server, make_mcp_server, flow, public_client, json_response):
    rs = make_mcp_server(auth_server, json_response=json_response)
    token = flow.tokens("public-app", resource=rs.resource)["access_token"]
    r = httpx2.post(rs.url, json=INIT, headers={**ACCEPT, "Authorization": f"Bearer {token}"})
    ctype = r.headers["content-type"]
    assert ctype.startswith("application/json" if json_response else "text/event-stream")
    assert _rpc_result(r)["result"]["serverInfo"]["name"] == "broxy-test-protected"
