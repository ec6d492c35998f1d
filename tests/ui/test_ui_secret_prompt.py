"""The tray's "Set NAME…" for a server in Error over an unset `${NAME}`, on the real desktop (Xvfb, dunst,
dbusmenu): without a password prompt it shows the CLI command; with one, the answer goes to the secret store."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
from ui_testlib import TrayMenu, stdio_entry, wait_for

pytestmark = pytest.mark.timeout(90)


def _config(tmp_path: Path, var: str) -> Path:
    path = tmp_path / "mcp.json"
    path.write_text(json.dumps({"mcpServers": {"gh": stdio_entry("ui-secret-gh", name="GitHub",
                                                                  env={"TOKEN": f"${{{var}}}"})}}, indent=2))
    return path


def _bodies(desktop) -> list[str]:  # type: ignore[no-untyped-def]
    return [n["body"] for n in desktop.history()]


def test_set_name_without_a_prompt_shows_the_command(desktop, sni_watcher, tray_app, tmp_path):
    bin_dir = tmp_path / "bin"  # no zenity, no kdialog
    bin_dir.mkdir()
    app = tray_app(_config(tmp_path, "UI_GH_TOKEN"), {"PATH": str(bin_dir), "PYTHON_KEYRING_BACKEND":
                                                      "keyring.backends.fail.Keyring"})
    menu = TrayMenu(desktop)
    menu.wait_label("✕ GitHub — Error")
    desktop.close_all()
    menu.click("✕ GitHub", "Set UI_GH_TOKEN…")
    wait_for(lambda: any("broxy-tray secret set UI_GH_TOKEN" in b for b in _bodies(desktop)), 15,
             what="a notification with the command")
    os.kill(app.proc.pid, signal.SIGTERM)
    assert app.proc.wait(20) == 0


def test_set_name_with_a_prompt_stores_the_answer(desktop, sni_watcher, tray_app, tmp_path):
    # a stand-in for zenity (nobody here types into the real dialog): arguments in, the value on stdout
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    typed = f"typed-{os.urandom(6).hex()}"
    zenity = bin_dir / "zenity"
    zenity.write_text(f"#!/bin/sh\necho \"$@\" > {tmp_path / 'zenity.args'}\nprintf '%s\\n' '{typed}'\n")
    zenity.chmod(0o755)
    # no keyring in this desktop session: storing fails, and says so — the whole path ran
    app = tray_app(_config(tmp_path, "UI_GH_TOKEN2"), {"PATH": f"{bin_dir}:/usr/bin:/bin",
                                                       "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"})
    menu = TrayMenu(desktop)
    menu.wait_label("✕ GitHub — Error")
    desktop.close_all()
    menu.click("✕ GitHub", "Set UI_GH_TOKEN2…")
    wait_for(lambda: any("could not store UI_GH_TOKEN2: no usable keyring" in b for b in _bodies(desktop)), 15,
             what="the store's answer as a notification")
    args = (tmp_path / "zenity.args").read_text()
    assert args.startswith("--entry --hide-text")
    assert "--text=Value for UI_GH_TOKEN2, used by server &#x27;gh&#x27;" in args
    os.kill(app.proc.pid, signal.SIGTERM)
    assert app.proc.wait(20) == 0
    assert typed not in app.log_text() and typed not in app.output()
