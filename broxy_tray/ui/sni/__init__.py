"""The Linux tray over D-Bus, in pure Python: StatusNotifierItem + dbusmenu served by dbus-fast
from the app's own asyncio loop (no GTK, no extra thread).

_bus       session-bus address and the StatusNotifierWatcher probe (backend choice, doctor)
_pixmap    icons as ARGB32 pixmaps
_layout    menu model → dbusmenu items with stable ids; what changed (pure)
_dbusmenu  the com.canonical.dbusmenu interface
_item      the org.kde.StatusNotifierItem interface
_host      the bus connection, our name, (re-)registration with the watcher
_runner    the tray runner for this backend
"""

from ._bus import WATCHER, WatcherProbe, probe_watcher, session_bus_address

__all__ = ["WATCHER", "WatcherProbe", "probe_watcher", "session_bus_address"]
