"""Validated metadata documents: RFC 9728 (protected resource), RFC 8414 / OIDC (authorization server).

Everything a remote server says about where to send the user and their
credentials passes through here first, so the checks are strict: a JSON
object of at most 256 KiB, the right types (no coercion: `"true"` is not a
boolean), absolute URLs, and endpoints that are https unless on loopback.
Fields we do not model are kept (`model_extra`) because both documents are
extensible.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from ._errors import DiscoveryError, MetadataFormatError
from ._urls import is_absolute_http_url, is_secure_url, issuer_problem

MAX_METADATA_BYTES = 256 * 1024

PRM_KIND = "protected resource metadata"
AS_KIND = "authorization server metadata"


def _absolute(value: str | None) -> str | None:
    if value is not None and not is_absolute_http_url(value):
        raise ValueError(f"{value!r} is not an absolute http(s) URL")
    return value


class _Document(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True, strict=True)


class ProtectedResourceMetadata(_Document):
    """RFC 9728 §2. MCP requires at least one authorization server."""

    resource: str
    authorization_servers: tuple[str, ...]
    scopes_supported: tuple[str, ...] | None = None
    bearer_methods_supported: tuple[str, ...] | None = None
    jwks_uri: str | None = None
    resource_name: str | None = None
    resource_documentation: str | None = None

    @field_validator("resource")
    @classmethod
    def _resource(cls, v: str) -> str:
        _absolute(v)
        if "#" in v:
            raise ValueError("must not contain a fragment")
        return v

    @field_validator("authorization_servers")
    @classmethod
    def _servers(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError("must name at least one authorization server")
        for server in v:
            _absolute(server)
        return v

    @field_validator("jwks_uri", "resource_documentation")
    @classmethod
    def _urls(cls, v: str | None) -> str | None:
        return _absolute(v)


# Endpoints a client may send the user, a code, a secret or a token to.
AS_ENDPOINT_FIELDS = (
    "authorization_endpoint",
    "token_endpoint",
    "registration_endpoint",
    "revocation_endpoint",
    "introspection_endpoint",
    "jwks_uri",
)


class AuthorizationServerMetadata(_Document):
    """RFC 8414 §2 (also read from OIDC discovery documents)."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    registration_endpoint: str | None = None
    revocation_endpoint: str | None = None
    introspection_endpoint: str | None = None
    jwks_uri: str | None = None
    scopes_supported: tuple[str, ...] | None = None
    response_types_supported: tuple[str, ...] | None = None
    grant_types_supported: tuple[str, ...] | None = None
    code_challenge_methods_supported: tuple[str, ...] | None = None
    token_endpoint_auth_methods_supported: tuple[str, ...] | None = None
    client_id_metadata_document_supported: bool | None = None
    authorization_response_iss_parameter_supported: bool | None = None

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, v: str) -> str:
        _absolute(v)
        if "?" in v or "#" in v:
            raise ValueError("must not have a query or fragment")
        return v

    @field_validator(*AS_ENDPOINT_FIELDS)
    @classmethod
    def _endpoints(cls, v: str | None) -> str | None:
        return _absolute(v)


def _decode(body: bytes, url: str, kind: str) -> dict[str, Any]:
    if len(body) > MAX_METADATA_BYTES:
        raise MetadataFormatError(f"{kind} is larger than {MAX_METADATA_BYTES // 1024} KiB", url)
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise MetadataFormatError(f"{kind} is not valid JSON", url) from None
    if not isinstance(data, dict):
        raise MetadataFormatError(f"{kind} is not a JSON object", url)
    return data


def _first_error(exc: ValidationError) -> str:
    err = exc.errors(include_url=False)[0]
    loc = "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else str(p)) for i, p in enumerate(err["loc"]))
    if err["type"] == "missing":
        return f"required field '{loc}' is missing"
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"].endswith("_type"):
        msg = msg.replace("Input should be", "should be")
    return f"field '{loc}' {msg}" if loc else msg


def _validate(model: type[_Document], data: dict[str, Any], url: str, kind: str) -> Any:
    try:
        # Re-serialised so pydantic's strict JSON mode applies (arrays to tuples, no coercion).
        return model.model_validate_json(json.dumps(data), strict=True)
    except ValidationError as exc:
        raise MetadataFormatError(f"invalid {kind}: {_first_error(exc)}", url) from None


def parse_protected_resource_metadata(body: bytes, url: str) -> ProtectedResourceMetadata:
    """Parse and validate a PRM document fetched from `url`.

    Raises MetadataFormatError for anything that is not a well-formed PRM
    document; the `resource` check against the server is the caller's.
    """
    return _validate(ProtectedResourceMetadata, _decode(body, url, PRM_KIND), url, PRM_KIND)


def parse_authorization_server_metadata(body: bytes, url: str) -> AuthorizationServerMetadata:
    """Parse and validate an AS metadata document fetched from `url`.

    Format problems raise MetadataFormatError; a well-formed document whose
    endpoints are plain http on a non-loopback host raises DiscoveryError
    (see `check_endpoints_secure`). Issuer and PKCE checks are the caller's.
    """
    meta = _validate(AuthorizationServerMetadata, _decode(body, url, AS_KIND), url, AS_KIND)
    check_endpoints_secure(meta, url)
    return meta


def check_endpoints_secure(meta: AuthorizationServerMetadata, url: str) -> None:
    """Refuse endpoints that would carry codes, secrets or tokens over plain http off loopback."""
    for name in AS_ENDPOINT_FIELDS:
        value = getattr(meta, name)
        if value is not None and not is_secure_url(value):
            raise DiscoveryError(
                f"{name} {value} is not https (http is allowed only on loopback hosts) in {AS_KIND}", url
            )


def defaulted_metadata(issuer: str) -> AuthorizationServerMetadata:
    """The 2025-03-26 fallback: `/authorize`, `/token`, `/register` on the server's origin.

    That revision made PKCE mandatory for every client and server, hence S256.
    """
    problem = issuer_problem(issuer)
    if problem:
        raise DiscoveryError(problem, issuer)
    base = issuer.rstrip("/")
    return AuthorizationServerMetadata(
        issuer=issuer,
        authorization_endpoint=f"{base}/authorize",
        token_endpoint=f"{base}/token",
        registration_endpoint=f"{base}/register",
        response_types_supported=("code",),
        grant_types_supported=("authorization_code", "refresh_token"),
        code_challenge_methods_supported=("S256",),
    )
