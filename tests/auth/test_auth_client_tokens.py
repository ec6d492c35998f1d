"""Client identity, registration, token requests: the sans-IO flows driven with handwritten responses."""

from __future__ import annotations

import base64
import json
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest

from broxy_tray.auth._client import ClientRegistration, ClientSettings, RegistrationError, resolve_client
from broxy_tray.auth._metadata import AuthorizationServerMetadata, parse_authorization_server_metadata
from broxy_tray.auth._pkce import Pkce
from broxy_tray.auth._signin import authorization_url
from broxy_tray.auth._tokens import TokenError, TokenSet, exchange_code, parse_token_response, refresh, revoke

ISSUER = "https://as.example.com"
REDIRECT = "http://127.0.0.1:8123/callback"


def meta(**kw) -> AuthorizationServerMetadata:
    base = {
        "issuer": ISSUER,
        "authorization_endpoint": f"{ISSUER}/authorize",
        "token_endpoint": f"{ISSUER}/token",
        "registration_endpoint": f"{ISSUER}/register",
        "code_challenge_methods_supported": ["S256"],
    }
    base.update(kw)
    body = json.dumps({k: v for k, v in base.items() if v is not None}).encode()
    return parse_authorization_server_metadata(body, f"{ISSUER}/.well-known/oauth-authorization-server")


def run(flow, *responses):
    """Drive a flow: answer each yielded request with the next response; return (result, requests)."""
    requests = []
    try:
        request = next(flow)
        for r in responses:
            requests.append(request)
            r.request = request
            request = flow.send(r)
        raise AssertionError(f"flow wanted more than {len(responses)} responses")
    except StopIteration as stop:
        return stop.value, requests


def js(status: int, body) -> httpx2.Response:
    return httpx2.Response(status, content=json.dumps(body).encode(), headers={"content-type": "application/json"})


def test_preregistered_client_wins_without_requests():
    settings = ClientSettings(client_id="pre", client_secret="s3cret!", client_id_metadata_url="https://x.example.com/c.json")
    reg, reqs = run(resolve_client(settings, meta(client_id_metadata_document_supported=True), REDIRECT))
    assert reqs == []
    assert (reg.client_id, reg.kind, reg.auth_method, reg.client_secret) == ("pre", "pre-registered", "client_secret_basic", "s3cret!")
    assert "s3cret!" not in repr(reg)


def test_preregistered_method_follows_config_and_as():
    reg, _ = run(resolve_client(ClientSettings(client_id="p"), meta(), REDIRECT))
    assert reg.auth_method == "none"
    reg, _ = run(resolve_client(ClientSettings(client_id="p", client_secret="s"),
                                meta(token_endpoint_auth_methods_supported=["client_secret_post"]), REDIRECT))
    assert reg.auth_method == "client_secret_post"
    reg, _ = run(resolve_client(ClientSettings(client_id="p", client_secret="s", token_endpoint_auth_method="client_secret_post"),
                                meta(), REDIRECT))
    assert reg.auth_method == "client_secret_post"


def test_metadata_document_used_only_when_advertised():
    settings = ClientSettings(client_id_metadata_url="https://app.example.com/client.json")
    reg, reqs = run(resolve_client(settings, meta(client_id_metadata_document_supported=True), REDIRECT))
    assert (reg.client_id, reg.kind, reqs) == ("https://app.example.com/client.json", "metadata document", [])
    reg, reqs = run(resolve_client(settings, meta(), REDIRECT), js(201, {"client_id": "dyn-1"}))
    assert reg.kind == "dynamic" and len(reqs) == 1, "not advertised: falls through to registration"


def test_dynamic_registration_request_and_result():
    reg, (req,) = run(resolve_client(ClientSettings(), meta(), REDIRECT),
                      js(201, {"client_id": "dyn-1", "client_secret": "dyn-secret", "token_endpoint_auth_method": "client_secret_basic",
                               "client_secret_expires_at": 0}))
    assert req.method == "POST" and str(req.url) == f"{ISSUER}/register"
    body = json.loads(req.content)
    assert body == {
        "client_name": "broxy-tray",
        "redirect_uris": [REDIRECT],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        "application_type": "native",
    }
    assert (reg.client_id, reg.kind, reg.auth_method, reg.client_secret) == ("dyn-1", "dynamic", "client_secret_basic", "dyn-secret")
    assert (reg.issuer, reg.redirect_uri, reg.client_secret_expires_at) == (ISSUER, REDIRECT, None)


def test_stored_registration_reused_only_for_same_issuer_and_redirect():
    stored = ClientRegistration("dyn-old", "dynamic", ISSUER, REDIRECT)
    reg, reqs = run(resolve_client(ClientSettings(), meta(), REDIRECT, stored))
    assert reg is stored and reqs == []
    other_issuer = ClientRegistration("dyn-old", "dynamic", "https://other.example.com", REDIRECT)
    reg, reqs = run(resolve_client(ClientSettings(), meta(), REDIRECT, other_issuer), js(201, {"client_id": "dyn-new"}))
    assert reg.client_id == "dyn-new", "a different issuer means re-registration, never reuse"
    other_port = ClientRegistration("dyn-old", "dynamic", ISSUER, "http://127.0.0.1:9999/callback")
    reg, _ = run(resolve_client(ClientSettings(), meta(), REDIRECT, other_port), js(201, {"client_id": "dyn-new2"}))
    assert reg.client_id == "dyn-new2"


