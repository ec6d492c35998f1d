"""OAuth sign-in for remote MCP servers (DESIGN §3).

The protocol logic is sans-IO: each network step is a generator that yields
an `httpx2.Request` and is sent the `httpx2.Response`; `drive()` runs one
over a real client.
"""

from ._bearer import BearerAuth, StepUpExhausted
from ._challenge import BearerChallenge, Challenge, bearer_challenge, parse_www_authenticate
from ._discovery import Attempt, Discovery, discover
from ._drive import drive
from ._client import ClientRegistration, ClientSettings, RegistrationError
from ._errors import AuthError, AuthNetworkError, DiscoveryError, MetadataFormatError
from ._loopback import (
    AuthorizationDenied,
    AuthorizationErrorResponse,
    CallbackError,
    CallbackResult,
    CallbackTimeout,
    IssuerMismatch,
    LoopbackListenError,
    LoopbackPortInUse,
    LoopbackReceiver,
)
from ._metadata import AuthorizationServerMetadata, ProtectedResourceMetadata
from ._pkce import Pkce, make_state
from ._scopes import select_scopes, union_scopes
from ._signin import AuthEvent, AuthSettings, ServerAuth, SignInCancelled
from ._store import CredentialStore, MemoryStore, StoredAuth
from ._tokens import TokenError, TokenSet
from ._urls import canonical_resource, is_loopback_host

__all__ = [
    "Attempt",
    "AuthEvent",
    "AuthSettings",
    "AuthorizationDenied",
    "AuthorizationErrorResponse",
    "CallbackResult",
    "LoopbackListenError",
    "LoopbackPortInUse",
    "BearerAuth",
    "CallbackError",
    "CallbackTimeout",
    "ClientRegistration",
    "ClientSettings",
    "CredentialStore",
    "IssuerMismatch",
    "LoopbackReceiver",
    "MemoryStore",
    "RegistrationError",
    "ServerAuth",
    "SignInCancelled",
    "StepUpExhausted",
    "StoredAuth",
    "TokenError",
    "TokenSet",
    "AuthError",
    "AuthNetworkError",
    "AuthorizationServerMetadata",
    "BearerChallenge",
    "Challenge",
    "Discovery",
    "DiscoveryError",
    "MetadataFormatError",
    "Pkce",
    "ProtectedResourceMetadata",
    "bearer_challenge",
    "canonical_resource",
    "discover",
    "drive",
    "is_loopback_host",
    "make_state",
    "parse_www_authenticate",
    "select_scopes",
    "union_scopes",
]
