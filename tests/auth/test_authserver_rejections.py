"""Each rule of the test authorization server bites (plain httpx2 requests)."""

from __future__ import annotations

import base64
import hashlib
import time
from urllib.parse import parse_qsl, urlsplit

import httpx2
import pytest


def _redirected_error(r) -> dict[str, str]:
    assert r.status_code == 302, (r.status_code, r.text)
    return dict(parse_qsl(urlsplit(r.headers["location"]).query))


# --------------------------------------------------------------------------- /authorize


def test_unknown_client_and_bad_redirect_get_a_page_not_a_redirect(auth_server, mcp_server, flow, public_client):
    for r in (
        flow.authorize("nobody"),
        flow.authorize("public-app", redirect_uri="http://127.0.0.1:48124/callback"),  # other port
        flow.authorize("public-app", redirect_uri=flow.REDIRECT + "/"),  # trailing slash
        flow.authorize("public-app", redirect_uri="http://localhost:48123/callback"),  # other host spelling
        flow.authorize("public-app", redirect_uri=flow.REDIRECT + "?x=1"),
        flow.authorize("public-app", drop=("redirect_uri",)),
    ):
        assert r.status_code == 400
        assert "location" not in r.headers
        assert r.headers["content-type"].startswith("text/html")


def test_loopback_port_leniency_switch(auth_server, mcp_server, flow, public_client):
    other_port = "http://127.0.0.1:50000/callback"
    assert flow.authorize("public-app", redirect_uri=other_port).status_code == 400
    auth_server.config.loopback_any_port = True
    cb = flow.callback(flow.authorize("public-app", redirect_uri=other_port))
    assert "code" in cb
    # Still exact on the path, and never for non-loopback URIs.
    assert flow.authorize("public-app", redirect_uri="http://127.0.0.1:50000/other").status_code == 400


@pytest.mark.parametrize(
    ("params", "drop", "error"),
    [
        ({"response_type": "token"}, (), "unsupported_response_type"),
        ({}, ("code_challenge",), "invalid_request"),
        ({}, ("code_challenge_method",), "invalid_request"),  # defaults to plain
        ({"code_challenge_method": "plain", "code_challenge": "x" * 43}, (), "invalid_request"),
        ({"code_challenge": "short"}, (), "invalid_request"),
        ({}, ("state",), "invalid_request"),
        ({}, ("resource",), "invalid_target"),
        ({"resource": "http://127.0.0.1:1/mcp"}, (), "invalid_target"),
        ({"resource": "relative/mcp"}, (), "invalid_target"),
        ({"scope": "mcp:read root"}, (), "invalid_scope"),
    ],
)
def test_authorize_request_errors_are_redirected(auth_server, mcp_server, flow, public_client, params, drop, error):
    cb = _redirected_error(flow.authorize("public-app", drop=drop, **params))
    assert cb["error"] == error, cb
    assert "code" not in cb
    assert cb["iss"] == auth_server.issuer
    if "state" not in drop:
        assert cb["state"] == "st-123"


def test_resource_with_trailing_slash_is_a_different_resource(auth_server, mcp_server, flow, public_client):
    cb = _redirected_error(flow.authorize("public-app", resource=mcp_server.resource + "/"))
    assert cb["error"] == "invalid_target"


def test_state_and_resource_switches(auth_server, mcp_server, flow, public_client):
    auth_server.config.require_state = False
    auth_server.config.require_resource = False
    cb = flow.callback(flow.authorize("public-app", drop=("state", "resource")))
    assert "code" in cb and "state" not in cb


@pytest.mark.parametrize(
    ("mode", "expect"),
    [("deny", "access_denied"), ("wrong_state", "tampered"), ("approve", "code")],
)
def test_authorize_user_behaviours(auth_server, mcp_server, flow, public_client, mode, expect):
    auth_server.config.authorize_mode = mode
    cb = flow.callback(flow.authorize("public-app"))
    if expect == "access_denied":
        assert cb["error"] == "access_denied" and "code" not in cb and cb["state"] == "st-123"
    elif expect == "tampered":
        assert "code" in cb and cb["state"] != "st-123"
    else:
        assert "code" in cb and cb["state"] == "st-123"


@pytest.mark.parametrize(
    ("iss_supported", "mode", "expect"),
    [(True, "auto", "issuer"), (False, "auto", None), (True, "never", None), (True, "wrong", "other"), (False, "always", "issuer")],
)
def test_iss_in_authorization_response(auth_server, mcp_server, flow, public_client, iss_supported, mode, expect):
    auth_server.config.iss_supported = iss_supported
    auth_server.config.authorize_iss = mode
    cb = flow.callback(flow.authorize("public-app"))
    if expect is None:
        assert "iss" not in cb
    elif expect == "issuer":
        assert cb["iss"] == auth_server.issuer
    else:
        assert cb["iss"] != auth_server.issuer


