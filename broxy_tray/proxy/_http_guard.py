"""Connection limits of the HTTP endpoint: no local client can starve it (or the app) of descriptors.

uvicorn keeps a connection that never sends a request open forever, so ~1,000 half-open
connections used to exhaust the app's open-file limit: every HTTP client, the CLI and even config
reloads failed. The endpoint's protocol class comes from `ConnectionGuard.protocol()`, which
- caps open connections at `limit` (a quarter of the soft open-file limit, at most
  `MAX_CONNECTIONS`): at the cap, a new connection pushes out the oldest one that has no request
  in progress, first one that never sent a byte (and has none waiting to be read: a client whose
  request is already in the socket is never taken for half-open, even in a burst of accepts), then
  one with unfinished headers, then one idle between requests; with every connection busy the new
  one is closed. A client that sends its request at once is served whatever an attacker holds;
- closes a connection whose request headers are not complete `HEADER_TIMEOUT` seconds after it
  opened (or after it went idle and started a new request): no slowloris.
Idle keep-alive connections are closed by uvicorn after `IDLE_TIMEOUT`. Requests that fail the
Host/Origin/token checks are answered before their body is read, with `Connection: close`.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 128
HEADER_TIMEOUT = 10.0
IDLE_TIMEOUT = 5


def connection_limit(maximum: int = MAX_CONNECTIONS) -> int:
    """At most `maximum`, and at most a quarter of the soft open-file limit (the rest is the app's)."""
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (ImportError, OSError, ValueError):  # Windows: no such limit
        return maximum
    if soft == getattr(resource, "RLIM_INFINITY", -1) or soft <= 0:
        return maximum
    return max(4, min(maximum, soft // 4))


def _idle(protocol: Any) -> bool:
    """No request in progress: none yet, or the last one answered."""
    cycle = getattr(protocol, "cycle", None)
    return cycle is None or bool(getattr(cycle, "response_complete", False))


def _pending(protocol: Any) -> int:
    """Bytes waiting in the connection's socket, not yet read by the loop (0 when unknown)."""
    try:
        import fcntl
        import termios
    except ImportError:  # Windows
        return 0
    sock = protocol.transport.get_extra_info("socket")
    if sock is None:
        return 0
    try:
        buf = fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
    except OSError:
        return 0
    return int.from_bytes(buf, sys.byteorder, signed=True)


class ConnectionGuard:
    """The open connections of one endpoint, oldest first; see the module docstring."""

    def __init__(self, limit: int | None = None, header_timeout: float = HEADER_TIMEOUT) -> None:
        self.limit = limit if limit is not None else connection_limit()
        self.header_timeout = header_timeout
        self._open: dict[Any, None] = {}
        self.pushed_out = 0
        self.refused = 0
        self.timed_out = 0

    @property
    def backlog(self) -> int:
        """How many connections asyncio accepts in one go before any of them reaches the guard (uvicorn's
        `backlog`): kept small, so a burst cannot take the descriptors first."""
        return max(4, min(32, self.limit // 2))

    listen_queue = 4096
    """The kernel's queue of connections not yet accepted (they cost the app no descriptor): long, so
    that a burst of connections does not make the kernel drop a client's SYN (a 1 s retry)."""

    @property
    def open(self) -> int:
        return len(self._open)

    def _victim(self) -> Any:
        silent = partial = idle = None
        for p in self._open:
            if not _idle(p):
                continue
            if getattr(p, "cycle", None) is None:
                if not p._seen_bytes and _pending(p) == 0:
                    silent = p
                    break
                partial = partial or (p if not _pending(p) else None)
            else:
                idle = idle or p
        return silent or partial or idle

    def _admit(self, protocol: Any) -> bool:
        if len(self._open) >= self.limit:
            victim = self._victim()
            if victim is None:
                self.refused += 1
                protocol.transport.close()
                return False
            del self._open[victim]
            self.pushed_out += 1
            if self.pushed_out in (1, 10, 100, 1000) or self.pushed_out % 10000 == 0:
                log.warning("HTTP endpoint: %d connections open (the limit); %d idle ones closed so far",
                            self.limit, self.pushed_out)
            victim.transport.close()
        self._open[protocol] = None
        return True

    def protocol(self) -> type[asyncio.Protocol]:
        """uvicorn's HTTP protocol class, bound to this guard."""
        from uvicorn.protocols.http.auto import AutoHTTPProtocol

        guard = self

        class GuardedProtocol(AutoHTTPProtocol):  # type: ignore[misc, valid-type]
            _header_timer: asyncio.TimerHandle | None = None
            _seen_bytes = False

            def connection_made(self, transport: Any) -> None:
                super().connection_made(transport)
                if guard._admit(self):
                    self._arm()

            def data_received(self, data: bytes) -> None:
                if self._header_timer is None and _idle(self):
                    self._arm()  # a new request on a kept-alive connection: its headers get the same time
                self._seen_bytes = True
                super().data_received(data)

            def connection_lost(self, exc: Exception | None) -> None:
                guard._open.pop(self, None)
                if self._header_timer is not None:
                    self._header_timer.cancel()
                    self._header_timer = None
                super().connection_lost(exc)

            def _arm(self) -> None:
                self._header_timer = asyncio.get_running_loop().call_later(guard.header_timeout, self._expire)

            def _expire(self) -> None:
                self._header_timer = None
                if _idle(self) and not self.transport.is_closing():
                    guard.timed_out += 1
                    self.transport.close()

        return GuardedProtocol
