"""The test authorization server's happy paths, driven with plain httpx2 requests."""

from __future__ import annotations

import base64
import time
from urllib.parse import quote_plus

import httpx2
import pytest

from authserver import AuthServer

REDIRECT = "http://127.0.0.1:48123/callback"  # Flow.REDIRECT (conftest)


def test_code_flow_with_pkce_then_mcp_accepts_token(auth_server, mcp_server, flow, public_client):
    verifier, challenge = flow.pkce()
    r = flow.authorize("public-app", code_challenge=challenge, scope="mcp:read offline_access")
    assert r.status_code == 302
    location = r.headers["location"]
    assert location.startswith(flow.REDIRECT + "?")
    cb = flow.callback(r)
    assert cb["state"] == "st-123"
    assert cb["iss"] == auth_server.issuer
    assert set(cb) == {"code", "state", "iss"}

    r = flow.exchange("public-app", cb["code"], verifier)
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    body = r.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["scope"] == "mcp:read offline_access"
    assert body["refresh_token"]

    active, scopes, resource, expires_at, client_id = auth_server.introspect(body["access_token"])
    assert active and resource == mcp_server.resource and client_id == "public-app"
    assert scopes == ("mcp:read", "offline_access")
    assert expires_at > time.time() + 3000

    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}},
    }
    headers = {"Accept": "application/json, text/event-stream"}
    r = httpx2.post(mcp_server.url, json=init, headers=headers)
    assert r.status_code == 401
    r = httpx2.post(mcp_server.url, json=init, headers={**headers, "Authorization": f"Bearer {body['access_token']}"})
    assert r.status_code == 200, r.text
    assert '"serverInfo"' in r.text and "broxy-test-protected" in r.text
    assert r.headers.get("mcp-session-id")
    assert mcp_server.count("mcp_ok") == 1 and mcp_server.count("mcp_401") == 1


async def test_sdk_client_calls_tools_with_token(auth_server, mcp_server, flow, public_client):
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    tokens = flow.tokens("public-app", scope="mcp:read")
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {tokens['access_token']}"}) as http:
        async with Client(streamable_http_client(mcp_server.url, http_client=http)) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            assert names == {"echo", "whoami", "admin_echo"}
            result = await client.call_tool("echo", {"text": "hi"})
            assert result.content[0].text == "hi"
            who = await client.call_tool("whoami", {})
            assert '"client_id": "public-app"' in who.content[0].text
            assert mcp_server.resource in who.content[0].text


def test_refresh_rotation(auth_server, mcp_server, flow, public_client):
    tokens = flow.tokens("public-app")
    old_rt = tokens["refresh_token"]
    data = {"grant_type": "refresh_token", "refresh_token": old_rt, "client_id": "public-app", "resource": mcp_server.resource}
    r = flow.token(data)
    assert r.status_code == 200, r.text
    new = r.json()
    assert new["refresh_token"] != old_rt and new["access_token"] != tokens["access_token"]
    assert auth_server.introspect(new["access_token"]).active
    assert not auth_server.refresh_token_active(old_rt)
    assert auth_server.refresh_token_active(new["refresh_token"])

    # Reusing the rotated-out token fails, and (reuse detection) kills the family.
    r = flow.token(data)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    assert not auth_server.refresh_token_active(new["refresh_token"])
    assert not auth_server.introspect(new["access_token"]).active


