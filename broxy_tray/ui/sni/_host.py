"""Our end of the tray protocol: a session-bus connection that exports the item and its menu,
owns `org.kde.StatusNotifierItem-PID-1`, and keeps it registered with whichever
StatusNotifierWatcher runs — now, later, or after the panel restarted.

Registration follows `NameOwnerChanged` for `org.kde.StatusNotifierWatcher`:
a new owner (a panel started or restarted) gets a fresh
`RegisterStatusNotifierItem`; an owner leaving is logged and waited out.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any, Callable

from ._bus import CALL_TIMEOUT, DBUS, DBUS_PATH, WATCHER, WATCHER_PATH, connect, name_owner, session_bus_address
from ._dbusmenu import DbusMenu
from ._item import ITEM_PATH, MENU_PATH, StatusNotifierItem

log = logging.getLogger(__name__)


class SniUnavailable(Exception):
    """The item could not be put on the session bus (the message says why)."""


class SniHost:
    def __init__(self, item: StatusNotifierItem, menu: DbusMenu, *,
                 on_registered: Callable[[str], None] | None = None,
                 on_disconnect: Callable[[], None] | None = None) -> None:
        self.item = item
        self.menu = menu
        self.name = f"org.kde.StatusNotifierItem-{os.getpid()}-1"
        self.watcher_owner: str | None = None
        self.registered_with: str | None = None
        self._on_registered = on_registered
        self._on_disconnect = on_disconnect
        self._bus: Any = None
        self._closing = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, address: str | None = None) -> None:
        from dbus_fast import Message, NameFlag, RequestNameReply

        address = address or session_bus_address()
        if address is None:
            raise SniUnavailable("no session bus (DBUS_SESSION_BUS_ADDRESS is unset)")
        try:
            bus = await connect(address)
        except Exception as e:
            raise SniUnavailable(f"cannot connect to the session bus: {type(e).__name__}: {e}") from None
        self._bus = bus
        bus.export(ITEM_PATH, self.item)
        bus.export(MENU_PATH, self.menu)
        bus.add_message_handler(self._on_message)
        rule = f"type='signal',sender='{DBUS}',member='NameOwnerChanged',arg0='{WATCHER}'"
        await self._call(Message(destination=DBUS, path=DBUS_PATH, interface=DBUS, member="AddMatch",
                                 signature="s", body=[rule]))
        reply = await asyncio.wait_for(bus.request_name(self.name, NameFlag.DO_NOT_QUEUE), CALL_TIMEOUT)
        if reply not in (RequestNameReply.PRIMARY_OWNER, RequestNameReply.ALREADY_OWNER):
            raise SniUnavailable(f"cannot own {self.name} on the session bus ({reply.name})")
        self._watch_disconnect()
        self.watcher_owner = await name_owner(bus, WATCHER)
        if self.watcher_owner:
            await self.register()
        else:
            log.info("no StatusNotifierWatcher on the session bus yet; the icon appears when a panel starts one")

    async def register(self) -> bool:
        """Register with the current watcher; False (logged) when it refuses or does not answer."""
        from dbus_fast import Message, MessageType

        owner = self.watcher_owner
        try:
            reply = await self._call(Message(destination=WATCHER, path=WATCHER_PATH, interface=WATCHER,
                                             member="RegisterStatusNotifierItem", signature="s", body=[self.name]))
        except Exception as e:
            log.warning("could not register the tray icon with the StatusNotifierWatcher: %s", e or type(e).__name__)
            return False
        if reply.message_type == MessageType.ERROR:
            log.warning("the StatusNotifierWatcher refused the tray icon: %s %s", reply.error_name,
                        reply.body[0] if reply.body else "")
            return False
        self.registered_with = owner
        log.info("tray icon registered with the StatusNotifierWatcher (%s) as %s", owner, self.name)
        if self._on_registered is not None:
            self._on_registered(owner or "")
        return True

    def _on_message(self, msg: Any) -> None:
        if msg.member != "NameOwnerChanged" or msg.interface != DBUS or not msg.body or msg.body[0] != WATCHER:
            return None
        new_owner = msg.body[2]
        self.watcher_owner = new_owner or None
        if new_owner:
            log.info("a StatusNotifierWatcher appeared (%s); registering the tray icon", new_owner)
            self._spawn(self.register())
        else:
            self.registered_with = None
            log.info("the StatusNotifierWatcher left the bus (panel restarting?); waiting for a new one")
        return None

    def _watch_disconnect(self) -> None:
        async def wait() -> None:
            try:
                await self._bus.wait_for_disconnect()
            except Exception as e:
                log.debug("session bus: %s", e)
            if not self._closing:
                log.error("lost the session bus connection; the tray icon is gone")
                if self._on_disconnect is not None:
                    self._on_disconnect()

        self._spawn(wait())

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _call(self, msg: Any) -> Any:
        return await asyncio.wait_for(self._bus.call(msg), CALL_TIMEOUT)

    async def close(self) -> None:
        """Leave the bus (the watcher drops the item when our name goes) and end our tasks."""
        self._closing = True
        if self._bus is not None:
            try:
                self._bus.disconnect()
            except Exception:
                log.debug("disconnect failed", exc_info=True)
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=2)  # the disconnect watcher ends by itself
        for t in list(self._tasks):
            t.cancel()
        self._bus = None