@pytest.mark.parametrize(
    ("settings", "m", "fragment"),
    [
        (ClientSettings(allow_dynamic_registration=False), meta(), 'allowDynamicRegistration is false: add "clientId"'),
        (ClientSettings(), meta(registration_endpoint=None), 'add "clientId" (and "clientSecret" if it has one) or "clientIdMetadataUrl"'),
        (ClientSettings(client_id_metadata_url="https://a.example.com/c.json"), meta(registration_endpoint=None),
         "accepts neither client ID metadata documents nor dynamic registration"),
    ],
)
def test_no_way_to_get_a_client_names_the_field(settings, m, fragment):
    with pytest.raises(RegistrationError) as e:
        run(resolve_client(settings, m, REDIRECT))
    assert fragment in str(e.value) and ISSUER in str(e.value)


@pytest.mark.parametrize(
    ("response", "fragment"),
    [
        (js(403, {"error": "access_denied", "error_description": "no\nregistrations   here"}),
         "was refused: HTTP 403 access_denied: no registrations here"),
        (httpx2.Response(500, content=b"<html>oops</html>"), "was refused: HTTP 500"),
        (httpx2.Response(201, content=b"not json"), "is not JSON"),
        (js(201, ["client_id"]), "is not a JSON object"),
        (js(201, {"client_secret": "x"}), "has no client_id"),
        (js(201, {"client_id": "c", "token_endpoint_auth_method": "client_secret_post"}), "sent no client_secret"),
        (httpx2.Response(201, content=b'{"client_id": "' + b"x" * 70000 + b'"}'), "is too large"),
    ],
)
def test_registration_failures(response, fragment):
    with pytest.raises(RegistrationError) as e:
        run(resolve_client(ClientSettings(), meta(), REDIRECT), response)
    assert fragment in str(e.value)


def reg(method="none", secret=None):
    return ClientRegistration("cid/with:odd", "dynamic", ISSUER, REDIRECT, auth_method=method, client_secret=secret)


def test_code_exchange_request_per_auth_method():
    ok = js(200, {"access_token": "at-1", "token_type": "bearer", "expires_in": 3600, "refresh_token": "rt-1", "scope": "a b"})
    tokens, (req,) = run(exchange_code(reg(), f"{ISSUER}/token", code="the-code", verifier="v" * 43,
                                       redirect_uri=REDIRECT, resource="https://mcp.example.com/mcp",
                                       requested_scopes=("a",), clock=lambda: 1000.0), ok)
    form = parse_qs(req.content.decode())
    assert form == {"grant_type": ["authorization_code"], "code": ["the-code"], "code_verifier": ["v" * 43],
                    "redirect_uri": [REDIRECT], "resource": ["https://mcp.example.com/mcp"], "client_id": ["cid/with:odd"]}
    assert "authorization" not in req.headers
    assert (tokens.access_token, tokens.refresh_token, tokens.expires_at, tokens.scopes) == ("at-1", "rt-1", 4600.0, ("a", "b"))
    assert (tokens.issuer, tokens.resource, tokens.issued_at) == (ISSUER, "https://mcp.example.com/mcp", 1000.0)
    assert "at-1" not in repr(tokens) and "rt-1" not in repr(tokens)

    _, (req,) = run(exchange_code(reg("client_secret_basic", "p@ss word"), f"{ISSUER}/token", code="c", verifier="v",
                                  redirect_uri=REDIRECT, resource="r", requested_scopes=()), ok)
    assert "client_id" not in parse_qs(req.content.decode())
    user, _, pw = base64.b64decode(req.headers["authorization"].split()[1]).decode().partition(":")
    assert (user, pw) == ("cid%2Fwith%3Aodd", "p%40ss%20word"), "RFC 6749 §2.3.1: form-urlencoded before Basic"

    _, (req,) = run(exchange_code(reg("client_secret_post", "pw"), f"{ISSUER}/token", code="c", verifier="v",
                                  redirect_uri=REDIRECT, resource="r", requested_scopes=()), ok)
    form = parse_qs(req.content.decode())
    assert form["client_id"] == ["cid/with:odd"] and form["client_secret"] == ["pw"]


