"""Which OAuth client we are: pre-registered, a Client ID Metadata Document, or dynamically registered.

Priority (DESIGN §3 step 4): the config's `clientId`/`clientSecret` → the
config's `clientIdMetadataUrl` when the authorization server advertises
`client_id_metadata_document_supported` → RFC 7591 dynamic registration
when allowed and a `registration_endpoint` exists → an error naming the
`mcp.json` field to add. A registration is bound to the issuer that issued
it and to its redirect URI: a stored one is reused only when both match.
"""

from __future__ import annotations

import json
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Literal

import httpx2

from ._errors import AuthError
from ._metadata import AuthorizationServerMetadata

ClientKind = Literal["pre-registered", "metadata document", "dynamic"]
MAX_REGISTRATION_BYTES = 64 * 1024
CLIENT_NAME = "broxy-tray"


class RegistrationError(AuthError):
    """No usable client identity; the message says what to add to mcp.json or what the AS said."""


@dataclass(frozen=True)
class ClientRegistration:
    """The credentials the authorization server knows us by."""

    client_id: str
    kind: ClientKind
    issuer: str
    redirect_uri: str
    auth_method: str = "none"  # token endpoint auth method
    client_secret: str | None = field(default=None, repr=False)
    client_secret_expires_at: int | None = None

    def matches(self, issuer: str, redirect_uri: str) -> bool:
        return self.issuer == issuer and self.redirect_uri == redirect_uri

    def to_json(self) -> dict[str, object]:
        return {
            "client_id": self.client_id,
            "kind": self.kind,
            "issuer": self.issuer,
            "redirect_uri": self.redirect_uri,
            "auth_method": self.auth_method,
            "client_secret": self.client_secret,
            "client_secret_expires_at": self.client_secret_expires_at,
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> ClientRegistration:
        return cls(
            client_id=str(data["client_id"]),
            kind=data["kind"],  # type: ignore[arg-type]
            issuer=str(data["issuer"]),
            redirect_uri=str(data["redirect_uri"]),
            auth_method=str(data.get("auth_method") or "none"),
            client_secret=data.get("client_secret") or None,  # type: ignore[arg-type]
            client_secret_expires_at=data.get("client_secret_expires_at"),  # type: ignore[arg-type]
        )


@dataclass(frozen=True)
class ClientSettings:
    """The client-identity part of a server's `auth` block (all optional)."""

    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    client_id_metadata_url: str | None = None
    token_endpoint_auth_method: str | None = None
    allow_dynamic_registration: bool = True


def _preregistered_method(settings: ClientSettings, meta: AuthorizationServerMetadata) -> str:
    if settings.token_endpoint_auth_method:
        return settings.token_endpoint_auth_method
    if not settings.client_secret:
        return "none"
    supported = meta.token_endpoint_auth_methods_supported or ("client_secret_basic",)
    return "client_secret_basic" if "client_secret_basic" in supported else "client_secret_post"


def resolve_client(
    settings: ClientSettings,
    meta: AuthorizationServerMetadata,
    redirect_uri: str,
    stored: ClientRegistration | None = None,
) -> Generator[httpx2.Request, httpx2.Response, ClientRegistration]:
    """Decide the client identity, registering dynamically if that is what it takes."""
    issuer = meta.issuer
    if settings.client_id:
        return ClientRegistration(
            client_id=settings.client_id,
            kind="pre-registered",
            issuer=issuer,
            redirect_uri=redirect_uri,
            auth_method=_preregistered_method(settings, meta),
            client_secret=settings.client_secret,
        )
    if settings.client_id_metadata_url and meta.client_id_metadata_document_supported:
        return ClientRegistration(
            client_id=settings.client_id_metadata_url,
            kind="metadata document",
            issuer=issuer,
            redirect_uri=redirect_uri,
            auth_method=settings.token_endpoint_auth_method or "none",
        )
    if stored is not None and stored.kind == "dynamic" and stored.matches(issuer, redirect_uri):
        return stored
    if not settings.allow_dynamic_registration:
        raise RegistrationError(
            f"{issuer} needs a client registration and allowDynamicRegistration is false: "
            'add "clientId" (and "clientSecret" if it has one) to this server\'s "auth" in mcp.json'
        )
    if not meta.registration_endpoint:
        if settings.client_id_metadata_url:
            raise RegistrationError(
                f"{issuer} accepts neither client ID metadata documents nor dynamic registration: "
                'add "clientId" (and "clientSecret" if it has one) to this server\'s "auth" in mcp.json'
            )
        raise RegistrationError(
            f"{issuer} offers no dynamic client registration: add \"clientId\" (and \"clientSecret\" "
            'if it has one) or "clientIdMetadataUrl" to this server\'s "auth" in mcp.json'
        )
    return (yield from register(settings, meta, redirect_uri))


def register(
    settings: ClientSettings, meta: AuthorizationServerMetadata, redirect_uri: str
) -> Generator[httpx2.Request, httpx2.Response, ClientRegistration]:
    """RFC 7591 dynamic client registration as a native app."""
    assert meta.registration_endpoint
    method = settings.token_endpoint_auth_method or _dcr_method(meta)
    body = {
        "client_name": CLIENT_NAME,
        "redirect_uris": [redirect_uri],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": method,
        "application_type": "native",
    }
    response = yield httpx2.Request(
        "POST",
        meta.registration_endpoint,
        json=body,
        headers={"Accept": "application/json"},
    )
    where = meta.registration_endpoint
    if response.status_code not in (200, 201):
        raise RegistrationError(f"dynamic client registration at {where} was refused: {_oauth_error(response)}")
    data = _json_object(response, where, "registration response")
    client_id = data.get("client_id")
    if not isinstance(client_id, str) or not client_id:
        raise RegistrationError(f"the registration response from {where} has no client_id")
    secret = data.get("client_secret")
    granted_method = data.get("token_endpoint_auth_method")
    if not isinstance(granted_method, str) or not granted_method:
        granted_method = method if (secret or method == "none") else "none"
    if granted_method != "none" and not isinstance(secret, str):
        raise RegistrationError(f"{where} registered a confidential client but sent no client_secret")
    expires = data.get("client_secret_expires_at")
    return ClientRegistration(
        client_id=client_id,
        kind="dynamic",
        issuer=meta.issuer,
        redirect_uri=redirect_uri,
        auth_method=granted_method,
        client_secret=secret if isinstance(secret, str) and secret else None,
        client_secret_expires_at=expires if isinstance(expires, int) and expires > 0 else None,
    )


def _dcr_method(meta: AuthorizationServerMetadata) -> str:
    """A public client (PKCE protects the code) unless the AS only takes confidential ones."""
    supported = meta.token_endpoint_auth_methods_supported
    if not supported or "none" in supported:
        return "none"
    for m in ("client_secret_basic", "client_secret_post"):
        if m in supported:
            return m
    return "none"


def _json_object(response: httpx2.Response, where: str, what: str) -> dict[str, object]:
    body = response.content
    if len(body) > MAX_REGISTRATION_BYTES:
        raise RegistrationError(f"the {what} from {where} is too large ({len(body)} bytes)")
    try:
        data = json.loads(body)
    except ValueError:
        raise RegistrationError(f"the {what} from {where} is not JSON") from None
    if not isinstance(data, dict):
        raise RegistrationError(f"the {what} from {where} is not a JSON object")
    return data


def _oauth_error(response: httpx2.Response) -> str:
    """`HTTP 400 invalid_redirect_uri: <description>` — the AS's words, capped, on one line."""
    text = f"HTTP {response.status_code}"
    try:
        data = json.loads(response.content[:MAX_REGISTRATION_BYTES])
    except ValueError:
        return text
    if isinstance(data, dict):
        err = data.get("error")
        desc = data.get("error_description")
        if isinstance(err, str):
            text += f" {err[:80]}"
        if isinstance(desc, str):
            text += ": " + " ".join(desc.split())[:200]
    return text

