"""Which scopes to ask for (MCP authorization spec "Scope Selection Strategy", SEP-2207).

The server's most specific hint wins: the scopes it just challenged for,
then what its PRM advertises, then what the user configured. Asking for
nothing is valid: the authorization server then applies its default.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

OFFLINE_ACCESS = "offline_access"


def _unique(scopes: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(s for s in scopes if s))


def select_scopes(
    *,
    challenge: Sequence[str] | None = None,
    prm_scopes_supported: Sequence[str] | None = None,
    configured: Sequence[str] | None = None,
    as_scopes_supported: Sequence[str] | None = None,
) -> tuple[str, ...]:
    """Scopes for an authorization request; empty means "send no scope parameter".

    `offline_access` (a refresh token) is requested only when the
    authorization server lists it: added then, removed otherwise. It is not
    added to an otherwise empty request, which would replace the server's
    default scopes with just `offline_access`.
    """
    for source in (challenge, prm_scopes_supported, configured):
        chosen = _unique(source or ())
        if chosen:
            break
    else:
        return ()
    as_offers_offline = OFFLINE_ACCESS in (as_scopes_supported or ())
    if not as_offers_offline:
        chosen = [s for s in chosen if s != OFFLINE_ACCESS]
    elif OFFLINE_ACCESS not in chosen:
        chosen.append(OFFLINE_ACCESS)
    return tuple(chosen)


def union_scopes(held: Iterable[str], challenged: Iterable[str]) -> tuple[str, ...]:
    """Step-up: the scopes held, then the newly challenged ones, each once, order kept."""
    return tuple(_unique([*held, *challenged]))


def scope_param(scopes: Sequence[str]) -> str | None:
    """The `scope` request parameter (space separated), or None to omit it."""
    return " ".join(scopes) or None
