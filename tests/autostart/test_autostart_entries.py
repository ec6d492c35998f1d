"""Start-at-login entries: rendered for each OS, installed into temporary homes, idempotent, and runnable."""

from __future__ import annotations

import argparse
import configparser
import json
import os
import plistlib
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from broxy_tray.autostart import Autostart, AutostartError, desktop_exec, systemd_exec, templates_dir, windows_command
from broxy_tray.autostart import _cli as autostart_cli

EXE = os.path.abspath(sys.executable)
WEIRD = ["/opt/my apps/py", "a b", 'q"uote', "back\\slash", "dollar$HOME", "100%", "tick`", "semi;colon", "", "plain"]


def parse_desktop(text: str) -> dict[str, str]:
    cp = configparser.ConfigParser(interpolation=None, strict=True)
    cp.optionxform = str  # keys are case-sensitive
    cp.read_string(text)
    return dict(cp["Desktop Entry"])


def desktop_argv(value: str) -> list[str]:
    """Split an Exec value as the Desktop Entry Specification says (independent of the module's quoting)."""
    unescaped, i = "", 0
    while i < len(value):  # 1) the string-type escapes
        c = value[i]
        if c == "\\" and i + 1 < len(value):
            unescaped += {"s": " ", "n": "\n", "t": "\t", "r": "\r", "\\": "\\"}.get(value[i + 1], "\\" + value[i + 1])
            i += 2
        else:
            unescaped += c
            i += 1
    words, word, quoted, in_word, i = [], "", False, False, 0
    while i < len(unescaped):  # 2) quoting; inside quotes \ escapes " ` $ \
        c = unescaped[i]
        if quoted:
            if c == "\\" and unescaped[i + 1] in '"`$\\':
                word += unescaped[i + 1]
                i += 1
            elif c == '"':
                quoted = False
            else:
                word += c
        elif c == '"':
            quoted, in_word = True, True
        elif c == " ":
            if in_word:
                words.append(word)
            word, in_word = "", False
        else:
            word += c
            in_word = True
        i += 1
    assert not quoted, "unterminated quote"
    if in_word:
        words.append(word)
    return [w.replace("%%", "%") for w in words]  # 3) no field codes: %% is a literal %


def systemd_argv(value: str) -> list[str]:
    """Split an ExecStart value (the subset of systemd's rules the module may produce)."""
    words, word, quoted, in_word, i = [], "", False, False, 0
    while i < len(value):
        c = value[i]
        if quoted and c == "\\":
            word += value[i + 1]
            i += 2
            continue
        if c == '"':
            quoted, in_word = not quoted, True
        elif c == " " and not quoted:
            if in_word:
                words.append(word)
            word, in_word = "", False
        else:
            word += c
            in_word = True
        i += 1
    if in_word:
        words.append(word)
    return [w.replace("%%", "%").replace("$$", "$") for w in words]


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A fake home with XDG_CONFIG_HOME inside it (for this process and for the module's environ)."""
    h = tmp_path / "home"
    h.mkdir()
    monkeypatch.setenv("HOME", str(h))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(h / ".config"))
    monkeypatch.delenv("BROXY_CONFIG", raising=False)
    return h


def entry(home: Path, config: Path | None, **kw) -> Autostart:
    kw.setdefault("environ", {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), "PATH": "/usr/bin:/bin"})
    kw.setdefault("run_tools", False)
    return Autostart(config, home=home, **kw)


# -- quoting --


def test_desktop_exec_quoting_round_trips():
    assert desktop_argv(desktop_exec(WEIRD)) == WEIRD
    assert desktop_exec(["/usr/bin/python3", "-m", "broxy_tray"]) == "/usr/bin/python3 -m broxy_tray"


def test_systemd_exec_quoting_round_trips():
    assert systemd_argv(systemd_exec(WEIRD)) == WEIRD
    assert "$$" in systemd_exec(["$x"]) and "%%" in systemd_exec(["1%"])


def test_windows_command_quoting():
    cmd = windows_command([r"C:\Program Files\Python\pythonw.exe", "-m", "broxy_tray", "--config", r"C:\a&b\100%\x\\"])
    assert cmd == r'"C:\Program Files\Python\pythonw.exe" "-m" "broxy_tray" "--config" "C:\a&b\100%%\x\\\\"'
    with pytest.raises(AutostartError):
        windows_command(['say "hi"'])


