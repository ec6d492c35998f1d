"""Diff two configs into a plan: what to start, stop, restart, leave alone.

Pure function, no I/O: the supervisor executes the connection half of the
plan and the auth layer the `auth` half. A server whose entry became invalid
keeps running on its last good entry (`held`) — a typo never takes down what
works — and its problem is reported alongside. Not so when the only problem
is an unset `${VAR}` (a removed secret): running on the removed value would
be wrong, so that server stops and shows the error with its fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from ._model import AuthConfig, Config, ServerConfig

AuthActionKind = Literal["clear", "move", "drop-tokens", "drop-client", "step-up"]


@dataclass(frozen=True)
class AuthAction:
    """What to do with a server's stored OAuth entry (tokens and registration).

    - clear: the server is gone; delete its entry.
    - move: the server was renamed (`source` → `server`) with the same url and auth block.
    - drop-tokens: the url (the token audience) changed; tokens no longer match.
    - drop-client: a field identifying the OAuth client changed; registration and tokens go.
    - step-up: configured scopes were widened; ask for them on next use.
    """

    kind: AuthActionKind
    server: str
    source: str | None = None
    reason: str = ""


@dataclass(frozen=True)
class Plan:
    """The result of `reconcile`. Lists hold server ids in file order."""

    config: Config  # the effective config: the new one, with held entries kept at their last good value
    start: tuple[str, ...] = ()
    stop: tuple[str, ...] = ()
    restart: tuple[str, ...] = ()
    keep: tuple[str, ...] = ()  # running, only cosmetic fields (name) changed: no reconnect
    unchanged: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()  # ids no longer in the file (running or not)
    held: tuple[str, ...] = ()  # entry now invalid; its last good entry keeps running
    auth: tuple[AuthAction, ...] = field(default=())

    def auth_of(self, kind: AuthActionKind) -> tuple[AuthAction, ...]:
        return tuple(a for a in self.auth if a.kind == kind)

    @property
    def is_noop(self) -> bool:
        return not (self.start or self.stop or self.restart or self.keep or self.removed or self.auth)


def is_active(server: ServerConfig | None) -> bool:
    """Should this entry have a live connection?"""
    return server is not None and server.valid and server.enabled


def reconcile(old: Config | None, new: Config) -> Plan:
    """Compare the running config with a freshly parsed one."""
    old_by_id = {s.id: s for s in old.servers} if old else {}
    held: list[str] = []
    effective: list[ServerConfig] = []
    for s in new.servers:
        prev = old_by_id.get(s.id)
        if not s.valid and prev is not None and prev.valid and not _only_missing_variables(s):
            held.append(s.id)
            effective.append(prev)
        else:
            effective.append(s)
    eff = replace(new, servers=tuple(effective))
    new_by_id = {s.id: s for s in eff.servers}

    start: list[str] = []
    stop: list[str] = []
    restart: list[str] = []
    keep: list[str] = []
    unchanged: list[str] = []
    for sid, prev in old_by_id.items():
        if sid not in new_by_id and is_active(prev):
            stop.append(sid)
    for s in eff.servers:
        prev = old_by_id.get(s.id)
        was, now = is_active(prev), is_active(s)
        if now and not was:
            start.append(s.id)
        elif was and not now:
            stop.append(s.id)
        elif was and now:
            assert prev is not None
            if prev.connection_key() != s.connection_key():
                restart.append(s.id)
            elif prev != s:
                keep.append(s.id)
            else:
                unchanged.append(s.id)
        elif prev is not None:
            unchanged.append(s.id)

    removed = [sid for sid in old_by_id if sid not in new_by_id]
    added = [s.id for s in eff.servers if s.id not in old_by_id]
    auth = _auth_actions(old_by_id, new_by_id, removed, added)
    return Plan(
        config=eff,
        start=tuple(start),
        stop=tuple(stop),
        restart=tuple(restart),
        keep=tuple(keep),
        unchanged=tuple(unchanged),
        removed=tuple(removed),
        held=tuple(held),
        auth=tuple(auth),
    )


def _only_missing_variables(s: ServerConfig) -> bool:
    """Invalid only because a `${VAR}` is unset (e.g. its secret was removed): not held on the old value."""
    return bool(s.problems) and all(p.variable for p in s.problems)


def _remote(s: ServerConfig | None) -> bool:
    return s is not None and s.valid and s.transport is not None and s.transport.is_remote


def _auth_actions(
    old: dict[str, ServerConfig], new: dict[str, ServerConfig], removed: list[str], added: list[str]
) -> list[AuthAction]:
    actions: list[AuthAction] = []
    # Renames: exactly one removed and one added remote server share url and auth block.
    def signature(s: ServerConfig) -> tuple[object, ...]:
        return (s.url, s.auth)

    gone = [sid for sid in removed if _remote(old[sid])]
    came = [sid for sid in added if _remote(new[sid])]
    moved_from: set[str] = set()
    for old_id in gone:
        sig = signature(old[old_id])
        twins = [sid for sid in came if signature(new[sid]) == sig]
        if len(twins) == 1 and sum(1 for g in gone if signature(old[g]) == sig) == 1:
            moved_from.add(old_id)
            actions.append(AuthAction("move", twins[0], source=old_id, reason=f"renamed from {old_id}"))
    for old_id in gone:
        if old_id not in moved_from:
            actions.append(AuthAction("clear", old_id, reason="removed from mcp.json"))

    for sid, n in new.items():
        o = old.get(sid)
        if o is None or not o.valid or not n.valid or o.transport is None or not o.transport.is_remote:
            continue
        if not n.transport or not n.transport.is_remote:
            actions.append(AuthAction("clear", sid, reason="no longer a remote server"))
            continue
        old_auth, new_auth = o.auth or AuthConfig(), n.auth or AuthConfig()
        if old_auth.client_identity() != new_auth.client_identity():
            actions.append(AuthAction("drop-client", sid, reason="OAuth client settings changed"))
        elif o.url != n.url:
            actions.append(AuthAction("drop-tokens", sid, reason="url changed"))
        elif set(new_auth.scopes or ()) - set(old_auth.scopes or ()):
            actions.append(AuthAction("step-up", sid, reason="scopes widened"))
    return actions
