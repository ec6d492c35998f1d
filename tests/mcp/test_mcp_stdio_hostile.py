"""Audit item 3: a stdio server flooding stdout (no newline) or stderr cannot exhaust the app.

Before the fix a server writing stdout without a newline grew the app without bound (and spent a
core re-joining the buffer) while still shown Available; a stderr flood logged every line.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import uuid
from pathlib import Path

import anyio
import psutil

from broxy_tray.mcp._stdio import MAX_MESSAGE, STDERR_LOG_BURST, StdioTransport
from mcp_testlib import stdio_config

HOSTILE = str(Path(__file__).parent / "servers" / "hostile_stdio.py")


class PeakRss:
    """Samples a process's RSS on a thread until stopped; `peak` in bytes."""

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            try:
                self.peak = max(self.peak, self.proc.memory_info().rss)
            except psutil.Error:
                return

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(5)
        return self.peak


def test_stdout_without_newline_is_cut_at_the_limit_and_the_server_restarted(headless, tmp_path, save_config):
    p = tmp_path / "mcp.json"
    flood = 6 * MAX_MESSAGE  # far past the limit; the old reader held all of it
    save_config(p, {"mcpServers": {"flood": {"command": sys.executable,
                                             "args": [HOSTILE, "--stdout-flood", str(flood), "--flood-delay", "1",
                                                      "--lifetime", "60"]}}})
    h = headless("--config", str(p))
    h.wait_for(lambda e: e["event"] == "status" and e["status"] == "Available", timeout=30)
    baseline = psutil.Process(h.proc.pid).memory_info().rss  # the flood starts a second after tools/list
    sampler = PeakRss(h.proc.pid)
    try:
        error = h.wait_for(lambda e: e["event"] == "status" and e["status"] == "Error", timeout=60)
    finally:
        peak = sampler.stop()
    assert "sent a message over 32 MiB on stdout (or output without a newline)" in error["detail"]
    assert "retrying in" in error["detail"]
    # one message's worth (32 MiB) plus slack; the flood itself is 192 MiB
    assert peak - baseline < MAX_MESSAGE + 48 * 1024 * 1024, f"peak RSS grew by {(peak - baseline) >> 20} MiB"
    print(f"stdout flood: peak RSS +{(peak - baseline) / 2**20:.1f} MiB")
    # restarted with backoff: connects again (and is cut again)
    h.wait_for(lambda e: e["event"] == "status" and e["status"] == "Connecting", timeout=30)
    h.wait_for(lambda e: e["event"] == "status" and e["status"] == "Available", timeout=30)
    assert h.stop() == 0


async def test_stderr_flood_is_rate_limited_in_the_log(caplog):
    name = f"test.stderr-flood.{uuid.uuid4().hex}"  # budgets are per logger and outlive a transport
    caplog.set_level(logging.INFO, logger=name)
    transport = StdioTransport(stdio_config(HOSTILE, "--stderr-flood", "2", "--lifetime", "3"),
                               log=logging.getLogger(name))
    cpu = psutil.Process().cpu_times()
    started = time.monotonic()
    async with transport as (read_stream, _write_stream):
        with anyio.fail_after(30):
            async for _ in read_stream:
                pass
    used = sum(psutil.Process().cpu_times()[:2]) - sum(cpu[:2])
    logged = [r for r in caplog.records if r.getMessage().startswith("stderr: stderr flood")]
    assert 0 < len(logged) <= STDERR_LOG_BURST + 5
    [dropped] = [r for r in caplog.records if "lines not logged" in r.getMessage()]
    assert int(dropped.getMessage().split()[1]) > 10 * STDERR_LOG_BURST
    assert transport.stderr_tail[-1].startswith("stderr flood"), "the tail still holds the latest lines"
    print(f"stderr flood: {len(logged)} lines logged, cpu {used:.2f} s in {time.monotonic() - started:.1f} s")
