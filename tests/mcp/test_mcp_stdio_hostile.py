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


# -- junk on stdout (found by a new-user trial: `yes garbage-not-json` as a server) -----------------

def _log_lines(user_env: dict[str, str]) -> list[str]:
    folder = Path(user_env["XDG_STATE_HOME"]) / "broxy" / "log"
    return [line for f in sorted(folder.glob("broxy-tray.log*")) for line in f.read_text().splitlines()]


def test_a_server_writing_only_junk_on_stdout_is_stopped_with_a_reason_and_the_log_stays_small(
        headless, tmp_path, save_config, user_env, minimal_server):
    """Before: ~3,800 log lines/s (two warnings per junk line), the same on stderr, and the server
    "Connecting" until the 30 s timeout, again and again."""
    p = tmp_path / "mcp.json"
    save_config(p, {"mcpServers": {"flood": {"command": "yes", "args": ["garbage-not-json"]},
                                   "good": minimal_server}})
    h = headless("--config", str(p))
    errors = []
    for _ in range(3):  # the first failure and two restarts with backoff
        errors.append(h.wait_for(lambda e: e["event"] == "status" and e.get("server") == "flood"
                                 and e["status"] == "Error", timeout=60))
    if not any(e.get("server") == "good" and e.get("status") == "Available" for e in h.lines):
        h.wait_for(lambda e: e["event"] == "status" and e.get("server") == "good" and e["status"] == "Available",
                   timeout=30)  # the rest keeps working
    assert h.stop() == 0
    stderr = h.stderr()
    for error in errors:
        assert ("writes non-JSON-RPC output on stdout (e.g. 'garbage-not-json'); "
                "stdout is reserved for MCP messages — log to stderr") in error["detail"], error
        assert "retrying in" in error["detail"]
    log = _log_lines(user_env)
    junk = [line for line in log if "not JSON-RPC on stdout" in line]
    # three runs of the server, up to 100 junk lines each: at most the burst (10) plus ~1/s get logged
    assert 0 < len(junk) <= 40, len(junk)
    assert not [line for line in log if "transport error" in line], "junk lines are not handed to the session"
    assert len(log) < 200, f"{len(log)} log lines"
    assert stderr.count("\n") < 100, f"{stderr.count(chr(10))} stderr lines"
    print(f"junk flood: {len(log)} log lines, {stderr.count(chr(10))} stderr lines over three runs")


def test_a_few_junk_lines_before_serving_still_connect(headless, tmp_path, save_config, user_env):
    p = tmp_path / "mcp.json"
    save_config(p, {"mcpServers": {"banner": {"command": sys.executable,
                                              "args": [HOSTILE, "--stdout-junk", "5", "--lifetime", "60"]}}})
    h = headless("--config", str(p))
    h.wait_for(lambda e: e["event"] == "status" and e["status"] == "Available", timeout=30)
    assert h.stop() == 0
    assert not [e for e in h.lines if e.get("status") == "Error"]
    junk = [line for line in _log_lines(user_env) if "not JSON-RPC on stdout" in line]
    assert len(junk) == 5 and "starting up, step 0 (this should have gone to stderr)" in junk[0]


async def test_the_junk_reason_is_redacted_and_cut(caplog):
    from broxy_tray import _redact

    secret = f"sk-{uuid.uuid4().hex}"
    _redact.register([secret])
    name = f"test.stdout-junk.{uuid.uuid4().hex}"
    caplog.set_level(logging.INFO, logger=name)
    code = ("import sys\nfor _ in range(150):\n"
            f"    sys.stdout.write('token {secret} ' + 'z' * 500 + '\\n')\nsys.stdout.flush()\n"
            "import time; time.sleep(30)")
    reasons: list[str] = []
    transport = StdioTransport(stdio_config("-c", code), log=logging.getLogger(name), on_exit=reasons.append)
    async with transport as (read_stream, _write_stream):
        with anyio.fail_after(20):
            async for item in read_stream:
                raise AssertionError(f"junk reached the session: {item!r}")
    assert reasons == [transport.exit_reason]
    reason = transport.exit_reason
    assert reason.startswith("writes non-JSON-RPC output on stdout (e.g. 'token *** zzz")
    assert secret not in reason
    example = reason.split("'")[1]
    assert len(example) <= 60 and example.endswith("…")
    logged = [r.getMessage() for r in caplog.records]
    assert not any(secret in m for m in logged)
    # 100 junk lines seen before the stop; the burst (10) of them logged
    assert len([m for m in logged if "not JSON-RPC on stdout" in m]) <= 12
