"""Token endpoint flows: code exchange, refresh, revocation (sans-IO generators).

Client authentication follows the registration's method (`none`,
`client_secret_basic`, `client_secret_post`); `resource` (RFC 8707) goes
with every request. Responses are validated before anything is kept, and a
refresh answer without a new refresh token keeps the old one.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field, replace
from urllib.parse import quote

import httpx2

from ._client import ClientRegistration
from ._errors import AuthError

MAX_TOKEN_RESPONSE_BYTES = 64 * 1024
Clock = Callable[[], float]


class TokenError(AuthError):
    """The token endpoint refused or answered nonsense.

    `error` is the OAuth error code when the AS sent one (`invalid_grant`,
    `invalid_client`, …); `transient` marks faults worth retrying later
    (5xx, 429) rather than signing in again.
    """

    def __init__(self, message: str, *, error: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.error = error
        self.status = status

    @property
    def transient(self) -> bool:
        return self.status is not None and (self.status >= 500 or self.status == 429)


@dataclass(frozen=True)
class TokenSet:
    """Tokens for one server, with their absolute expiry (seconds since the epoch)."""

    access_token: str = field(repr=False)
    token_type: str = "Bearer"
    expires_at: float | None = None
    refresh_token: str | None = field(default=None, repr=False)
    scopes: tuple[str, ...] = ()
    issuer: str = ""
    resource: str = ""
    issued_at: float = 0.0

    def expires_within(self, seconds: float, now: float) -> bool:
        return self.expires_at is not None and self.expires_at - now <= seconds

    def to_json(self) -> dict[str, object]:
        return {
            "access_token": self.access_token,
            "token_type": self.token_type,
            "expires_at": self.expires_at,
            "refresh_token": self.refresh_token,
            "scopes": list(self.scopes),
            "issuer": self.issuer,
            "resource": self.resource,
            "issued_at": self.issued_at,
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> TokenSet:
        return cls(
            access_token=str(data["access_token"]),
            token_type=str(data.get("token_type") or "Bearer"),
            expires_at=float(data["expires_at"]) if data.get("expires_at") is not None else None,  # type: ignore[arg-type]
            refresh_token=data.get("refresh_token") or None,  # type: ignore[arg-type]
            scopes=tuple(data.get("scopes") or ()),  # type: ignore[arg-type]
            issuer=str(data.get("issuer") or ""),
            resource=str(data.get("resource") or ""),
            issued_at=float(data.get("issued_at") or 0.0),  # type: ignore[arg-type]
        )


def token_request(reg: ClientRegistration, endpoint: str, form: dict[str, str]) -> httpx2.Request:
    """A POST to the token (or revocation) endpoint with the client authenticated per its method."""
    form = dict(form)
    headers = {"Accept": "application/json"}
    if reg.auth_method == "client_secret_basic":
        if not reg.client_secret:
            raise AuthError("client_secret_basic needs a client secret; add \"clientSecret\" to mcp.json")
        # RFC 6749 §2.3.1: form-urlencode id and secret before Basic encoding
        pair = f"{quote(reg.client_id, safe='')}:{quote(reg.client_secret, safe='')}"
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
    elif reg.auth_method == "client_secret_post":
        if not reg.client_secret:
            raise AuthError("client_secret_post needs a client secret; add \"clientSecret\" to mcp.json")
        form["client_id"] = reg.client_id
        form["client_secret"] = reg.client_secret
    else:
        form["client_id"] = reg.client_id
    return httpx2.Request("POST", endpoint, data=form, headers=headers)


def exchange_code(
    reg: ClientRegistration,
    token_endpoint: str,
    *,
    code: str,
    verifier: str,
    redirect_uri: str,
    resource: str,
    requested_scopes: tuple[str, ...],
    clock: Clock = time.time,
) -> Generator[httpx2.Request, httpx2.Response, TokenSet]:
    """authorization_code grant with the PKCE verifier."""
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "code_verifier": verifier,
        "redirect_uri": redirect_uri,
        "resource": resource,
    }
    now = clock()
    response = yield token_request(reg, token_endpoint, form)
    return parse_token_response(response, token_endpoint, now=now, issuer=reg.issuer, resource=resource,
                                requested_scopes=requested_scopes)


def refresh(
    reg: ClientRegistration,
    token_endpoint: str,
    current: TokenSet,
    *,
    clock: Clock = time.time,
) -> Generator[httpx2.Request, httpx2.Response, TokenSet]:
    """refresh_token grant; keeps the old refresh token if the AS does not rotate it."""
    if not current.refresh_token:
        raise TokenError("no refresh token to refresh with", error="invalid_grant")
    form = {"grant_type": "refresh_token", "refresh_token": current.refresh_token, "resource": current.resource}
    now = clock()
    response = yield token_request(reg, token_endpoint, form)
    fresh = parse_token_response(response, token_endpoint, now=now, issuer=reg.issuer, resource=current.resource,
                                 requested_scopes=current.scopes)
    if fresh.refresh_token is None:
        fresh = replace(fresh, refresh_token=current.refresh_token)
    return fresh


def revoke(
    reg: ClientRegistration, revocation_endpoint: str, token: str, hint: str
) -> Generator[httpx2.Request, httpx2.Response, None]:
    """RFC 7009; the AS answers 200 even for unknown tokens, so only transport-level trouble fails."""
    response = yield token_request(reg, revocation_endpoint, {"token": token, "token_type_hint": hint})
    if response.status_code != 200:
        raise TokenError(f"revocation at {revocation_endpoint} failed: HTTP {response.status_code}",
                         status=response.status_code)


def parse_token_response(
    response: httpx2.Response,
    where: str,
    *,
    now: float,
    issuer: str,
    resource: str,
    requested_scopes: tuple[str, ...],
) -> TokenSet:
    """Validate a token endpoint answer (RFC 6749 §5.1/§5.2) into a `TokenSet`."""
    body = response.content
    status = response.status_code
    if len(body) > MAX_TOKEN_RESPONSE_BYTES:
        raise TokenError(f"the token response from {where} is too large ({len(body)} bytes)", status=status)
    try:
        data = json.loads(body) if body else None
    except ValueError:
        data = None
    if status != 200:
        error = data.get("error") if isinstance(data, dict) else None
        code = error[:80] if isinstance(error, str) else None
        what = f"returned {code}" if code else f"answered HTTP {status}"
        raise TokenError(f"token endpoint {where} {what}", error=code, status=status)
    if not isinstance(data, dict):
        raise TokenError(f"the token response from {where} is not a JSON object", status=status)
    access = data.get("access_token")
    if not isinstance(access, str) or not access:
        raise TokenError(f"the token response from {where} has no access_token", status=status)
    token_type = data.get("token_type")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        raise TokenError(f"the token response from {where} has token_type {str(token_type)[:20]!r}, not Bearer",
                         status=status)
    expires_in = data.get("expires_in")
    if expires_in is not None:
        if isinstance(expires_in, str) and expires_in.isdigit():
            expires_in = int(expires_in)  # some servers send a numeric string
        if isinstance(expires_in, bool) or not isinstance(expires_in, (int, float)) or expires_in <= 0:
            raise TokenError(f"the token response from {where} has an invalid expires_in", status=status)
    refresh_token = data.get("refresh_token")
    if refresh_token is not None and (not isinstance(refresh_token, str) or not refresh_token):
        raise TokenError(f"the token response from {where} has an invalid refresh_token", status=status)
    scope = data.get("scope")
    scopes = tuple(scope.split()) if isinstance(scope, str) else requested_scopes
    return TokenSet(
        access_token=access,
        token_type="Bearer",
        expires_at=now + float(expires_in) if expires_in is not None else None,
        refresh_token=refresh_token,
        scopes=scopes,
        issuer=issuer,
        resource=resource,
        issued_at=now,
    )
