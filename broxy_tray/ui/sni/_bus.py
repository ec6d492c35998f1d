"""Where the session bus is, and a quick synchronous probe for the StatusNotifierWatcher.

The probe runs before the app starts (to choose a tray backend) and in
`doctor`, so it has its own short-lived loop in a worker thread: callers may
or may not be inside a running asyncio loop.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import threading
from dataclasses import dataclass
from typing import Any, Mapping

WATCHER = "org.kde.StatusNotifierWatcher"
WATCHER_PATH = "/StatusNotifierWatcher"
DBUS = "org.freedesktop.DBus"
DBUS_PATH = "/org/freedesktop/DBus"
CALL_TIMEOUT = 5.0


def session_bus_address(environ: Mapping[str, str] | None = None) -> str | None:
    """`DBUS_SESSION_BUS_ADDRESS`, else systemd's `$XDG_RUNTIME_DIR/bus`, else None (no session bus)."""
    env = os.environ if environ is None else environ
    address = env.get("DBUS_SESSION_BUS_ADDRESS", "").strip()
    if address:
        return address
    runtime = env.get("XDG_RUNTIME_DIR", "")
    if runtime and os.path.exists(os.path.join(runtime, "bus")):
        return f"unix:path={os.path.join(runtime, 'bus')}"
    return None


@dataclass(frozen=True)
class WatcherProbe:
    owner: str | None  # the unique name owning org.kde.StatusNotifierWatcher, None when nobody does
    error: str = ""  # why the bus could not be asked ('' when it answered)
    owner_pid: int | None = None

    def describe(self) -> str:
        """`:1.12 (xfce4-panel, pid 4242)` — which program is the panel, for bug reports."""
        if not self.owner:
            return "none"
        if self.owner_pid is None:
            return self.owner
        try:
            with open(f"/proc/{self.owner_pid}/comm", encoding="utf-8") as f:
                program = f.read().strip()
        except OSError:
            program = "?"
        return f"{self.owner} ({program}, pid {self.owner_pid})"


class _SendOrWait:
    """A socket whose `send`/`sendmsg` report "0 bytes sent" instead of raising when the buffer is full.

    dbus-fast's asyncio writer treats EAGAIN from a non-blocking send as a lost
    connection and drops the bus (python-dbus-next#153, still in dbus-fast 5):
    a panel reading slowly while we answer a burst of icon requests would make
    the tray icon vanish. Returning 0 makes the writer keep the rest of the
    message and wait for the socket to become writable, which is what it does
    after a short write anyway.
    """

    def __init__(self, sock: Any) -> None:
        self._sock = sock

    def send(self, data: Any, *args: Any) -> int:
        try:
            return int(self._sock.send(data, *args))
        except (BlockingIOError, InterruptedError):
            return 0

    def sendmsg(self, buffers: Any, *args: Any) -> int:
        try:
            return int(self._sock.sendmsg(buffers, *args))
        except (BlockingIOError, InterruptedError):
            return 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


async def connect(address: str) -> Any:
    """A connected dbus-fast `MessageBus` that survives a full socket buffer (see `_SendOrWait`)."""
    from dbus_fast.aio import MessageBus

    bus = await asyncio.wait_for(MessageBus(bus_address=address).connect(), CALL_TIMEOUT)
    writer = getattr(bus, "_writer", None)
    if writer is not None and hasattr(writer, "sock") and not isinstance(writer.sock, _SendOrWait):
        writer.sock = _SendOrWait(writer.sock)
    return bus


async def name_owner(bus: Any, name: str) -> str | None:
    """The unique name owning `name` on `bus`, or None."""
    from dbus_fast import Message, MessageType

    reply = await asyncio.wait_for(bus.call(Message(destination=DBUS, path=DBUS_PATH, interface=DBUS,
                                                    member="GetNameOwner", signature="s", body=[name])),
                                   CALL_TIMEOUT)
    if reply.message_type == MessageType.ERROR:
        return None
    return str(reply.body[0])


async def _with_pid(bus: Any, owner: str | None) -> WatcherProbe:
    from dbus_fast import Message, MessageType

    if not owner:
        return WatcherProbe(None)
    try:
        reply = await asyncio.wait_for(bus.call(Message(destination=DBUS, path=DBUS_PATH, interface=DBUS,
                                                        member="GetConnectionUnixProcessID", signature="s",
                                                        body=[owner])), CALL_TIMEOUT)
    except Exception:
        return WatcherProbe(owner)
    pid = int(reply.body[0]) if reply.message_type != MessageType.ERROR and reply.body else None
    return WatcherProbe(owner, owner_pid=pid)


async def _probe(address: str, wait: float) -> WatcherProbe:
    from dbus_fast import Message

    bus = await connect(address)
    try:
        owner = await name_owner(bus, WATCHER)
        if owner or wait <= 0:
            return await _with_pid(bus, owner)
        appeared: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        def on_message(msg: Any) -> None:
            if (msg.member == "NameOwnerChanged" and msg.body and msg.body[0] == WATCHER and msg.body[2]
                    and not appeared.done()):
                appeared.set_result(msg.body[2])

        bus.add_message_handler(on_message)
        rule = f"type='signal',sender='{DBUS}',member='NameOwnerChanged',arg0='{WATCHER}'"
        await asyncio.wait_for(bus.call(Message(destination=DBUS, path=DBUS_PATH, interface=DBUS, member="AddMatch",
                                                signature="s", body=[rule])), CALL_TIMEOUT)
        owner = await name_owner(bus, WATCHER)  # it may have appeared before the match rule was in place
        if owner:
            return await _with_pid(bus, owner)
        try:
            return await _with_pid(bus, await asyncio.wait_for(appeared, wait))
        except asyncio.TimeoutError:
            return WatcherProbe(None)
    finally:
        bus.disconnect()
        try:  # let dbus-fast see the EOF and close its socket on this loop, not in a later GC on another thread
            await asyncio.wait_for(asyncio.shield(bus.wait_for_disconnect()), 1)
        except BaseException:
            pass


def probe_watcher(environ: Mapping[str, str] | None = None, wait: float = 0.0) -> WatcherProbe:
    """Ask the session bus who owns the StatusNotifierWatcher, waiting up to `wait` s for one to appear."""
    address = session_bus_address(environ)
    if address is None:
        return WatcherProbe(None, "no session bus (DBUS_SESSION_BUS_ADDRESS is unset)")
    try:  # a missing or broken install: say so, do not crash
        importlib.import_module("dbus_fast.aio")
    except Exception as e:
        return WatcherProbe(None, f"dbus-fast is not importable ({type(e).__name__}: {e})")
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = asyncio.run(_probe(address, wait))
        except BaseException as e:  # reported, not raised
            box["error"] = e

    t = threading.Thread(target=run, name="sni-probe", daemon=True)
    t.start()
    t.join(wait + 2 * CALL_TIMEOUT + 1)
    if t.is_alive():
        return WatcherProbe(None, "the session bus did not answer")
    if "error" in box:
        e = box["error"]
        return WatcherProbe(None, f"cannot reach the session bus ({type(e).__name__}: {e or 'no answer'})")
    return box["value"]  # type: ignore[no-any-return]
