"""Simulated time for an asyncio loop: a week of timers runs in seconds.

This is a fake clock because no real one can make a week pass in a test. The
code under test is unchanged: its timers are asyncio's (`loop.time()`, the
monotonic clock), and its wall clock is injected (`VirtualClock.wall`).

`run(main, clock)` runs a coroutine on a fresh selector loop whose `time()`
is `clock.now` and whose selector, when nothing is ready, jumps `clock.now`
to the next timer instead of waiting. `clock.suspend(s)` is a machine sleep:
the wall clock moves on, the monotonic clock (and every timer) does not.
Only in-process I/O may run on such a loop (no sockets, no threads), e.g.
`AuthServer.transport()` and `MemoryStore`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


class Deadlock(RuntimeError):
    """Every task waits and no timer is due: simulated time can never move on."""


class VirtualClock:
    def __init__(self, epoch: float = 1_800_000_000.0) -> None:
        self.epoch = epoch
        self.now = 0.0  # the loop's (monotonic) time
        self.asleep = 0.0  # total simulated machine sleep

    def wall(self) -> float:
        return self.epoch + self.now + self.asleep

    def suspend(self, seconds: float) -> None:
        """The machine sleeps `seconds`: wall time passes, timers do not run."""
        self.asleep += seconds


class _Selector:
    def __init__(self, inner: Any, clock: VirtualClock) -> None:
        self._inner = inner
        self._clock = clock

    def select(self, timeout: float | None = None) -> Any:
        events = self._inner.select(0)
        if events:
            return events
        if timeout is None:
            raise Deadlock("every task waits and no timer is scheduled")
        if timeout > 0:
            self._clock.now += timeout
        return []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def run(main: Callable[[], Awaitable[T]], clock: VirtualClock) -> T:
    loop = asyncio.SelectorEventLoop()
    loop.time = lambda: clock.now  # type: ignore[method-assign]
    loop._selector = _Selector(loop._selector, clock)  # type: ignore[attr-defined]  # noqa: SLF001
    try:
        return loop.run_until_complete(main())
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