def test_refresh_switches(auth_server, mcp_server, flow, public_client):
    tokens = flow.tokens("public-app")
    data = {
        "grant_type": "refresh_token",
        "refresh_token": tokens["refresh_token"],
        "client_id": "public-app",
        "resource": mcp_server.resource,
    }
    auth_server.config.refresh_omit_new_token = True
    r = flow.token(data)
    assert r.status_code == 200 and "refresh_token" not in r.json()
    assert auth_server.refresh_token_active(tokens["refresh_token"])  # not rotated: still usable
    auth_server.config.refresh_invalid_grant = True
    r = flow.token(data)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_short_lived_access_token_expires(make_auth_server, make_mcp_server, make_flow):
    auth = make_auth_server(access_token_ttl=0.3)
    rs = make_mcp_server(auth)
    auth.add_client("c", redirect_uris=["http://127.0.0.1:48123/callback"])
    tokens = make_flow(auth).tokens("c")
    assert tokens["expires_in"] == 1
    ok = httpx2.get(rs.url, headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert ok.status_code != 401
    time.sleep(0.35)
    r = httpx2.get(rs.url, headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert r.status_code == 401 and 'error="invalid_token"' in r.headers["www-authenticate"]


def test_revocation(auth_server, mcp_server, flow, public_client):
    tokens = flow.tokens("public-app")
    r = flow.http.post(auth_server.revocation_endpoint, data={"token": tokens["access_token"], "client_id": "public-app"})
    assert r.status_code == 200
    assert not auth_server.introspect(tokens["access_token"]).active
    assert auth_server.refresh_token_active(tokens["refresh_token"])
    r = flow.http.post(
        auth_server.revocation_endpoint,
        data={"token": tokens["refresh_token"], "token_type_hint": "refresh_token", "client_id": "public-app"},
    )
    assert r.status_code == 200
    assert not auth_server.refresh_token_active(tokens["refresh_token"])
    # Unknown tokens are fine (RFC 7009 §2.2) but client authentication is still required.
    assert flow.http.post(auth_server.revocation_endpoint, data={"token": "nope", "client_id": "public-app"}).status_code == 200
    r = flow.http.post(auth_server.revocation_endpoint, data={"token": "nope"})
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"


def test_client_secret_basic_is_form_urlencoded(auth_server, mcp_server, flow):
    secret = "p+ss:w/rd%"
    auth_server.add_client("conf:app", client_secret=secret, auth_method="client_secret_basic", redirect_uris=[flow.REDIRECT])
    code, verifier = flow.code("conf:app")
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": flow.REDIRECT,
        "code_verifier": verifier,
        "resource": mcp_server.resource,
    }
    # Raw (not form-urlencoded) credentials: "+" decodes to a space, the id's ":" splits early.
    raw = base64.b64encode(f"conf:app:{secret}".encode()).decode()
    r = flow.token(data, headers={"Authorization": f"Basic {raw}"})
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    assert r.headers["www-authenticate"].startswith("Basic")

    code, verifier = flow.code("conf:app")
    data.update(code=code, code_verifier=verifier)
    good = base64.b64encode(f"{quote_plus('conf:app')}:{quote_plus(secret)}".encode()).decode()
    r = flow.token(data, headers={"Authorization": f"Basic {good}"})
    assert r.status_code == 200, r.text


def test_client_secret_post(auth_server, mcp_server, flow):
    auth_server.add_client("post-app", client_secret="s3cret", auth_method="client_secret_post", redirect_uris=[flow.REDIRECT])
    code, verifier = flow.code("post-app")
    r = flow.exchange("post-app", code, verifier, client_secret="s3cret")
    assert r.status_code == 200, r.text


def test_dynamic_registration(auth_server, mcp_server, flow):
    r = flow.http.post(
        auth_server.registration_endpoint,
        json={
            "client_name": "broxy-tray",
            "redirect_uris": ["http://127.0.0.1:48123/callback"],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
            "application_type": "native",
        },
    )
    assert r.status_code == 201, r.text
    reg = r.json()
    assert reg["client_id"].startswith("dcr_") and "client_secret" not in reg
    assert reg["redirect_uris"] == ["http://127.0.0.1:48123/callback"]
    tokens = flow.tokens(reg["client_id"])
    assert tokens["refresh_token"]
    assert auth_server.count("register") == 1 and auth_server.registrations[0]["application_type"] == "native"

    # Default method is client_secret_basic: a secret comes back.
    r = flow.http.post(auth_server.registration_endpoint, json={"redirect_uris": ["https://app.example/cb"]})
    assert r.status_code == 201 and r.json()["client_secret"] and r.json()["token_endpoint_auth_method"] == "client_secret_basic"


def test_dcr_client_without_refresh_grant_gets_no_refresh_token(auth_server, mcp_server, flow):
    r = flow.http.post(
        auth_server.registration_endpoint,
        json={"redirect_uris": [flow.REDIRECT], "token_endpoint_auth_method": "none"},
    )
    cid = r.json()["client_id"]
    tokens = flow.tokens(cid)
    assert "refresh_token" not in tokens


def test_client_id_metadata_document(make_auth_server, make_mcp_server, make_flow):
    auth = make_auth_server(cimd_supported=True)
    make_mcp_server(auth)
    url = "https://app.example.com/oauth/client.json"
    auth.add_cimd_document(
        url,
        {
            "client_id": url,
            "client_name": "broxy-tray",
            "redirect_uris": [REDIRECT],
            "grant_types": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_method": "none",
        },
    )
    f = make_flow(auth)
    assert auth.metadata()["client_id_metadata_document_supported"] is True
    tokens = f.tokens(url)
    assert tokens["refresh_token"] and auth.introspect(tokens["access_token"]).client_id == url
    # Redirect URI must be one of the document's.
    assert f.authorize(url, redirect_uri="http://127.0.0.1:1/other").status_code == 400
    # Unknown document, or a document whose client_id differs, is an unknown client.
    assert f.authorize("https://app.example.com/other.json").status_code == 400
    auth.add_cimd_document("https://app.example.com/bad.json", {"client_id": url, "redirect_uris": [REDIRECT]})
    assert f.authorize("https://app.example.com/bad.json").status_code == 400
    # Without the switch, URL client ids are unknown.
    auth.config.cimd_supported = False
    assert f.authorize(url).status_code == 400


@pytest.mark.parametrize(
    ("issuer_path", "well_known", "present", "absent"),
    [
        ("", {"oauth"}, ["/.well-known/oauth-authorization-server"], ["/.well-known/openid-configuration"]),
        ("", {"oidc_insert"}, ["/.well-known/openid-configuration"], ["/.well-known/oauth-authorization-server"]),
        (
            "/tenant",
            {"oauth"},
            ["/.well-known/oauth-authorization-server/tenant"],
            ["/.well-known/openid-configuration/tenant", "/tenant/.well-known/openid-configuration",
             "/.well-known/oauth-authorization-server"],
        ),
        (
            "/tenant",
            {"oidc_insert"},
            ["/.well-known/openid-configuration/tenant"],
            ["/.well-known/oauth-authorization-server/tenant", "/tenant/.well-known/openid-configuration"],
        ),
        (
            "/tenant",
            {"oidc_append"},
            ["/tenant/.well-known/openid-configuration"],
            ["/.well-known/oauth-authorization-server/tenant", "/.well-known/openid-configuration/tenant"],
        ),
    ],
)
def test_metadata_variants(make_auth_server, issuer_path, well_known, present, absent):
    auth: AuthServer = make_auth_server(issuer_path=issuer_path, well_known=well_known)
    for path in present:
        r = httpx2.get(auth.origin + path)
        assert r.status_code == 200, path
        doc = r.json()
        assert doc["issuer"] == auth.origin + issuer_path
        assert doc["authorization_endpoint"] == auth.origin + issuer_path + "/authorize"
        assert ("jwks_uri" in doc) == ("openid" in path)
    for path in absent:
        assert httpx2.get(auth.origin + path).status_code == 404, path


def test_metadata_switches(make_auth_server):
    auth = make_auth_server(
        code_challenge_methods=["plain"],
        registration="off",
        revocation=False,
        offline_access=False,
        iss_supported=False,
        token_endpoint_auth_methods=["client_secret_post"],
        metadata_issuer="http://127.0.0.1:1/elsewhere",
    )
    doc = httpx2.get(auth.metadata_url()).json()
    assert doc["code_challenge_methods_supported"] == ["plain"]
    assert "registration_endpoint" not in doc and "revocation_endpoint" not in doc
    assert "offline_access" not in doc["scopes_supported"]
    assert doc["authorization_response_iss_parameter_supported"] is False
    assert doc["token_endpoint_auth_methods_supported"] == ["client_secret_post"]
    assert doc["issuer"] == "http://127.0.0.1:1/elsewhere"
    assert httpx2.post(auth.registration_endpoint, json={"redirect_uris": ["https://a.example/cb"]}).status_code == 404
    auth.config.code_challenge_methods = None
    assert "code_challenge_methods_supported" not in httpx2.get(auth.metadata_url()).json()


def test_embedded_auth_server_on_mcp_origin(make_mcp_server, make_flow):
    """2025-03-26 style: no PRM, the AS lives at the MCP server's origin."""
    auth = AuthServer()
    rs = make_mcp_server(auth, embed_auth_server=True, prm_locations=set(), challenge_resource_metadata=False)
    assert auth.issuer == rs.origin
    assert httpx2.get(rs.origin + "/.well-known/oauth-protected-resource/mcp").status_code == 404
    assert httpx2.get(rs.origin + "/.well-known/oauth-authorization-server").json()["issuer"] == rs.origin
    auth.add_client("c", redirect_uris=[REDIRECT])
    tokens = make_flow(auth).tokens("c")
    assert auth.introspect(tokens["access_token"]).resource == rs.url
    assert rs.count("auth") == 3