# -- rendered for each OS --


def test_linux_xdg_entry_content(home, tmp_path):
    cfg = tmp_path / "my configs" / "mcp.json"
    a = entry(home, cfg)
    assert a.path == home / ".config" / "autostart" / "broxy-tray.desktop"
    d = parse_desktop(a.render())
    assert d["Type"] == "Application" and d["Name"] == "broxy-tray"
    assert d["Terminal"] == "false" and d["X-GNOME-Autostart-enabled"] == "true"
    assert desktop_argv(d["Exec"]) == [EXE, "-m", "broxy_tray", "--config", str(cfg)]


def test_linux_systemd_unit_content(home, tmp_path):
    cfg = tmp_path / "mcp.json"
    a = entry(home, cfg, method="systemd", platform="linux")
    assert a.path == home / ".config" / "systemd" / "user" / "broxy-tray.service"
    cp = configparser.ConfigParser(interpolation=None)
    cp.optionxform = str
    cp.read_string(a.render())
    assert systemd_argv(cp["Service"]["ExecStart"]) == [EXE, "-m", "broxy_tray", "--config", str(cfg)]
    assert cp["Service"]["Restart"] == "on-failure"
    assert cp["Install"]["WantedBy"] == "graphical-session.target"
    assert cp["Unit"]["PartOf"] == "graphical-session.target"


def test_macos_launch_agent_content(home, tmp_path):
    cfg = tmp_path / "mcp.json"
    a = entry(home, cfg, platform="darwin")
    assert a.path == home / "Library" / "LaunchAgents" / "org.broxy.tray.plist"
    plist = plistlib.loads(a.render().encode())
    assert plist["Label"] == "org.broxy.tray"
    assert plist["ProgramArguments"] == [EXE, "-m", "broxy_tray", "--config", str(cfg)]
    assert plist["RunAtLoad"] is True
    assert plist["KeepAlive"] == {"SuccessfulExit": False}  # restart after a crash only
    logs = home / "Library" / "Logs" / "broxy"
    assert plist["StandardOutPath"] == str(logs / "launchd.stdout.log")
    assert plist["StandardErrorPath"] == str(logs / "launchd.stderr.log")
    assert plist["EnvironmentVariables"]["PATH"] == "/usr/bin:/bin"


def test_macos_plist_escapes_xml(home, tmp_path):
    cfg = tmp_path / "a<b>&c.json"
    plist = plistlib.loads(entry(home, cfg, platform="darwin").render().encode())
    assert plist["ProgramArguments"][-1] == str(cfg)


def test_windows_startup_script_content(home, tmp_path):
    cfg = tmp_path / "mcp.json"
    env = {"APPDATA": str(home / "AppData" / "Roaming")}
    a = entry(home, cfg, platform="win32", environ=env)
    assert a.path == home / "AppData" / "Roaming" / "Microsoft" / "Windows" / "Start Menu" / "Programs" / "Startup" / "broxy-tray.cmd"
    text = a.render()
    assert text.endswith("\r\n") and "\n" not in text.replace("\r\n", "")
    lines = text.split("\r\n")
    assert lines[0] == "@echo off"
    assert f'start "" "{EXE}" "-m" "broxy_tray" "--config" "{cfg}"' in lines


def test_windows_prefers_pythonw(tmp_path, home):
    exe = tmp_path / "venv" / "Scripts" / "python.exe"
    exe.parent.mkdir(parents=True)
    exe.touch()
    (exe.parent / "pythonw.exe").touch()
    a = entry(home, None, platform="win32", executable=str(exe), environ={"APPDATA": str(home)})
    assert a.command()[0] == str(exe.parent / "pythonw.exe")


def test_the_default_config_is_not_passed(home):
    from broxy_tray.config import default_config_path

    assert default_config_path() == home / ".config" / "broxy" / "mcp.json"
    assert entry(home, default_config_path()).command() == [EXE, "-m", "broxy_tray"]
    assert entry(home, None).command() == [EXE, "-m", "broxy_tray"]
    assert "--config" not in parse_desktop(entry(home, None).render())["Exec"]


def test_the_interpreter_path_keeps_its_symlink(home, tmp_path):
    link = tmp_path / "venv" / "bin" / "python"
    link.parent.mkdir(parents=True)
    link.symlink_to(sys.executable)
    assert entry(home, None, executable=str(link)).command()[0] == str(link)


