"""URL rules, scope selection and PKCE: small pure functions, checked directly."""

from __future__ import annotations

import base64
import hashlib
import string

import pytest

from broxy_tray.auth import Pkce, canonical_resource, is_loopback_host, make_state, select_scopes, union_scopes
from broxy_tray.auth._pkce import make_verifier, s256_challenge
from broxy_tray.auth._scopes import scope_param
from broxy_tray.auth._urls import (
    http_url,
    is_secure_url,
    issuer_key,
    origin,
    resource_matches,
    same_origin,
    well_known_url,
)


@pytest.mark.parametrize(
    ("url", "canonical"),
    [
        ("https://mcp.example.com/mcp", "https://mcp.example.com/mcp"),
        ("HTTPS://MCP.Example.COM/MCP", "https://mcp.example.com/MCP"),
        ("https://mcp.example.com/", "https://mcp.example.com"),
        ("https://mcp.example.com", "https://mcp.example.com"),
        ("https://mcp.example.com/mcp/", "https://mcp.example.com/mcp/"),
        ("https://mcp.example.com:443/mcp", "https://mcp.example.com/mcp"),
        ("http://mcp.example.com:80/", "http://mcp.example.com"),
        ("https://mcp.example.com:8443", "https://mcp.example.com:8443"),
        ("https://mcp.example.com/mcp#frag", "https://mcp.example.com/mcp"),
        ("https://mcp.example.com/mcp?x=1", "https://mcp.example.com/mcp?x=1"),
        ("https://user:pw@mcp.example.com/mcp", "https://mcp.example.com/mcp"),
        ("wss://mcp.example.com/ws", "https://mcp.example.com/ws"),
        ("ws://localhost:8080/ws", "http://localhost:8080/ws"),
        ("http://[::1]:3000/mcp", "http://[::1]:3000/mcp"),
        ("http://[::1]:80/", "http://[::1]"),
    ],
)
def test_canonical_resource(url: str, canonical: str) -> None:
    assert canonical_resource(url) == canonical


@pytest.mark.parametrize("bad", ["mcp.example.com", "/mcp", "ftp://x/y", "https://", "https://x:99999/", "", "https://a b/"])
def test_canonical_resource_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        canonical_resource(bad)


