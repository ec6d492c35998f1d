"""`WWW-Authenticate` parsing (RFC 9110 §11.6.1 auth-param grammar, RFC 6750 §3).

A server tells a client how to authorize through these challenges: the PRM
URL (`resource_metadata`), the scopes it wants (`scope`) and why it refused
(`error`). Commas separate both challenges and parameters, so a parser that
stops at the first comma or keeps only the first parameter loses exactly the
`scope` of `Bearer error="insufficient_scope", scope="a b"`. This one reads
every parameter of every challenge and never raises: what it cannot parse,
it skips up to the next comma.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import httpx2

_TCHAR = frozenset("!#$%&'*+-.^_`|~" + string.ascii_letters + string.digits)
_TOKEN68 = frozenset(string.ascii_letters + string.digits + "-._~+/")
_OWS = " \t"
# Unquoted values are read leniently up to whitespace or a comma: servers do
# send `resource_metadata=https://…` unquoted, which is not a strict token.
_UNQUOTED_STOP = frozenset(' \t,"')

HeadersLike = httpx2.Headers | Mapping[str, str] | str | Iterable[str]


@dataclass(frozen=True)
class Challenge:
    """One challenge: lower-cased scheme, and either a token68 or parameters."""

    scheme: str
    token68: str | None = None
    params: Mapping[str, str] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class BearerChallenge:
    """The Bearer challenge fields the OAuth flow acts on (RFC 6750, RFC 9728 §5.1)."""

    resource_metadata: str | None = None
    scope: tuple[str, ...] = ()
    error: str | None = None
    error_description: str | None = None
    error_uri: str | None = None
    realm: str | None = None
    params: Mapping[str, str] = field(default_factory=dict, hash=False)

    @classmethod
    def from_challenge(cls, challenge: Challenge) -> BearerChallenge:
        p = challenge.params
        return cls(
            resource_metadata=p.get("resource_metadata") or None,
            scope=tuple(dict.fromkeys((p.get("scope") or "").split())),
            error=p.get("error") or None,
            error_description=p.get("error_description") or None,
            error_uri=p.get("error_uri") or None,
            realm=p.get("realm"),
            params=dict(p),
        )


def _skip(s: str, i: int, chars: str) -> int:
    while i < len(s) and s[i] in chars:
        i += 1
    return i


def _token(s: str, i: int, chars: frozenset[str] = _TCHAR) -> tuple[str, int]:
    j = i
    while j < len(s) and s[j] in chars:
        j += 1
    return s[i:j], j


def _quoted(s: str, i: int) -> tuple[str, int] | None:
    """A quoted-string starting at s[i] == '"', unescaped; None if unterminated."""
    out: list[str] = []
    j = i + 1
    while j < len(s):
        c = s[j]
        if c == "\\":
            if j + 1 >= len(s):
                return None
            out.append(s[j + 1])
            j += 2
        elif c == '"':
            return "".join(out), j + 1
        else:
            out.append(c)
            j += 1
    return None


def _skip_junk(s: str, i: int) -> int:
    """Advance past unparseable input to the next comma outside quotes (at least one char)."""
    j = i + 1 if i < len(s) and s[i] != '"' else i
    in_quote = False
    while j < len(s):
        c = s[j]
        if in_quote:
            if c == "\\":
                j += 1
            elif c == '"':
                in_quote = False
        elif c == '"':
            in_quote = True
        elif c == ",":
            return j
        j += 1
    return max(j, i + 1)


def _param(s: str, i: int) -> tuple[str, str, int] | None:
    """`token BWS "=" BWS ( token / quoted-string )` at i, ending before OWS/comma/end."""
    name, j = _token(s, i)
    if not name:
        return None
    j = _skip(s, j, _OWS)
    if j >= len(s) or s[j] != "=":
        return None
    j = _skip(s, j + 1, _OWS)
    if j >= len(s):
        return None
    if s[j] == '"':
        q = _quoted(s, j)
        if q is None:
            return None
        value, j = q
    elif s[j] == "=":  # `name==`: the tail of a token68, not a parameter
        return None
    else:
        k = j
        while k < len(s) and s[k] not in _UNQUOTED_STOP:
            k += 1
        if k == j:
            return None
        value, j = s[j:k], k
    end = _skip(s, j, _OWS)
    if end < len(s) and s[end] != ",":
        return None
    return name.lower(), value, end


def _token68(s: str, i: int) -> tuple[str, int] | None:
    """`1*tchar68 *"="` at i, followed only by OWS then a comma or the end."""
    value, j = _token(s, i, _TOKEN68)
    if not value:
        return None
    j = _skip(s, j, "=")
    end = _skip(s, j, _OWS)
    if end < len(s) and s[end] != ",":
        return None
    return s[i:j], end


def _looks_like_param(s: str, i: int) -> bool:
    """After a comma: another parameter of this challenge, or a new challenge's scheme?"""
    name, j = _token(s, i)
    if not name:
        return False
    j = _skip(s, j, _OWS)
    return j < len(s) and s[j] == "="


def _parse_value(s: str) -> list[Challenge]:
    challenges: list[Challenge] = []
    n = len(s)
    i = 0
    while i < n:
        i = _skip(s, i, _OWS + ",")
        if i >= n:
            break
        scheme, j = _token(s, i)
        if not scheme or (j < n and s[j] not in _OWS + ","):
            i = _skip_junk(s, i)
            continue
        params: dict[str, str] = {}
        token68: str | None = None
        i = _skip(s, j, _OWS)
        if i < n and s[i] == "=":  # an orphan `name=value`, not a scheme
            i = _skip_junk(s, i)
            continue
        first = True
        while i < n:
            if s[i] == ",":
                if token68 is not None:
                    break
                i = _skip(s, i, _OWS + ",")
                if i >= n or not _looks_like_param(s, i):
                    break
            elif not first:
                i = _skip_junk(s, i)
                continue
            parsed = _param(s, i)
            if parsed is not None:
                name, value, i = parsed
                # RFC 9110: a name occurs once per challenge; on a repeat
                # the first wins, so a later copy cannot override it.
                params.setdefault(name, value)
            elif first and params == {} and (t68 := _token68(s, i)) is not None:
                token68, i = t68
            else:
                i = _skip_junk(s, i)
            first = False
        challenges.append(Challenge(scheme.lower(), token68, params))
    return challenges


def _header_values(headers: HeadersLike) -> list[str]:
    if isinstance(headers, httpx2.Headers):
        return headers.get_list("www-authenticate")
    if isinstance(headers, str):
        return [headers]
    if isinstance(headers, Mapping):
        return [
            v
            for k, v in headers.items()
            if isinstance(k, str) and k.lower() == "www-authenticate" and isinstance(v, str)
        ]
    return [v for v in headers if isinstance(v, str)]


def parse_www_authenticate(headers: HeadersLike) -> list[Challenge]:
    """Every challenge in one header value, several values, or a response's headers.

    Accepts `httpx2.Headers` (all `WWW-Authenticate` fields), a mapping (its
    `WWW-Authenticate` keys, any case), one string, or an iterable of field
    values. Never raises on malformed input.
    """
    out: list[Challenge] = []
    for value in _header_values(headers):
        try:
            out.extend(_parse_value(value))
        except Exception:  # noqa: BLE001 - a parser bug must not break sign-in
            continue
    return out


def bearer_challenge(headers: HeadersLike) -> BearerChallenge | None:
    """The first Bearer challenge (scheme compared case-insensitively), or None."""
    for challenge in parse_www_authenticate(headers):
        if challenge.scheme == "bearer":
            return BearerChallenge.from_challenge(challenge)
    return None