def test_refresh_keeps_old_refresh_token_unless_rotated():
    current = TokenSet("old-at", refresh_token="old-rt", scopes=("a",), issuer=ISSUER, resource="res")
    fresh, (req,) = run(refresh(reg(), f"{ISSUER}/token", current, clock=lambda: 50.0),
                        js(200, {"access_token": "new-at", "token_type": "Bearer", "expires_in": 10}))
    assert parse_qs(req.content.decode())["resource"] == ["res"]
    assert parse_qs(req.content.decode())["grant_type"] == ["refresh_token"]
    assert (fresh.access_token, fresh.refresh_token, fresh.scopes, fresh.expires_at) == ("new-at", "old-rt", ("a",), 60.0)
    fresh, _ = run(refresh(reg(), f"{ISSUER}/token", current),
                   js(200, {"access_token": "n", "token_type": "Bearer", "refresh_token": "rotated"}))
    assert fresh.refresh_token == "rotated" and fresh.expires_at is None


@pytest.mark.parametrize(
    ("response", "fragment", "error", "transient"),
    [
        (js(400, {"error": "invalid_grant"}), "returned invalid_grant", "invalid_grant", False),
        (js(401, {"error": "invalid_client"}), "returned invalid_client", "invalid_client", False),
        (httpx2.Response(500, content=b"boom"), "answered HTTP 500", None, True),
        (httpx2.Response(429, content=b""), "answered HTTP 429", None, True),
        (httpx2.Response(200, content=b"{not json"), "is not a JSON object", None, False),
        (js(200, {"token_type": "Bearer"}), "has no access_token", None, False),
        (js(200, {"access_token": "a", "token_type": "mac"}), "has token_type 'mac', not Bearer", None, False),
        (js(200, {"access_token": "a", "token_type": "Bearer", "expires_in": -5}), "invalid expires_in", None, False),
        (js(200, {"access_token": "a", "token_type": "Bearer", "expires_in": "soon"}), "invalid expires_in", None, False),
        (js(200, {"access_token": "a", "token_type": "Bearer", "refresh_token": 7}), "invalid refresh_token", None, False),
        (httpx2.Response(200, content=b"{" + b" " * 70000 + b"}"), "too large", None, False),
    ],
)
def test_token_response_validation(response, fragment, error, transient):
    response.request = httpx2.Request("POST", f"{ISSUER}/token")
    with pytest.raises(TokenError) as e:
        parse_token_response(response, f"{ISSUER}/token", now=0, issuer=ISSUER, resource="r", requested_scopes=())
    assert fragment in str(e.value)
    assert e.value.error == error and e.value.transient is transient


def test_token_error_never_echoes_the_body():
    response = js(400, {"error": "invalid_grant", "error_description": "refresh token rt-SECRET is revoked"})
    with pytest.raises(TokenError) as e:
        parse_token_response(response, "t", now=0, issuer=ISSUER, resource="r", requested_scopes=())
    assert "rt-SECRET" not in str(e.value)


def test_string_expires_in_accepted():
    t = parse_token_response(js(200, {"access_token": "a", "token_type": "Bearer", "expires_in": "30"}), "t",
                             now=10, issuer=ISSUER, resource="r", requested_scopes=())
    assert t.expires_at == 40


def test_revoke():
    _, (req,) = run(revoke(reg(), f"{ISSUER}/revoke", "tok", "refresh_token"), httpx2.Response(200))
    assert parse_qs(req.content.decode()) == {"token": ["tok"], "token_type_hint": ["refresh_token"], "client_id": ["cid/with:odd"]}
    with pytest.raises(TokenError, match="revocation .* failed: HTTP 503"):
        run(revoke(reg(), f"{ISSUER}/revoke", "tok", "access_token"), httpx2.Response(503))


def test_authorization_url_has_every_parameter():
    pkce = Pkce.new()
    url = authorization_url(meta(authorization_endpoint=f"{ISSUER}/authorize?tenant=t1"), reg(), redirect_uri=REDIRECT,
                            pkce=pkce, state="st", resource="https://mcp.example.com/mcp", scopes=("a", "b"))
    parts = urlsplit(url)
    q = parse_qs(parts.query)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{ISSUER}/authorize"
    assert q == {"tenant": ["t1"], "response_type": ["code"], "client_id": ["cid/with:odd"], "redirect_uri": [REDIRECT],
                 "code_challenge": [pkce.challenge], "code_challenge_method": ["S256"], "state": ["st"],
                 "resource": ["https://mcp.example.com/mcp"], "scope": ["a b"]}
    assert pkce.verifier not in url
    url = authorization_url(meta(), reg(), redirect_uri=REDIRECT, pkce=pkce, state="st", resource="r", scopes=())
    assert "scope" not in parse_qs(urlsplit(url).query)


def test_stored_auth_roundtrip():
    from broxy_tray.auth._store import StoredAuth

    entry = StoredAuth(tokens=TokenSet("a", refresh_token="r", expires_at=5.0, scopes=("x",), issuer=ISSUER, resource="res"),
                       registrations=(reg("client_secret_post", "pw"),), token_endpoint=f"{ISSUER}/token")
    again = StoredAuth.from_json(json.loads(json.dumps(entry.to_json())))
    assert again == entry
    assert again.registration_for(ISSUER).client_secret == "pw"
    assert again.without_registration(ISSUER).registrations == ()