def test_http_url_and_origin() -> None:
    assert http_url("wss://a.example/x?y") == "https://a.example/x?y"
    assert http_url("https://a.example/x") == "https://a.example/x"
    assert origin("wss://A.example:443/x") == "https://a.example"
    assert origin("http://127.0.0.1:9/x") == "http://127.0.0.1:9"


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("LOCALHOST", True),
        ("localhost.", True),
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("::ffff:127.0.0.1", True),
        ("app.localhost", False),
        ("localhost.example.com", False),
        ("10.0.0.1", False),
        ("0.0.0.0", False),
        ("::", False),
        ("example.com", False),
        ("", False),
    ],
)
def test_is_loopback_host(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


def test_is_secure_url() -> None:
    assert is_secure_url("https://a.example/t")
    assert is_secure_url("http://localhost:1/t")
    assert is_secure_url("http://[::1]/t")
    assert not is_secure_url("http://a.example/t")
    assert not is_secure_url("ws://localhost/t")
    assert not is_secure_url("javascript:alert(1)")


@pytest.mark.parametrize(
    ("resource", "server", "ok"),
    [
        ("https://a.example/mcp", "https://a.example/mcp", True),
        ("https://a.example", "https://a.example/mcp", True),
        ("https://a.example/", "https://a.example/mcp", True),
        ("https://a.example/api", "https://a.example/api/mcp", True),
        ("https://a.example/api/", "https://a.example/api/mcp", True),
        ("https://a.example/mcp/", "https://a.example/mcp", True),
        ("https://A.EXAMPLE:443/mcp", "https://a.example/mcp", True),
        ("https://a.example/mcp", "https://a.example/mcp?x=1", True),
        ("https://a.example/mc", "https://a.example/mcp", False),
        ("https://a.example/mcp/deeper", "https://a.example/mcp", False),
        ("https://a.example/MCP", "https://a.example/mcp", False),
        ("https://b.example/mcp", "https://a.example/mcp", False),
        ("http://a.example/mcp", "https://a.example/mcp", False),
        ("https://a.example:8443/mcp", "https://a.example/mcp", False),
        ("https://a.example/mcp#x", "https://a.example/mcp", False),
        ("not a url", "https://a.example/mcp", False),
    ],
)
def test_resource_matches(resource: str, server: str, ok: bool) -> None:
    assert resource_matches(resource, server) is ok


def test_same_origin() -> None:
    assert same_origin("https://a.example/x", "https://A.example:443/y")
    assert not same_origin("https://a.example", "http://a.example")
    assert not same_origin("https://a.example", "nope")


def test_issuer_key_normalises_only_what_rfc3986_allows() -> None:
    assert issuer_key("https://AS.example") == issuer_key("https://as.example/") == issuer_key("https://as.example:443")
    assert issuer_key("https://as.example/t") != issuer_key("https://as.example/t/")
    assert issuer_key("https://as.example/T") != issuer_key("https://as.example/t")


def test_well_known_url() -> None:
    assert well_known_url("https://as/t/", "x", strip_trailing_slash=True) == "https://as/.well-known/x/t"
    assert well_known_url("https://as/", "x", strip_trailing_slash=True) == "https://as/.well-known/x"
    assert well_known_url("https://rs/mcp/", "p", strip_trailing_slash=False) == "https://rs/.well-known/p/mcp/"
    assert well_known_url("https://rs/?q=1", "p", strip_trailing_slash=False) == "https://rs/.well-known/p?q=1"


# --- scopes ------------------------------------------------------------------------------


def test_scope_priority() -> None:
    assert select_scopes(challenge=["c"], prm_scopes_supported=["p"], configured=["k"]) == ("c",)
    assert select_scopes(challenge=[], prm_scopes_supported=["p", "q"], configured=["k"]) == ("p", "q")
    assert select_scopes(challenge=None, prm_scopes_supported=None, configured=["k"]) == ("k",)
    assert select_scopes() == ()


def test_offline_access_only_when_the_as_lists_it() -> None:
    assert select_scopes(challenge=["a"], as_scopes_supported=["a", "offline_access"]) == ("a", "offline_access")
    assert select_scopes(challenge=["a"], as_scopes_supported=["a"]) == ("a",)
    assert select_scopes(configured=["a", "offline_access"], as_scopes_supported=["a"]) == ("a",)
    assert select_scopes(configured=["offline_access", "a"], as_scopes_supported=None) == ("a",)
    assert select_scopes(challenge=["offline_access", "a"], as_scopes_supported=["offline_access"]) == ("offline_access", "a")
    # never turns "no scope parameter" into "just offline_access"
    assert select_scopes(as_scopes_supported=["offline_access"]) == ()


def test_duplicates_removed_order_kept() -> None:
    assert select_scopes(challenge=["b", "a", "b", ""]) == ("b", "a")


def test_union_scopes() -> None:
    assert union_scopes(["read", "write"], ["admin", "read"]) == ("read", "write", "admin")
    assert union_scopes([], ["x"]) == ("x",)
    assert union_scopes(("a",), ()) == ("a",)


def test_scope_param() -> None:
    assert scope_param(("a", "b")) == "a b"
    assert scope_param(()) is None


# --- PKCE --------------------------------------------------------------------------------

UNRESERVED = set(string.ascii_letters + string.digits + "-._~")


@pytest.mark.parametrize("length", [43, 64, 128])
def test_verifier_shape(length: int) -> None:
    v = make_verifier(length)
    assert len(v) == length and set(v) <= UNRESERVED


@pytest.mark.parametrize("length", [42, 129, 0])
def test_verifier_length_bounds(length: int) -> None:
    with pytest.raises(ValueError):
        make_verifier(length)


def test_rfc7636_appendix_b_vector() -> None:
    assert s256_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_pkce_pairs_are_fresh_and_consistent() -> None:
    a, b = Pkce.new(), Pkce.new()
    assert a.verifier != b.verifier and a.method == "S256"
    expected = base64.urlsafe_b64encode(hashlib.sha256(a.verifier.encode()).digest()).rstrip(b"=").decode()
    assert a.challenge == expected
    assert a.verifier not in repr(a)


def test_state() -> None:
    states = {make_state() for _ in range(100)}
    assert len(states) == 100
    assert all(len(s) >= 43 and set(s) <= set(string.ascii_letters + string.digits + "-_") for s in states)
