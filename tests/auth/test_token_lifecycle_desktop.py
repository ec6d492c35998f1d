"""The token lifecycle as a user lives it: the real `broxy-tray run --headless`, a real gnome-keyring,
the rotating loopback AS holding refresh answers; what is stored is read back with secret-tool."""

from __future__ import annotations

import json
import re
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from secret_service import SecretService, _wait_for
from signin_testlib import browser_command

TTL = 6  # a 6 s token is refreshed 3 s after it was issued


def desktop_env(ss: SecretService, tmp_path: Path) -> dict[str, str]:
    return dict(ss.env, XDG_STATE_HOME=str(tmp_path / "state"), BROWSER=browser_command(tmp_path))


def log_text(tmp_path: Path) -> str:
    path = tmp_path / "state" / "broxy" / "log" / "broxy-tray.log"
    return path.read_text() if path.exists() else ""


def wait_until(pred: Any, what: str, timeout: float = 30.0) -> Any:
    return _wait_for(pred, timeout, what)


def available(h: Any, *ids: str, timeout: float = 30.0) -> None:
    left = set(ids)
    while left:
        e = h.wait_for(lambda e: e["event"] == "status" and e["status"] == "Available" and e["server"] in left,
                       timeout)
        left.discard(e["server"])


def stored(ss: SecretService, sid: str) -> dict[str, Any]:
    return json.loads(ss.lookup(sid))


def test_sigterm_during_a_refresh_then_restart_needs_no_browser(make_auth_server, make_mcp_server,
                                                                secret_service, headless, tmp_path):
    auth = make_auth_server(access_token_ttl=TTL)
    rs = make_mcp_server(auth)
    cfg = tmp_path / "mcp.json"
    cfg.write_text(json.dumps({"mcpServers": {"sec": {"url": rs.url}}}))
    env = desktop_env(secret_service, tmp_path)
    h = headless("--config", str(cfg), env=env)
    available(h, "sec")
    assert auth.count("authorize") == 1 and auth.count("register") == 1
    auth.set_fault("token", "hold")  # the next refresh is processed (rotated) and its answer held
    wait_until(lambda: auth.stats["held"] == 1, "a refresh in flight")
    h.proc.send_signal(signal.SIGTERM)
    time.sleep(1.0)
    assert h.proc.poll() is None, "quitting waits for the refresh in flight"
    auth.release()
    assert h.stop() == 0
    rotated = stored(secret_service, "sec")["tokens"]["refresh_token"]
    assert auth.refresh_token_active(rotated), "the rotated refresh token was saved before quitting"

    auth.clear_faults()
    auth.reset_log()
    again = headless("--config", str(cfg), env=env)
    available(again, "sec")
    assert again.stop() == 0
    assert auth.count("authorize") == 0 and auth.count("register") == 0, "warm restart: no browser, no registration"
    assert auth.stats["reuse_detected"] == 0 and auth.stats["invalid_grant"] == 0
    assert "waiting for 1 token refresh(es) in flight" in log_text(tmp_path)


def test_remove_rename_sign_out_while_refreshing_leave_storage_as_the_config_says(
        make_auth_server, make_mcp_server, secret_service, headless, cli, tmp_path):
    auth = make_auth_server(access_token_ttl=TTL)
    servers = {sid: make_mcp_server(auth) for sid in ("gone", "renamed", "signed-out")}
    cfg = tmp_path / "mcp.json"
    cfg.write_text(json.dumps({"mcpServers": {sid: {"url": rs.url} for sid, rs in servers.items()}}, indent=2))
    env = desktop_env(secret_service, tmp_path)
    h = headless("--config", str(cfg), env=env)
    available(h, *servers)
    assert sorted(secret_service.usernames()) == sorted(servers)
    auth.set_fault("token", "hold")
    wait_until(lambda: auth.stats["held"] == 3, "three refreshes in flight")

    r = cli("logout", "signed-out", "--config", str(cfg), env=env)  # waits ≤ 5 s for the held refresh, ends it
    assert r.returncode == 0, r.stderr
    edit = json.loads(cfg.read_text())
    del edit["mcpServers"]["gone"]
    cfg.write_text(json.dumps(edit, indent=2))
    event = h.wait_for(lambda e: e["event"] == "config" and e["removed"] == ["gone"], 20)
    assert event["authCleared"] == ["gone"]
    wait_until(lambda: "auth: clear gone" in log_text(tmp_path), "the removal applied")
    assert "gone" not in secret_service.usernames()
    edit["mcpServers"]["moved"] = edit["mcpServers"].pop("renamed")
    cfg.write_text(json.dumps(edit, indent=2))
    event = h.wait_for(lambda e: e["event"] == "config" and e["removed"] == ["renamed"], 20)
    assert event["authMoved"] == [{"from": "renamed", "to": "moved"}]
    auth.release()  # the three answers arrive now: after removal and sign-out, during the rename
    available(h, "moved")
    wait_until(lambda: log_text(tmp_path).count("dropping a result of an ended sign-in generation") == 2,
               "the answers for the removed and the signed-out server dropped")
    h.stop()

    assert secret_service.usernames() == ["moved", "signed-out"], "no entry or part of 'gone' or 'renamed'"
    assert stored(secret_service, "signed-out")["tokens"] is None
    moved = stored(secret_service, "moved")["tokens"]
    assert auth.refresh_token_active(moved["refresh_token"]), "the rotated token moved with the rename"
    assert auth.count("authorize") == 3 and auth.stats["reuse_detected"] == 0
    log = log_text(tmp_path)
    for sid in ("gone", "signed-out"):
        assert f"{sid}: dropping a result" in log


@pytest.fixture(autouse=True)
def _no_secrets_in_logs(tmp_path):
    yield
    leaked = re.findall(r"\b(?:at|rt|code)_[A-Za-z0-9_-]{20,}", log_text(tmp_path))  # the test AS's token shapes
    assert not leaked, "a token reached the log"


def test_keyring_locked_mid_run_keeps_the_tokens_of_the_run(make_auth_server, make_mcp_server, secret_service,
                                                            headless, tmp_path):
    auth = make_auth_server(access_token_ttl=TTL)
    rs = make_mcp_server(auth)
    cfg = tmp_path / "mcp.json"
    cfg.write_text(json.dumps({"mcpServers": {"sec": {"url": rs.url}}}))
    h = headless("--config", str(cfg), env=desktop_env(secret_service, tmp_path))
    available(h, "sec")
    seen = len(h.lines)
    secret_service.lock()  # as a screen lock would; saving now fails or times out
    wait_until(lambda: len(auth.refresh_grants(outcome="issued")) >= 3, "three refreshes after the lock", 60)
    assert h.proc.poll() is None
    assert auth.stats["reuse_detected"] == 0 and auth.stats["invalid_grant"] == 0, "the rotated tokens were kept"
    assert auth.count("authorize") == 1, "no sign-in"
    assert "Secure storage unavailable" in log_text(tmp_path)
    try:
        h.wait_for(lambda e: False, timeout=0.5)  # read what was printed since
    except TimeoutError:
        pass
    after = [e["status"] for e in h.lines[seen:] if e["event"] in ("status", "auth") and e["server"] == "sec"]
    assert set(after) <= {"Available"}, after
    assert h.stop() == 0
