"""One task per enabled server, driven by the reconciler's plan.

The supervisor turns a `Plan` into task starts and cancellations and keeps
the state store's server list in step with the effective config. What a
server task does is the injected `ServerRunner`'s business (a live MCP
connection, in the connections layer); the supervisor only guarantees the
lifecycle: unchanged servers are never touched, a restart is stop-then-start,
and shutdown cancels everything.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import Awaitable, Protocol

from ..config import Config, Plan, ServerConfig
from ..state import ServerState, ServerStatus, StateStore

log = logging.getLogger(__name__)

STOP_TIMEOUT = 5.0


class ServerRunner(Protocol):
    """Runs one server until cancelled, reporting through the store."""

    def __call__(self, server: ServerConfig, config: Config, store: StateStore) -> Awaitable[None]: ...


async def idle_runner(server: ServerConfig, config: Config, store: StateStore) -> None:
    """Placeholder runner: shows `Connecting` and holds no connection."""
    store.update_server(server.id, status=ServerStatus.CONNECTING, detail="", tools=None)
    await asyncio.Event().wait()


class Supervisor:
    """Owns the server tasks; call its methods from the loop thread only."""

    def __init__(self, store: StateStore, runner: ServerRunner = idle_runner) -> None:
        self._store = store
        self._runner = runner
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._config: Config | None = None

    @property
    def running(self) -> dict[str, asyncio.Task[None]]:
        """Live tasks by server id (read-only use: tests and diagnostics)."""
        return dict(self._tasks)

    async def apply(
        self, plan: Plan, config_errors: dict[str, str] | None = None, disabled_reasons: dict[str, str] | None = None
    ) -> None:
        """Execute the connection half of `plan` and publish the new server list."""
        config = plan.config
        self._config = config
        await self._stop_all([*plan.stop, *plan.restart, *plan.removed])
        self._store.set_servers(self._initial_states(plan, config_errors or {}, disabled_reasons or {}))
        for sid in [*plan.start, *plan.restart]:
            server = config.server(sid)
            if server is not None:
                self._spawn(server, config)

    def _initial_states(
        self, plan: Plan, config_errors: dict[str, str], disabled_reasons: dict[str, str]
    ) -> list[ServerState]:
        current = self._store.state
        fresh = set(plan.start) | set(plan.restart)
        out = []
        for s in plan.config.servers:
            prev = current.server(s.id)
            note = config_errors.get(s.id)
            remote = s.transport is not None and s.transport.is_remote
            if not s.valid:
                out.append(ServerState(s.id, s.name, ServerStatus.ERROR, detail=s.problems[0].message,
                                       missing_variable=s.problems[0].variable))
            elif not s.enabled:
                out.append(ServerState(s.id, s.name, ServerStatus.DISABLED, detail=disabled_reasons.get(s.id, ""),
                                       config_error=note, remote=remote))
            elif prev is not None and s.id not in fresh and s.id in self._tasks:
                out.append(replace(prev, name=s.name, config_error=note, remote=remote))
            else:
                out.append(ServerState(s.id, s.name, ServerStatus.CONNECTING, config_error=note, remote=remote))
        return out

    def _spawn(self, server: ServerConfig, config: Config) -> None:
        task = asyncio.get_running_loop().create_task(
            self._guard(server, config), name=f"server:{server.id}"
        )
        self._tasks[server.id] = task

    async def _guard(self, server: ServerConfig, config: Config) -> None:
        try:
            await self._runner(server, config, self._store)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # a runner bug must show as Error, not vanish
            log.exception("server %s: runner failed", server.id)
            self._store.update_server(server.id, status=ServerStatus.ERROR, detail=f"internal error: {e}")

    async def _stop_all(self, ids: list[str]) -> None:
        tasks = [self._tasks.pop(sid) for sid in dict.fromkeys(ids) if sid in self._tasks]
        for t in tasks:
            t.cancel()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=STOP_TIMEOUT)
            for t in pending:
                log.warning("%s did not stop within %.0f s", t.get_name(), STOP_TIMEOUT)

    async def stop(self, ids: list[str]) -> None:
        """Stop these servers' tasks now, ahead of `apply` (whose plan then finds them stopped).

        The app stops a server before its stored sign-in is cleared or moved, so no connection
        of it can still be refreshing or signing in when storage changes.
        """
        await self._stop_all(ids)

    async def restart(self, server_id: str) -> None:
        """Stop and start one server's task now (e.g. "Retry now" while it waits in backoff)."""
        if self._config is None:
            return
        server = self._config.server(server_id)
        if server is None or not server.valid or not server.enabled:
            return
        await self._stop_all([server_id])
        self._store.update_server(server_id, status=ServerStatus.CONNECTING, detail="", tools=None)
        self._spawn(server, self._config)

    async def close(self) -> None:
        """Cancel every server task (shutdown)."""
        await self._stop_all(list(self._tasks))

