"""OAuth sign-in for remote MCP servers (DESIGN §3).

The protocol logic is sans-IO: each network step is a generator that yields
an `httpx2.Request` and is sent the `httpx2.Response`; `drive()` runs one
over a real client.

Importing this package is cheap: names load from their modules on first use,
so an app with no remote servers never pays for httpx2 and the metadata models.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "Attempt": "._discovery",
    "AuthError": "._errors",
    "AuthEvent": "._signin",
    "AuthNetworkError": "._errors",
    "AuthSettings": "._signin",
    "AuthorizationDenied": "._loopback",
    "AuthorizationErrorResponse": "._loopback",
    "AuthorizationServerMetadata": "._metadata",
    "BearerAuth": "._bearer",
    "BearerChallenge": "._challenge",
    "CallbackError": "._loopback",
    "CallbackResult": "._loopback",
    "CallbackTimeout": "._loopback",
    "Challenge": "._challenge",
    "ClientRegistration": "._client",
    "ClientSettings": "._client",
    "CredentialStore": "._store",
    "Discovery": "._discovery",
    "DiscoveryError": "._errors",
    "IssuerMismatch": "._loopback",
    "KeyringStore": "._keyring_store",
    "KEYRING_UNAVAILABLE": "._keyring_store",
    "LoopbackListenError": "._loopback",
    "LoopbackPortInUse": "._loopback",
    "LoopbackReceiver": "._loopback",
    "MemoryStore": "._store",
    "MetadataFormatError": "._errors",
    "Pkce": "._pkce",
    "ProtectedResourceMetadata": "._metadata",
    "RegistrationError": "._client",
    "ServerAuth": "._signin",
    "SignInCancelled": "._signin",
    "StepUpExhausted": "._bearer",
    "StoredAuth": "._store",
    "TokenError": "._tokens",
    "TokenSet": "._tokens",
    "bearer_challenge": "._challenge",
    "canonical_resource": "._urls",
    "discover": "._discovery",
    "drive": "._drive",
    "is_loopback_host": "._urls",
    "make_state": "._pkce",
    "parse_www_authenticate": "._challenge",
    "select_scopes": "._scopes",
    "union_scopes": "._scopes",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), "UNAVAILABLE" if name == "KEYRING_UNAVAILABLE" else name)
    globals()[name] = value
    return value


__all__ = sorted(_WHERE)
