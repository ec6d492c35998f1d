"""Resident memory of the idle headless runner with 20 configured servers (target: <= 35 MB).

Reads VmRSS (and VmHWM, the peak) of the runner process from /proc after it
has loaded the config and settled. Linux only.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from _common import isolated_env, start_headless, stdio_servers, tempdir, wait_config_event


def rss_kib(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def main() -> None:
    d = tempdir()
    path = d / "mcp.json"
    path.write_text(json.dumps(stdio_servers(20, enabled=False), indent=2))
    proc = start_headless(path, isolated_env(d))
    try:
        wait_config_event(proc)
        time.sleep(3)
        mem = rss_kib(proc.pid)
        print(f"idle_memory: 20 configured servers: RSS {mem['VmRSS'] / 1024:.1f} MiB, "
              f"peak {mem['VmHWM'] / 1024:.1f} MiB  (target <= 35 MB)")
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
