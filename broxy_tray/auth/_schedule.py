"""When to refresh a token, and how long to wait after a failed refresh.

One rule for every lifetime L: refresh when the time left is at most
``min(max(60 s, 0.2 L), 0.5 L)``. A 1 h token refreshes 12 min before
expiry, a 5 min token 60 s before, and a token of 2 min or less at half its
life — never earlier, so a short-lived token is refreshed once per lifetime
instead of on every request (a storm that gets a rotating refresh-token
family revoked). The due time is computed from the token's own issue time,
so it follows each new token.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from ._tokens import TokenSet

REFRESH_MARGIN = 60.0  # refresh at least this long before expiry …
REFRESH_FRACTION = 0.2  # … or when this share of the lifetime is left, whichever is more …
REFRESH_FLOOR = 0.5  # … but never before this share of the lifetime has passed

RETRY_INITIAL = 1.0  # first wait after a transient refresh failure
RETRY_MAX = 300.0  # the waits double up to 5 min
RETRY_JITTER = 0.2  # ±20 %, so servers sharing an authorization server do not retry in step


def refresh_margin(lifetime: float) -> float:
    """Seconds before expiry at which a token of this lifetime is due."""
    return min(max(REFRESH_MARGIN, REFRESH_FRACTION * lifetime), REFRESH_FLOOR * lifetime)


def refresh_due_at(tokens: TokenSet) -> float:
    """Wall-clock time at which `tokens` should be refreshed (inf: never expires)."""
    if tokens.expires_at is None:
        return float("inf")
    if tokens.issued_at <= 0 or tokens.issued_at > tokens.expires_at:
        return tokens.expires_at - REFRESH_MARGIN  # issue time unknown (old entry): the fixed margin
    return tokens.expires_at - refresh_margin(tokens.expires_at - tokens.issued_at)


def retry_delay(attempt: int, rng: Callable[[], float] = random.random) -> float:
    """The wait before retry number `attempt` (0-based): 1, 2, 4 … s with jitter, at most 5 min."""
    nominal = min(RETRY_MAX, RETRY_INITIAL * 2 ** min(attempt, 32))
    return min(RETRY_MAX, nominal * (1 - RETRY_JITTER + 2 * RETRY_JITTER * rng()))
