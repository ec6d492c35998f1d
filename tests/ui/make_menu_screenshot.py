"""Regenerate docs/menu.png: the real tray menu as xfce4-panel draws it (StatusNotifierItem + dbusmenu,
private Xvfb and session bus) over a scripted state.

    .venv/bin/python tests/ui/make_menu_screenshot.py [docs/menu.png]

The App runs with a stand-in runner that puts the four servers of DESIGN §1 in
their statuses (no network); everything else — the tray, the menu, the icon —
is the product's own code. Not a test; needs the same Debian packages.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))

CONFIG = {
    "mcpServers": {
        "github": {"name": "GitHub", "url": "https://api.githubcopilot.com/mcp/"},
        "secured": {"name": "Secured MCP", "url": "https://mcp.example.com/mcp"},
        "jira": {"name": "Jira", "url": "https://jira.example.com/mcp"},
        "files": {"name": "Local files", "command": "uvx", "args": ["mcp-server-files"], "enabled": False},
    }
}


def child(config_path: str) -> int:
    """The tray process: the real TrayRunner and App, with a runner that only sets statuses."""
    from broxy_tray.app import App
    from broxy_tray.state import ServerStatus
    from broxy_tray.ui.tray import load_backend, run_tray

    async def demo_runner(server, config, store):  # type: ignore[no-untyped-def]
        if server.id == "github":
            store.update_server(server.id, status=ServerStatus.AVAILABLE, tools=42)
        elif server.id == "secured":
            store.update_server(server.id, status=ServerStatus.AUTHORIZATION, seconds_left=97,
                                auth_url="https://auth.example.com/authorize?client_id=broxy")
        elif server.id == "jira":
            store.update_server(server.id, status=ServerStatus.ERROR,
                                detail="token endpoint returned invalid_client")
        await asyncio.Event().wait()

    def factory(path: Path) -> App:
        app = App(path, runner=demo_runner)
        app.store.set_storage("Secret Service")
        return app

    return run_tray(Path(config_path), load_backend(), app_factory=factory, log_dir=Path(config_path).parent)


def main(out: Path) -> None:
    from ui_testlib import Desktop, Procs, TrayMenu, wait_for

    procs = Procs()
    work = Path(tempfile.mkdtemp(prefix="broxy-shot-"))
    try:
        display = procs.xvfb()
        env = {k: v for k, v in os.environ.items() if k not in ("WAYLAND_DISPLAY", "PYSTRAY_BACKEND")}
        home = work / "home"
        conf = home / ".config" / "xfce4" / "xfconf" / "xfce-perchannel-xml"
        conf.mkdir(parents=True)
        shutil.copy(HERE / "xfce4-panel.xml", conf / "xfce4-panel.xml")
        env.update(DISPLAY=f":{display}", NO_AT_BRIDGE="1", HOME=str(home),
                   XDG_CONFIG_HOME=str(home / ".config"), XDG_STATE_HOME=str(work / "state"),
                   XDG_CACHE_HOME=str(work / "cache"))
        bus = procs.start(["dbus-daemon", "--session", "--nofork", "--print-address=1"], env=env,
                          stdout=subprocess.PIPE, text=True)
        env["DBUS_SESSION_BUS_ADDRESS"] = bus.stdout.readline().strip()
        d = Desktop(env, env["DBUS_SESSION_BUS_ADDRESS"], work, procs)
        procs.start(["xfce4-panel", "--disable-wm-check"], env=env)
        wait_for(lambda: d.has_name("org.kde.StatusNotifierWatcher"), 30, what="xfce4-panel's watcher")
        cfg = work / "mcp.json"
        cfg.write_text(json.dumps(CONFIG, indent=2))
        procs.start([sys.executable, __file__, "--child", str(cfg)], env=env, cwd=str(REPO),
                    stderr=open(work / "child.err", "w"))
        TrayMenu(d).wait_label("✕ Jira")
        time.sleep(1.5)  # let the panel draw the icon
        d.run("xdotool", "mousemove", "12", "13", "click", "1")  # the panel's only plugin: the icon at its left
        time.sleep(0.8)
        d.run("xdotool", "key", "Down", "Down", "Right")  # open "Secured MCP"'s submenu
        time.sleep(0.8)
        full = work / "full.png"
        d.screenshot(full)
        from PIL import Image

        img = Image.open(full).convert("RGB")
        # the menus' box: from the top left, as far as the menus reach before the black desktop
        grey = img.convert("L")
        rows = [r for r in range(40, img.height) if grey.getpixel((20, r)) > 200]
        bottom = max(rows) if rows else 400

        def reach(r: int) -> int:
            x = 2
            while x < img.width and grey.getpixel((x, r)) > 60:
                x += 1
            return x

        right = max(reach(r) for r in range(40, bottom))
        img.crop((0, 0, min(img.width, right + 10), min(img.height, bottom + 10))).save(out, optimize=True)
        print(out)
    finally:
        procs.stop_all()


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        sys.exit(child(sys.argv[2]))
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "docs" / "menu.png")
