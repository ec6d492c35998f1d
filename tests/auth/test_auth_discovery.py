"""Discovery driven with handwritten responses: every variant, and every refusal with its message."""

from __future__ import annotations

import json
from collections.abc import Generator
from typing import Any

import httpx2
import pytest

from broxy_tray.auth import BearerChallenge, Discovery, DiscoveryError, bearer_challenge, discover
from broxy_tray.auth._discovery import PKCE_REASON

SERVER = "https://mcp.example.com/mcp"
AS = "https://auth.example.com"


class FakeWeb:
    """URL → canned response; anything else is a 404. Records every request."""

    def __init__(self, routes: dict[str, Any]) -> None:
        self.routes = routes
        self.requests: list[httpx2.Request] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        route = self.routes.get(str(request.url))
        if route is None:
            return httpx2.Response(404, json={"error": "not found"}, request=request)
        if isinstance(route, httpx2.Response):
            return httpx2.Response(route.status_code, headers=route.headers, content=route.content, request=request)
        if isinstance(route, bytes):
            return httpx2.Response(200, content=route, request=request)
        return httpx2.Response(200, json=route, request=request)

    @property
    def urls(self) -> list[str]:
        return [str(r.url) for r in self.requests]


def drive(flow: Generator[httpx2.Request, httpx2.Response, Any], send: FakeWeb) -> Any:
    """The synchronous twin of `_drive.drive`: answer each yielded request with `send`."""
    try:
        request = next(flow)
        while True:
            assert request.url.is_absolute_url
            assert request.headers["accept"] == "application/json"
            request = flow.send(send(request))
    except StopIteration as stop:
        return stop.value


