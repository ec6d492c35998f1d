"""`${NAME}` backed by the real OS keyring (gnome-keyring on a private bus), end to end.

The app runs as `broxy-tray run --headless --json` in the keyring's isolated
environment; secrets are set with the real CLI, which tells the running app
over its control channel. Children are found in /proc by a marker in their
command line, so "not restarted" means "same PID", and "the value arrived"
means "it is in the child's environment".
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from secrets_testlib import environ_of, marker, pids_with, run_cli, stdio_entry

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="gnome-keyring and /proc: Linux")

NAME = "BT_LIVE_TOKEN"


def _value(tag: str) -> str:
    return f"{tag}-{os.urandom(8).hex()}"  # unique per run: a grep hit can only be a leak


def _wait(pred: Any, timeout: float = 30, what: str = "") -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = pred()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _status(h: Any, server: str, status: str, timeout: float = 30) -> dict[str, Any]:
    """The server's latest status line if it already says `status`, else the next one that does."""
    latest = [e for e in h.lines if e["event"] == "status" and e["server"] == server][-1:]
    if latest and latest[0]["status"] == status:
        return latest[0]
    return h.wait_for(lambda e: e["event"] == "status" and e["server"] == server and e["status"] == status, timeout)


def _one_pid(mark: str) -> int:
    pids = _wait(lambda: pids_with(mark), what=f"a process with {mark}")
    assert len(pids) == 1, pids
    return pids[0]


def _no_value_anywhere(values: list[str], *texts: str, files: list[Path] = (), pids: list[int] = ()) -> None:
    for v in values:
        for t in texts:
            assert v not in t, "a secret value reached an output"
        for f in files:
            assert v not in f.read_text(errors="replace"), f"a secret value reached {f}"
        for pid in pids:
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            assert v.encode() not in cmdline, "a secret value is on a child's command line"


def test_set_change_rm_apply_live_and_leave_the_others_alone(keyring_env: dict[str, str], tmp_path: Path,
                                                             headless: Any) -> None:
    env = keyring_env
    env.pop(NAME, None)
    m_needs, m_other = marker(), marker()
    config = tmp_path / "mcp.json"
    config.write_text(json.dumps({"mcpServers": {
        "needs": stdio_entry(m_needs, env={"TOKEN": f"${{{NAME}}}"}),
        "other": stdio_entry(m_other),
    }}, indent=2))
    h = headless("--config", str(config), env=env)
    err = _status(h, "needs", "Error")
    assert err["detail"].endswith(f"is not set: `broxy-tray secret set {NAME}`"), err
    _status(h, "other", "Available")
    other_pid = _one_pid(m_other)
    assert pids_with(m_needs) == []

    first, second = _value("first"), _value("second")
    r = run_cli(env, "secret", "set", NAME, "--config", str(config), input=first + "\n")
    assert r.returncode == 0, r.stderr
    assert "The running broxy-tray applied it." in r.stdout
    _status(h, "needs", "Available")
    needs_pid = _one_pid(m_needs)
    assert environ_of(needs_pid)["TOKEN"] == first, "the stored value reached the child's environment"
    assert pids_with(m_other) == [other_pid], "setting a secret restarts nobody else"

    elsewhere = tmp_path / "other-runtime"  # as from a terminal whose XDG_RUNTIME_DIR differs from the app's
    elsewhere.mkdir(mode=0o700)
    r = run_cli({**env, "XDG_RUNTIME_DIR": str(elsewhere)}, "secret", "set", NAME, "--config", str(config),
                input=second)
    assert r.returncode == 0, r.stderr
    assert "applied" in r.stdout, "the running app is found through its instance lock, not the runtime dir"
    _wait(lambda: pids_with(m_needs) and pids_with(m_needs) != [needs_pid], what="needs restarted")
    _status(h, "needs", "Available")
    new_pid = _one_pid(m_needs)
    assert environ_of(new_pid)["TOKEN"] == second, "a changed value restarts the server with it"
    assert pids_with(m_other) == [other_pid]

    listed = run_cli(env, "secret", "list", "--config", str(config))
    assert listed.returncode == 0 and f"{NAME}: used by needs" in listed.stdout, listed
    status = run_cli(env, "status", "--config", str(config))
    status_json = run_cli(env, "status", "--json", "--config", str(config))
    doctor = run_cli(env, "doctor", "--config", str(config))
    assert "secret store: 1 stored secret (Secret Service)" in doctor.stdout, doctor.stdout
    check = run_cli(env, "config", "check", "--config", str(config))
    assert f"  {NAME}: secret store (needs)" in check.stdout, check

    r = run_cli(env, "secret", "rm", NAME, "--config", str(config))
    assert r.returncode == 0 and "applied" in r.stdout, r
    err = _status(h, "needs", "Error")
    assert err["detail"].endswith(f"`broxy-tray secret set {NAME}`"), err
    _wait(lambda: not pids_with(m_needs), what="needs stopped after rm")
    assert pids_with(m_other) == [other_pid]

    assert h.stop() == 0
    logs = list((Path(env["XDG_STATE_HOME"]) / "broxy" / "log").glob("broxy-tray.log*"))
    assert logs
    headless_out = "\n".join(json.dumps(x) for x in h.lines)
    _no_value_anywhere([first, second], headless_out, h.stderr(), status.stdout, status_json.stdout, doctor.stdout,
                       check.stdout, listed.stdout, files=logs, pids=[other_pid])


