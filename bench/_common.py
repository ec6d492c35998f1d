"""Helpers shared by the benchmark scripts (not part of the test run)."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def isolated_env(root: Path) -> dict[str, str]:
    """Environment whose config/state/log dirs live under `root`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BROXY_", "XDG_"))}
    for name in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME"):
        d = root / name.lower()
        d.mkdir(parents=True, exist_ok=True)
        env[name] = str(d)
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def start_headless(config: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "broxy_tray", "run", "--headless", "--json", "--config", str(config)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )


def wait_config_event(proc: subprocess.Popen[str]) -> dict:
    assert proc.stdout is not None
    for line in proc.stdout:
        event = json.loads(line)
        if event["event"] == "config":
            return event
    raise RuntimeError("runner exited before a config event")


def stdio_servers(n: int, enabled: bool = True) -> dict:
    return {"mcpServers": {f"server{i}": {"command": "true", "args": [str(i)], "enabled": enabled} for i in range(n)}}


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summary(values_ms: list[float]) -> str:
    return (f"n={len(values_ms)} p50={percentile(values_ms, 50):.1f} ms p95={percentile(values_ms, 95):.1f} ms "
            f"min={min(values_ms):.1f} ms max={max(values_ms):.1f} ms mean={statistics.mean(values_ms):.1f} ms")


def tempdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="broxy-bench-"))


def start_until_available(config: Path, env: dict[str, str]) -> tuple[subprocess.Popen[str], float]:
    """Start the headless runner on `config`; return it once every server is Available, and how long that took."""
    servers = set(json.loads(config.read_text())["mcpServers"])
    t0 = time.perf_counter()
    proc = start_headless(config, env)
    assert proc.stdout is not None
    for line in proc.stdout:
        e = json.loads(line)
        if e["event"] == "status" and e["status"] == "Available":
            servers.discard(e["server"])
        elif e["event"] == "status" and e["status"] == "Error":
            raise RuntimeError(f"{e['server']}: {e['detail']}")
        if not servers:
            return proc, time.perf_counter() - t0
    raise RuntimeError("the runner exited before all servers were Available")