def prm(resource: str = SERVER, servers: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    return {"resource": resource, "authorization_servers": servers or [AS], **extra}


def asm(issuer: str | None = AS, **overrides: Any) -> dict[str, Any]:
    base = (issuer or AS).rstrip("/")
    doc = {
        "issuer": issuer,
        "authorization_endpoint": f"{base}/authorize",
        "token_endpoint": f"{base}/token",
        "registration_endpoint": f"{base}/register",
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
    }
    doc.update(overrides)
    return {k: v for k, v in doc.items() if v is not None}


def run(
    routes: dict[str, Any],
    server: str = SERVER,
    challenge: BearerChallenge | None = None,
    configured_issuer: str | None = None,
) -> tuple[Discovery, FakeWeb]:
    web = FakeWeb(routes)
    return drive(discover(server, challenge=challenge, configured_issuer=configured_issuer), web), web


def fail(routes: dict[str, Any], **kwargs: Any) -> tuple[DiscoveryError, FakeWeb]:
    web = FakeWeb(routes)
    server = kwargs.pop("server", SERVER)
    with pytest.raises(DiscoveryError) as info:
        drive(discover(server, **kwargs), web)
    message = str(info.value)
    assert "\n" not in message
    return info.value, web


PRM_PATH = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
PRM_ROOT = "https://mcp.example.com/.well-known/oauth-protected-resource"
AS_8414 = "https://auth.example.com/.well-known/oauth-authorization-server"
AS_OIDC = "https://auth.example.com/.well-known/openid-configuration"


# --- protected resource metadata ------------------------------------------------------------


def test_prm_from_challenge_url_first() -> None:
    hint = "https://mcp.example.com/custom/metadata.json"
    challenge = bearer_challenge(f'Bearer resource_metadata="{hint}", scope="files:read"')
    d, web = run({hint: prm(scopes_supported=["files:read", "files:write"]), AS_8414: asm()}, challenge=challenge)
    assert web.urls == [hint, AS_8414]
    assert d.prm_url == hint and d.prm is not None
    assert d.issuer == AS and d.issuer_source == "protected resource metadata"
    assert d.resource == SERVER
    assert d.challenge_scopes == ("files:read",)
    assert d.prm_scopes == ("files:read", "files:write")
    assert d.scopes() == ("files:read",)
    assert not d.defaulted
    assert [(a.url, a.outcome) for a in d.tried] == [(hint, "used"), (AS_8414, "used")]


def test_prm_path_inserted_well_known() -> None:
    d, web = run({PRM_PATH: prm(), AS_8414: asm()})
    assert web.urls == [PRM_PATH, AS_8414]
    assert d.prm_url == PRM_PATH


def test_prm_root_well_known_after_path_404() -> None:
    d, web = run({PRM_ROOT: prm(resource="https://mcp.example.com"), AS_8414: asm()})
    assert web.urls == [PRM_PATH, PRM_ROOT, AS_8414]
    assert d.prm_url == PRM_ROOT
    assert d.tried[0].status == 404 and d.tried[0].outcome == "not found"


def test_challenge_url_404_falls_back_to_well_known() -> None:
    hint = "https://mcp.example.com/gone"
    d, web = run({PRM_ROOT: prm(), AS_8414: asm()}, challenge=BearerChallenge(resource_metadata=hint))
    assert web.urls == [hint, PRM_PATH, PRM_ROOT, AS_8414]


def test_server_without_path_tries_root_once() -> None:
    d, web = run({PRM_ROOT: prm(resource="https://mcp.example.com/"), AS_8414: asm()}, server="https://mcp.example.com/")
    assert web.urls == [PRM_ROOT, AS_8414]
    assert d.resource == "https://mcp.example.com"


def test_unusable_challenge_url_is_ignored_and_noted() -> None:
    d, web = run({PRM_PATH: prm(), AS_8414: asm()}, challenge=BearerChallenge(resource_metadata="/relative"))
    assert web.urls == [PRM_PATH, AS_8414]
    assert d.tried[0].status is None and "ignored" in d.tried[0].outcome


def test_plain_http_challenge_url_from_https_server_is_ignored() -> None:
    hint = "http://mcp.example.com/.well-known/oauth-protected-resource/mcp"
    routes = {hint: prm(servers=["https://evil.example"]), PRM_PATH: prm(), AS_8414: asm()}
    d, web = run(routes, challenge=BearerChallenge(resource_metadata=hint))
    assert web.urls == [PRM_PATH, AS_8414]
    assert d.tried[0].outcome == "ignored: plain http for an https server"


def test_plain_http_challenge_url_is_fine_on_loopback() -> None:
    hint = "http://localhost:9/prm"
    server = "http://localhost:9/mcp"
    d, web = run(
        {
            hint: prm(resource=server, servers=["http://localhost:9"]),
            "http://localhost:9/.well-known/oauth-authorization-server": asm("http://localhost:9"),
        },
        server=server,
        challenge=BearerChallenge(resource_metadata=hint),
    )
    assert d.prm_url == hint and d.issuer == "http://localhost:9"


def test_websocket_url_discovers_over_https() -> None:
    d, web = run({PRM_PATH: prm(), AS_8414: asm()}, server="wss://MCP.example.com/mcp")
    assert web.urls[0] == PRM_PATH
    assert d.resource == SERVER


def test_server_query_kept_in_prm_url_per_rfc9728() -> None:
    d, web = run({PRM_PATH + "?tenant=1": prm(resource=SERVER + "?tenant=1"), AS_8414: asm()}, server=SERVER + "?tenant=1")
    assert web.urls[0] == PRM_PATH + "?tenant=1"
    assert d.resource == SERVER + "?tenant=1"


def test_prm_resource_prefix_of_server_path_is_accepted() -> None:
    d, _ = run({PRM_PATH: prm(resource="https://MCP.example.com:443/"), AS_8414: asm()})
    assert d.prm is not None


def test_redirect_is_not_followed_and_noted() -> None:
    redirect = httpx2.Response(302, headers={"Location": "https://elsewhere.example/prm"})
    d, web = run({PRM_PATH: redirect, PRM_ROOT: prm(), AS_8414: asm()})
    assert "https://elsewhere.example/prm" not in web.urls
    assert d.tried[0].status == 302
    assert d.tried[0].outcome == "redirect to https://elsewhere.example/prm not followed"


def test_server_errors_count_as_absent() -> None:
    d, _ = run({PRM_PATH: httpx2.Response(500), PRM_ROOT: httpx2.Response(401), AS_8414: asm()})
    assert [a.outcome for a in d.tried[:2]] == ["HTTP 500", "HTTP 401"]
    assert d.prm is None


def test_protocol_version_header_is_sent_when_given() -> None:
    web = FakeWeb({PRM_PATH: prm(), AS_8414: asm()})
    drive(discover(SERVER, protocol_version="2025-11-25"), web)
    assert all(r.headers["mcp-protocol-version"] == "2025-11-25" for r in web.requests)


# --- choosing the authorization server ----------------------------------------------------------


def test_no_prm_uses_configured_issuer() -> None:
    issuer = "https://login.example.org/tenant"
    url = "https://login.example.org/.well-known/oauth-authorization-server/tenant"
    d, web = run({url: asm(issuer)}, configured_issuer=issuer)
    assert web.urls == [PRM_PATH, PRM_ROOT, url]
    assert d.issuer == issuer and d.issuer_source == "configuration" and d.prm is None


def test_no_prm_origin_fallback_metadata() -> None:
    d, web = run({"https://mcp.example.com/.well-known/oauth-authorization-server": asm("https://mcp.example.com")})
    assert web.urls[-1] == "https://mcp.example.com/.well-known/oauth-authorization-server"
    assert d.issuer_source == "server origin" and not d.defaulted


def test_no_prm_origin_fallback_default_endpoints() -> None:
    d, web = run({})
    assert web.urls == [
        PRM_PATH,
        PRM_ROOT,
        "https://mcp.example.com/.well-known/oauth-authorization-server",
        "https://mcp.example.com/.well-known/openid-configuration",
    ]
    assert d.defaulted and d.as_metadata_url is None
    m = d.as_metadata
    assert (m.authorization_endpoint, m.token_endpoint, m.registration_endpoint) == (
        "https://mcp.example.com/authorize",
        "https://mcp.example.com/token",
        "https://mcp.example.com/register",
    )
    assert m.code_challenge_methods_supported == ("S256",)
    assert d.notes and "default" in d.notes[0]


def test_loopback_http_origin_fallback_is_allowed() -> None:
    d, _ = run({}, server="http://localhost:3000/mcp")
    assert d.defaulted and d.as_metadata.token_endpoint == "http://localhost:3000/token"


def test_prm_selects_configured_issuer_when_listed() -> None:
    other = "https://other.example.com"
    d, web = run(
        {PRM_PATH: prm(servers=[AS, other]), "https://other.example.com/.well-known/oauth-authorization-server": asm(other)},
        configured_issuer="https://OTHER.example.com/",
    )
    assert d.issuer == other and d.notes == ()


def test_prm_wins_over_unlisted_configured_issuer() -> None:
    d, _ = run({PRM_PATH: prm(), AS_8414: asm()}, configured_issuer="https://mine.example.com")
    assert d.issuer == AS
    assert "not listed" in d.notes[0]


# --- authorization server metadata URLs --------------------------------------------------------

TENANT = "https://auth.example.com/tenant1"
T_8414 = "https://auth.example.com/.well-known/oauth-authorization-server/tenant1"
T_OIDC_INSERTED = "https://auth.example.com/.well-known/openid-configuration/tenant1"
T_OIDC_APPENDED = "https://auth.example.com/tenant1/.well-known/openid-configuration"


@pytest.mark.parametrize("hit", [T_8414, T_OIDC_INSERTED, T_OIDC_APPENDED])
def test_issuer_with_path_order(hit: str) -> None:
    d, web = run({PRM_PATH: prm(servers=[TENANT]), hit: asm(TENANT)})
    order = [T_8414, T_OIDC_INSERTED, T_OIDC_APPENDED]
    assert web.urls == [PRM_PATH, *order[: order.index(hit) + 1]]
    assert d.as_metadata_url == hit and d.issuer == TENANT


def test_issuer_with_trailing_slash_path() -> None:
    issuer = TENANT + "/"
    d, web = run({PRM_PATH: prm(servers=[issuer]), T_OIDC_APPENDED: asm(issuer)})
    assert web.urls == [PRM_PATH, T_8414, T_OIDC_INSERTED, T_OIDC_APPENDED]
    assert d.issuer == issuer


@pytest.mark.parametrize("hit", [AS_8414, AS_OIDC])
def test_issuer_without_path_order(hit: str) -> None:
    d, web = run({PRM_PATH: prm(), hit: asm()})
    assert web.urls == [PRM_PATH, AS_8414, AS_OIDC][: 2 + (hit == AS_OIDC)]
    assert d.as_metadata_url == hit


def test_issuer_root_slash_equals_no_slash() -> None:
    d, _ = run({PRM_PATH: prm(servers=[AS + "/"]), AS_8414: asm(AS)})
    assert d.issuer == AS  # the document's own value, for the RFC 9207 `iss` check


def test_metadata_keeps_unknown_fields_and_reads_flags() -> None:
    doc = asm(
        client_id_metadata_document_supported=True,
        authorization_response_iss_parameter_supported=True,
        token_endpoint_auth_methods_supported=["none", "client_secret_basic"],
        scopes_supported=["a", "offline_access"],
        dpop_signing_alg_values_supported=["ES256"],
    )
    d, _ = run({PRM_PATH: prm(scopes_supported=["a"]), AS_OIDC: doc})
    m = d.as_metadata
    assert m.client_id_metadata_document_supported is True
    assert m.authorization_response_iss_parameter_supported is True
    assert m.model_extra == {"dpop_signing_alg_values_supported": ["ES256"]}
    assert d.scopes() == ("a", "offline_access")
    assert d.scopes(["ignored"]) == ("a", "offline_access")


def test_configured_scopes_used_when_server_gives_none() -> None:
    d, _ = run({PRM_PATH: prm(), AS_8414: asm(scopes_supported=["x"])})
    assert d.scopes(["cfg1", "cfg2"]) == ("cfg1", "cfg2")
    assert d.scopes() == ()


def test_unusable_first_document_then_valid_one() -> None:
    d, _ = run({PRM_PATH: prm(), AS_8414: b"<html>catch-all</html>", AS_OIDC: asm()})
    assert d.as_metadata_url == AS_OIDC
    assert d.tried[1].outcome == "unusable: authorization server metadata is not valid JSON"


# --- refusals -----------------------------------------------------------------------------


def test_prm_resource_other_origin_stops_before_any_as_request() -> None:
    err, web = fail({PRM_PATH: prm(resource="https://evil.example.com/mcp"), AS_8414: asm()})
    assert web.urls == [PRM_PATH]
    assert err.reason == (
        "protected resource metadata is for https://evil.example.com/mcp, not for this server https://mcp.example.com/mcp"
    )
    assert err.url == PRM_PATH and PRM_PATH in str(err)


@pytest.mark.parametrize(
    "resource",
    [
        "https://mcp.example.com/other",
        "https://mcp.example.com/mc",
        "https://mcp.example.com/mcp/deeper",
        "http://mcp.example.com/mcp",
        "https://mcp.example.com:8443/mcp",
    ],
)
def test_prm_resource_mismatch_variants(resource: str) -> None:
    err, web = fail({PRM_PATH: prm(resource=resource)})
    assert web.urls == [PRM_PATH]
    assert err.reason.startswith(f"protected resource metadata is for {resource}, not for this server")


def test_prm_resource_mismatch_via_challenge_url_is_not_retried_elsewhere() -> None:
    hint = "https://mcp.example.com/custom.json"
    routes = {hint: prm(resource="https://mcp.example.com/else"), PRM_PATH: prm()}
    err, web = fail(routes, challenge=BearerChallenge(resource_metadata=hint))
    assert web.urls == [hint]
    assert "not for this server" in err.reason


def test_issuer_mismatch() -> None:
    err, web = fail({PRM_PATH: prm(), AS_8414: asm("https://attacker.example.com")})
    assert web.urls == [PRM_PATH, AS_8414]
    assert err.reason == "issuer mismatch: metadata says 'https://attacker.example.com', expected 'https://auth.example.com'"
    assert err.url == AS_8414


def test_issuer_trailing_slash_on_path_is_a_mismatch() -> None:
    err, _ = fail({PRM_PATH: prm(servers=[TENANT]), T_8414: asm(TENANT + "/")})
    assert err.reason.startswith("issuer mismatch")


def test_issuer_mismatch_in_origin_fallback() -> None:
    # The 2025-03-26 shape: metadata on the server's own origin, but naming another issuer.
    err, _ = fail({"https://mcp.example.com/.well-known/oauth-authorization-server": asm("https://mcp.example.com/oauth")})
    assert err.reason.startswith("issuer mismatch")


@pytest.mark.parametrize("methods", [["plain"], [], None])
def test_no_s256(methods: list[str] | None) -> None:
    err, _ = fail({PRM_PATH: prm(), AS_8414: asm(code_challenge_methods_supported=methods)})
    assert err.reason == PKCE_REASON == "authorization server does not support PKCE S256"
    assert str(err) == f"authorization server does not support PKCE S256 ({AS_8414})"


@pytest.mark.parametrize("field", ["authorization_endpoint", "token_endpoint", "registration_endpoint", "revocation_endpoint"])
def test_http_endpoint_on_non_loopback_host(field: str) -> None:
    doc = asm()
    doc[field] = "http://auth.example.com/" + field
    err, web = fail({PRM_PATH: prm(), AS_8414: doc, AS_OIDC: asm()})
    assert web.urls == [PRM_PATH, AS_8414]  # a well-formed but insecure document is not replaced
    assert err.reason == (
        f"{field} http://auth.example.com/{field} is not https (http is allowed only on loopback hosts) "
        "in authorization server metadata"
    )


def test_http_issuer_on_non_loopback_host() -> None:
    err, web = fail({PRM_PATH: prm(servers=["http://auth.example.com"])})
    assert web.urls == [PRM_PATH]
    assert err.reason == (
        "unusable authorization server http://auth.example.com: "
        "authorization server must use https (http is allowed only on loopback hosts)"
    )
    assert err.url == PRM_PATH


def test_http_loopback_authorization_server_is_fine() -> None:
    issuer = "http://127.0.0.1:9000"
    d, _ = run({PRM_PATH: prm(servers=[issuer]), "http://127.0.0.1:9000/.well-known/oauth-authorization-server": asm(issuer)})
    assert d.as_metadata.token_endpoint == "http://127.0.0.1:9000/token"


def test_plain_http_server_without_metadata_gets_no_defaults() -> None:
    err, _ = fail({}, server="http://mcp.example.com/mcp")
    assert "must use https" in err.reason and err.url == "http://mcp.example.com"


def test_issuer_with_query_refused() -> None:
    err, _ = fail({PRM_PATH: prm(servers=[AS + "/?x=1"])})
    assert err.reason.endswith("an issuer must not have a query or fragment")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "authorization server metadata is not valid JSON"),
        (b"\xff\xfe\x00garbage", "authorization server metadata is not valid JSON"),
        (b'["a"]', "authorization server metadata is not a JSON object"),
        (b"null", "authorization server metadata is not a JSON object"),
        (b"[" * 100000 + b"]" * 100000, "authorization server metadata is not valid JSON"),
    ],
)
def test_malformed_as_json(body: bytes, reason: str) -> None:
    err, _ = fail({PRM_PATH: prm(), AS_8414: body})
    assert err.reason == reason and err.url == AS_8414