def test_environment_overrides_the_store_and_a_login_environment_finds_it(keyring_env: dict[str, str],
                                                                           tmp_path: Path, headless: Any) -> None:
    env = keyring_env
    stored, from_env = _value("stored"), _value("shell")
    r = run_cli(env, "secret", "set", NAME, input=stored)
    assert r.returncode == 0 and "not running" in r.stdout, r
    mark = marker()
    config = tmp_path / "mcp.json"
    config.write_text(json.dumps({"mcpServers": {"s": stdio_entry(mark, env={"TOKEN": f"${{{NAME}}}"})}}))

    h = headless("--config", str(config), env={**env, NAME: from_env})
    _status(h, "s", "Available")
    assert environ_of(_one_pid(mark))["TOKEN"] == from_env, "the environment comes first"
    listed = run_cli({**env, NAME: from_env}, "secret", "list", "--config", str(config))
    assert f"{NAME}: used by s; the environment overrides it" in listed.stdout, listed
    assert h.stop() == 0
    _wait(lambda: not pids_with(mark), what="the child gone")

    # as at login: nothing but what a session manager sets (no shell profile)
    login = {k: env[k] for k in ("HOME", "DBUS_SESSION_BUS_ADDRESS", "XDG_RUNTIME_DIR", "XDG_STATE_HOME",
                                 "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "PYTHONUNBUFFERED")}
    login["PATH"] = "/usr/bin:/bin"
    h2 = headless("--config", str(config), env=login)
    _status(h2, "s", "Available")
    assert environ_of(_one_pid(mark))["TOKEN"] == stored, "started with an empty environment, the store supplies it"
    assert h2.stop() == 0


def test_a_locked_keyring_reports_its_variables_missing_and_the_rest_runs(
        keyring_env: dict[str, str], secret_service: Any, tmp_path: Path, headless: Any) -> None:
    env = keyring_env
    assert run_cli(env, "secret", "set", NAME, input=_value("locked")).returncode == 0
    secret_service.lock()
    m_needs, m_other = marker(), marker()
    config = tmp_path / "mcp.json"
    config.write_text(json.dumps({"mcpServers": {
        "needs": stdio_entry(m_needs, env={"TOKEN": f"${{{NAME}}}"}),
        "other": stdio_entry(m_other),
    }}))
    h = headless("--config", str(config), env=env)
    _status(h, "other", "Available")
    err = _status(h, "needs", "Error")
    assert "the secret store is unavailable" in err["detail"] and "locked" in err["detail"], err
    assert err["detail"].endswith(f"`broxy-tray secret set {NAME}`")
    r = run_cli(env, "secret", "set", NAME, input="another-value-123")
    assert r.returncode == 1 and "could not store" in r.stderr and "locked" in r.stderr, r
    r = run_cli(env, "secret", "list")
    assert r.returncode == 1 and "cannot read the secret store" in r.stderr, r
    assert h.stop() == 0
