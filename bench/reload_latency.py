"""Save -> `config` event of the headless runner, over 50 saves (target: p50 <= 250 ms).

Runs `broxy-tray run --headless --json` as a subprocess on a 20-server config,
saves the file the way most editors do (temp file + rename), and measures the
wall time from the rename to the runner printing the reloaded event.
"""

from __future__ import annotations

import json
import os
import time

import sys
from pathlib import Path

from _common import isolated_env, start_headless, summary, tempdir, wait_config_event

MINIMAL = str(Path(__file__).resolve().parent.parent / "tests" / "mcp" / "servers" / "minimal_stdio.py")


def main(saves: int = 50) -> None:
    d = tempdir()
    path = d / "mcp.json"
    cfg = {"mcpServers": {f"server{i}": {"command": sys.executable, "args": [MINIMAL]} for i in range(20)}}
    path.write_text(json.dumps(cfg, indent=2))
    proc = start_headless(path, isolated_env(d))
    try:
        wait_config_event(proc)
        times = []
        for i in range(saves):
            cfg["mcpServers"]["server0"]["args"] = [f"save-{i}"]  # every save really changes the file
            tmp = d / ".mcp.json.tmp"
            tmp.write_text(json.dumps(cfg, indent=2))
            t0 = time.perf_counter()
            os.replace(tmp, path)
            event = wait_config_event(proc)
            times.append((time.perf_counter() - t0) * 1000)
            assert event["action"] == "reloaded" and event["restarted"] == ["server0"], event
            time.sleep(0.05)
        print(f"reload_latency: save -> config event: {summary(times)}  (target p50 <= 250 ms)")
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
