"""What is remembered per server between sign-ins: tokens, client registrations, endpoints.

The store interface is small on purpose: the keyring-backed store (secure
storage, split entries, timeouts) plugs in behind it; tests and the probe
use the in-memory one. Registrations are kept per issuer, so switching
authorization servers never reuses a client id issued by another.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ._client import ClientRegistration
    from ._tokens import TokenSet


@dataclass(frozen=True)
class StoredAuth:
    """Everything kept for one server id."""

    tokens: TokenSet | None = None
    registrations: tuple[ClientRegistration, ...] = ()
    token_endpoint: str | None = None  # to refresh without rediscovery after a restart
    revocation_endpoint: str | None = None
    extra: dict[str, object] = field(default_factory=dict)

    def registration_for(self, issuer: str) -> ClientRegistration | None:
        for r in self.registrations:
            if r.issuer == issuer:
                return r
        return None

    def with_registration(self, reg: ClientRegistration) -> StoredAuth:
        others = tuple(r for r in self.registrations if r.issuer != reg.issuer)
        return replace(self, registrations=(*others, reg))

    def without_registration(self, issuer: str) -> StoredAuth:
        return replace(self, registrations=tuple(r for r in self.registrations if r.issuer != issuer))

    def to_json(self) -> dict[str, object]:
        return {
            "tokens": self.tokens.to_json() if self.tokens else None,
            "registrations": [r.to_json() for r in self.registrations],
            "token_endpoint": self.token_endpoint,
            "revocation_endpoint": self.revocation_endpoint,
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> StoredAuth:
        from ._client import ClientRegistration
        from ._tokens import TokenSet

        tokens = data.get("tokens")
        regs = data.get("registrations") or []
        return cls(
            tokens=TokenSet.from_json(tokens) if isinstance(tokens, dict) else None,
            registrations=tuple(ClientRegistration.from_json(r) for r in regs if isinstance(r, dict)),  # type: ignore[union-attr]
            token_endpoint=data.get("token_endpoint") or None,  # type: ignore[arg-type]
            revocation_endpoint=data.get("revocation_endpoint") or None,  # type: ignore[arg-type]
        )


class CredentialStore(Protocol):
    """Async so that a slow or locked backend never blocks the event loop."""

    async def load(self, server_id: str) -> StoredAuth | None: ...

    async def save(self, server_id: str, entry: StoredAuth) -> None: ...

    async def delete(self, server_id: str) -> None: ...


class MemoryStore:
    """Keeps entries for this run only."""

    def __init__(self) -> None:
        self._entries: dict[str, StoredAuth] = {}

    async def load(self, server_id: str) -> StoredAuth | None:
        return self._entries.get(server_id)

    async def save(self, server_id: str, entry: StoredAuth) -> None:
        self._entries[server_id] = entry

    async def delete(self, server_id: str) -> None:
        self._entries.pop(server_id, None)
