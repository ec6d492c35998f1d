"""OAuth discovery for an MCP server, as a sans-IO generator.

`discover()` yields each `httpx2.Request` it needs and is sent back the
`httpx2.Response` (`response = yield request`); it returns a `Discovery`.
No sockets, no clock: tests feed it recorded responses, and a driver
(`_drive.drive`) runs it over a real client.

Rules on what a candidate URL's answer means:
- not `200` (a `3xx` included: redirects are never followed, so metadata
  cannot be taken from elsewhere) → absent, try the next candidate;
- `200` that is not a usable document (not JSON, too big, wrong types,
  required field missing) → remembered, treated as absent; if no candidate
  yields a document, that first problem is the error;
- a well-formed document failing a security rule (PRM `resource` for
  another server, `issuer` mismatch, no S256, http endpoint off loopback)
  → stop at once: nothing later may quietly replace it.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Literal

import httpx2

from ._challenge import BearerChallenge
from ._errors import DiscoveryError, MetadataFormatError
from ._metadata import (
    AuthorizationServerMetadata,
    ProtectedResourceMetadata,
    defaulted_metadata,
    parse_authorization_server_metadata,
    parse_protected_resource_metadata,
)
from ._scopes import select_scopes
from ._urls import (
    canonical_resource,
    is_absolute_http_url,
    is_secure_url,
    issuer_key,
    issuer_problem,
    origin,
    path_of,
    resource_matches,
    well_known_url,
)

PRM_SUFFIX = "oauth-protected-resource"
OAUTH_SUFFIX = "oauth-authorization-server"
OIDC_SUFFIX = "openid-configuration"
PKCE_REASON = "authorization server does not support PKCE S256"

Flow = Generator[httpx2.Request, httpx2.Response, "Discovery"]


@dataclass(frozen=True)
class Attempt:
    """One URL tried, for the diagnostic printout (`status` None: not requested)."""

    kind: Literal["protected resource metadata", "authorization server metadata"]
    url: str
    status: int | None
    outcome: str


@dataclass(frozen=True)
class Discovery:
    """What discovery found, and how.

    `issuer` is the `issuer` of the metadata document, byte for byte: the
    RFC 9207 `iss` check compares against it. `defaulted` means no metadata
    was found and the 2025-03-26 default endpoints on the server's origin
    are used.
    """

    server_url: str
    resource: str
    prm: ProtectedResourceMetadata | None
    prm_url: str | None
    issuer: str
    issuer_source: Literal["protected resource metadata", "configuration", "server origin"]
    as_metadata: AuthorizationServerMetadata
    as_metadata_url: str | None
    defaulted: bool
    challenge_scopes: tuple[str, ...]
    tried: tuple[Attempt, ...]
    notes: tuple[str, ...] = field(default=())

    @property
    def prm_scopes(self) -> tuple[str, ...]:
        return tuple(self.prm.scopes_supported or ()) if self.prm else ()

    def scopes(self, configured: tuple[str, ...] | list[str] | None = None) -> tuple[str, ...]:
        """Scopes to request: challenge, else PRM, else `configured` (see `select_scopes`)."""
        return select_scopes(
            challenge=self.challenge_scopes,
            prm_scopes_supported=self.prm_scopes,
            configured=configured,
            as_scopes_supported=self.as_metadata.scopes_supported,
        )


def _request(url: str, protocol_version: str | None) -> httpx2.Request:
    headers = {"Accept": "application/json"}
    if protocol_version:
        headers["MCP-Protocol-Version"] = protocol_version
    return httpx2.Request("GET", url, headers=headers)


def _fetch(
    kind: Literal["protected resource metadata", "authorization server metadata"],
    url: str,
    tried: list[Attempt],
    protocol_version: str | None,
) -> Generator[httpx2.Request, httpx2.Response, bytes | None]:
    """GET one candidate; the body of a `200`, else None with the reason recorded."""
    response = yield _request(url, protocol_version)
    status = response.status_code
    if 300 <= status < 400:
        location = response.headers.get("location", "")
        where = f" to {location}" if location else ""
        tried.append(Attempt(kind, url, status, f"redirect{where} not followed"))
        return None
    if status != 200:
        tried.append(Attempt(kind, url, status, "not found" if status == 404 else f"HTTP {status}"))
        return None
    return response.content


def _prm_candidates(resource: str, challenge: BearerChallenge | None, tried: list[Attempt]) -> list[str]:
    candidates: list[str] = []
    hinted = challenge.resource_metadata if challenge else None
    if hinted:
        if not is_absolute_http_url(hinted) or "#" in hinted:
            tried.append(
                Attempt("protected resource metadata", hinted, None, "ignored: not an absolute http(s) URL")
            )
        elif resource.startswith("https:") and not is_secure_url(hinted):
            # A plain-http hint from an https server would let anyone on the path
            # substitute the metadata, and with it the authorization server.
            tried.append(
                Attempt("protected resource metadata", hinted, None, "ignored: plain http for an https server")
            )
        else:
            candidates.append(hinted)
    if path_of(resource):
        candidates.append(well_known_url(resource, PRM_SUFFIX, strip_trailing_slash=False))
    candidates.append(well_known_url(origin(resource), PRM_SUFFIX, strip_trailing_slash=False))
    return list(dict.fromkeys(candidates))


def _as_candidates(issuer: str) -> list[str]:
    """RFC 8414 §3.1 and OIDC Discovery §4 URLs for an issuer, in MCP's order."""
    if path_of(issuer).rstrip("/"):
        return [
            well_known_url(issuer, OAUTH_SUFFIX, strip_trailing_slash=True),
            well_known_url(issuer, OIDC_SUFFIX, strip_trailing_slash=True),
            issuer.rstrip("/") + "/.well-known/" + OIDC_SUFFIX,
        ]
    return [
        well_known_url(issuer, OAUTH_SUFFIX, strip_trailing_slash=True),
        well_known_url(issuer, OIDC_SUFFIX, strip_trailing_slash=True),
    ]