# --------------------------------------------------------------------------- /token: authorization_code


def test_bad_verifier(auth_server, mcp_server, flow, public_client):
    code, verifier = flow.code("public-app")
    r = flow.exchange("public-app", code, verifier[:-1] + ("A" if verifier[-1] != "A" else "B"))
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    # A failed attempt spends the code.
    r = flow.exchange("public-app", code, verifier)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_missing_verifier(auth_server, mcp_server, flow, public_client):
    code, _ = flow.code("public-app")
    r = flow.exchange("public-app", code, None)
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"


def test_reused_code_fails_and_revokes_tokens(auth_server, mcp_server, flow, public_client):
    code, verifier = flow.code("public-app")
    first = flow.exchange("public-app", code, verifier)
    assert first.status_code == 200
    again = flow.exchange("public-app", code, verifier)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    assert not auth_server.introspect(first.json()["access_token"]).active


def test_expired_code(auth_server, mcp_server, flow, public_client):
    auth_server.config.code_ttl = 0.05
    code, verifier = flow.code("public-app")
    time.sleep(0.1)
    r = flow.exchange("public-app", code, verifier)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_wrong_redirect_uri_at_token(auth_server, mcp_server, flow, public_client):
    code, verifier = flow.code("public-app")
    r = flow.exchange("public-app", code, verifier, redirect_uri="http://127.0.0.1:48123/other")
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    code, verifier = flow.code("public-app")
    r = flow.exchange("public-app", code, verifier, redirect_uri=None)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_code_bound_to_client(auth_server, mcp_server, flow, public_client):
    auth_server.add_client("other-app", redirect_uris=[flow.REDIRECT])
    code, verifier = flow.code("public-app")
    r = flow.exchange("other-app", code, verifier)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_wrong_resource_at_token(make_auth_server, make_mcp_server, make_flow):
    auth = make_auth_server()
    a = make_mcp_server(auth)
    b = make_mcp_server(auth)
    auth.add_client("c", redirect_uris=["http://127.0.0.1:48123/callback"])
    f = make_flow(auth)
    code, verifier = f.code("c", resource=a.resource)
    r = f.exchange("c", code, verifier, resource=b.resource)
    assert r.status_code == 400 and r.json()["error"] == "invalid_target"
    code, verifier = f.code("c", resource=a.resource)
    r = f.exchange("c", code, verifier, resource=None)
    assert r.status_code == 400 and r.json()["error"] == "invalid_target"


def test_wrong_client_secret(auth_server, mcp_server, flow):
    auth_server.add_client("conf", client_secret="right", auth_method="client_secret_post", redirect_uris=[flow.REDIRECT])
    code, verifier = flow.code("conf")
    r = flow.exchange("conf", code, verifier, client_secret="wrong")
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    r = flow.exchange("conf", code, verifier)  # no secret at all: authenticates as "none"
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"


@pytest.mark.parametrize(
    ("registered", "presented"),
    [
        ("client_secret_basic", "client_secret_post"),
        ("client_secret_post", "client_secret_basic"),
        ("none", "client_secret_basic"),
        ("client_secret_basic", "none"),
    ],
)
def test_wrong_auth_method(auth_server, mcp_server, flow, registered, presented):
    rec = auth_server.add_client("app", client_secret="sec", auth_method=registered, redirect_uris=[flow.REDIRECT])
    code, verifier = flow.code("app")
    secret = rec.client_secret or "sec"
    extra: dict[str, str] = {}
    headers: dict[str, str] = {}
    if presented == "client_secret_post":
        extra["client_secret"] = secret
    elif presented == "client_secret_basic":
        headers["Authorization"] = "Basic " + base64.b64encode(f"app:{secret}".encode()).decode()
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": flow.REDIRECT,
        "code_verifier": verifier,
        "client_id": "app",
        "resource": mcp_server.resource,
        **extra,
    }
    r = flow.token(data, headers=headers)
    assert r.status_code == 401 and r.json()["error"] == "invalid_client", r.text


