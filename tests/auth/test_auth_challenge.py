"""WWW-Authenticate parsing: RFC 9110 §11 grammar, RFC 6750 Bearer fields, junk tolerance."""

from __future__ import annotations

import httpx2
import pytest

from broxy_tray.auth import BearerChallenge, Challenge, bearer_challenge, parse_www_authenticate


def one(header: str) -> Challenge:
    (challenge,) = parse_www_authenticate(header)
    return challenge


def test_insufficient_scope_keeps_every_parameter() -> None:
    # The case a first-parameter-only parser gets wrong.
    bc = bearer_challenge('Bearer error="insufficient_scope", scope="a b"')
    assert bc is not None
    assert bc.error == "insufficient_scope"
    assert bc.scope == ("a", "b")


def test_rfc6750_examples() -> None:
    c = one('Bearer realm="example"')
    assert c == Challenge("bearer", None, {"realm": "example"})
    bc = bearer_challenge(
        'Bearer realm="example",\r\n error="invalid_token",\r\n error_description="The access token expired"'
        .replace("\r\n", "")
    )
    assert bc == BearerChallenge(
        realm="example",
        error="invalid_token",
        error_description="The access token expired",
        params={"realm": "example", "error": "invalid_token", "error_description": "The access token expired"},
    )


def test_rfc9110_example_two_challenges_with_escaped_quotes() -> None:
    header = 'Newauth realm="apps", type=1, title="Login to \\"apps\\"", Basic realm="simple"'
    assert parse_www_authenticate(header) == [
        Challenge("newauth", None, {"realm": "apps", "type": "1", "title": 'Login to "apps"'}),
        Challenge("basic", None, {"realm": "simple"}),
    ]


def test_several_challenges_in_one_header() -> None:
    header = 'Bearer realm="a", error="x", Basic realm="b"'
    assert parse_www_authenticate(header) == [
        Challenge("bearer", None, {"realm": "a", "error": "x"}),
        Challenge("basic", None, {"realm": "b"}),
    ]


def test_several_header_fields_in_httpx_headers() -> None:
    headers = httpx2.Headers(
        [("WWW-Authenticate", 'Basic realm="b"'), ("www-authenticate", 'Bearer resource_metadata="https://x/prm"')]
    )
    assert [c.scheme for c in parse_www_authenticate(headers)] == ["basic", "bearer"]
    bc = bearer_challenge(headers)
    assert bc is not None and bc.resource_metadata == "https://x/prm"


def test_response_headers_list_and_mapping_inputs() -> None:
    resp = httpx2.Response(401, headers={"WWW-Authenticate": 'Bearer scope="s1"'})
    assert bearer_challenge(resp.headers) == bearer_challenge(['Bearer scope="s1"'])
    assert bearer_challenge({"www-AUTHENTICATE": 'Bearer scope="s1"'}) is not None
    assert bearer_challenge({"Other": "Bearer"}) is None
    assert parse_www_authenticate([]) == []


def test_commas_spaces_and_equals_inside_quotes() -> None:
    c = one('Bearer error_description="a, b = c,d", scope="x  y"')
    assert c.params == {"error_description": "a, b = c,d", "scope": "x  y"}
    assert bearer_challenge('Bearer scope="x  y"').scope == ("x", "y")  # type: ignore[union-attr]


def test_case_insensitive_scheme_and_parameter_names() -> None:
    bc = bearer_challenge('BEARER Resource_Metadata="https://a/b", SCOPE="r w", Error="invalid_token"')
    assert bc is not None
    assert bc.resource_metadata == "https://a/b"
    assert bc.scope == ("r", "w")
    assert bc.error == "invalid_token"


def test_values_keep_their_case() -> None:
    assert one('Bearer realm="MiXeD"').params["realm"] == "MiXeD"


def test_bare_tokens_and_bws_around_equals() -> None:
    assert one("Bearer error=invalid_token , scope = read").params == {"error": "invalid_token", "scope": "read"}


