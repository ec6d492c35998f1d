"""Backend choice and the headless fallback message, without a display."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from broxy_tray.ui.tray import TrayUnavailable, choose_backend


def test_no_display_means_no_tray():
    with pytest.raises(TrayUnavailable, match="no display"):
        choose_backend({}, "linux")


def test_platform_backends_and_explicit_choice():
    assert choose_backend({}, "darwin") == "darwin"
    assert choose_backend({}, "win32") == "win32"
    assert choose_backend({"PYSTRAY_BACKEND": "gtk"}, "linux") == "gtk"


def test_without_a_session_bus_or_pygobject_the_message_says_why_and_what_to_install(tmp_path):
    # a child with a display but no session bus, where `import gi` fails: one line, the reason, the extra, the packages
    (tmp_path / "gi.py").write_text("raise ImportError('no gi here')\n")
    code = ("from broxy_tray.ui.tray import load_backend, TrayUnavailable\n"
            "try:\n    load_backend()\nexcept TrayUnavailable as e:\n    print(e)\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYSTRAY_BACKEND", "DBUS_SESSION_BUS_ADDRESS")}
    env.update(DISPLAY=":12345", PYTHONPATH=str(tmp_path), XDG_RUNTIME_DIR=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60).stdout
    assert out.startswith("no session bus (DBUS_SESSION_BUS_ADDRESS is unset); "), out
    assert "PyGObject, which is not installed" in out and "broxy-tray[xembed]" in out and "gir1.2-gtk-3.0" in out
    assert len(out.strip().splitlines()) == 1


def test_unreachable_display_is_reported_not_raised():
    pytest.importorskip("gi")
    code = ("from broxy_tray.ui.tray import unavailable_reason\nprint(repr(unavailable_reason()))\n")
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYSTRAY_BACKEND", "WAYLAND_DISPLAY", "DBUS_SESSION_BUS_ADDRESS")}
    env.update(DISPLAY=":54321", XDG_RUNTIME_DIR=os.path.dirname(os.path.abspath(__file__)))  # no session bus
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert "cannot open the display :54321" in r.stdout, r.stdout + r.stderr


def test_doctor_report_has_the_facts_and_no_secrets(tmp_path, monkeypatch):
    from broxy_tray.ui.doctor import doctor_report

    cfg = tmp_path / "mcp.json"
    cfg.write_text('{"mcpServers": {"a": {"url": "https://x.example.com/mcp", '
                   '"headers": {"Authorization": "Bearer s3cr3t-t0ken-value"}}, "b": {"command": "true"}}}')
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    text = doctor_report(cfg)
    for needle in ("broxy-tray 0.1.0", "platform:", "tray backend: none — no display", "notification service: none",
                   "keyring", f"config: {cfg}", "config: valid; 2 servers (1 http, 1 stdio), 2 enabled", "log: "):
        assert needle in text, needle
    assert "s3cr3t" not in text


def test_doctor_counts_the_transport_of_a_broken_entry(tmp_path, monkeypatch):
    from broxy_tray.ui.doctor import doctor_report

    cfg = tmp_path / "mcp.json"
    cfg.write_text('{"mcpServers": {"a": {"command": "x", "env": {"T": "${MY_TOKEN}"}}, "b": {"command": "true"}}}')
    monkeypatch.delenv("MY_TOKEN", raising=False)
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    text = doctor_report(cfg)
    assert "config: 1 problem(s); 2 servers (2 stdio), 2 enabled" in text, text
    assert "MY_TOKEN" in text
