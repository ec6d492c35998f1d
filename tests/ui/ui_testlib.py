"""Helpers for the tray tests (see conftest.py): a real, private desktop session for the tray tests, started here and stopped by PID.

`desktop` (session scope) starts its own `Xvfb` (display picked with -displayfd),
a private `dbus-daemon --session`, `dunst` (its context menu goes through
fake_dmenu.sh so a test can press a notification button) and `trayer` (an
XEmbed system tray). DISPLAY and DBUS_SESSION_BUS_ADDRESS go only into the
environment of the processes the tests start (`desktop.env`); the test process
talks to the private bus through its address. Works the same under
`xvfb-run dbus-run-session` or with no display at all; skips, naming the
Debian packages, when the programs are missing.

`sni_watcher` (per test) adds a StatusNotifierWatcher: appindicator then
exports the menu over com.canonical.dbusmenu, which `TrayMenu` reads and clicks
by label. Without it the same icon docks in trayer through XEmbed.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import pytest

HERE = Path(__file__).parent
REPO = HERE.parent.parent
MINIMAL_SERVER = REPO / "tests" / "mcp" / "servers" / "minimal_stdio.py"

# command -> Debian package (the list in scripts/test's ensure_debian_packages line)
NEEDED = {
    "Xvfb": "xvfb", "xauth": "xauth", "dbus-daemon": "dbus-daemon", "dunst": "dunst", "dunstctl": "dunst",
    "trayer": "trayer", "xwininfo": "x11-utils", "xdotool": "xdotool", "import": "imagemagick",
}


def wait_for(pred: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05, what: str = "condition") -> Any:
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        try:
            v = pred()
        except Exception as e:  # e.g. D-Bus not ready yet
            last, v = e, None
        if v:
            return v
        time.sleep(interval)
    raise TimeoutError(f"timed out waiting for {what}" + (f" (last error: {last})" if last else ""))


def _need_desktop() -> None:
    missing = sorted({pkg for cmd, pkg in NEEDED.items() if shutil.which(cmd) is None})
    if missing:
        pytest.skip(f"desktop tests need the Debian packages: {' '.join(missing)}")
    try:
        import gi

        gi.require_version("Gtk", "3.0")
        gi.require_version("AyatanaAppIndicator3", "0.1")
    except Exception as e:
        pytest.skip(f"desktop tests need PyGObject with GTK 3 and Ayatana AppIndicator "
                    f"(pip install -e '.[xembed]'; apt install gir1.2-gtk-3.0 gir1.2-ayatanaappindicator3-0.1): {e}")


class Procs:
    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[Any]] = []

    def start(self, args: list[str], **kw: Any) -> subprocess.Popen[Any]:
        kw.setdefault("stdout", subprocess.DEVNULL)
        kw.setdefault("stderr", subprocess.DEVNULL)
        p = subprocess.Popen(args, start_new_session=True, **kw)
        self.procs.append(p)
        return p

    def xvfb(self) -> str:
        """Start a private Xvfb on a free display; its number ("" if it did not start)."""
        p = self.start(["Xvfb", "-displayfd", "1", "-screen", "0", "1024x768x24", "-nolisten", "tcp"],
                       stdout=subprocess.PIPE, text=True)
        return p.stdout.readline().strip()  # type: ignore[union-attr]

    def stop(self, p: subprocess.Popen[Any]) -> None:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
            except ProcessLookupError:
                pass

    def stop_all(self) -> None:
        for p in reversed(self.procs):
            self.stop(p)


class Desktop:
    def __init__(self, env: dict[str, str], bus_address: str, workdir: Path, procs: Procs) -> None:
        self.env = env  # for subprocesses: DISPLAY, DBUS_SESSION_BUS_ADDRESS, NO_AT_BRIDGE
        self.bus_address = bus_address
        self.workdir = workdir
        self.procs = procs
        self.pick_file = workdir / "pick"
        self._bus: Any = None

    @property
    def bus(self) -> Any:
        if self._bus is None:
            from gi.repository import Gio

            flags = (Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT
                     | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION)
            self._bus = Gio.DBusConnection.new_for_address_sync(self.bus_address, flags, None, None)
        return self._bus

    def call(self, dest: str, path: str, iface: str, method: str, args: Any = None, timeout_ms: int = 5000) -> Any:
        return self.bus.call_sync(dest, path, iface, method, args, None, 0, timeout_ms, None).unpack()

    def prop(self, dest: str, path: str, iface: str, name: str) -> Any:
        from gi.repository import GLib

        return self.call(dest, path, "org.freedesktop.DBus.Properties", "Get",
                         GLib.Variant("(ss)", (iface, name)))[0]

    def has_name(self, name: str) -> bool:
        from gi.repository import GLib

        return bool(self.call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                              "NameHasOwner", GLib.Variant("(s)", (name,)))[0])

    def run(self, *args: str, check: bool = True) -> str:
        return subprocess.run(list(args), env=self.env, capture_output=True, text=True, check=check,
                              timeout=20).stdout

    # dunst

    def displayed(self) -> int:
        return int(self.run("dunstctl", "count", "displayed").strip() or 0)

    def history(self) -> list[dict[str, Any]]:
        data = json.loads(self.run("dunstctl", "history"))["data"][0]
        return [{k: v["data"] for k, v in n.items()} for n in data]

    def close_all(self) -> None:
        self.run("dunstctl", "close-all")

    def choose_action(self, label: str) -> None:
        """Open the newest notification's context menu and pick the action `label` (fake_dmenu.sh)."""
        self.pick_file.write_text(label)
        self.run("dunstctl", "context")

    def default_action(self) -> None:
        self.run("dunstctl", "action", "0")

    # trayer / X

    def docked_icon(self) -> tuple[int, int, int, int] | None:
        """(x, y, w, h) of the first icon docked in trayer, or None."""
        tree = self.run("xwininfo", "-root", "-tree")
        if '"panel"' not in tree:
            return None
        after = tree.split('"panel"', 1)[1].split("\n", 1)[1]
        m = re.search(r"children:\s*\n\s*0x[0-9a-f]+ [^\n]*?(\d+)x(\d+)\+-?\d+\+-?\d+\s+\+(-?\d+)\+(-?\d+)", after)
        if not m:
            return None
        w, h, x, y = (int(g) for g in m.groups())
        return (x, y, w, h) if w > 1 and h > 1 else None

    def screenshot(self, path: Path) -> Path:
        self.run("import", "-window", "root", str(path))
        return path


