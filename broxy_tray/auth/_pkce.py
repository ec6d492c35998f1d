"""PKCE (RFC 7636) S256 and the `state` value: fresh, unguessable, per attempt.

Only S256 exists here: `plain` protects nothing against an intercepted
authorization request, and MCP requires S256.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import string
from dataclasses import dataclass, field

# RFC 7636 §4.1: code-verifier = 43*128unreserved
_UNRESERVED = string.ascii_letters + string.digits + "-._~"
VERIFIER_MIN, VERIFIER_MAX = 43, 128


def make_verifier(length: int = 64) -> str:
    """A code verifier of `length` (43–128) characters drawn with `secrets`."""
    if not VERIFIER_MIN <= length <= VERIFIER_MAX:
        raise ValueError(f"PKCE verifier length must be {VERIFIER_MIN}..{VERIFIER_MAX}, not {length}")
    return "".join(secrets.choice(_UNRESERVED) for _ in range(length))


def s256_challenge(verifier: str) -> str:
    """BASE64URL(SHA256(ASCII(verifier))) without padding (RFC 7636 §4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def make_state() -> str:
    """An opaque `state` with 256 bits of entropy, URL-safe."""
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class Pkce:
    """A verifier and its S256 challenge; the verifier is kept out of `repr`."""

    verifier: str = field(repr=False)
    challenge: str
    method: str = "S256"

    @classmethod
    def new(cls, length: int = 64) -> Pkce:
        verifier = make_verifier(length)
        return cls(verifier, s256_challenge(verifier))
