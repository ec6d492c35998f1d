"""The tray for real: Xvfb, trayer (XEmbed), dunst, a StatusNotifierWatcher, dbusmenu; the app as a subprocess."""

from __future__ import annotations

import json
import os
import signal
import stat
import sys
import time
from pathlib import Path

import pytest
from ui_testlib import TrayMenu, processes_with, stdio_entry, wait_for

pytestmark = pytest.mark.timeout(90)


def write_config(path: Path, servers: dict, **top) -> Path:
    path.write_text(json.dumps({**top, "mcpServers": servers}, indent=2))
    return path


def save(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.saving")
    tmp.write_text(text)
    os.replace(tmp, path)


def test_without_a_watcher_the_icon_docks_through_xembed_and_the_menu_opens(desktop, tray_app, tmp_path):
    # no StatusNotifierWatcher on the bus (an XEmbed-only panel: trayer): the PyGObject/pystray fallback
    import psutil
    from PIL import Image

    cfg = write_config(tmp_path / "mcp.json", {
        "files": stdio_entry("ui-dock-files", name="Local files"),
        "off": stdio_entry("ui-dock-off", name="Off one", enabled=False),
    })
    app = tray_app(cfg, {"BROXY_SNI_WAIT": "0.2"})
    x, y, w, h = wait_for(desktop.docked_icon, 15, what="the icon docked in trayer")
    assert "no StatusNotifierWatcher on the session bus" in app.log_text()
    assert "using the XEmbed fallback (appindicator)" in app.log_text()
    assert (w, h) != (0, 0)
    wait_for(lambda: "available: 3 tools" in app.log_text(), 15, what="the server connected")
    time.sleep(0.3)
    shot = desktop.screenshot(tmp_path / "docked.png")
    icon = Image.open(shot).convert("RGB").crop((x, y, x + w, y + h))
    blue = sum(1 for px in icon.tobytes()[0::3] if px < 90) and any(
        b > 180 and r < 90 for r, g, b in zip(icon.tobytes()[0::3], icon.tobytes()[1::3], icon.tobytes()[2::3]))
    assert blue, "the docked icon shows the blue hub"
    desktop.run("xdotool", "mousemove", str(x + w // 2), str(y + h // 2), "click", "1")
    time.sleep(0.8)
    menu_shot = Image.open(desktop.screenshot(tmp_path / "menu.png")).convert("L")
    # an open GTK menu is a large light rectangle under the panel
    area = menu_shot.crop((400, 32, 1024, 300))
    light = sum(1 for v in area.tobytes() if v > 200)
    assert light > 20000, f"the menu did not open (only {light} light pixels)"
    desktop.run("xdotool", "key", "Escape")
    assert psutil.Process(app.proc.pid).is_running()
    os.kill(app.proc.pid, signal.SIGTERM)
    assert app.proc.wait(20) == 0, app.output()


def test_menu_lists_servers_with_status_over_dbusmenu(desktop, sni_watcher, tray_app, tmp_path):
    cfg = write_config(tmp_path / "mcp.json", {
        "files": stdio_entry("ui-list-files", name="Local files"),
        "off": stdio_entry("ui-list-off", name="Off one", enabled=False),
        "broken": {"name": "Broken", "command": "/nonexistent/broxy-test-command"},
    })
    app = tray_app(cfg)
    menu = TrayMenu(desktop)
    menu.wait_label("● Local files — Available · 3 tools")
    labels = menu.labels()
    assert labels[0] == "broxy-tray — 1 of 2 available"
    assert "○ Off one — Disabled" in labels
    assert any(lb.startswith("✕ Broken — Error: command not found: /nonexistent/broxy-test-command") for lb in labels)
    assert labels[-7:-3] == ["Open mcp.json", "Reload now", "Copy client config", "Open logs folder"]
    assert labels[-3].startswith("Secure storage: ")
    assert labels[-2:] == ["About broxy-tray 0.1.0", "Quit"]
    assert [i[1] for i in menu.item("● Local files")[3]] == ["Disable"]
    assert [i[1] for i in menu.item("○ Off one")[3]] == ["Enable"]
    assert [i[1] for i in menu.item("✕ Broken")[3]] == ["Retry now", "Copy error", "Disable"]
    assert menu.sni("Title") == "broxy-tray — 1 of 2 available"
    assert menu.sni("Status") == "Active"
    os.kill(app.proc.pid, signal.SIGTERM)
    assert app.proc.wait(20) == 0


def test_disable_and_enable_from_the_menu(desktop, sni_watcher, tray_app, tmp_path):
    cfg = write_config(tmp_path / "mcp.json", {"files": stdio_entry("ui-toggle-files", name="Local files")})
    app = tray_app(cfg)
    menu = TrayMenu(desktop)
    menu.wait_label("● Local files — Available")
    assert len(processes_with("ui-toggle-files")) == 1
    menu.click("● Local files", "Disable")
    menu.wait_label("○ Local files — Disabled")
    assert json.loads(cfg.read_text())["mcpServers"]["files"]["enabled"] is False
    wait_for(lambda: not processes_with("ui-toggle-files"), 10, what="the server process stopped")
    menu.click("○ Local files", "Enable")
    menu.wait_label("● Local files — Available")
    assert json.loads(cfg.read_text())["mcpServers"]["files"]["enabled"] is True
    assert len(processes_with("ui-toggle-files")) == 1
    os.kill(app.proc.pid, signal.SIGTERM)
    assert app.proc.wait(20) == 0


def test_config_syntax_error_notifies_with_line_and_column_and_keeps_servers(desktop, sni_watcher, tray_app,
                                                                              tmp_path):
    cfg = write_config(tmp_path / "mcp.json", {"files": stdio_entry("ui-syntax-files", name="Local files")})
    app = tray_app(cfg)
    menu = TrayMenu(desktop)
    menu.wait_label("● Local files — Available")
    before = processes_with("ui-syntax-files")
    desktop.close_all()
    good = cfg.read_text()
    save(cfg, good.replace('"name": "Local files"', '"name": "Local files" "oops": 1'))
    wait_for(lambda: desktop.displayed() >= 1, 10, what="a notification")
    desktop.close_all()
    texts = [(n["summary"], n["body"]) for n in desktop.history()]
    hit = [b for s, b in texts if b.startswith("mcp.json: line ")]
    assert hit, texts
    assert "column" in hit[0] and "delimiter" in hit[0].lower(), hit[0]
    warn = menu.wait_label("⚠ ")
    assert warn.startswith("⚠ mcp.json:"), warn
    assert menu.item("● Local files")  # still listed as available
    assert [p.pid for p in processes_with("ui-syntax-files")] == [p.pid for p in before], "not restarted"
    save(cfg, good)
    wait_for(lambda: not any(lb.startswith("⚠") for lb in menu.labels()), 10, what="the warning cleared")
    os.kill(app.proc.pid, signal.SIGTERM)
    assert app.proc.wait(20) == 0


def test_quit_exits_0_and_leaves_no_child_process(desktop, sni_watcher, tray_app, tmp_path):
    import psutil

    cfg = write_config(tmp_path / "mcp.json", {
        f"s{i}": stdio_entry(f"ui-quit-{i}", name=f"Server {i}") for i in range(3)})
    app = tray_app(cfg)
    menu = TrayMenu(desktop)
    menu.wait_label("broxy-tray — 3 of 3 available")
    children = psutil.Process(app.proc.pid).children(recursive=True)
    assert len([c for c in children if "minimal_stdio" in " ".join(c.cmdline())]) == 3
    menu.click("Quit")
    assert app.proc.wait(20) == 0, app.output()
    gone, alive = psutil.wait_procs(children, timeout=5)
    assert alive == [], [c.cmdline() for c in alive]
    assert not any(processes_with(f"ui-quit-{i}") for i in range(3))
    assert "Traceback" not in app.output()


# -- sign-in: needs the OAuth test servers of tests/auth ---------------------------------------------------

AUTH_DIR = Path(__file__).resolve().parent.parent / "auth"


@pytest.fixture
def oauth_servers():
    if str(AUTH_DIR) not in sys.path:
        sys.path.insert(0, str(AUTH_DIR))
    try:
        from authserver import AuthServer
        from protected_mcp import ProtectedMCPServer
    except Exception as e:  # pragma: no cover
        pytest.skip(f"the OAuth test servers are not importable: {e}")
    auth = AuthServer().start()
    mcp = ProtectedMCPServer(auth).start()
    yield auth, mcp
    for s in (mcp, auth):
        s.signal_stop()
    for s in (mcp, auth):
        s.stop()


def test_sign_in_notification_countdown_cancel_and_reopen(desktop, sni_watcher, tray_app, tmp_path, oauth_servers):
    auth, mcp = oauth_servers
    opened = tmp_path / "browser.log"
    browser = tmp_path / "browser.sh"
    browser.write_text(f'#!/bin/sh\necho "$1" >> {opened}\n')  # records the URL, never signs in
    browser.chmod(browser.stat().st_mode | stat.S_IEXEC)
    cfg = write_config(tmp_path / "mcp.json", {
        "secured": {"name": "Secured MCP", "url": mcp.url, "enabled": False}}, authorizationTimeoutSeconds=60)
    app = tray_app(cfg, {"BROWSER": str(browser)})
    menu = TrayMenu(desktop)
    menu.wait_label("○ Secured MCP — Disabled")
    desktop.close_all()
    menu.click("○ Secured MCP", "Enable")
    first = menu.wait_label("◐ Secured MCP — Authorization: ", 20)
    assert wait_for(lambda: menu.sni("Status") == "NeedsAttention", 5, what="the item asking for attention")
    try:
        wait_for(lambda: desktop.displayed() >= 1, 10, what="the sign-in notification")
    except TimeoutError:
        pytest.fail(f"no notification; tray log:\n{app.log_text()}")
    wait_for(lambda: opened.exists() and opened.read_text().count("\n") == 1, 10, what="the browser opened once")
    time.sleep(2.2)
    second = menu.wait_label("◐ Secured MCP — Authorization: ")
    n1, n2 = (int(lb.rsplit(": ", 1)[1].split()[0]) for lb in (first, second))
    assert 60 >= n1 > n2 >= n1 - 4, (first, second)
    assert [i[1] for i in menu.item("◐ Secured MCP")[3]] == [
        "Cancel authorization", "Open sign-in page again", "Copy sign-in link", "Disable"]

    # the notification's Cancel button cancels the sign-in and saves the server as disabled
    desktop.choose_action("Cancel")
    menu.wait_label("○ Secured MCP — Disabled")
    assert json.loads(cfg.read_text())["mcpServers"]["secured"]["enabled"] is False
    wait_for(lambda: desktop.displayed() >= 1, 10, what="the 'sign-in cancelled' notification")
    desktop.close_all()
    texts = [(n["summary"], n["body"]) for n in desktop.history()]
    assert ("Server Authorization", "Authorize Secured MCP") in texts, texts
    assert ("broxy-tray", "Secured MCP: sign-in cancelled") in texts, texts

    assert wait_for(lambda: menu.sni("Status") == "Active", 5, what="the item back to Active")
    # enable again; clicking the prompt reopens the sign-in page; Cancel from the menu ends it
    menu.click("○ Secured MCP", "Enable")
    menu.wait_label("◐ Secured MCP — Authorization: ", 20)
    wait_for(lambda: desktop.displayed() >= 1, 10, what="the second sign-in notification")
    wait_for(lambda: opened.read_text().count("\n") == 2, 10, what="the browser opened for the second sign-in")
    desktop.default_action()
    wait_for(lambda: opened.read_text().count("\n") == 3, 10, what="the click reopened the sign-in page")
    urls = opened.read_text().split()
    assert urls[2] == urls[1] and urls[1].startswith(auth.issuer if hasattr(auth, "issuer") else "http")
    menu.click("◐ Secured MCP", "Cancel authorization")
    menu.wait_label("○ Secured MCP — Disabled")
    os.kill(app.proc.pid, signal.SIGTERM)
    assert app.proc.wait(20) == 0


def test_import_from_other_clients_item_imports_and_confirms(desktop, sni_watcher, tray_app, tmp_path, user_env):
    """Claude Desktop and Cursor have servers mcp.json lacks: the item appears, a click imports them, a notification
    confirms, the servers connect, and the item goes away."""
    cfg = write_config(tmp_path / "mcp.json", {"files": stdio_entry("ui-import-files", name="Local files")})
    home = Path(user_env["HOME"])
    claude = Path(user_env["XDG_CONFIG_HOME"]) / "Claude" / "claude_desktop_config.json"
    claude.parent.mkdir(parents=True)
    claude.write_text(json.dumps({"mcpServers": {
        "notes": stdio_entry("ui-import-notes", env={"NOTES_API_KEY": "ui-import-SECRET-value"}),
        "files": stdio_entry("ui-import-files"),  # already in mcp.json: not offered again
    }}))
    (home / ".cursor").mkdir()
    (home / ".cursor" / "mcp.json").write_text(json.dumps({"mcpServers": {"extra": stdio_entry("ui-import-extra")}}))
    app = tray_app(cfg)
    menu = TrayMenu(desktop)
    menu.wait_label("● Local files — Available")
    menu.wait_label("Import from Claude Desktop, Cursor…")
    desktop.close_all()
    menu.click("Import from Claude Desktop, Cursor…")
    # this desktop's bus has no usable keyring (storing gives up after the store's 5 s timeout), and dunst lists a
    # notification in its history once it has been shown and closed: allow for both
    wait_for(lambda: any("Imported 2 servers" in n["body"] for n in desktop.history()), 45, what="the confirmation")
    body = next(n["body"] for n in desktop.history() if "Imported 2 servers" in n["body"])
    assert "from Claude Desktop, Cursor: notes, extra" in body
    assert "broxy-tray secret set NOTES_API_KEY" in body, body
    servers = json.loads(cfg.read_text())["mcpServers"]
    assert set(servers) == {"files", "notes", "extra"}
    assert servers["notes"]["env"] == {"NOTES_API_KEY": "${NOTES_API_KEY}"}
    menu.wait_label("● extra — Available")
    wait_for(lambda: not any(lb.startswith("Import from") for lb in menu.labels()), 10, what="the item gone")
    for text in (cfg.read_text(), app.log_text(), app.output(), json.dumps(desktop.history())):
        assert "ui-import-SECRET-value" not in text
    os.kill(app.proc.pid, signal.SIGTERM)
    assert app.proc.wait(20) == 0