def _find_prm(
    resource: str,
    challenge: BearerChallenge | None,
    tried: list[Attempt],
    protocol_version: str | None,
) -> Generator[httpx2.Request, httpx2.Response, tuple[ProtectedResourceMetadata | None, str | None]]:
    first_problem: MetadataFormatError | None = None
    for url in _prm_candidates(resource, challenge, tried):
        body = yield from _fetch("protected resource metadata", url, tried, protocol_version)
        if body is None:
            continue
        try:
            prm = parse_protected_resource_metadata(body, url)
        except MetadataFormatError as exc:
            tried.append(Attempt("protected resource metadata", url, 200, f"unusable: {exc.reason}"))
            first_problem = first_problem or exc
            continue
        if not resource_matches(prm.resource, resource):
            tried.append(Attempt("protected resource metadata", url, 200, f"resource {prm.resource} rejected"))
            raise DiscoveryError(
                f"protected resource metadata is for {prm.resource}, not for this server {resource}", url
            )
        tried.append(Attempt("protected resource metadata", url, 200, "used"))
        return prm, url
    if first_problem is not None:
        raise first_problem
    return None, None


def _find_as_metadata(
    issuer: str,
    tried: list[Attempt],
    protocol_version: str | None,
) -> Generator[httpx2.Request, httpx2.Response, tuple[AuthorizationServerMetadata | None, str | None]]:
    first_problem: MetadataFormatError | None = None
    for url in _as_candidates(issuer):
        body = yield from _fetch("authorization server metadata", url, tried, protocol_version)
        if body is None:
            continue
        try:
            meta = parse_authorization_server_metadata(body, url)
        except MetadataFormatError as exc:
            tried.append(Attempt("authorization server metadata", url, 200, f"unusable: {exc.reason}"))
            first_problem = first_problem or exc
            continue
        except DiscoveryError:
            tried.append(Attempt("authorization server metadata", url, 200, "rejected: insecure endpoint"))
            raise
        if issuer_key(meta.issuer) != issuer_key(issuer):
            tried.append(Attempt("authorization server metadata", url, 200, f"issuer {meta.issuer} rejected"))
            raise DiscoveryError(f"issuer mismatch: metadata says {meta.issuer!r}, expected {issuer!r}", url)
        if "S256" not in (meta.code_challenge_methods_supported or ()):
            tried.append(Attempt("authorization server metadata", url, 200, "rejected: no PKCE S256"))
            raise DiscoveryError(PKCE_REASON, url)
        tried.append(Attempt("authorization server metadata", url, 200, "used"))
        return meta, url
    if first_problem is not None:
        raise first_problem
    return None, None


def _choose_issuer(prm: ProtectedResourceMetadata, configured: str | None, notes: list[str]) -> str:
    """The PRM's first authorization server, or the configured one when the PRM lists it.

    The PRM is authoritative (the MCP spec makes clients use it); the
    configuration only picks among the servers it names.
    """
    servers = prm.authorization_servers
    if configured:
        for server in servers:
            if issuer_key(server) == issuer_key(configured):
                return server
        notes.append(
            f"configured authorization server {configured} is not listed by the server's metadata; "
            f"using {servers[0]}"
        )
    return servers[0]


def discover(
    server_url: str,
    *,
    challenge: BearerChallenge | None = None,
    configured_issuer: str | None = None,
    protocol_version: str | None = None,
) -> Flow:
    """Find the authorization server for the MCP server at `server_url`.

    `challenge` is the Bearer challenge of the `401`/`403` (its
    `resource_metadata` is tried first); `configured_issuer` is the
    config's `auth.authorizationServer`, used when the server publishes no
    PRM. `protocol_version`, when given, is sent as `MCP-Protocol-Version`.
    Raises DiscoveryError with a one-line message naming the URL at fault.
    """
    try:
        resource = canonical_resource(server_url)
    except ValueError as exc:
        raise DiscoveryError(f"server URL is not usable for sign-in: {exc}", server_url) from None
    tried: list[Attempt] = []
    notes: list[str] = []

    prm, prm_url = yield from _find_prm(resource, challenge, tried, protocol_version)

    source: Literal["protected resource metadata", "configuration", "server origin"]
    if prm is not None:
        issuer, source = _choose_issuer(prm, configured_issuer, notes), "protected resource metadata"
    elif configured_issuer:
        issuer, source = configured_issuer, "configuration"
    else:
        issuer, source = origin(resource), "server origin"
    problem = issuer_problem(issuer)
    if problem:
        raise DiscoveryError(f"unusable authorization server {issuer}: {problem}", prm_url or issuer)

    meta, meta_url = yield from _find_as_metadata(issuer, tried, protocol_version)
    defaulted = False
    if meta is None:
        if source != "server origin":
            urls = ", ".join(f"{a.url} ({a.outcome})" for a in tried if a.kind == "authorization server metadata")
            raise DiscoveryError(f"no authorization server metadata found; tried {urls}", issuer)
        meta, defaulted = defaulted_metadata(issuer), True
        notes.append(f"no metadata at {issuer}: using its default /authorize, /token, /register endpoints")

    return Discovery(
        server_url=server_url,
        resource=resource,
        prm=prm,
        prm_url=prm_url,
        issuer=meta.issuer,
        issuer_source=source,
        as_metadata=meta,
        as_metadata_url=meta_url,
        defaulted=defaulted,
        challenge_scopes=challenge.scope if challenge else (),
        tried=tuple(tried),
        notes=tuple(notes),
    )
