"""Per-server log budgets: a misbehaving server cannot flood the log (or the app's stderr).

A server that writes thousands of lines a second (on stderr, or junk on stdout) would
otherwise rotate the whole log away within seconds and cost the app a core; each kind of
per-line warning gets a token bucket per server, kept across the server's restarts.
"""

from __future__ import annotations

import logging
import math
import time

LOG_PER_SECOND = 1.0
"""Lines per second a budget refills (after its burst)."""

REPORT_EVERY = 60.0
"""Seconds between two "N lines not logged" lines of one budget."""


class LogBudget:
    """A token bucket of log lines. Dropped lines are counted and reported in one line when
    the budget allows again (at most once every `REPORT_EVERY`), so the log says something
    was left out."""

    def __init__(self, log: logging.Logger, what: str, burst: int) -> None:
        self._log = log
        self._what = what
        self._burst = float(burst)
        self._tokens = float(burst)
        self._last = time.monotonic()
        self._dropped = 0
        self._reported = -math.inf

    def take(self, n: int = 1) -> int:
        """How many of `n` lines may be logged now."""
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._last) * LOG_PER_SECOND)
        self._last = now
        if self._dropped and self._tokens >= 1 and now - self._reported >= REPORT_EVERY:
            self._tokens -= 1
            self._reported = now
            self._log.warning("%s: %d lines not logged (more than %g lines/s)", self._what, self._dropped,
                              LOG_PER_SECOND)
            self._dropped = 0
        allowed = min(n, int(self._tokens))
        self._tokens -= allowed
        self._dropped += n - allowed
        return allowed


_budgets: dict[tuple[str, str], LogBudget] = {}


def budget(log: logging.Logger, what: str, burst: int) -> LogBudget:
    """The budget for `what` on `log` (one logger per server), created on first use."""
    key = (log.name, what)
    found = _budgets.get(key)
    if found is None:
        found = _budgets[key] = LogBudget(log, what, burst)
    return found
