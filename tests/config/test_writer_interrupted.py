"""Audit item 8 (part): a kill in the middle of a save leaves `.mcp.json.XXXXXXXX.tmp`; the next start removes it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

# The writer in a real process, stopped for good inside its fsync (the slow step of a save) and then
# SIGKILLed there: exactly what a kill mid-write leaves behind.
WRITER = r"""
import os, sys, time
from broxy_tray.config import set_enabled
real_fsync = os.fsync
def stuck(fd):
    real_fsync(fd)
    print("in fsync", flush=True)
    time.sleep(60)
os.fsync = stuck
set_enabled(sys.argv[1], "a", False)
"""


def interrupted_save(path: Path) -> list[str]:
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "in fsync"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    return sorted(n for n in os.listdir(path.parent) if n.endswith(".tmp"))


def test_next_start_removes_temp_copies_of_a_killed_save(headless, user_env, tmp_path, minimal_server):
    path = tmp_path / "mcp.json"
    path.write_text(json.dumps({"mcpServers": {"a": minimal_server}}, indent=2))
    original = path.read_text()
    left = interrupted_save(path)
    assert len(left) == 1 and left[0].startswith(".mcp.json.") and len(left[0]) == len(".mcp.json.12345678.tmp")
    assert path.read_text() == original, "the kill did not touch the config itself"
    # files that only look similar are the user's: they stay
    keep = [".mcp.json.backup.tmp", "mcp.json.tmp", ".other.json.abcdefgh.tmp"]
    for name in keep:
        (tmp_path / name).write_text("mine")

    h = headless("--config", str(path))
    assert h.config_event()["started"] == ["a"]
    assert sorted(n for n in os.listdir(tmp_path) if n.endswith(".tmp")) == sorted(keep)
    assert h.stop() == 0
    log = Path(user_env["XDG_STATE_HOME"]) / "broxy" / "log" / "broxy-tray.log"
    assert f"removed 1 temp copy of mcp.json left by an interrupted save: {left[0]}" in log.read_text()
