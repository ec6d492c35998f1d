"""`org.kde.StatusNotifierItem` over dbus-fast: the icon, its tooltip and status, and where the menu is.

`ItemIsMenu` is true: the item has only a menu, so panels open it on a left
click as on a right click; `Activate`, `SecondaryActivate` and `ContextMenu`
are still answered (some hosts call them anyway) and do nothing more. Changes
are announced with the spec's `NewTitle` / `NewIcon` / `NewAttentionIcon` /
`NewToolTip` / `NewStatus` signals, which hosts listen to, and with
`PropertiesChanged` for generic D-Bus clients.
"""

import logging
from typing import Annotated, Any

from dbus_fast import PropertyAccess
from dbus_fast.annotations import DBusBool, DBusInt32, DBusObjectPath, DBusSignature, DBusStr
from dbus_fast.service import ServiceInterface, dbus_method, dbus_property, dbus_signal

from ..icons import IconKind
from ._pixmap import as_dbus

log = logging.getLogger(__name__)

Pixmaps = Annotated[list, DBusSignature("a(iiay)")]
ToolTipValue = Annotated[list, DBusSignature("(sa(iiay)ss)")]

INTERFACE = "org.kde.StatusNotifierItem"
ITEM_PATH = "/StatusNotifierItem"
MENU_PATH = "/MenuBar"
ACTIVE = "Active"
NEEDS_ATTENTION = "NeedsAttention"


class StatusNotifierItem(ServiceInterface):
    def __init__(self, item_id: str, title: str, kind: IconKind, tooltip: str) -> None:
        super().__init__(INTERFACE)
        self._id = item_id
        self._title = title
        self._status = ACTIVE
        self._kind = kind
        self._tooltip = tooltip
        self._icon: list[Any] = as_dbus(kind)
        self._attention: list[Any] = as_dbus(IconKind.BUSY)  # shown by hosts while a sign-in waits for the user

    def update(self, *, title: str, status: str, kind: IconKind, tooltip: str) -> list[str]:
        """Set what changed and announce it; returns the names of the changed properties."""
        changed: dict[str, Any] = {}
        invalidated: list[str] = []
        if title != self._title:
            self._title = title
            changed["Title"] = title
            self.NewTitle()
        if kind != self._kind:
            self._kind = kind
            self._icon = as_dbus(kind)
            invalidated.append("IconPixmap")  # ~20 KB: readers fetch it when they want it
            self.NewIcon()
        if tooltip != self._tooltip:
            self._tooltip = tooltip
            changed["ToolTip"] = self._tooltip_value()
            self.NewToolTip()
        if status != self._status:
            self._status = status
            changed["Status"] = status
            self.NewStatus()
        if changed or invalidated:
            self.emit_properties_changed(changed, invalidated)
        return list(changed) + invalidated

    def _tooltip_value(self) -> list[Any]:
        return ["", [], "broxy-tray", self._tooltip]

    # -- properties

    @dbus_property(access=PropertyAccess.READ)
    def Category(self) -> DBusStr:
        return "ApplicationStatus"

    @dbus_property(access=PropertyAccess.READ)
    def Id(self) -> DBusStr:
        return self._id

    @dbus_property(access=PropertyAccess.READ)
    def Title(self) -> DBusStr:
        return self._title

    @dbus_property(access=PropertyAccess.READ)
    def Status(self) -> DBusStr:
        return self._status

    @dbus_property(access=PropertyAccess.READ)
    def WindowId(self) -> DBusInt32:
        return 0

    @dbus_property(access=PropertyAccess.READ)
    def IconThemePath(self) -> DBusStr:
        return ""

    @dbus_property(access=PropertyAccess.READ)
    def Menu(self) -> DBusObjectPath:
        return MENU_PATH

    @dbus_property(access=PropertyAccess.READ)
    def ItemIsMenu(self) -> DBusBool:
        return True

    @dbus_property(access=PropertyAccess.READ)
    def IconName(self) -> DBusStr:
        return ""  # pixmaps only: nothing to install into an icon theme

    @dbus_property(access=PropertyAccess.READ)
    def IconPixmap(self) -> Pixmaps:
        return self._icon

    @dbus_property(access=PropertyAccess.READ)
    def OverlayIconName(self) -> DBusStr:
        return ""

    @dbus_property(access=PropertyAccess.READ)
    def OverlayIconPixmap(self) -> Pixmaps:
        return []

    @dbus_property(access=PropertyAccess.READ)
    def AttentionIconName(self) -> DBusStr:
        return ""

    @dbus_property(access=PropertyAccess.READ)
    def AttentionIconPixmap(self) -> Pixmaps:
        return self._attention

    @dbus_property(access=PropertyAccess.READ)
    def AttentionMovieName(self) -> DBusStr:
        return ""

    @dbus_property(access=PropertyAccess.READ)
    def ToolTip(self) -> ToolTipValue:
        return self._tooltip_value()

    # -- methods (the host draws the menu itself: ItemIsMenu)

    @dbus_method()
    def Activate(self, x: DBusInt32, y: DBusInt32):
        log.debug("StatusNotifierItem.Activate(%d, %d): the host shows the menu", x, y)

    @dbus_method()
    def SecondaryActivate(self, x: DBusInt32, y: DBusInt32):
        log.debug("StatusNotifierItem.SecondaryActivate(%d, %d): nothing to do", x, y)

    @dbus_method()
    def ContextMenu(self, x: DBusInt32, y: DBusInt32):
        log.debug("StatusNotifierItem.ContextMenu(%d, %d): the host shows the menu", x, y)

    @dbus_method()
    def Scroll(self, delta: DBusInt32, orientation: DBusStr):
        pass

    # -- signals

    @dbus_signal()
    def NewTitle(self) -> None:
        pass

    @dbus_signal()
    def NewIcon(self) -> None:
        pass

    @dbus_signal()
    def NewAttentionIcon(self) -> None:
        pass

    @dbus_signal()
    def NewOverlayIcon(self) -> None:
        pass

    @dbus_signal()
    def NewToolTip(self) -> None:
        pass

    @dbus_signal()
    def NewStatus(self) -> DBusStr:
        return self._status
