"""The server runner that holds a live MCP connection and reports its status honestly.

`Connecting` → `Available` (tool count, server name/version, protocol) →
on a drop or a failed connect `Error: <reason> · retrying in N s`, then
again. Retries back off exponentially with jitter (0.5 s doubling, capped at
60 s) and the backoff resets once a connection has stayed up for a while.
Cancelling the task (disable, remove, restart, quit) closes the connection,
which for stdio ends the child and its process group.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from typing import Any, Callable, Protocol

from ..config import Config, ServerConfig
from ..mcp import ConnectError, open_connection, preload_sdk
from ..state import ServerStatus, StateStore
from ._sessions import SessionRegistry

INITIAL_DELAY = 0.5
MAX_DELAY = 60.0
HEALTHY_AFTER = 30.0  # a connection that lasted this long resets the backoff
JITTER = 0.2  # ±20 %


class AuthHooks(Protocol):
    """What the runner needs from the OAuth coordinator (kept abstract: servers never imports auth)."""

    def auth_for(self, server: ServerConfig, config: Config) -> Any: ...

    def signin_failure(self, server_id: str) -> str | None: ...


class Backoff:
    """Delays of 0.5, 1, 2, 4 … s (±jitter), capped; `reset()` after a healthy period."""

    def __init__(self, initial: float = INITIAL_DELAY, cap: float = MAX_DELAY,
                 rng: Callable[[], float] = random.random) -> None:
        self._initial = initial
        self._cap = cap
        self._rng = rng
        self._attempt = 0

    def reset(self) -> None:
        self._attempt = 0

    def next(self) -> float:
        nominal = min(self._cap, self._initial * 2 ** self._attempt)
        self._attempt += 1
        jittered = nominal * (1 - JITTER + 2 * JITTER * self._rng())
        return min(self._cap, jittered)


class LiveRunner:
    """Callable as a `ServerRunner`: one instance serves every server of the app."""

    def __init__(
        self,
        *,
        connect: Callable[..., Any] = open_connection,
        healthy_after: float = HEALTHY_AFTER,
        backoff: Callable[[], Backoff] = Backoff,
        auth: AuthHooks | None = None,
        sessions: SessionRegistry | None = None,
    ) -> None:
        self._connect = connect
        self._auth = auth
        self._sessions = sessions
        self._healthy_after = healthy_after
        self._backoff = backoff

    async def __call__(self, server: ServerConfig, config: Config, store: StateStore) -> None:
        log = logging.getLogger(f"broxy_tray.server.{server.id}")
        backoff = self._backoff()
        last_reason: str | None = None
        while True:
            store.update_server(server.id, status=ServerStatus.CONNECTING, detail="", tools=None, seconds_left=None)
            await preload_sdk()
            auth = self._auth.auth_for(server, config) if self._auth else None
            # a browser sign-in may happen inside the connect: give it its own time on top
            connect_timeout = config.connect_timeout + (config.authorization_timeout if auth else 0.0)
            kwargs = {"auth": auth} if auth is not None else {}
            started = time.monotonic()
            try:
                async with self._connect(
                    server,
                    connect_timeout=connect_timeout,
                    request_timeout=config.request_timeout,
                    log=log,
                    **kwargs,
                ) as conn:
                    started = time.monotonic()
                    store.update_server(
                        server.id, status=ServerStatus.AVAILABLE, tools=len(conn.tools), detail=_describe(conn)
                    )
                    log.info("available: %d tools, %s", len(conn.tools), _describe(conn))
                    conn.on_tools_changed = self._tools_callback(server.id, conn, store)
                    sessions = self._sessions
                    if sessions is not None:
                        sessions.add(server.id, conn)
                    try:
                        lost = await conn.wait_closed()
                    finally:
                        if sessions is not None:
                            sessions.remove(server.id, conn)
                    reason = lost.reason
            except ConnectError as e:
                reason = e.reason
            failure = self._auth.signin_failure(server.id) if self._auth else None
            if failure is not None:
                log.info("sign-in ended without tokens (%s); not retrying", failure)
                return  # the app saves the server as disabled and shows why
            if time.monotonic() - started >= self._healthy_after:
                backoff.reset()
            delay = backoff.next()
            # the same reason again only at INFO: a server down for an hour must not fill stderr and the log
            level = logging.INFO if reason == last_reason else logging.WARNING
            last_reason = reason
            log.log(level, "%s; retrying in %d s", reason, math.ceil(delay))
            store.update_server(
                server.id, status=ServerStatus.ERROR, tools=None,
                detail=f"{reason} · retrying in {math.ceil(delay)} s",
            )
            await asyncio.sleep(delay)

    def _tools_callback(self, server_id: str, conn: Any, store: StateStore) -> Callable[[Any], None]:
        sessions = self._sessions

        def changed(tools: Any) -> None:
            store.update_server(server_id, tools=len(tools))
            if sessions is not None:
                sessions.tools_changed(server_id, conn)

        return changed


def _describe(conn: Any) -> str:
    """`everything 1.2 · protocol 2025-11-25` (the parts the server told us)."""
    who = " ".join(p for p in (conn.server_name, conn.server_version) if p)
    parts = [p for p in (who, f"protocol {conn.protocol_version}" if conn.protocol_version else "") if p]
    return " · ".join(parts)