def test_two_auth_methods_at_once(auth_server, mcp_server, flow):
    auth_server.add_client("app", client_secret="sec", auth_method="client_secret_basic", redirect_uris=[flow.REDIRECT])
    code, verifier = flow.code("app")
    basic = "Basic " + base64.b64encode(b"app:sec").decode()
    r = flow.token(
        {"grant_type": "authorization_code", "code": code, "redirect_uri": flow.REDIRECT, "code_verifier": verifier,
         "client_secret": "sec", "resource": mcp_server.resource},
        headers={"Authorization": basic},
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"


def test_token_request_must_be_form_encoded(auth_server, mcp_server, flow, public_client):
    code, verifier = flow.code("public-app")
    r = flow.http.post(
        auth_server.token_endpoint,
        json={"grant_type": "authorization_code", "code": code, "code_verifier": verifier, "client_id": "public-app"},
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"


def test_unsupported_grant_type(auth_server, mcp_server, flow, public_client):
    r = flow.token({"grant_type": "password", "client_id": "public-app", "username": "u", "password": "p"})
    assert r.status_code == 400 and r.json()["error"] == "unsupported_grant_type"


# --------------------------------------------------------------------------- /token: refresh_token


def test_refresh_rules(auth_server, mcp_server, flow, public_client):
    tokens = flow.tokens("public-app", scope="mcp:read mcp:write")
    base = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": "public-app"}
    # resource required and must match the grant's
    r = flow.token(base)
    assert r.status_code == 400 and r.json()["error"] == "invalid_target"
    r = flow.token({**base, "resource": "http://127.0.0.1:1/mcp"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_target"
    # no widening of scope
    r = flow.token({**base, "resource": mcp_server.resource, "scope": "mcp:read mcp:admin"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_scope"
    # bound to the client
    auth_server.add_client("other", redirect_uris=[flow.REDIRECT])
    r = flow.token({**base, "client_id": "other", "resource": mcp_server.resource})
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    # narrowing is fine, and the refresh token keeps the full grant
    r = flow.token({**base, "resource": mcp_server.resource, "scope": "mcp:read"})
    assert r.status_code == 200 and r.json()["scope"] == "mcp:read"
    r2 = flow.token({**base, "refresh_token": r.json()["refresh_token"], "resource": mcp_server.resource})
    assert r2.status_code == 200 and r2.json()["scope"] == "mcp:read mcp:write"


def test_rotated_refresh_token_reuse(auth_server, mcp_server, flow, public_client):
    tokens = flow.tokens("public-app")
    data = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": "public-app",
            "resource": mcp_server.resource}
    assert flow.token(data).status_code == 200
    r = flow.token(data)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


# --------------------------------------------------------------------------- /register


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({}, "invalid_redirect_uri"),
        ({"redirect_uris": []}, "invalid_redirect_uri"),
        ({"redirect_uris": ["http://example.com/cb"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["http://127.0.0.1/cb"]}, "invalid_redirect_uri"),  # loopback without port
        ({"redirect_uris": ["https://a.example/cb#frag"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["myapp:/cb"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["https://a.example/cb"], "grant_types": ["implicit"]}, "invalid_client_metadata"),
        ({"redirect_uris": ["https://a.example/cb"], "grant_types": ["refresh_token"]}, "invalid_client_metadata"),
        ({"redirect_uris": ["https://a.example/cb"], "response_types": ["token"]}, "invalid_client_metadata"),
        ({"redirect_uris": ["https://a.example/cb"], "token_endpoint_auth_method": "private_key_jwt"}, "invalid_client_metadata"),
        ({"redirect_uris": ["https://a.example/cb"], "scope": "mcp:read root"}, "invalid_client_metadata"),
    ],
)
def test_registration_validation(auth_server, body, error):
    r = httpx2.post(auth_server.registration_endpoint, json=body)
    assert r.status_code == 400 and r.json()["error"] == error, r.text
    assert not auth_server.registrations


def test_registration_switched_to_reject(auth_server):
    auth_server.config.registration = "reject"
    r = httpx2.post(auth_server.registration_endpoint, json={"redirect_uris": ["http://127.0.0.1:5000/cb"]})
    assert r.status_code == 403 and r.json()["error"] == "access_denied"
    assert "registration_endpoint" in auth_server.metadata()


def test_dcr_method_must_be_advertised(make_auth_server):
    auth = make_auth_server(token_endpoint_auth_methods=["client_secret_basic"])
    r = httpx2.post(auth.registration_endpoint, json={"redirect_uris": ["http://127.0.0.1:5000/cb"],
                                                      "token_endpoint_auth_method": "none"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_client_metadata"


def test_forgotten_client_is_invalid_client(auth_server, mcp_server, flow, public_client):
    tokens = flow.tokens("public-app")
    auth_server.forget_client("public-app")
    r = flow.token({"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": "public-app",
                    "resource": mcp_server.resource})
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    assert flow.authorize("public-app").status_code == 400


def test_s256_is_what_the_server_checks():
    """Sanity: the challenge the tests compute by hand is RFC 7636 Appendix B's."""
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    digest = hashlib.sha256(verifier.encode()).digest()
    assert base64.urlsafe_b64encode(digest).rstrip(b"=").decode() == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    from authserver import s256

    assert s256(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
