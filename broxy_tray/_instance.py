"""One running instance per config file, and how any process finds it.

An OS-level lock (flock / msvcrt) on a file named after the config's real
path: the kernel releases it when the process dies, so a killed instance
never leaves a stale lock behind. The holder writes into the file its PID,
the config path and, once its control channel listens, the socket path:

    4242
    /home/u/.config/broxy/mcp.json
    /run/user/1000/broxy/0123456789abcdef.sock

That record is how `broxy-tray stdio`, `status`, `quit`, … reach the app
whatever environment they were started from (an MCP client passes only
HOME and PATH: no XDG_RUNTIME_DIR). The lock directory therefore depends on
HOME alone, never on XDG_STATE_HOME.

A second file, `<key>.start`, serialises starting the app: two bridges
racing to start it start exactly one.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ACQUIRE_RETRY = 1.0
"""Seconds `acquire()` retries a busy lock: a probe (`Instance.read`) holds it shared for microseconds."""


class AlreadyRunning(Exception):
    def __init__(self, pid: int | None, config_path: Path) -> None:
        who = f"process {pid}" if pid else "another process"
        super().__init__(f"broxy-tray is already running for {config_path} ({who})")
        self.pid = pid


def lock_dir() -> Path:
    """Where instance locks live: derived from HOME only, so every environment of one user agrees."""
    if sys.platform.startswith("linux") or "bsd" in sys.platform:
        return Path.home() / ".local" / "state" / "broxy" / "instances"
    import platformdirs  # macOS, Windows: already a function of the home folder / the user profile

    return Path(platformdirs.user_state_dir("broxy", appauthor=False)) / "instances"


def instance_key(config_path: Path | str) -> str:
    return hashlib.sha256(os.path.realpath(config_path).encode("utf-8")).hexdigest()[:16]


_held: dict[str, int] = {}  # real config path -> fd of the lock this process holds


class InstanceLock:
    """Hold with `acquire()`; released by `release()` or by process exit."""

    def __init__(self, config_path: Path, directory: Path | None = None) -> None:
        self.config_path = config_path
        self.path = (directory or lock_dir()) / f"{instance_key(config_path)}.lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        # Busy: another instance, or a bridge probing for a few microseconds: tell them apart by waiting.
        fd = _open_locked(self.path, ACQUIRE_RETRY, 0.02)
        if fd is None:
            raise AlreadyRunning(self._holder(), self.config_path)
        self._fd = fd
        _held[os.path.realpath(self.config_path)] = fd
        _write_record(fd, os.path.realpath(self.config_path), None)

    def _holder(self) -> int | None:
        return Instance.parse(self.path).pid

    def release(self) -> None:
        if self._fd is not None:
            _held.pop(os.path.realpath(self.config_path), None)
            try:
                os.ftruncate(self._fd, 0)
            except OSError:
                pass
            os.close(self._fd)  # closing drops the lock
            self._fd = None


def record_socket(config_path: Path | str, socket_path: Path | str | None) -> bool:
    """Write (or with None clear) the control socket's path into the lock this process holds for `config_path`.

    Returns False when this process holds no lock for it (in-process tests): nothing is written.
    """
    real = os.path.realpath(config_path)
    fd = _held.get(real)
    if fd is None:
        return False
    try:
        _write_record(fd, real, None if socket_path is None else os.fspath(socket_path))
    except OSError:
        return False
    return True


def _write_record(fd: int, real_config: str, socket_path: str | None) -> None:
    data = (f"{os.getpid()}\n{real_config}\n" + (f"{socket_path}\n" if socket_path else "")).encode("utf-8")
    # Empty first, then one write: a reader in between sees no socket ("starting"), never a stale one.
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, data)


@dataclass(frozen=True)
class Instance:
    """What the lock file of a config says: is an app running, which process, where its socket is."""

    lock_path: Path
    running: bool
    pid: int | None = None
    socket: str | None = None  # None while the app is starting (or shutting down): no channel yet

    @classmethod
    def read(cls, config_path: Path | str, directory: Path | None = None) -> "Instance":
        path = (directory or lock_dir()) / f"{instance_key(config_path)}.lock"
        running = _is_locked(path)
        record = cls.parse(path)
        return cls(path, running, record.pid if running else None, record.socket if running else None)

    @classmethod
    def parse(cls, path: Path) -> "Instance":
        try:
            lines = path.read_text(encoding="utf-8").split("\n")
        except (OSError, UnicodeDecodeError):
            return cls(path, False)
        try:
            pid = int(lines[0])
        except ValueError:
            pid = None
        socket = lines[2] if len(lines) > 2 and lines[2] else None
        return cls(path, False, pid, socket)


class StartLock:
    """An exclusive lock held while one process starts the app for a config (`with StartLock(cfg, timeout):`)."""

    def __init__(self, config_path: Path | str, directory: Path | None = None, timeout: float = 40.0) -> None:
        self.path = (directory or lock_dir()) / f"{instance_key(config_path)}.start"
        self.timeout = timeout
        self._fd: int | None = None

    def __enter__(self) -> "StartLock":
        fd = _open_locked(self.path, self.timeout, 0.05)
        if fd is None:
            raise TimeoutError(f"another process has been starting broxy-tray for over {self.timeout:g} s")
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _open_locked(path: Path, timeout: float, interval: float) -> int | None:
    """Open (creating, 0600) and lock `path`, retrying for `timeout` seconds; the fd, or None if still busy."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + timeout
    while True:
        try:
            _lock(fd)
            return fd
        except OSError:
            if time.monotonic() > deadline:
                os.close(fd)
                return None
            time.sleep(interval)


if os.name == "nt":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _lock(fd: int) -> None:
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)

    def _is_locked(path: Path) -> bool:
        try:
            fd = os.open(path, os.O_RDWR)
        except OSError:
            return False
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return True
        else:
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
            return False
        finally:
            os.close(fd)

else:
    import fcntl

    def _lock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def _is_locked(path: Path) -> bool:
        """Is the lock held by a live process? (A shared probe, dropped at once; `acquire` retries past it.)"""
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return True
        finally:
            os.close(fd)  # also drops a shared lock we got
        return False