def test_xdg_config_home_is_respected_and_a_relative_one_ignored(home, tmp_path):
    custom = tmp_path / "cfg"
    a = Autostart(None, home=home, environ={"XDG_CONFIG_HOME": str(custom)}, run_tools=False)
    assert a.path == custom / "autostart" / "broxy-tray.desktop"
    a = Autostart(None, home=home, environ={"XDG_CONFIG_HOME": "relative/dir"}, run_tools=False)
    assert a.path == home / ".config" / "autostart" / "broxy-tray.desktop"
    a = Autostart(None, home=home, environ={}, run_tools=False)
    assert a.path == home / ".config" / "autostart" / "broxy-tray.desktop"


def test_an_unknown_method_is_refused(home):
    with pytest.raises(AutostartError, match="not available"):
        Autostart(None, method="launchd", platform="linux")


# -- installed: enable / disable / status, idempotent --


@pytest.mark.parametrize("platform,method", [("linux", "xdg"), ("linux", "systemd"), ("darwin", "launchd"), ("win32", "startup")])
def test_enable_disable_status_are_idempotent(home, tmp_path, platform, method):
    env = {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), "APPDATA": str(home / "AppData" / "Roaming"),
           "PATH": "/usr/bin"}
    a = entry(home, tmp_path / "mcp.json", platform=platform, method=method, environ=env)
    s = a.status()
    assert not s.enabled and not a.is_enabled() and s.path == a.path and "disabled" in s.describe()

    assert a.enable() is True
    assert a.path.is_file() and a.path.read_bytes().decode() == a.render()
    mtime = a.path.stat().st_mtime_ns
    assert a.is_enabled()
    s = a.status()
    assert s.enabled and s.up_to_date and s.method == method and str(a.path) in s.describe()

    assert a.enable() is False, "enabling twice changes nothing"
    assert a.path.stat().st_mtime_ns == mtime
    if method == "systemd":
        link = a.path.parent / "graphical-session.target.wants" / "broxy-tray.service"
        assert link.is_symlink() and link.resolve() == a.path.resolve()
    if method == "launchd":
        assert (home / "Library" / "Logs" / "broxy").is_dir()

    assert a.disable() is True
    assert not a.path.exists() and not a.is_enabled()
    assert a.disable() is False, "disabling twice changes nothing"
    assert not a.status().enabled


def test_an_outdated_entry_is_reported_and_rewritten(home, tmp_path):
    a = entry(home, tmp_path / "mcp.json")
    a.path.parent.mkdir(parents=True)
    a.path.write_text("[Desktop Entry]\nType=Application\nExec=/old/python -m broxy_tray\n")
    s = a.status()
    assert s.enabled and not s.up_to_date and "differs" in s.describe()
    assert a.enable() is True
    assert a.status().up_to_date


def test_switching_linux_methods_leaves_one_entry(home, tmp_path):
    xdg = entry(home, tmp_path / "mcp.json", method="xdg")
    unit = entry(home, tmp_path / "mcp.json", method="systemd")
    xdg.enable()
    assert unit.enable() is True
    assert not xdg.path.exists() and unit.path.exists()
    assert xdg.is_enabled(), "is_enabled() sees any method (the tray toggle)"
    assert xdg.status().method == "systemd"
    assert xdg.enable() is True
    assert xdg.path.exists() and not unit.path.exists()
    assert not (unit.path.parent / "graphical-session.target.wants" / "broxy-tray.service").exists()
    assert xdg.disable() is True and not xdg.is_enabled()


def test_the_cli_actions(home, tmp_path, capsys):
    cfg = tmp_path / "mcp.json"

    def run(action: str) -> tuple[int, str]:
        rc = autostart_cli.run(argparse.Namespace(command="autostart", action=action, config=str(cfg), method=None))
        return rc, capsys.readouterr().out

    path = home / ".config" / "autostart" / "broxy-tray.desktop"
    assert run("status") == (0, f"Start at login: disabled (XDG autostart entry would be {path})\n")
    rc, out = run("enable")
    assert rc == 0 and f"Start at login enabled: XDG autostart entry {path}" in out and f"--config {cfg}" in out
    rc, out = run("enable")
    assert rc == 0 and "already enabled" in out
    rc, out = run("status")
    assert rc == 0 and f"Start at login: enabled (XDG autostart entry {path})" in out
    rc, out = run("disable")
    assert rc == 0 and f"removed {path}" in out
    rc, out = run("disable")
    assert rc == 0 and "already disabled" in out
    assert not path.exists()


