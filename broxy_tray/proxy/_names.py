"""Client-facing names for downstream tools and prompts: `<serverId>__<name>`.

Names are limited to `[A-Za-z0-9_-]` and 64 characters (what the strictest
clients accept). A name that had to be changed (a character replaced, or
shortened) gets a short hash of the original appended, so it stays stable
across restarts and unlikely to clash. Remaining clashes are resolved
deterministically: entries are taken in (server id, name) order, the first
keeps the name, later ones get the hash suffix; each clash is logged.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable

from broxy_tray.config._parse import TOOL_SEPARATOR as SEPARATOR  # server ids never contain it (config check)

log = logging.getLogger(__name__)

MAX_NAME = 64
_DISALLOWED = re.compile(r"[^A-Za-z0-9_-]")


def _digest(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()[:8]


def _with_suffix(clean: str, raw: str, extra: str = "") -> str:
    suffix = f"_{_digest(raw + extra)}"
    return clean[: MAX_NAME - len(suffix)] + suffix


def namespaced(server_id: str, name: str) -> str:
    """The preferred client-facing name of `name` on `server_id` (before clash resolution)."""
    raw = f"{server_id}{SEPARATOR}{name}"
    clean = _DISALLOWED.sub("_", raw)
    if clean == raw and len(raw) <= MAX_NAME:
        return raw
    return _with_suffix(clean, raw)


def assign_names(entries: Iterable[tuple[str, str]], *, kind: str = "tool") -> dict[str, tuple[str, str]]:
    """Client-facing name → (server id, original name), for every (server id, name) in `entries`.

    Deterministic for a given set of entries, whatever order they come in.
    """
    out: dict[str, tuple[str, str]] = {}
    for sid, name in sorted(set(entries)):
        exposed = namespaced(sid, name)
        if exposed in out:
            raw = f"{sid}{SEPARATOR}{name}"
            other = out[exposed]
            n = 0
            candidate = _with_suffix(_DISALLOWED.sub("_", raw), raw)
            while candidate in out:
                n += 1
                candidate = _with_suffix(_DISALLOWED.sub("_", raw), raw, f"#{n}")
            log.warning(
                "%s %r of server %r would be named %r like %r of server %r; offering it as %r",
                kind, name, sid, exposed, other[1], other[0], candidate,
            )
            exposed = candidate
        out[exposed] = (sid, name)
    return out
