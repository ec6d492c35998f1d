"""`com.canonical.dbusmenu` over dbus-fast: the tray menu as the panel reads and clicks it.

The tree lives in `MenuLayout`; this interface answers the host's calls from
it and announces changes: `LayoutUpdated` (new revision) when the structure
changed, `ItemsPropertiesUpdated` with only what changed otherwise. Bad input
(an unknown id, a negative or huge depth) is answered with a D-Bus error or
clamped; nothing a client sends can raise out of here.
"""

import logging
from typing import Annotated, Callable

from dbus_fast import DBusError, PropertyAccess, Variant
from dbus_fast.annotations import DBusBool, DBusInt32, DBusSignature, DBusStr, DBusUInt32, DBusVariant
from dbus_fast.service import ServiceInterface, dbus_method, dbus_property, dbus_signal

from .. import menu as m
from ._layout import SIGNATURES, MenuLayout, Update

log = logging.getLogger(__name__)


Strings = Annotated[list[str], DBusSignature("as")]
Ints = Annotated[list[int], DBusSignature("ai")]
Layout = Annotated[list, DBusSignature("u(ia{sv}av)")]  # revision, (id, properties, children)
GroupProperties = Annotated[list, DBusSignature("a(ia{sv})")]
Events = Annotated[list, DBusSignature("a(isvu)")]  # (id, event, data, timestamp)
TwoIntLists = Annotated[list, DBusSignature("aiai")]
PropertyUpdates = Annotated[list, DBusSignature("a(ia{sv})a(ias)")]  # updated, removed
Revision = Annotated[list, DBusSignature("ui")]  # revision, parent
Activation = Annotated[list, DBusSignature("iu")]  # id, timestamp

INTERFACE = "com.canonical.dbusmenu"
INVALID_ARGS = "org.freedesktop.DBus.Error.InvalidArgs"


def _unknown(nid: int) -> DBusError:
    return DBusError(INVALID_ARGS, f"no menu item with id {nid}")


class DbusMenu(ServiceInterface):
    """Serves a `MenuLayout`; `on_click(action)` gets every "clicked" event on an enabled action item."""

    def __init__(self, on_click: Callable[[m.Action], None]) -> None:
        super().__init__(INTERFACE)
        self.layout = MenuLayout()
        self._on_click = on_click

    def show(self, model: tuple[m.MenuItem, ...]) -> Update:
        """Apply a new model and emit what changed (nothing when nothing did)."""
        update = self.layout.update(model)
        if update.layout:
            self.LayoutUpdated()
        elif update.changed or update.removed:
            self._pending = update  # what the signal below sends
            try:
                self.ItemsPropertiesUpdated()
            finally:
                self._pending = None
        return update

    _pending: Update | None = None

    # -- properties

    @dbus_property(access=PropertyAccess.READ)
    def Version(self) -> DBusUInt32:
        return 3

    @dbus_property(access=PropertyAccess.READ)
    def TextDirection(self) -> DBusStr:
        return "ltr"

    @dbus_property(access=PropertyAccess.READ)
    def Status(self) -> DBusStr:
        return "normal"

    @dbus_property(access=PropertyAccess.READ)
    def IconThemePath(self) -> Strings:
        return []

    # -- methods

    @dbus_method()
    def GetLayout(self, parentId: DBusInt32, recursionDepth: DBusInt32, propertyNames: Strings) -> Layout:
        try:
            tree = self.layout.tree(parentId, recursionDepth, propertyNames)
        except KeyError:
            raise _unknown(parentId) from None
        return [self.layout.revision, tree]

    @dbus_method()
    def GetGroupProperties(self, ids: Ints, propertyNames: Strings) -> GroupProperties:
        wanted = ids or list(self.layout.nodes)  # an empty list means every item (as libdbusmenu does)
        return [[nid, self.layout.props(nid, propertyNames)] for nid in wanted if nid in self.layout.nodes]

    @dbus_method()
    def GetProperty(self, id: DBusInt32, name: DBusStr) -> DBusVariant:
        try:
            props = self.layout.props(id, [name])
        except KeyError:
            raise _unknown(id) from None
        if name not in props:
            raise DBusError(INVALID_ARGS, f"menu item {id} has no property {name!r}")
        return props[name]

    @dbus_method()
    def Event(self, id: DBusInt32, eventId: DBusStr, data: DBusVariant, timestamp: DBusUInt32):
        if id not in self.layout.nodes:
            raise _unknown(id)
        self._event(id, eventId)

    @dbus_method()
    def EventGroup(self, events: Events) -> Ints:
        errors = [nid for nid, _, _, _ in events if nid not in self.layout.nodes]
        if events and len(errors) == len(events):
            raise DBusError(INVALID_ARGS, f"no menu item with any of the ids {sorted(set(errors))}")
        for nid, event_id, _, _ in events:
            if nid in self.layout.nodes:
                self._event(nid, event_id)
        return errors

    @dbus_method()
    def AboutToShow(self, id: DBusInt32) -> DBusBool:
        if id not in self.layout.nodes:
            raise _unknown(id)
        return False  # the menu is always up to date: updates are pushed as they happen

    @dbus_method()
    def AboutToShowGroup(self, ids: Ints) -> TwoIntLists:
        return [[], [nid for nid in ids if nid not in self.layout.nodes]]

    # -- signals

    @dbus_signal()
    def LayoutUpdated(self) -> Revision:
        return [self.layout.revision, 0]

    @dbus_signal()
    def ItemsPropertiesUpdated(self) -> PropertyUpdates:
        update = self._pending or Update(False)
        changed = [[nid, {k: Variant(SIGNATURES[k], v) for k, v in props.items()}] for nid, props in update.changed]
        removed = [[nid, list(names)] for nid, names in update.removed]
        return [changed, removed]

    @dbus_signal()
    def ItemActivationRequested(self) -> Activation:
        return [0, 0]

    # -- internals

    def _event(self, nid: int, event_id: str) -> None:
        if event_id != "clicked":
            return  # "hovered", "opened", "closed": nothing to do
        node = self.layout.nodes[nid]
        if node.action is None or not node.clickable:
            log.debug("dbusmenu: click on item %d, which has no enabled action", nid)
            return
        try:
            self._on_click(node.action)
        except Exception:
            log.exception("menu action %s failed", node.action.kind)
