"""Which servers have a live session right now, for the proxy.

`LiveRunner` reports here when a connection becomes `Available` (`add`),
when its tool list changes (`tools_changed`) and when it goes away
(`remove`). The proxy reads the live `Connection` objects from here and
subscribes to the changes. Everything runs on the app's asyncio loop; the
registry holds no lock and never awaits.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SessionChange:
    """`kind` is "added", "removed" or "tools"; `server` is the server id."""

    kind: str
    server: str


SessionListener = Callable[[SessionChange], None]


class SessionRegistry:
    """Server id → its live `Connection` (only while the connection is up)."""

    def __init__(self) -> None:
        self._live: dict[str, Any] = {}
        self._listeners: list[SessionListener] = []
        self.revision = 0
        """Bumped on every change; lets readers cache what they derived from the registry."""

    # -- readers --

    def get(self, server_id: str) -> Any | None:
        """The live `Connection` of `server_id`, or None."""
        conn = self._live.get(server_id)
        if conn is not None and getattr(conn, "closed", False):
            return None
        return conn

    def items(self) -> list[tuple[str, Any]]:
        """(server id, connection) pairs of every live session, sorted by id."""
        return sorted((sid, c) for sid, c in self._live.items() if not getattr(c, "closed", False))

    def __contains__(self, server_id: object) -> bool:
        return isinstance(server_id, str) and self.get(server_id) is not None

    def __len__(self) -> int:
        return len(self.items())

    def subscribe(self, listener: SessionListener) -> Callable[[], None]:
        """`listener(change)` after every change; returns an unsubscribe function."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    # -- writers (LiveRunner) --

    def add(self, server_id: str, conn: Any) -> None:
        self._live[server_id] = conn
        self._changed(SessionChange("added", server_id))

    def remove(self, server_id: str, conn: Any | None = None) -> None:
        """Forget `server_id`'s session (only if it is still `conn`, when given)."""
        current = self._live.get(server_id)
        if current is None or (conn is not None and current is not conn):
            return
        del self._live[server_id]
        self._changed(SessionChange("removed", server_id))

    def tools_changed(self, server_id: str, conn: Any | None = None) -> None:
        current = self._live.get(server_id)
        if current is None or (conn is not None and current is not conn):
            return
        self._changed(SessionChange("tools", server_id))

    def _changed(self, change: SessionChange) -> None:
        self.revision += 1
        for listener in list(self._listeners):
            try:
                listener(change)
            except Exception:  # one broken listener must not stop the others (or the runner)
                log.exception("session listener failed")