class TrayMenu:
    """The tray's real menu, read and clicked over com.canonical.dbusmenu (needs `sni_watcher`)."""

    def __init__(self, desktop: Desktop) -> None:
        self.d = desktop
        items = wait_for(lambda: desktop.prop("org.kde.StatusNotifierWatcher", "/StatusNotifierWatcher",
                                              "org.kde.StatusNotifierWatcher", "RegisteredStatusNotifierItems"),
                         what="the tray's StatusNotifierItem")
        name, _, path = items[-1].partition("/")
        self.name, self.path = name, "/" + path
        self.menu_path = desktop.prop(self.name, self.path, "org.kde.StatusNotifierItem", "Menu")

    def sni(self, prop: str) -> Any:
        return self.d.prop(self.name, self.path, "org.kde.StatusNotifierItem", prop)

    def layout(self) -> list[tuple[int, str, bool, list[Any]]]:
        """[(id, label, enabled, children)] of the top level (separators left out)."""
        from gi.repository import GLib

        _, root = self.d.call(self.name, self.menu_path, "com.canonical.dbusmenu", "GetLayout",
                              GLib.Variant("(iias)", (0, -1, [])))

        def conv(node: Any) -> list[tuple[int, str, bool, list[Any]]]:
            out = []
            for cid, props, children in node[2]:
                if props.get("type") == "separator":
                    continue
                label = props.get("label", "").replace("__", "\0").replace("_", "").replace("\0", "_")  # mnemonics
                out.append((cid, label, props.get("enabled", True), conv((cid, props, children))))
            return out

        return conv(root)

    def labels(self) -> list[str]:
        return [label for _, label, _, _ in self.layout()]

    def item(self, *path: str) -> tuple[int, str, bool, list[Any]]:
        """The item reached by label prefixes, e.g. item("● Local files", "Disable")."""
        level = self.layout()
        found = None
        for part in path:
            found = next((i for i in level if i[1].startswith(part)), None)
            if found is None:
                raise KeyError(f"{part!r} not in {[i[1] for i in level]}")
            level = found[3]
        assert found is not None
        return found

    def click(self, *path: str) -> None:
        from gi.repository import GLib

        cid = self.item(*path)[0]
        self.d.call(self.name, self.menu_path, "com.canonical.dbusmenu", "Event",
                    GLib.Variant("(isvu)", (cid, "clicked", GLib.Variant("i", 0), 0)))

    def wait_label(self, prefix: str, timeout: float = 15.0) -> str:
        return wait_for(lambda: next((lb for lb in self.labels() if lb.startswith(prefix)), None), timeout,
                        what=f"a menu line starting {prefix!r}; menu: {self._safe_labels()}")

    def _safe_labels(self) -> list[str]:
        try:
            return self.labels()
        except Exception as e:
            return [f"<{e}>"]


class TrayApp:
    """`python -m broxy_tray.ui.tray --config PATH` in the private desktop (what `broxy-tray` runs there)."""

    def __init__(self, desktop: Desktop, env: dict[str, str], config: Path) -> None:
        self.config = config
        self.out = config.parent / "tray.out"
        self.env = dict(env)
        for k in ("DISPLAY", "DBUS_SESSION_BUS_ADDRESS", "NO_AT_BRIDGE", "GTK_A11Y"):
            self.env[k] = desktop.env[k]
        self.proc = desktop.procs.start([sys.executable, "-m", "broxy_tray.ui.tray", "--config", str(config)],
                                        env=self.env, stdout=open(self.out, "w"), stderr=subprocess.STDOUT,
                                        cwd=str(REPO))

    @property
    def log(self) -> Path:
        return Path(self.env["XDG_STATE_HOME"]) / "broxy" / "log" / "broxy-tray.log"

    def log_text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def output(self) -> str:
        return self.out.read_text() if self.out.exists() else ""


# Markers are made unique per test process, so two suites on one machine never see each other's servers.
RUN_TAG = f"{os.getpid()}-{secrets.token_hex(3)}"


def stdio_entry(marker: str, **extra: Any) -> dict[str, Any]:
    """An mcpServers entry running the minimal stdio server; `marker` finds its process."""
    return {"command": sys.executable, "args": [str(MINIMAL_SERVER), "--marker", f"{marker}@{RUN_TAG}"], **extra}


def processes_with(marker: str) -> list[Any]:
    import psutil

    out = []
    tagged = f"{marker}@{RUN_TAG}"
    for p in psutil.process_iter(["cmdline"]):
        try:
            if tagged in (p.info["cmdline"] or []) and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.Error:
            pass
    return out
