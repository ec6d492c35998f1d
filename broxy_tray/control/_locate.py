"""Finding the running app for a config from any environment.

The app records its control socket in its instance lock file (see
`broxy_tray._instance`); that record wins over the path this process would
derive from its own environment (`XDG_RUNTIME_DIR` differs or is missing
when an MCP client starts `broxy-tray stdio`). The derived path is still
tried second: an app that holds no lock (tests run one in-process) or an
older app that records nothing.

A running app that does not answer is reported in one line naming the
process, the config and the socket, within `CONNECT_TIMEOUT`, never as
"not running" (which would make a bridge start a second app).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._instance import Instance
from ._client import ControlConnection, NotRunning
from ._paths import control_path
from ._protocol import ControlError

CONNECT_TIMEOUT = 1.5
"""Seconds to connect to a socket: a Unix socket connect is instant unless its backlog is full (a hung app)."""


class Unreachable(ControlError):
    """The app for a config is running (it holds the lock) but its control socket does not answer."""

    def __init__(self, message: str, instance: Instance) -> None:
        super().__init__(message)
        self.instance = instance


@dataclass(frozen=True)
class Location:
    config: Path
    instance: Instance
    paths: tuple[Path, ...]  # sockets to try, in order
    derived_error: str | None = None  # why this environment has no socket path of its own (if so)

    @property
    def socket(self) -> Path | None:
        """The socket to name in messages: the recorded one, else the derived one."""
        return self.paths[0] if self.paths else None

    def unreachable(self, reason: str) -> str:
        inst = self.instance
        where = self.socket or "(none recorded yet)"
        return (f"broxy-tray is running for {self.config} (process {inst.pid}), "
                f"but its control socket {where} does not answer ({reason})")


def locate(config: Path, lock_directory: Path | None = None) -> Location:
    """Read the lock file and work out which sockets to try; no connection is made."""
    instance = Instance.read(config, lock_directory)
    paths: list[Path] = []
    if instance.socket:
        paths.append(Path(instance.socket))
    derived_error = None
    try:
        derived = control_path(config)
    except ControlError as e:
        derived_error = str(e)
    else:
        if derived not in paths:
            paths.append(derived)
    return Location(config, instance, tuple(paths), derived_error)


async def connect(location: Location, timeout: float = CONNECT_TIMEOUT) -> ControlConnection:
    """A connection to the app of `location`.

    Raises `Unreachable` when the app runs (lock held, socket recorded) but no socket answers,
    `NotRunning` when no app runs and nothing listens, `ControlError` otherwise.
    """
    last: ControlError | None = None
    for path in location.paths:
        try:
            return await ControlConnection.open(path, timeout)
        except ControlError as e:
            last = e
    inst = location.instance
    reason = _reason(last) if last is not None else (location.derived_error or "no socket path")
    if inst.running and inst.socket:
        raise Unreachable(location.unreachable(reason), inst)
    if isinstance(last, NotRunning) or last is None:
        if last is None and location.derived_error:
            raise ControlError(location.derived_error)
        raise NotRunning(location.socket or "(no socket)", reason)
    raise last


async def request(config: Path, message: dict[str, Any], timeout: float) -> dict[str, Any]:
    """One control request to the app running for `config`, wherever it was started."""
    conn = await connect(locate(config))
    try:
        return await conn.call(message, timeout)
    finally:
        await conn.close()


def _reason(e: ControlError) -> str:
    text = str(e)
    if isinstance(e, NotRunning) and "(" in text:
        return text[text.rfind("(") + 1:].rstrip(")") or "nothing listens"
    return text