def test_oversized_body() -> None:
    body = json.dumps(asm(padding="x" * (256 * 1024))).encode()
    err, _ = fail({PRM_PATH: prm(), AS_8414: body})
    assert err.reason == "authorization server metadata is larger than 256 KiB" and err.url == AS_8414


def test_body_of_exactly_256_kib_is_accepted() -> None:
    doc = asm(padding="")
    size = len(json.dumps(doc).encode())
    doc["padding"] = "x" * (256 * 1024 - size)
    body = json.dumps(doc).encode()
    assert len(body) == 256 * 1024
    d, _ = run({PRM_PATH: prm(), AS_8414: body})
    assert d.as_metadata.model_extra is not None


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"token_endpoint": 42}, "field 'token_endpoint' should be a valid string"),
        ({"scopes_supported": "a b"}, "field 'scopes_supported' should be a valid array"),
        ({"scopes_supported": ["a", 1]}, "field 'scopes_supported[1]' should be a valid string"),
        (
            {"client_id_metadata_document_supported": "true"},
            "field 'client_id_metadata_document_supported' should be a valid boolean",
        ),
        ({"token_endpoint": None}, "required field 'token_endpoint' is missing"),
        ({"authorization_endpoint": None}, "required field 'authorization_endpoint' is missing"),
        ({"issuer": None}, "required field 'issuer' is missing"),
        ({"token_endpoint": "/token"}, "field 'token_endpoint' '/token' is not an absolute http(s) URL"),
        ({"issuer": AS + "?q=1"}, "field 'issuer' must not have a query or fragment"),
    ],
)
def test_wrong_types_and_missing_fields(overrides: dict[str, Any], problem: str) -> None:
    err, _ = fail({PRM_PATH: prm(), AS_8414: asm(**overrides)})
    assert err.reason == f"invalid authorization server metadata: {problem}" and err.url == AS_8414


