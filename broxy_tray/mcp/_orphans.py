"""No stdio server outlives the app: the watchdog process, and reaping after a crashed run.

`guard_children(prefix)` (called once by the CLI, under the instance lock) first ends the process
groups a previous run left behind (listed in `<prefix>.*.groups` by its watchdog), then starts this
run's watchdog (`_watchdog.py`). `StdioTransport` reports each server it starts and stops through
`track()` / `untrack()`; without a guard (tests, the probe, Windows) those do nothing.

Why a watchdog process rather than PR_SET_PDEATHSIG alone: the death signal reaches only the
direct child, never the grandchildren in its group, and it cannot be set through asyncio's
subprocess API without a `preexec_fn`.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

log = logging.getLogger(__name__)

_SCRIPT = Path(__file__).with_name("_watchdog.py")


class ChildGuard:
    """This run's watchdog: a pipe to it, and the process for `close()`."""

    def __init__(self, prefix: Path) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-I", str(_SCRIPT), str(prefix)],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            cwd="/", start_new_session=True,  # outside the app's group: a Ctrl-C or group kill spares it
        )
        assert self._proc.stdin is not None
        self._fd = self._proc.stdin.fileno()
        os.set_blocking(self._fd, False)  # a stuck watchdog must never block the loop

    @property
    def pid(self) -> int:
        return self._proc.pid

    def _send(self, line: str) -> None:
        try:
            os.write(self._fd, line.encode())
        except OSError:  # watchdog gone (its groups stay in the state file) or pipe full
            pass

    def close(self, timeout: float = 5.0) -> None:
        """EOF to the watchdog: it ends any group still listed (normally none), removes its file, exits."""
        if self._proc.stdin is not None:
            try:
                self._proc.stdin.close()
            except OSError:
                pass
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("the orphan watchdog (pid %d) did not exit", self._proc.pid)


_guard: ChildGuard | None = None


def guard_children(prefix: Path) -> ChildGuard | None:
    """Reap what a crashed run left, then start the watchdog (POSIX only). `prefix`: unique per config."""
    global _guard
    if os.name != "posix":
        return None
    from ._watchdog import reap_state_files

    prefix.parent.mkdir(parents=True, exist_ok=True)
    reaped = reap_state_files(prefix)
    if reaped:
        log.warning("ended %d server process%s left running by a previous run that did not exit cleanly",
                    reaped, "" if reaped == 1 else "es")
    try:
        _guard = ChildGuard(prefix)
    except OSError as e:
        log.warning("no orphan watchdog (%s): servers may outlive a crash of the app", e.strerror or e)
        _guard = None
    return _guard


def release_children() -> None:
    global _guard
    guard, _guard = _guard, None
    if guard is not None:
        guard.close()


def track(pid: int) -> None:
    """A server's process group (led by `pid`) started."""
    if _guard is not None:
        _guard._send(f"+{pid}\n")


def untrack(pid: int) -> None:
    """That group was stopped."""
    if _guard is not None:
        _guard._send(f"-{pid}\n")
