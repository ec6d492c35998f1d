"""What every UI shows: immutable snapshots of the app's state, and a small store.

The store lives on the asyncio loop thread and is the only place state
changes. Each change publishes a new `AppState`; listeners (the headless
runner, the tray, the control channel) receive it together with the
discrete event that caused it, if any. Snapshots are frozen, so a UI thread
may keep and read one without locks.
"""

from __future__ import annotations

import enum
import logging
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable

log = logging.getLogger(__name__)


class ServerStatus(str, enum.Enum):
    """The five statuses a server can be in, named as the user sees them."""

    DISABLED = "Disabled"
    AUTHORIZATION = "Authorization"
    CONNECTING = "Connecting"
    AVAILABLE = "Available"
    ERROR = "Error"


@dataclass(frozen=True)
class ServerState:
    """One server as shown to the user."""

    id: str
    name: str
    status: ServerStatus
    detail: str = ""  # one line; for Error always a reason a person can act on
    seconds_left: int | None = None  # only while status is Authorization
    tools: int | None = None
    config_error: str | None = None  # the entry is invalid; the last good entry still runs
    auth_url: str | None = None  # the sign-in page while status is Authorization
    remote: bool = False  # reached over the network (sign-in actions make sense)
    missing_variable: str | None = None  # in Error because this `${NAME}` is unset: the menu offers "Set NAME…"

    def label(self) -> str:
        """`Available · 3 tools`, `Authorization: 97 s`, `Error: <reason>`, `Disabled`."""
        s = self.status
        if s is ServerStatus.AUTHORIZATION and self.seconds_left is not None:
            text = f"Authorization: {self.seconds_left} s"
        elif s is ServerStatus.ERROR:
            text = f"Error: {self.detail}" if self.detail else "Error"
        elif s is ServerStatus.AVAILABLE and self.tools is not None:
            text = f"Available · {self.tools} tool{'s' if self.tools != 1 else ''}"
            text += f" · {self.detail}" if self.detail else ""
        else:
            text = s.value + (f" · {self.detail}" if self.detail else "")
        return text


@dataclass(frozen=True)
class ClientCounts:
    """MCP clients connected to the proxy now: `broxy-tray stdio` bridges, HTTP sessions, and per preset."""

    stdio: int = 0
    http: int = 0
    presets: tuple[tuple[str, int], ...] = ()  # (preset name, clients), sorted; clients of everything are not listed

    @property
    def total(self) -> int:
        return self.stdio + self.http

    def label(self) -> str:
        """`2 stdio · 1 HTTP (coding: 1)`, or `none`."""
        if not self.total:
            return "none"
        parts = [f"{n} {kind}" for n, kind in ((self.stdio, "stdio"), (self.http, "HTTP")) if n]
        text = " · ".join(parts)
        if self.presets:
            text += " (" + ", ".join(f"{name}: {n}" for name, n in self.presets) + ")"
        return text

    def as_json(self) -> dict[str, object]:
        return {"stdio": self.stdio, "http": self.http, "presets": dict(self.presets)}


@dataclass(frozen=True)
class AppState:
    """A whole snapshot: servers in config order plus app-wide facts."""

    servers: tuple[ServerState, ...] = ()
    config_path: str = ""
    config_error: str | None = None  # the file as a whole is unusable; last good config runs
    storage: str = ""  # "Secret Service", "Keychain", … or "unavailable — …"
    clients: ClientCounts = field(default_factory=lambda: ClientCounts())
    revision: int = 0

    def server(self, server_id: str) -> ServerState | None:
        for s in self.servers:
            if s.id == server_id:
                return s
        return None

    @property
    def summary(self) -> str:
        """`3 of 4 available` (disabled servers are not counted)."""
        enabled = [s for s in self.servers if s.status is not ServerStatus.DISABLED]
        available = sum(1 for s in enabled if s.status is ServerStatus.AVAILABLE)
        return f"{available} of {len(enabled)} available"


@dataclass(frozen=True)
class ConfigEvent:
    """A config load, reload or rejected edit, as reported to the user."""

    action: str  # "loaded" | "reloaded" | "error"
    started: tuple[str, ...] = ()
    stopped: tuple[str, ...] = ()
    restarted: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    auth_cleared: tuple[str, ...] = ()
    auth_moved: tuple[tuple[str, str], ...] = ()
    auth_dropped: tuple[str, ...] = ()
    errors: tuple[Any, ...] = ()  # ConfigIssue values (kept untyped: state imports nothing from config)
    message: str = ""
    ts: float = field(default_factory=time.time)


@dataclass(frozen=True)
class AuthNotice:
    """Sign-in progress for the UIs: started (url), tick (seconds left), succeeded, failed/cancelled (reason)."""

    server: str
    action: str  # "started" | "tick" | "succeeded" | "failed" | "cancelled"
    url: str | None = None
    seconds_left: int | None = None
    reason: str | None = None
    ts: float = field(default_factory=time.time)


Listener = Callable[[AppState, Any], None]


class StateStore:
    """Holds the current `AppState`; call only from the loop thread."""

    def __init__(self, config_path: str = "") -> None:
        self._state = AppState(config_path=config_path)
        self._listeners: list[Listener] = []

    @property
    def state(self) -> AppState:
        return self._state

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """`listener(state, event)` after every change; returns an unsubscribe function."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    def publish(self, event: Any) -> None:
        """Announce a discrete event (e.g. `ConfigEvent`) with the current state."""
        self._notify(event)

    def set_servers(self, servers: Iterable[ServerState]) -> None:
        """Replace the server list (after a load or reload), keeping config order."""
        self._commit(replace(self._state, servers=tuple(servers)))

    def update_server(self, server_id: str, **changes: Any) -> ServerState | None:
        """Change fields of one server; no-op (and no notification) if nothing differs."""
        servers = list(self._state.servers)
        for i, s in enumerate(servers):
            if s.id == server_id:
                new = replace(s, **changes)
                if new == s:
                    return s
                servers[i] = new
                self._commit(replace(self._state, servers=tuple(servers)))
                return new
        return None

    def set_storage(self, description: str) -> None:
        if description != self._state.storage:
            self._commit(replace(self._state, storage=description))

    def set_clients(self, counts: ClientCounts) -> None:
        if counts != self._state.clients:
            self._commit(replace(self._state, clients=counts))

    def set_config_error(self, message: str | None) -> None:
        if message != self._state.config_error:
            self._commit(replace(self._state, config_error=message))

    def _commit(self, new: AppState) -> None:
        self._state = replace(new, revision=self._state.revision + 1)
        self._notify(None)

    def _notify(self, event: Any) -> None:
        for listener in list(self._listeners):
            try:
                listener(self._state, event)
            except Exception:  # one broken UI must not stop the others
                log.exception("state listener failed")
