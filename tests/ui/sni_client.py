"""A StatusNotifierItem host's view of the tray, over dbus-fast (what a panel does, minus the drawing).

Finds the item through the watcher's RegisteredStatusNotifierItems, reads its
properties, reads the menu with GetLayout, clicks with Event, and records the
signals the item and its menu send (with their arrival times).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from dbus_fast import Message, MessageType, Variant
from dbus_fast.aio import MessageBus

WATCHER = "org.kde.StatusNotifierWatcher"
ITEM = "org.kde.StatusNotifierItem"
MENU = "com.canonical.dbusmenu"
PROPS = "org.freedesktop.DBus.Properties"


class CallError(Exception):
    def __init__(self, name: str, text: str) -> None:
        super().__init__(f"{name}: {text}")
        self.name = name


async def until(pred: Any, timeout: float = 15.0, what: str = "condition", interval: float = 0.05) -> Any:
    """Await until `pred()` (sync or async) is truthy; TimeoutError naming `what` and the last error."""
    end = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < end:
        try:
            v = pred()
            if asyncio.iscoroutine(v):
                v = await v
        except Exception as e:
            last, v = e, None
        if v:
            return v
        await asyncio.sleep(interval)
    raise TimeoutError(f"timed out waiting for {what}" + (f" (last error: {last})" if last else ""))


class SniClient:
    def __init__(self, bus: MessageBus) -> None:
        self.bus = bus
        self.name = ""
        self.path = ""
        self.menu_path = ""
        self.signals: list[tuple[float, str, list[Any]]] = []  # (time.time(), member, body)

    @classmethod
    async def connect(cls, address: str) -> "SniClient":
        bus = await asyncio.wait_for(MessageBus(bus_address=address).connect(), 10)
        return cls(bus)

    def close(self) -> None:
        self.bus.disconnect()

    async def call(self, dest: str, path: str, iface: str, member: str, signature: str = "",
                   body: list[Any] | None = None) -> list[Any]:
        reply = await asyncio.wait_for(self.bus.call(Message(destination=dest, path=path, interface=iface,
                                                             member=member, signature=signature, body=body or [])),
                                       10)
        if reply.message_type == MessageType.ERROR:
            raise CallError(reply.error_name or "?", reply.body[0] if reply.body else "")
        return list(reply.body)

    async def get(self, dest: str, path: str, iface: str, prop: str) -> Any:
        (v,) = await self.call(dest, path, PROPS, "Get", "ss", [iface, prop])
        return v.value

    async def registered(self) -> list[str]:
        return list(await self.get(WATCHER, "/StatusNotifierWatcher", WATCHER, "RegisteredStatusNotifierItems"))

    async def find_item(self, timeout: float = 15.0) -> None:
        """Wait for the tray in the watcher's list; then subscribe to its signals."""
        items = await until(self.registered, timeout, what="the tray's StatusNotifierItem in the watcher")
        name, _, path = items[-1].partition("/")
        self.name, self.path = name, "/" + path
        self.menu_path = await self.item_prop("Menu")
        await self.call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "AddMatch", "s",
                        [f"type='signal',sender='{self.name}'"])
        self.bus.add_message_handler(self._record)

    def _record(self, msg: Message) -> None:
        if msg.message_type == MessageType.SIGNAL and msg.path in (self.path, self.menu_path):
            self.signals.append((time.time(), msg.member, list(msg.body)))

    def seen(self, member: str) -> list[list[Any]]:
        return [body for _, m, body in self.signals if m == member]

    async def item_prop(self, prop: str) -> Any:
        return await self.get(self.name, self.path, ITEM, prop)

    async def menu(self, member: str, signature: str = "", body: list[Any] | None = None) -> list[Any]:
        return await self.call(self.name, self.menu_path, MENU, member, signature, body)

    async def layout(self, parent: int = 0, depth: int = -1, names: list[str] | None = None) -> tuple[int, Any]:
        revision, tree = await self.menu("GetLayout", "iias", [parent, depth, names or []])
        return revision, tree

    async def items(self) -> list[dict[str, Any]]:
        """The top level as dicts: id, label (mnemonics undone), props, children (same shape); separators kept."""
        _, root = await self.layout()
        return _convert(root)

    async def labels(self) -> list[str]:
        return [i["label"] for i in await self.items() if i["props"].get("type") != "separator"]

    async def item(self, *path: str) -> dict[str, Any]:
        level = await self.items()
        found: dict[str, Any] | None = None
        for part in path:
            found = next((i for i in level if i["label"].startswith(part)), None)
            if found is None:
                raise KeyError(f"{part!r} not in {[i['label'] for i in level]}")
            level = found["children"]
        assert found is not None
        return found

    async def click(self, *path: str) -> None:
        nid = (await self.item(*path))["id"]
        await self.menu("Event", "isvu", [nid, "clicked", Variant("i", 0), 0])

    async def wait_label(self, prefix: str, timeout: float = 15.0) -> str:
        async def hit() -> str | None:
            return next((lb for lb in await self.labels() if lb.startswith(prefix)), None)

        return await until(hit, timeout, what=f"a menu line starting {prefix!r}")


def unmnemonic(label: str) -> str:
    return label.replace("__", "\0").replace("_", "").replace("\0", "_")


def _convert(node: Any) -> list[dict[str, Any]]:
    out = []
    for child in node[2]:
        cid, props, _ = child.value
        plain = {k: v.value for k, v in props.items()}
        out.append({"id": cid, "label": unmnemonic(plain.get("label", "")), "props": plain,
                    "children": _convert(child.value)})
    return out
