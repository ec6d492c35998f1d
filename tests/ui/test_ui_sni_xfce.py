"""A real StatusNotifierItem host: xfce4-panel (its systray plugin) under a private Xvfb and session bus.

The icon appears in the panel, a click opens its menu (drawn by the panel from our dbusmenu), choosing
Quit from that menu with the keyboard quits the app; a panel restart brings the icon back. The app runs
with `import gi` failing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from sni_client import SniClient, until
from ui_testlib import HERE, Desktop, Procs, stdio_entry, wait_for

pytestmark = pytest.mark.timeout(150)


@pytest.fixture(scope="module")
def xfce(tmp_path_factory: pytest.TempPathFactory):
    for cmd, pkg in (("xfce4-panel", "xfce4-panel"), ("Xvfb", "xvfb"), ("dbus-daemon", "dbus-daemon"),
                     ("xdotool", "xdotool"), ("import", "imagemagick"), ("xwininfo", "x11-utils")):
        if shutil.which(cmd) is None:
            pytest.skip(f"the real-panel test needs the Debian package {pkg}")
    procs = Procs()
    work = tmp_path_factory.mktemp("xfce")
    try:
        number = procs.xvfb()
        if not number:
            pytest.skip("Xvfb did not start")
        home = work / "home"
        conf = home / ".config" / "xfce4" / "xfconf" / "xfce-perchannel-xml"
        conf.mkdir(parents=True)
        shutil.copy(HERE / "xfce4-panel.xml", conf / "xfce4-panel.xml")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "WAYLAND", "PYSTRAY", "BROXY_"))}
        # the bus starts xfconfd with its own environment: it must already see the private HOME
        env.update(DISPLAY=f":{number}", NO_AT_BRIDGE="1", GTK_A11Y="none", HOME=str(home),
                   XDG_CONFIG_HOME=str(home / ".config"), XDG_CACHE_HOME=str(home / ".cache"),
                   XDG_DATA_HOME=str(home / ".local/share"))
        bus = procs.start(["dbus-daemon", "--session", "--nofork", "--print-address=1"], env=env,
                          stdout=subprocess.PIPE, text=True)
        env["DBUS_SESSION_BUS_ADDRESS"] = bus.stdout.readline().strip()  # type: ignore[union-attr]
        d = Desktop(env, env["DBUS_SESSION_BUS_ADDRESS"], work, procs)
        yield d
    finally:
        procs.stop_all()


def start_panel(d: Desktop) -> subprocess.Popen:
    p = d.procs.start(["xfce4-panel", "--disable-wm-check"], env=d.env)
    wait_for(lambda: _has_watcher(d), 30, interval=0.1, what="xfce4-panel owning org.kde.StatusNotifierWatcher")
    return p


def _has_watcher(d: Desktop) -> bool:
    out = subprocess.run(["dbus-send", "--session", "--print-reply", "--dest=org.freedesktop.DBus", "/",
                          "org.freedesktop.DBus.NameHasOwner", "string:org.kde.StatusNotifierWatcher"],
                         env=d.env, capture_output=True, text=True, timeout=10).stdout
    return "boolean true" in out


def find_icon(d: Desktop, tmp: Path) -> tuple[int, int] | None:
    """The centre of the blue hub of our icon in the panel strip at the top of the screen, or None."""
    img = Image.open(d.screenshot(tmp / "panel.png")).convert("RGB").crop((0, 0, 1024, 40))
    px = img.load()
    hits = [(x, y) for y in range(40) for x in range(1024)
            if (lambda p: p[2] > 180 and p[0] < 90 and p[1] < 150)(px[x, y])]
    if len(hits) < 4:
        return None
    return sum(x for x, _ in hits) // len(hits), sum(y for _, y in hits) // len(hits)


def popups(d: Desktop) -> list[tuple[int, int]]:
    """Sizes of the mapped top-level windows larger than 100×60 other than the panel (an open menu)."""
    tree = d.run("xwininfo", "-root", "-children")
    sizes = []
    for m in re.finditer(r"^\s+0x[0-9a-f]+ .*?\)\s+(\d+)x(\d+)\+(-?\d+)\+(-?\d+)", tree, re.M):
        w, h, x, y = (int(g) for g in m.groups())
        if w > 100 and h > 60 and x >= 0 and y >= 0 and w < 1024:
            sizes.append((w, h))
    return sizes


async def test_xfce4_panel_shows_the_icon_opens_the_menu_and_quit_quits(xfce, user_env, no_gi_path, tmp_path):
    d = xfce
    panel = start_panel(d)
    cfg = tmp_path / "mcp.json"
    cfg.write_text(json.dumps({"mcpServers": {"files": stdio_entry("xfce-files", name="Local files")}}))
    env = {**user_env, "PYTHONPATH": str(no_gi_path)}
    for k in ("DISPLAY", "DBUS_SESSION_BUS_ADDRESS", "NO_AT_BRIDGE", "GTK_A11Y"):
        env[k] = d.env[k]
    out = tmp_path / "app.out"
    app = d.procs.start([sys.executable, "-m", "broxy_tray", "--config", str(cfg), "run"], env=env,
                        stdout=open(out, "w"), stderr=subprocess.STDOUT)
    c = await SniClient.connect(d.bus_address)
    try:
        await c.find_item(30)
        assert c.name == f"org.kde.StatusNotifierItem-{app.pid}-1"
        await c.wait_label("● Local files — Available", 30)
        where = await until(lambda: find_icon(d, tmp_path), 20, what="our icon drawn in the panel")

        # the panel restarts: the icon comes back
        d.procs.stop(panel)
        panel = start_panel(d)
        await until(lambda: c.registered(), 20, what="the icon registered with the restarted panel")
        where = await until(lambda: find_icon(d, tmp_path), 20, what="our icon drawn in the restarted panel")

        before = popups(d)
        d.run("xdotool", "mousemove", str(where[0]), str(where[1]), "click", "1")
        await until(lambda: len(popups(d)) > len(before), 10, what="the menu open on screen")
        shot = Image.open(d.screenshot(tmp_path / "menu.png"))
        assert shot.size == (1024, 768)
        # nothing is selected yet: Up selects the last item, Quit; the X server delivers both keys in order
        d.run("xdotool", "key", "Up", "Return")
        assert app.wait(30) == 0, out.read_text()
        log = Path(env["XDG_STATE_HOME"]) / "broxy" / "log" / "broxy-tray.log"
        assert "menu: quit" in log.read_text()
    finally:
        c.close()
        d.procs.stop(panel)
    assert "Traceback" not in out.read_text()
