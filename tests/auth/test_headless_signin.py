"""Headless sign-in as a user sees it: `broxy-tray run --headless --json` with a real browser command."""

from __future__ import annotations

import json
import signal
import sys

from signin_testlib import browser_command as browser


def test_headless_sign_in_json_lines(auth_server, mcp_server, headless, user_env, tmp_path):
    p = tmp_path / "mcp.json"
    p.write_text(json.dumps({"mcpServers": {"sec": {"name": "Secured", "url": mcp_server.url}}}))
    h = headless("--config", str(p), env=dict(user_env, BROWSER=browser(tmp_path)))
    started = h.wait_for(lambda e: e["event"] == "auth", timeout=20)
    assert started["action"] == "started" and started["server"] == "sec"
    assert started["url"].startswith(auth_server.issuer + "/authorize?") and started["secondsLeft"] == 120
    assert h.wait_for(lambda e: e["event"] == "auth", timeout=20)["action"] == "succeeded"
    available = h.wait_for(lambda e: e["event"] == "status" and e["status"] == "Available", timeout=20)
    assert available["server"] == "sec" and available["tools"] >= 2
    assert h.stop() == 0
    countdown = [e for e in h.lines if e["event"] == "status" and e["status"] == "Authorization"]
    assert countdown and countdown[0]["secondsLeft"] == 120


def test_ctrl_c_during_sign_in_exits_cleanly_and_keeps_the_file(make_auth_server, make_mcp_server, headless,
                                                               user_env, tmp_path):
    auth = make_auth_server(authorize_mode="hang")
    rs = make_mcp_server(auth)
    p = tmp_path / "mcp.json"
    text = json.dumps({"mcpServers": {"sec": {"url": rs.url}}}, indent=2)
    p.write_text(text)
    h = headless("--config", str(p), env=dict(user_env, BROWSER="true"))
    h.wait_for(lambda e: e["event"] == "auth" and e["action"] == "started", timeout=20)
    assert h.stop(signal.SIGINT) == 0
    auth.release()
    assert p.read_text() == text, "quitting is not the user cancelling: mcp.json is left alone"


def test_human_output_prints_the_sign_in_url(auth_server, mcp_server, user_env, tmp_path):
    import subprocess

    p = tmp_path / "mcp.json"
    p.write_text(json.dumps({"mcpServers": {"sec": {"name": "Secured", "url": mcp_server.url}}}))
    proc = subprocess.Popen([sys.executable, "-m", "broxy_tray", "run", "--headless", "--config", str(p)],
                            env=dict(user_env, BROWSER=browser(tmp_path)), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line.rstrip())
            if "Available" in line:
                break
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
    text = "\n".join(lines)
    assert f"Authorize Secured: open {auth_server.issuer}/authorize?" in text
    assert "Secured [sec]: Authorization: 120 s" in text
    assert "Secured: signed in" in text


def test_auth_and_logout_through_the_control_channel(auth_server, mcp_server, headless, cli, user_env, tmp_path):
    p = tmp_path / "mcp.json"
    p.write_text(json.dumps({"mcpServers": {"sec": {"name": "Secured", "url": mcp_server.url}}}, indent=2))
    env = dict(user_env, BROWSER=browser(tmp_path))
    h = headless("--config", str(p), env=env)
    h.wait_for(lambda e: e["event"] == "status" and e["status"] == "Available", timeout=20)
    r = cli("auth", "sec", "--config", str(p), env=env)
    assert r.returncode == 0, r.stderr
    h.wait_for(lambda e: e["event"] == "auth" and e["action"] == "succeeded", timeout=20)
    h.wait_for(lambda e: e["event"] == "status" and e["status"] == "Available", timeout=20)
    assert auth_server.count("authorize") == 2, "re-authorize ran a second browser sign-in"
    r = cli("status", "--json", "--config", str(p), env=env)
    assert r.returncode == 0
    line = next(json.loads(x) for x in r.stdout.splitlines() if json.loads(x)["event"] == "status")
    assert (line["server"], line["status"]) == ("sec", "Available")
    r = cli("logout", "Secured", "--config", str(p), env=env)
    assert r.returncode == 0, r.stderr
    h.wait_for(lambda e: e["event"] == "status" and e["status"] == "Disabled", timeout=20)
    assert auth_server.count("revoke") >= 1
    assert json.loads(p.read_text())["mcpServers"]["sec"]["enabled"] is False
    r = cli("auth", "nope", "--config", str(p), env=env)
    assert r.returncode == 1 and "nope" in r.stderr
    assert h.stop() == 0