@pytest.mark.parametrize(
    ("doc", "problem"),
    [
        ({"authorization_servers": [AS]}, "required field 'resource' is missing"),
        ({"resource": SERVER}, "required field 'authorization_servers' is missing"),
        (
            {"resource": SERVER, "authorization_servers": []},
            "field 'authorization_servers' must name at least one authorization server",
        ),
        ({"resource": SERVER, "authorization_servers": AS}, "field 'authorization_servers' should be a valid array"),
        ({"resource": SERVER, "authorization_servers": ["x"]}, "field 'authorization_servers' 'x' is not an absolute http(s) URL"),
        ({"resource": SERVER + "#frag", "authorization_servers": [AS]}, "field 'resource' must not contain a fragment"),
        ({"resource": 7, "authorization_servers": [AS]}, "field 'resource' should be a valid string"),
    ],
)
def test_invalid_prm_is_reported_when_nothing_better_exists(doc: dict[str, Any], problem: str) -> None:
    err, web = fail({PRM_PATH: doc})
    assert web.urls == [PRM_PATH, PRM_ROOT]  # the root candidate was still tried
    assert err.reason == f"invalid protected resource metadata: {problem}" and err.url == PRM_PATH


def test_malformed_prm_then_valid_root_prm() -> None:
    d, _ = run({PRM_PATH: b"oops", PRM_ROOT: prm(), AS_8414: asm()})
    assert d.prm_url == PRM_ROOT


def test_all_as_candidates_404_for_prm_issuer() -> None:
    err, web = fail({PRM_PATH: prm(servers=[TENANT])})
    assert web.urls == [PRM_PATH, T_8414, T_OIDC_INSERTED, T_OIDC_APPENDED]
    assert err.reason == (
        f"no authorization server metadata found; tried {T_8414} (not found), "
        f"{T_OIDC_INSERTED} (not found), {T_OIDC_APPENDED} (not found)"
    )
    assert err.url == TENANT


def test_all_as_candidates_404_for_configured_issuer() -> None:
    err, _ = fail({}, configured_issuer=AS)
    assert err.reason.startswith("no authorization server metadata found; tried " + AS_8414)


def test_invalid_configured_issuer() -> None:
    err, web = fail({}, configured_issuer="not a url")
    assert err.reason.startswith("unusable authorization server not a url")


def test_invalid_server_url() -> None:
    err, web = fail({}, server="ftp://example.com/x")
    assert web.urls == []
    assert err.reason == "server URL is not usable for sign-in: not an absolute http(s) URL"
