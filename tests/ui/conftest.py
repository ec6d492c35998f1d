"""Fixtures for the tray tests: a private desktop (Xvfb, D-Bus, dunst, trayer), a StatusNotifierWatcher, the tray app.

See ui_testlib.py for what each piece does. Everything started here is stopped by its PID.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from ui_testlib import HERE, Desktop, Procs, TrayApp, _need_desktop, wait_for  # noqa: E402


@pytest.fixture(scope="session")
def desktop(tmp_path_factory: pytest.TempPathFactory):
    _need_desktop()
    procs = Procs()
    work = tmp_path_factory.mktemp("desktop")
    try:
        number = procs.xvfb()
        if not number:
            pytest.skip("Xvfb did not start")
        env = {k: v for k, v in os.environ.items() if k not in ("WAYLAND_DISPLAY", "PYSTRAY_BACKEND")}
        env.update(DISPLAY=f":{number}", NO_AT_BRIDGE="1", GTK_A11Y="none")
        bus = procs.start(["dbus-daemon", "--session", "--nofork", "--print-address=1"], env=env,
                          stdout=subprocess.PIPE, text=True)
        address = bus.stdout.readline().strip()  # type: ignore[union-attr]
        if not address:
            pytest.skip("dbus-daemon did not start")
        env["DBUS_SESSION_BUS_ADDRESS"] = address
        d = Desktop(env, address, work, procs)
        conf = Path("/etc/xdg/dunst/dunstrc").read_text() if Path("/etc/xdg/dunst/dunstrc").exists() else "[global]\n"
        conf = re.sub(r"(?m)^(\s*)dmenu = .*$", rf"\1dmenu = {HERE / 'fake_dmenu.sh'}", conf)
        conf = re.sub(r"(?m)^(\s*)mouse_left_click = .*$", r"\1mouse_left_click = do_action, close_current", conf)
        (work / "dunstrc").write_text(conf)
        procs.start(["dunst", "-config", str(work / "dunstrc")], env=dict(env, DMENU_PICK_FILE=str(d.pick_file)))
        wait_for(lambda: d.has_name("org.freedesktop.Notifications"), what="dunst on the bus")
        procs.start(["trayer", "--edge", "top", "--align", "right", "--widthtype", "pixel", "--width", "120",
                     "--height", "32", "--SetDockType", "true", "--transparent", "false", "--tint", "0x303030"],
                    env=env)
        wait_for(lambda: '"panel"' in d.run("xwininfo", "-root", "-tree"), what="trayer panel")
        yield d
    finally:
        procs.stop_all()


@pytest.fixture
def sni_watcher(desktop: Desktop):
    p = desktop.procs.start([sys.executable, str(HERE / "sni_watcher.py")], env=desktop.env,
                            stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "READY"  # type: ignore[union-attr]
    yield p
    desktop.procs.stop(p)


@pytest.fixture
def tray_app(desktop: Desktop, user_env: dict[str, str]):
    started: list[TrayApp] = []

    def start(config: Path, extra_env: dict[str, str] | None = None) -> TrayApp:
        app = TrayApp(desktop, {**user_env, **(extra_env or {})}, config)
        started.append(app)
        return app

    yield start
    for app in started:
        desktop.procs.stop(app.proc)



@pytest.fixture(scope="session")
def no_gi_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A PYTHONPATH entry whose `gi` package fails to import: a process started with it has no PyGObject."""
    d = tmp_path_factory.mktemp("no-gi")
    (d / "gi").mkdir()
    (d / "gi" / "__init__.py").write_text("raise ImportError('PyGObject is blocked in this test')\n")
    return d


@pytest.fixture
def sni_app(desktop: Desktop, user_env: dict[str, str], no_gi_path: Path):
    """`broxy-tray --config PATH run` on the private desktop with `import gi` failing (no PyGObject)."""
    started: list[subprocess.Popen] = []

    def start(config: Path, extra_env: dict[str, str] | None = None, *, block_gi: bool = True) -> subprocess.Popen:
        env = {**user_env, **(extra_env or {})}
        for k in ("DISPLAY", "DBUS_SESSION_BUS_ADDRESS", "NO_AT_BRIDGE", "GTK_A11Y"):
            env[k] = desktop.env[k]
        if block_gi:
            env["PYTHONPATH"] = str(no_gi_path)
        out = config.parent / "app.out"
        p = desktop.procs.start([sys.executable, "-m", "broxy_tray", "--config", str(config), "run"], env=env,
                                stdout=open(out, "w"), stderr=subprocess.STDOUT, cwd=str(config.parent))
        p.out = out  # type: ignore[attr-defined]
        p.log = Path(env["XDG_STATE_HOME"]) / "broxy" / "log" / "broxy-tray.log"  # type: ignore[attr-defined]
        p.env = env  # type: ignore[attr-defined]
        started.append(p)
        return p

    yield start
    for p in started:
        desktop.procs.stop(p)
