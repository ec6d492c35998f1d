"""The background half of one server's token lifecycle: a small explicit state machine.

    IDLE ──token──▶ WAITING ──due──▶ REFRESHING ──ok──▶ WAITING
                       ▲                 │
                       │           transient fault
                       └──retry time── BACKOFF (1, 2, 4 … s, jitter, ≤ 5 min)
    REFRESHING ──invalid_grant / invalid_client──▶ REFUSED (the access token is used until it
                                                   expires; the next request then signs in)
    any ──stop()──▶ STOPPED

Expiry is wall-clock time (`wall`, tokens carry absolute times); the waits
are asyncio timers, i.e. the monotonic clock, which stands still while the
machine sleeps. So a wait never lasts longer than `NAP` before the wall
clock is read again: after a resume a due token is refreshed within `NAP`,
or at once when a request nudges (`nudge()`), and only once — the refresh
is the server's single flight (`ServerAuth.refresh_now`). Requests never
wait here: they use the valid token while this task refreshes.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ._errors import AuthError
from ._schedule import refresh_due_at, retry_delay
from ._tokens import TokenError

if TYPE_CHECKING:
    from ._signin import ServerAuth

log = logging.getLogger(__name__)

NAP = 60.0  # longest timer before the wall clock is read again (the machine may have slept)
RESUME_JUMP = 30.0  # wall clock ahead of the monotonic clock by more than this: we slept


class Phase(enum.Enum):
    IDLE = "idle"  # no token that can be refreshed
    WAITING = "waiting"  # until the token is due
    REFRESHING = "refreshing"
    BACKOFF = "backoff"  # after a transient failure
    REFUSED = "refused"  # the refresh token is dead; the access token lasts until it expires
    STOPPED = "stopped"


class TokenLifecycle:
    """Keeps one server's token fresh in the background. Use from one event loop."""

    def __init__(
        self,
        auth: ServerAuth,
        *,
        wall: Callable[[], float] = time.time,
        rng: Callable[[], float] = random.random,
        nap: float = NAP,
    ) -> None:
        self._auth = auth
        self._wall = wall
        self._rng = rng
        self._nap_max = nap
        self.phase = Phase.IDLE
        self.attempt = 0  # consecutive transient failures
        self.retry_at: float | None = None  # loop time of the next retry while in BACKOFF
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Future[None] | None = None
        self._nudged = False

    @property
    def server_id(self) -> str:
        return self._auth.settings.server_id

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"auth-refresh:{self.server_id}")

    def stop(self) -> None:
        """Stop scheduling refreshes (one already in flight belongs to the ServerAuth and goes on)."""
        self.phase = Phase.STOPPED
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def nudge(self) -> None:
        """Look at the token again now: a new token arrived, or a request found it due."""
        if self.phase is Phase.BACKOFF:
            return  # a request does not cut a backoff short; the valid token is used meanwhile
        self._nudged = True
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    async def _run(self) -> None:
        auth = self._auth
        while True:
            tokens = await auth.tokens()
            if tokens is None or tokens.expires_at is None or not tokens.refresh_token:
                self.phase = Phase.REFUSED if self.phase is Phase.REFUSED and tokens is not None else Phase.IDLE
                await self._sleep(None)
                continue
            now = self._wall()
            due = refresh_due_at(tokens)
            if now < due:
                self.phase = Phase.WAITING
                await self._sleep(due - now)
                continue
            self.phase = Phase.REFRESHING
            try:
                await auth.refresh_now()
            except TokenError as e:
                if not e.transient:
                    log.info("%s: refresh refused (%s); the current token is used until it expires",
                             self.server_id, e.error or e)
                    self.phase = Phase.REFUSED
                    self.attempt = 0
                    continue
                self._back_off(e)
            except AuthError as e:
                self._back_off(e)
            else:
                self.attempt = 0
                continue
            delay = retry_delay(self.attempt - 1, self._rng)
            self.retry_at = asyncio.get_running_loop().time() + delay
            await self._sleep(delay, interruptible=False)
            self.retry_at = None

    def _back_off(self, error: AuthError) -> None:
        self.phase = Phase.BACKOFF
        self.attempt += 1
        log.info("%s: refresh failed (%s); retry %d follows", self.server_id, error, self.attempt)

    async def _sleep(self, seconds: float | None, *, interruptible: bool = True) -> None:
        """Wait `seconds` (None: until nudged) in naps of at most `NAP`, reading the wall clock after each."""
        loop = asyncio.get_running_loop()
        end = None if seconds is None else loop.time() + seconds
        while True:
            if interruptible and self._nudged:
                self._nudged = False
                return
            left = None if end is None else end - loop.time()
            if left is not None and left <= 0:
                return
            wall0, mono0 = self._wall(), loop.time()
            nap = self._nap_max if left is None else min(left, self._nap_max)
            self._wake = loop.create_future()
            timer = loop.call_later(nap, _settle, self._wake)
            try:
                await self._wake
            finally:
                timer.cancel()
                self._wake = None
            jump = (self._wall() - wall0) - (loop.time() - mono0)
            if jump > RESUME_JUMP:
                log.info("%s: the wall clock moved %.0f s ahead of the timers (resumed from sleep?)",
                         self.server_id, jump)
                if interruptible:
                    return  # due times are wall-clock times: look again now
                if end is not None:
                    end -= jump  # a backoff counts the time asleep too


def _settle(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
