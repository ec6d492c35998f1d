"""The StatusNotifierItem tray for real, with no PyGObject in the app: the test StatusNotifierWatcher,
a host-like client over dbus-fast (GetLayout, signals, Event), bad input, watcher restarts, no watcher."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from dbus_fast import Variant
from sni_client import CallError, SniClient, until
from ui_testlib import HERE, processes_with, stdio_entry, wait_for

pytestmark = pytest.mark.timeout(120)

SIZES = [16, 22, 24, 32, 48]


def write_config(path: Path, servers: dict, **top) -> Path:
    path.write_text(json.dumps({**top, "mcpServers": servers}, indent=2))
    return path


def output(p) -> str:
    return p.out.read_text() if p.out.exists() else ""


def log_text(p) -> str:
    return p.log.read_text() if p.log.exists() else ""


def assert_no_toolkit(pid: int) -> None:
    """The process mapped neither GTK nor GObject introspection: the tray really is pure Python."""
    maps = Path(f"/proc/{pid}/maps").read_text()
    for lib in ("libgtk-3", "libgirepository", "libgobject-2", "_gi."):
        assert lib not in maps, f"{lib} is loaded in the tray process"


def pixel(data: bytes, size: int, x: int, y: int) -> tuple[int, ...]:
    i = (y * size + x) * 4
    return tuple(data[i:i + 4])


def start_watcher(desktop):
    p = desktop.procs.start([sys.executable, str(HERE / "sni_watcher.py")], env=desktop.env,
                            stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "READY"
    return p


async def test_item_menu_signals_and_clicks_without_pygobject(desktop, sni_watcher, sni_app, tmp_path):
    cfg = write_config(tmp_path / "mcp.json", {
        "files": stdio_entry("sni-files", name="Local files"),
        "off": stdio_entry("sni-off", name="Off_one", enabled=False),
    })
    app = sni_app(cfg)
    c = await SniClient.connect(desktop.bus_address)
    try:
        await c.find_item()
        assert c.name == f"org.kde.StatusNotifierItem-{app.pid}-1" and c.path == "/StatusNotifierItem"
        await c.wait_label("● Local files — Available · 3 tools")
        assert_no_toolkit(app.pid)

        # the item
        assert await c.item_prop("Id") == "broxy-tray"
        assert await c.item_prop("Category") == "ApplicationStatus"
        assert await c.item_prop("Status") == "Active"
        assert await c.item_prop("ItemIsMenu") is True
        assert c.menu_path == "/MenuBar"
        assert await c.item_prop("Title") == "broxy-tray — 1 of 1 available"
        _, _, tip_title, tip_text = await c.item_prop("ToolTip")
        assert (tip_title, tip_text) == ("broxy-tray", "1 of 1 available")
        for prop in ("IconPixmap", "AttentionIconPixmap"):
            pixmaps = await c.item_prop(prop)
            assert [w for w, h, _ in pixmaps] == SIZES and all(w == h for w, h, _ in pixmaps)
            assert all(len(data) == w * h * 4 for w, h, data in pixmaps)
        w, h, data = (await c.item_prop("IconPixmap"))[-1]
        a, r, g, b = pixel(data, w, w // 2, h // 2)  # the blue hub, as A, R, G, B (network byte order)
        assert a == 255 and b > 200 and r < 80, (a, r, g, b)
        assert pixel(data, w, 0, h - 1)[0] == 0  # a transparent corner: alpha comes first
        await c.call(c.name, c.path, "org.kde.StatusNotifierItem", "Activate", "ii", [10, 10])
        await c.call(c.name, c.path, "org.kde.StatusNotifierItem", "SecondaryActivate", "ii", [10, 10])
        await c.call(c.name, c.path, "org.kde.StatusNotifierItem", "ContextMenu", "ii", [10, 10])
        assert (await c.get(c.name, c.menu_path, "com.canonical.dbusmenu", "Version")) == 3

        # the menu: the same model as every other backend, with separators, submenus, a check item
        items = await c.items()
        kinds = ["sep" if i["props"].get("type") == "separator" else i["label"] for i in items]
        assert kinds[0] == "broxy-tray — 1 of 1 available" and kinds[1] == "sep" and kinds[4] == "sep"
        assert kinds[2].startswith("● Local files — Available · 3 tools") and kinds[3] == "○ Off_one — Disabled"
        assert kinds[-3:] == ["sep", "About broxy-tray 0.1.0", "Quit"]
        assert items[0]["props"]["enabled"] is False
        assert items[3]["props"]["label"] == "○ Off__one — Disabled"  # a literal underscore is not a mnemonic
        assert items[2]["props"]["children-display"] == "submenu"
        assert [i["label"] for i in items[2]["children"]] == ["Disable"]
        login = await c.item("Start at login")
        assert (login["props"]["toggle-type"], login["props"]["toggle-state"]) == ("checkmark", 0)
        storage = await c.item("Secure storage:")
        assert storage["props"]["enabled"] is False
        rev0, _ = await c.layout()

        # a property-only change: ItemsPropertiesUpdated with just the check mark, no LayoutUpdated
        c.signals.clear()
        await c.click("Start at login")
        entry = Path(app.env["XDG_CONFIG_HOME"]) / "autostart" / "broxy-tray.desktop"
        await until(lambda: c.seen("ItemsPropertiesUpdated"), what="ItemsPropertiesUpdated")
        updated, removed = c.seen("ItemsPropertiesUpdated")[0]
        assert [(nid, {k: v.value for k, v in props.items()}) for nid, props in updated] == [
            (login["id"], {"toggle-state": 1})]
        assert removed == []
        assert entry.exists()
        assert c.seen("LayoutUpdated") == []
        assert (await c.layout())[0] == rev0
        await c.click("Start at login")
        await until(lambda: len(c.seen("ItemsPropertiesUpdated")) >= 2, what="the check mark cleared")
        assert not entry.exists()
        assert (await c.item("Start at login"))["props"]["toggle-state"] == 0

        # a structure change: LayoutUpdated with a higher revision; GetLayout agrees
        c.signals.clear()
        await c.click("● Local files", "Disable")
        await c.wait_label("○ Local files — Disabled")
        await until(lambda: c.seen("LayoutUpdated"), what="LayoutUpdated")
        revision, parent = c.seen("LayoutUpdated")[-1]
        assert revision > rev0 and parent == 0
        assert (await c.layout())[0] == revision
        assert [i["label"] for i in (await c.item("○ Local files"))["children"]] == ["Enable"]
        assert json.loads(cfg.read_text())["mcpServers"]["files"]["enabled"] is False
        await until(lambda: not processes_with("sni-files"), what="the server stopped")
        assert await c.item_prop("Title") == "broxy-tray — 0 of 0 available"
        assert "NewTitle" in [m for _, m, _ in c.signals] and "NewIcon" in [m for _, m, _ in c.signals]

        await c.click("Quit")
        assert app.wait(20) == 0, output(app)
    finally:
        c.close()
    assert "Traceback" not in output(app) + log_text(app)


async def test_bad_input_on_the_bus_gets_errors_and_the_app_keeps_running(desktop, sni_watcher, sni_app, tmp_path):
    cfg = write_config(tmp_path / "mcp.json", {"files": stdio_entry("sni-bad-files", name="Local files")})
    app = sni_app(cfg)
    c = await SniClient.connect(desktop.bus_address)
    try:
        await c.find_item()
        await c.wait_label("● Local files — Available")
        invalid = "org.freedesktop.DBus.Error.InvalidArgs"
        for member, sig, body in [
            ("Event", "isvu", [987654, "clicked", Variant("i", 0), 0]),
            ("Event", "isvu", [-1, "clicked", Variant("s", "x"), 0]),
            ("GetLayout", "iias", [987654, -1, []]),
            ("AboutToShow", "i", [987654]),
            ("GetProperty", "is", [987654, "label"]),
            ("GetProperty", "is", [0, "no-such-property"]),
            ("EventGroup", "a(isvu)", [[[987654, "clicked", Variant("i", 0), 0]]]),
        ]:
            with pytest.raises(CallError) as e:
                await c.menu(member, sig, body)
            assert e.value.name == invalid, (member, e.value)
            assert "987654" in str(e.value) or "no-such-property" in str(e.value) or member == "Event"
        with pytest.raises(CallError):  # the wrong argument types: dbus-fast refuses them
            await c.menu("Event", "s", ["clicked"])
        # huge and negative depths are clamped, not trusted
        _, full = await c.layout(0, 2**31 - 1)
        _, neg = await c.layout(0, -12345)
        assert full == neg and len(full[2]) > 5
        _, shallow = await c.layout(0, 0)
        assert shallow[2] == []
        one = (await c.item("● Local files"))["id"]
        _, sub = await c.layout(one, 1)
        assert [ch.value[1]["label"].value for ch in sub[2]] == ["Disable"]
        # a group with some unknown ids: those are reported, the known ones are handled
        (errors,) = await c.menu("EventGroup", "a(isvu)", [[[987654, "hovered", Variant("i", 0), 0],
                                                              [0, "opened", Variant("i", 0), 0]]])
        assert errors == [987654]
        updates, id_errors = await c.menu("AboutToShowGroup", "ai", [[0, 987654]])
        assert (updates, id_errors) == ([], [987654])
        props = await c.menu("GetGroupProperties", "aias", [[0, one, 987654], ["label"]])
        assert [(nid, list(p)) for nid, p in props[0]] == [(0, []), (one, ["label"])]
        assert await c.menu("AboutToShow", "i", [one]) == [False]
        # still alive and serving
        assert app.poll() is None
        assert (await c.labels())[0].startswith("broxy-tray — 1 of 1 available")
    finally:
        c.close()
    os.kill(app.pid, signal.SIGTERM)
    assert app.wait(20) == 0, output(app)
    assert "Traceback" not in output(app) + log_text(app)


async def test_registers_when_the_watcher_appears_and_again_after_it_restarts(desktop, sni_app, tmp_path):
    cfg = write_config(tmp_path / "mcp.json", {"files": stdio_entry("sni-restart-files", name="Local files")})
    assert not desktop.has_name("org.kde.StatusNotifierWatcher")
    app = sni_app(cfg, {"BROXY_SNI_WAIT": "60"})  # started before the panel, as at login
    assert app.poll() is None
    watcher = start_watcher(desktop)
    c = await SniClient.connect(desktop.bus_address)
    try:
        await c.find_item()
        first = c.name
        await c.wait_label("● Local files — Available")
        desktop.procs.stop(watcher)  # the panel goes away …
        await until(lambda: "left the bus" in log_text(app), what="the app noticing the watcher left")
        watcher = start_watcher(desktop)  # … and comes back: a fresh watcher with an empty list
        await until(lambda: c.registered(), what="the icon back in the new watcher")
        assert (await c.registered()) == [f"{first}/StatusNotifierItem"]
        assert "a StatusNotifierWatcher appeared" in log_text(app)
        assert (await c.labels())[0] == "broxy-tray — 1 of 1 available"
    finally:
        c.close()
        desktop.procs.stop(watcher)
    os.kill(app.pid, signal.SIGTERM)
    assert app.wait(20) == 0, output(app)


async def test_no_watcher_and_no_pygobject_runs_headless_saying_why_until_a_panel_starts(desktop, sni_app,
                                                                                        tmp_path):
    cfg = write_config(tmp_path / "mcp.json", {"files": stdio_entry("sni-none-files", name="Local files")})
    assert not desktop.has_name("org.kde.StatusNotifierWatcher")
    app = sni_app(cfg, {"BROXY_SNI_WAIT": "0.5"})
    wait_for(lambda: "Local files [files]: Available" in output(app), 20, what="headless status lines")
    lines = [ln for ln in output(app).splitlines() if ln.startswith("broxy-tray: ") and "headless" in ln]
    assert len(lines) == 1, output(app)
    assert "no StatusNotifierWatcher on the session bus" in lines[0]
    assert "pip install 'broxy-tray[xembed]'" in lines[0] and "running headless in the terminal" in lines[0]
    assert_no_toolkit(app.pid)
    watcher = start_watcher(desktop)  # the panel starts late (as at login): the icon appears
    c = await SniClient.connect(desktop.bus_address)
    try:
        await c.find_item()
        assert c.name == f"org.kde.StatusNotifierItem-{app.pid}-1"
        assert (await c.labels())[0] == "broxy-tray — 1 of 1 available"
    finally:
        c.close()
        desktop.procs.stop(watcher)
    os.kill(app.pid, signal.SIGTERM)
    assert app.wait(20) == 0, output(app)


def test_without_a_session_bus_it_runs_headless_saying_why(user_env, no_gi_path, tmp_path):
    cfg = write_config(tmp_path / "mcp.json", {})
    env = {**user_env, "PYTHONPATH": str(no_gi_path), "DISPLAY": ":4321", "BROXY_SNI_WAIT": "0"}
    env.pop("DBUS_SESSION_BUS_ADDRESS", None)
    p = subprocess.Popen([sys.executable, "-m", "broxy_tray", "--config", str(cfg), "run"], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = p.stderr.readline()  # type: ignore[union-attr]
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(20)
    assert first.startswith("broxy-tray: no session bus (DBUS_SESSION_BUS_ADDRESS is unset); ")
    assert "broxy-tray[xembed]" in first and first.rstrip().endswith("running headless in the terminal.")


def test_doctor_names_the_backend_and_the_watcher_owner(desktop, sni_watcher, user_env, no_gi_path):
    env = {**user_env, "PYTHONPATH": str(no_gi_path)}
    for k in ("DISPLAY", "DBUS_SESSION_BUS_ADDRESS"):
        env[k] = desktop.env[k]
    out = subprocess.run([sys.executable, "-m", "broxy_tray", "doctor"], env=env, capture_output=True, text=True,
                         timeout=60).stdout
    assert "tray backend: sni (StatusNotifierItem + dbusmenu over D-Bus, no toolkit)" in out, out
    line = next(ln for ln in out.splitlines() if ln.startswith("StatusNotifierWatcher on the session bus: "))
    assert f"pid {sni_watcher.pid})" in line and "owned by :1." in line, line
