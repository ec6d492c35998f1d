"""The `broxy-tray` command as a user runs it: real subprocesses, real files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from broxy_tray import __version__


def test_help_and_version(cli):
    r = cli("--help")
    assert r.returncode == 0
    for word in ("run", "config", "--config", "BROXY_CONFIG", "headless", "--log-level"):
        assert word in r.stdout
    r = cli("run", "--help")
    assert "--headless" in r.stdout and "--json" in r.stdout
    r = cli("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"broxy-tray {__version__}"


def test_bad_usage_exits_2(cli):
    r = cli("frobnicate")
    assert r.returncode == 2 and "invalid choice" in r.stderr


@pytest.mark.parametrize("command", ["config", "secret", "autostart"])
def test_a_command_without_its_action_exits_2_and_says_so(cli, command):
    r = cli(command)
    assert r.returncode == 2 and r.stdout == "", (r.returncode, r.stdout)
    assert f"broxy-tray {command}" in r.stderr


def test_config_path_precedence(cli, user_env, tmp_path):
    r = cli("config", "path")
    assert r.stdout.strip() == str(Path(user_env["XDG_CONFIG_HOME"]) / "broxy" / "mcp.json")
    env = dict(user_env, BROXY_CONFIG=str(tmp_path / "env.json"))
    assert cli("config", "path", env=env).stdout.strip() == str(tmp_path / "env.json")
    r = cli("config", "path", "--config", str(tmp_path / "flag.json"), env=env)
    assert r.stdout.strip() == str(tmp_path / "flag.json")
    r = cli("--config", str(tmp_path / "before.json"), "config", "path", env=env)
    assert r.stdout.strip() == str(tmp_path / "before.json"), "global option before the command works too"


def test_config_check_valid(cli, tmp_path):
    p = tmp_path / "mcp.json"
    p.write_text(json.dumps({"mcpServers": {"a": {"command": "x"}, "b": {"url": "https://h/mcp", "enabled": False}}}))
    r = cli("config", "check", "--config", str(p))
    assert r.returncode == 0
    assert r.stdout.strip() == f"{p}: OK (2 servers, 1 enabled)"


def test_config_check_reports_each_problem_with_location(cli, tmp_path):
    p = tmp_path / "mcp.json"
    p.write_text('{\n  "mcpServers": {\n    "a": {"command": 3},\n    "b": {"url": "ftp://x"},\n    "c": {"command": "ok", "colour": 1}\n  }\n}\n')
    r = cli("config", "check", "--config", str(p))
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert f"{p}:3:22: command must be a string, not a number (mcpServers.a.command)" in lines
    assert any(line.startswith(f"{p}:4:18: url scheme 'ftp'") for line in lines)
    assert f"{p}:5:28: warning: unknown key 'colour' is ignored (mcpServers.c.colour)" in lines


def test_config_check_syntax_error_and_missing_file(cli, tmp_path):
    p = tmp_path / "mcp.json"
    p.write_text('{"mcpServers": {"a": }}')
    r = cli("config", "check", "--config", str(p))
    assert r.returncode == 1 and r.stderr.startswith(f"{p}:1:22: invalid JSON: Expecting value")
    missing = tmp_path / "none.json"
    r = cli("config", "check", "--config", str(missing))
    assert r.returncode == 1 and "file not found" in r.stderr and "starter config" in r.stderr
    assert not missing.exists(), "check never creates the file"


def test_run_creates_starter_config_and_runs_headless(headless, user_env, cli):
    default = Path(user_env["XDG_CONFIG_HOME"]) / "broxy" / "mcp.json"
    h = headless()
    ev = h.config_event()
    assert ev["action"] == "loaded" and ev["errors"] == []
    statuses = [h.wait_for(lambda e: e["event"] == "status") for _ in range(2)]
    assert {s["server"]: s["status"] for s in statuses} == {"everything": "Disabled", "remote-example": "Disabled"}
    assert default.exists() and (default.stat().st_mode & 0o777) == 0o600
    assert cli("config", "check").returncode == 0
    assert h.stop(signal.SIGTERM) == 0
    assert "created a starter config at" in h.stderr()


def test_status_line_contract(headless, tmp_path, minimal_server):
    p = tmp_path / "mcp.json"
    p.write_text(json.dumps({"mcpServers": {"a": {"name": "Alpha", **minimal_server}}}))
    h = headless("--config", str(p))
    h.config_event()
    line = h.wait_for(lambda e: e["event"] == "status")
    assert set(line) >= {"event", "server", "name", "status", "detail", "secondsLeft", "ts"}
    assert (line["server"], line["name"], line["status"], line["secondsLeft"]) == ("a", "Alpha", "Connecting", None)
    assert isinstance(line["ts"], float)
    line = h.wait_for(lambda e: e["event"] == "status")
    assert (line["status"], line["tools"]) == ("Available", 3)
    assert line["detail"].startswith("minimal-stdio 0.1 · protocol ")
    assert h.stop(signal.SIGINT) == 0, "Ctrl-C exits cleanly with 0"


def test_live_reload_events(headless, tmp_path, save_config, minimal_server, closed_port_url):
    p = tmp_path / "mcp.json"
    cfg = {"mcpServers": {"a": dict(minimal_server), "b": dict(minimal_server), "r": {"url": closed_port_url}}}
    save_config(p, cfg)
    h = headless("--config", str(p))
    assert h.config_event()["started"] == ["a", "b", "r"]
    cfg["mcpServers"]["b"]["args"] = ["--v"]
    cfg["mcpServers"]["gh"] = cfg["mcpServers"].pop("r")
    save_config(p, cfg)
    ev = h.config_event()
    assert ev["action"] == "reloaded"
    assert ev["restarted"] == ["b"] and ev["started"] == ["gh"] and ev["stopped"] == ["r"]
    assert ev["unchanged"] == ["a"] and ev["authMoved"] == [{"from": "r", "to": "gh"}]
    save_config(p, '{\n  "mcpServers": {\n    "a": {"command": "x"\n  }\n}')
    ev = h.config_event()
    assert ev["action"] == "error"
    assert ev["errors"][0]["line"] == 5 and ev["errors"][0]["column"] == 2
    assert ev["errors"][0]["message"].startswith("invalid JSON")
    assert ev["errors"][0]["file"] == str(p)
    assert h.stop() == 0
    status_after_error = [e for e in h.lines[h.lines.index(ev):] if e["event"] == "status"]
    assert status_after_error == [], "a broken save changes no server"


def test_second_instance_refused_and_stale_lock_ignored(headless, tmp_path, cli):
    p = tmp_path / "mcp.json"
    p.write_text('{"mcpServers": {}}')
    first = headless("--config", str(p))
    first.config_event()
    r = cli("run", "--headless", "--config", str(p), timeout=20)
    assert r.returncode == 1
    assert r.stderr.startswith(f"broxy-tray is already running for {p} (process {first.proc.pid})"), r.stderr
    os.killpg(first.proc.pid, signal.SIGKILL)
    first.proc.wait()
    second = headless("--config", str(p))
    assert second.config_event()["action"] == "loaded", "a killed instance leaves no stale lock"
    other = tmp_path / "other.json"
    other.write_text('{"mcpServers": {}}')
    third = headless("--config", str(other))
    assert third.config_event()["action"] == "loaded", "another config file may run alongside"
    assert second.stop() == 0 and third.stop() == 0


def test_plain_command_falls_back_to_headless_without_display(user_env, tmp_path):
    p = tmp_path / "mcp.json"
    p.write_text('{"mcpServers": {"a": {"command": "x", "enabled": false}}}')
    proc = subprocess.Popen([sys.executable, "-m", "broxy_tray", "--config", str(p)], env=user_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
        assert "config loaded" in first
        assert "a [a]: Disabled" in proc.stdout.readline()
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert "no display (DISPLAY and WAYLAND_DISPLAY are unset); running headless in the terminal." in err


def test_human_output_shows_reload_and_errors(user_env, tmp_path, save_config, minimal_server):
    p = tmp_path / "mcp.json"
    save_config(p, {"mcpServers": {"a": minimal_server}})
    proc = subprocess.Popen([sys.executable, "-m", "broxy_tray", "run", "--headless", "--config", str(p)],
                            env=user_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().rstrip().endswith("config loaded: started a")
        assert proc.stdout.readline().rstrip().endswith("a [a]: Connecting")
        assert "a [a]: Available · 3 tools · minimal-stdio 0.1 · protocol" in proc.stdout.readline()
        save_config(p, {"mcpServers": {"a": minimal_server, "b": {"url": "nope"}}})
        assert proc.stdout.readline().rstrip().endswith("config reloaded: nothing to change")
        line = proc.stdout.readline()
        assert f"{p}:" in line and "url must be an absolute http:// or https:// URL (mcpServers.b.url)" in line
        assert "b [b]: Error: url must be an absolute" in proc.stdout.readline()
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
    assert proc.returncode == 0


def test_log_file_has_no_secrets(headless, tmp_path, user_env, save_config, closed_port_url):
    secret_header, secret_client, secret_env = "hdr-6a1f0c9e-secret", "cs-77b2d4-secret", "env-90ab12-secret"
    env = dict(user_env, HDR=secret_header, CS=secret_client, EV=secret_env)
    p = tmp_path / "mcp.json"
    cfg = {"mcpServers": {
        "r": {"url": closed_port_url, "headers": {"X-Key": "${HDR}"},
              "auth": {"clientId": "c", "clientSecret": "${CS}"}},
        "s": {"command": "x", "env": {"TOKEN": "${EV}"}},
    }}
    save_config(p, cfg)
    h = headless("--config", str(p), "--log-level", "debug", env=env)
    h.config_event()
    cfg["mcpServers"]["r"]["headers"]["X-Other"] = "${HDR}"
    save_config(p, cfg)
    h.config_event()
    assert h.stop() == 0
    log = (Path(user_env["XDG_STATE_HOME"]) / "broxy" / "log" / "broxy-tray.log").read_text()
    assert "config loaded" in log and "config reloaded" in log, "the log is written"
    for secret in (secret_header, secret_client, secret_env):
        assert secret not in log
        assert all(secret not in line.get("detail", "") for line in h.lines)
