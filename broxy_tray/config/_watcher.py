"""Notice saves of `mcp.json`, whatever way the editor saves.

watchdog watches the file's *directory* (editors save by rename, by
write-in-place, by delete-and-recreate, vim by a backup dance), and every
event that names the file as source or destination counts. Events arrive on
watchdog's thread; they are handed to the asyncio loop and debounced there,
so a burst of events from one save produces one callback. When the config
is a symlink, the target's directory is watched too.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Callable

log = logging.getLogger(__name__)

DEFAULT_DEBOUNCE = 0.08  # seconds of quiet after the last event
DEFAULT_MAX_DELAY = 1.0  # a never-ending burst still reloads at least this often


class ConfigWatcher:
    """Calls `on_change()` on the loop after the watched file settles."""

    def __init__(
        self,
        path: Path,
        on_change: Callable[[], None],
        loop: asyncio.AbstractEventLoop,
        *,
        debounce: float = DEFAULT_DEBOUNCE,
        max_delay: float = DEFAULT_MAX_DELAY,
    ) -> None:
        self._path = Path(os.path.abspath(path))
        self._on_change = on_change
        self._loop = loop
        self._debounce = debounce
        self._max_delay = max_delay
        self._observer = None
        self._timer: asyncio.TimerHandle | None = None
        self._burst_started: float | None = None
        self._names: set[str] = set()

    def start(self) -> None:
        """Start watching; falls back to polling when inotify cannot be used."""
        from watchdog.observers import Observer

        self._names = _watched_names(self._path)
        dirs = {os.path.dirname(n) for n in self._names}
        try:
            self._observer = self._schedule(Observer(), dirs)
        except OSError as e:  # e.g. inotify watch limit reached
            from watchdog.observers.polling import PollingObserver

            log.warning("file watching unavailable (%s); polling %s every second instead", e, self._path)
            self._observer = self._schedule(PollingObserver(timeout=1.0), dirs)

    def _schedule(self, observer, dirs: set[str]):  # type: ignore[no-untyped-def]
        handler = _Handler(self)
        for d in sorted(dirs):
            if os.path.isdir(d):
                observer.schedule(handler, d, recursive=False)
            else:
                log.warning("cannot watch %s: directory does not exist", d)
        observer.daemon = True
        observer.start()
        return observer

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
            self._observer = None

    def matches(self, *paths: str) -> bool:
        return any(p and os.path.abspath(p) in self._names for p in paths)

    # --- called on watchdog's thread ---
    def _event(self) -> None:
        try:
            self._loop.call_soon_threadsafe(self._poke)
        except RuntimeError:
            pass  # loop already closed during shutdown

    # --- called on the loop ---
    def _poke(self) -> None:
        now = self._loop.time()
        if self._burst_started is None:
            self._burst_started = now
        if self._timer is not None:
            self._timer.cancel()
        fire_at = min(now + self._debounce, self._burst_started + self._max_delay)
        self._timer = self._loop.call_at(fire_at, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._burst_started = None
        # the file may have become a (new) symlink: keep matching its target
        self._names |= _watched_names(self._path)
        self._on_change()


def _watched_names(path: Path) -> set[str]:
    names = {str(path)}
    real = os.path.realpath(path)
    if real != str(path):
        names.add(real)
    return names


class _Handler:
    """A minimal watchdog handler: any event naming the file pokes the watcher."""

    def __init__(self, watcher: ConfigWatcher) -> None:
        self._watcher = watcher

    def dispatch(self, event) -> None:  # type: ignore[no-untyped-def]
        if event.is_directory or event.event_type in ("opened", "closed_no_write"):
            return
        src = os.fsdecode(event.src_path)
        dest = os.fsdecode(getattr(event, "dest_path", "") or "")
        if self._watcher.matches(src, dest):
            self._watcher._event()