def test_templates_live_in_installers():
    d = templates_dir()
    assert d == Path(__file__).resolve().parents[2] / "installers"
    for rel in ("linux/autostart.desktop.in", "linux/broxy-tray.service.in", "macos/launchagent.plist.in",
                "windows/startup.cmd.in"):
        assert (d / rel).is_file(), rel


def test_the_menu_desktop_entry():
    d = parse_desktop((templates_dir() / "linux" / "broxy-tray.desktop").read_text())
    assert d["Type"] == "Application" and d["Exec"] == "broxy-tray" and d["Icon"] == "broxy-tray"
    assert d["Categories"].endswith(";")
    readme = (templates_dir() / "README.md").read_text()
    assert "icons/broxy.svg" in readme and "pipx install" in readme


# -- the Exec line starts the app --


def _start(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[subprocess.Popen[str], queue.Queue[str | None]]:
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    return proc, lines


def _stop(proc: subprocess.Popen[str]) -> int:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        return proc.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise


@pytest.mark.skipif(os.name == "nt", reason="XDG entries are for Linux desktops")
def test_the_installed_exec_line_starts_the_app(user_env, tmp_path):
    cfg = tmp_path / "configs" / "my mcp.json"
    cfg.parent.mkdir()
    cfg.write_text(json.dumps({"mcpServers": {"off": {"command": "nothing-here", "enabled": False}}}))
    a = Autostart(cfg, environ=user_env, home=Path(user_env["HOME"]), run_tools=False)
    assert a.enable()
    installed = Path(user_env["XDG_CONFIG_HOME"]) / "autostart" / "broxy-tray.desktop"
    assert a.path == installed and installed.is_file()
    argv = desktop_argv(parse_desktop(installed.read_text())["Exec"])
    assert argv == [EXE, "-m", "broxy_tray", "--config", str(cfg)]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    # 1) with `run --headless --json` appended: the first JSON line is the config load
    proc, lines = _start(argv + ["run", "--headless", "--json"], user_env, elsewhere)
    try:
        first = lines.get(timeout=30)
        assert first is not None, proc.stderr.read() if proc.poll() is not None else ""
        event = json.loads(first)
        assert event["event"] == "config" and event["action"] == "loaded"
    finally:
        assert _stop(proc) == 0

    # 2) as is, without a display: it falls back to headless and says so
    proc, lines = _start(argv, user_env, elsewhere)
    try:
        first = lines.get(timeout=30)
        assert first is not None and "config loaded" in first
    finally:
        assert _stop(proc) == 0
        assert "running headless" in proc.stderr.read()


def test_autostart_through_the_cli(cli, user_env, tmp_path):
    entry_path = Path(user_env["XDG_CONFIG_HOME"]) / "autostart" / "broxy-tray.desktop"
    r = cli("autostart", "status")
    assert r.returncode == 0 and "Start at login: disabled" in r.stdout and str(entry_path) in r.stdout
    r = cli("autostart", "enable")
    assert r.returncode == 0, r.stderr
    assert "Start at login enabled" in r.stdout
    assert desktop_argv(parse_desktop(entry_path.read_text())["Exec"]) == [EXE, "-m", "broxy_tray"], \
        "the default config is not passed"
    assert "already enabled" in cli("autostart", "enable").stdout
    cfg = tmp_path / "other.json"
    r = cli("autostart", "enable", "--config", str(cfg))
    assert r.returncode == 0 and "enabled" in r.stdout
    assert desktop_argv(parse_desktop(entry_path.read_text())["Exec"])[-2:] == ["--config", str(cfg)]
    r = cli("autostart", "status", "--config", str(cfg))
    assert "Start at login: enabled" in r.stdout
    r = cli("autostart", "disable")
    assert r.returncode == 0 and "removed" in r.stdout and not entry_path.exists()
    assert "already disabled" in cli("autostart", "disable").stdout
    r = cli("autostart", "frobnicate")
    assert r.returncode == 2
