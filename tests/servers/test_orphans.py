"""Audit item 4: no stdio server (nor its grandchildren) outlives a SIGKILL of the app.

Before the fix, servers that ignore EOF on stdin survived the app in 5 of 5 runs, with their
grandchildren: they run in sessions of their own, so nothing ended them.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil

from broxy_tray.mcp._watchdog import start_time

HOSTILE = str(Path(__file__).parents[1] / "mcp" / "servers" / "hostile_stdio.py")


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_all_gone(pids: list[int], timeout: float = 20) -> list[int]:
    end = time.monotonic() + timeout
    while time.monotonic() < end and not all(gone(p) for p in pids):
        time.sleep(0.1)
    return [p for p in pids if not gone(p)]


def kill_all(pids: list[int]) -> None:
    for p in pids:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


def stubborn_config(tmp_path: Path, n: int = 2) -> tuple[Path, list[Path]]:
    """Servers that ignore stdin EOF and SIGTERM, each with a grandchild (pids written to a file)."""
    marker = uuid.uuid4().hex
    pidfiles = [tmp_path / f"s{i}.pids" for i in range(n)]
    path = tmp_path / "mcp.json"
    path.write_text(json.dumps({"mcpServers": {
        f"s{i}": {"command": sys.executable, "args": [HOSTILE, "--ignore-eof", "--grandchild", str(pf),
                                                      "--marker", marker, "--lifetime", "90"]}
        for i, pf in enumerate(pidfiles)}}))
    return path, pidfiles


def server_pids(pidfiles: list[Path]) -> list[int]:
    return [int(p) for pf in pidfiles for p in pf.read_text().split()]


def watchdog_of(app_pid: int) -> psutil.Process:
    [dog] = [c for c in psutil.Process(app_pid).children() if "_watchdog.py" in " ".join(c.cmdline())]
    return dog


def test_servers_and_grandchildren_die_with_a_sigkilled_app(headless, tmp_path):
    path, pidfiles = stubborn_config(tmp_path)
    h = headless("--config", str(path))
    h.config_event()
    for _ in pidfiles:
        h.wait_for(lambda e: e["event"] == "status" and e["status"] == "Available", timeout=30)
    pids = server_pids(pidfiles)
    assert len(pids) == 4 and not any(gone(p) for p in pids)
    try:
        os.kill(h.proc.pid, signal.SIGKILL)
        h.proc.wait(10)
        assert wait_all_gone(pids) == [], "a server or grandchild outlived the app"
    finally:
        kill_all(pids)


def test_next_start_reaps_groups_a_crashed_run_left(headless, user_env, tmp_path):
    path, pidfiles = stubborn_config(tmp_path)
    # a process that is not ours, listed as if its pid had been reused: it must survive the reaping
    decoy = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    h = headless("--config", str(path))
    h.config_event()
    for _ in pidfiles:
        h.wait_for(lambda e: e["event"] == "status" and e["status"] == "Available", timeout=30)
    pids = server_pids(pidfiles)
    try:
        os.kill(watchdog_of(h.proc.pid).pid, signal.SIGKILL)  # the watchdog first: nobody cleans up now
        os.kill(h.proc.pid, signal.SIGKILL)
        h.proc.wait(10)
        time.sleep(1)
        assert not any(gone(p) for p in pids), "reproduced: the servers outlived the app"

        instances = Path(user_env["XDG_STATE_HOME"]) / "broxy" / "instances"
        key = hashlib.sha256(os.path.realpath(path).encode()).hexdigest()[:16]
        [state] = list(instances.glob(f"{key}.*.groups"))
        listed = json.loads(state.read_text())
        assert sorted(map(int, listed["groups"])) == sorted(pids[0::2]), "the leaders, with their start times"
        decoy_state = instances / f"{key}.1.groups"
        decoy_state.write_text(json.dumps({"boot": listed["boot"],
                                           "groups": {str(decoy.pid): start_time(decoy.pid) + 1}}))

        path.write_text(json.dumps({"mcpServers": {}}))
        again = headless("--config", str(path))
        again.config_event()
        assert wait_all_gone(pids, 10) == [], "the next start ended the leftover groups"
        assert decoy.poll() is None, "a process whose start time does not match is not ours"
        assert not state.exists() and not decoy_state.exists()
        assert again.stop() == 0
    finally:
        kill_all(pids)
        decoy.kill()
        decoy.wait()