def test_unquoted_url_value_is_accepted() -> None:
    bc = bearer_challenge("Bearer resource_metadata=https://mcp.example.com/.well-known/oauth-protected-resource/mcp")
    assert bc is not None
    assert bc.resource_metadata == "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"


def test_token68_challenges() -> None:
    assert parse_www_authenticate("Negotiate YII=, Basic realm=\"x\"") == [
        Challenge("negotiate", "YII="),
        Challenge("basic", None, {"realm": "x"}),
    ]
    assert one("Basic dXNlcjpwYXNz==").token68 == "dXNlcjpwYXNz=="
    assert one("Custom a/b+c~d.e_f-g").token68 == "a/b+c~d.e_f-g"


def test_scheme_without_parameters() -> None:
    assert parse_www_authenticate("Bearer") == [Challenge("bearer")]
    assert parse_www_authenticate("Basic, Bearer") == [Challenge("basic"), Challenge("bearer")]
    assert bearer_challenge("Bearer") == BearerChallenge()


def test_empty_list_elements_are_skipped() -> None:
    assert parse_www_authenticate(' , Bearer ,, realm="a" ,, error="e", , Basic') == [
        Challenge("bearer", None, {"realm": "a", "error": "e"}),
        Challenge("basic"),
    ]


def test_first_duplicate_parameter_wins() -> None:
    assert one('Bearer scope="a", scope="b"').params == {"scope": "a"}


def test_first_bearer_challenge_is_used() -> None:
    bc = bearer_challenge('Basic realm="x", Bearer scope="one", Bearer scope="two"')
    assert bc is not None and bc.scope == ("one",)


def test_scope_duplicates_dropped_and_empty_scope() -> None:
    assert bearer_challenge('Bearer scope="a b a"').scope == ("a", "b")  # type: ignore[union-attr]
    bc = bearer_challenge('Bearer scope="", error=""')
    assert bc is not None and bc.scope == () and bc.error is None


def test_non_bearer_only() -> None:
    assert bearer_challenge('Basic realm="x"') is None
    assert bearer_challenge("") is None


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        # unterminated quoted string: the parameter is dropped, the rest kept
        ('Bearer error="x", scope="a b', [Challenge("bearer", None, {"error": "x"})]),
        # junk between parameters is skipped up to the next comma
        ('Bearer error="x" junk junk, scope="s"', [Challenge("bearer", None, {"scope": "s"})]),
        # orphan parameters without a scheme
        ('realm="x", Bearer scope="s"', [Challenge("bearer", None, {"scope": "s"})]),
        ('realm = "x", Bearer', [Challenge("bearer")]),
        # a quote glued to the scheme is not a scheme
        ('Bearer"x", Basic', [Challenge("basic")]),
        # garbage only
        ("\x00\x01\"\\", []),
        ('"""', []),
        ("=,=,=", []),
        (",,,   ,", []),
        # a parameter after a token68 is not part of it
        ('Negotiate abc==, realm="x"', [Challenge("negotiate", "abc==")]),
        # trailing backslash inside a quoted string
        ('Bearer error="x\\', [Challenge("bearer")]),
        # parameter value missing: dropped; first in the list it reads as a token68 (the grammar says so)
        ('Bearer scope="s", error=, realm="r"', [Challenge("bearer", None, {"scope": "s", "realm": "r"})]),
        ('Bearer error=, scope="s"', [Challenge("bearer", "error=")]),
    ],
)
def test_adversarial_input(header: str, expected: list[Challenge]) -> None:
    assert parse_www_authenticate(header) == expected


def test_comma_inside_quoted_junk_does_not_split() -> None:
    # The junk skipper respects quotes: the comma inside "a,b" does not start a new item.
    assert parse_www_authenticate('Bearer x y "a, Basic b", scope="s"') == [Challenge("bearer", None, {"scope": "s"})]


def test_very_long_header_is_fast() -> None:
    header = ", ".join(f'p{i}="v{i}"' for i in range(20000))
    (c,) = parse_www_authenticate("Bearer " + header)
    assert len(c.params) == 20000
