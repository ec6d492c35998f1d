"""One running instance per config file.

An OS-level lock (flock / msvcrt) on a file named after the config path:
the kernel releases it when the process dies, so a killed instance never
leaves a stale lock behind. The holder writes its PID into the file so a
second instance can say who is running.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


class AlreadyRunning(Exception):
    def __init__(self, pid: int | None, config_path: Path) -> None:
        who = f"process {pid}" if pid else "another process"
        super().__init__(f"broxy-tray is already running for {config_path} ({who})")
        self.pid = pid


def lock_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_state_dir("broxy", appauthor=False)) / "instances"


class InstanceLock:
    """Hold with `acquire()`; released by `release()` or by process exit."""

    def __init__(self, config_path: Path, directory: Path | None = None) -> None:
        self.config_path = config_path
        key = hashlib.sha256(os.path.realpath(config_path).encode("utf-8")).hexdigest()[:16]
        self.path = (directory or lock_dir()) / f"{key}.lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            _lock(fd)
        except OSError:
            os.close(fd)
            raise AlreadyRunning(self._holder(), self.config_path) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n{os.path.realpath(self.config_path)}\n".encode())
        self._fd = fd

    def _holder(self) -> int | None:
        try:
            first = self.path.read_text(encoding="utf-8").split("\n", 1)[0]
            return int(first)
        except (OSError, ValueError):
            return None

    def release(self) -> None:
        if self._fd is not None:
            try:
                os.ftruncate(self._fd, 0)
            except OSError:
                pass
            os.close(self._fd)  # closing drops the lock
            self._fd = None


if os.name == "nt":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _lock(fd: int) -> None:
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)

else:
    import fcntl

    def _lock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
