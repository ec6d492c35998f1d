"""stdio: failures with the child's own words, prompt exit detection, no orphans after close or cancel."""

from __future__ import annotations

import logging
import os
import signal
import time

import anyio
import pytest
from mcp_testlib import MINIMAL_SERVER, PYTHON, SDK_SERVER, process_gone, stdio_config, wait_gone

from broxy_tray.mcp import ConnectError, ConnectionLost, open_connection
from broxy_tray.mcp._stdio import STDERR_TAIL_LINES, StdioTransport

TIMEOUTS = {"connect_timeout": 10, "request_timeout": 10}


def sh(script: str, **kw) -> object:
    return stdio_config("-c", script, command="/bin/sh", **kw)


async def test_command_not_found():
    with pytest.raises(ConnectError) as info:
        async with open_connection(stdio_config(command="uvx-does-not-exist-here"), **TIMEOUTS):
            pass
    assert info.value.reason == "command not found: uvx-does-not-exist-here"


async def test_missing_working_directory(tmp_path):
    server = stdio_config(MINIMAL_SERVER, cwd=str(tmp_path / "nope"))
    with pytest.raises(ConnectError, match="working directory not found"):
        async with open_connection(server, **TIMEOUTS):
            pass


async def test_crash_at_start_reports_exit_code_and_last_stderr_line(caplog):
    caplog.set_level(logging.INFO, logger="broxy_tray.mcp")
    server = stdio_config(SDK_SERVER, "stdio", "--stderr-lines", "50", "--crash")
    started = time.monotonic()
    with pytest.raises(ConnectError) as info:
        async with open_connection(server, **TIMEOUTS):
            pass
    assert info.value.reason == "exited with code 1: fatal: cannot open database", info.value.reason
    assert "\n" not in info.value.reason
    assert time.monotonic() - started < 5
    # the child's stderr went to the log
    assert "stderr: server stderr line 49" in caplog.text


async def test_timeout_during_initialize():
    server = stdio_config("-c", "import time; time.sleep(30)")
    started = time.monotonic()
    with pytest.raises(ConnectError) as info:
        async with open_connection(server, connect_timeout=0.5, request_timeout=5):
            pass
    assert info.value.reason == "timed out after 0.5 s during initialize"
    assert time.monotonic() - started < 4


async def test_env_is_merged_over_the_app_environment_and_cwd_is_used(tmp_path, monkeypatch):
    monkeypatch.setenv("BROXY_TEST_INHERITED", "from-app")
    out = tmp_path / "seen.txt"
    script = f'echo "$BROXY_TEST_INHERITED $BROXY_TEST_OWN" > {out}; pwd >> {out}; exec {PYTHON} {MINIMAL_SERVER}'
    async with open_connection(sh(script, env={"BROXY_TEST_OWN": "from-config"}, cwd=str(tmp_path)), **TIMEOUTS):
        pass
    inherited_and_own, cwd = out.read_text().splitlines()
    assert inherited_and_own == "from-app from-config"
    assert os.path.realpath(cwd) == os.path.realpath(tmp_path)


async def test_child_killed_mid_session_ends_wait_closed_promptly():
    async with open_connection(stdio_config(MINIMAL_SERVER), **TIMEOUTS) as conn:
        assert conn.pid is not None
        os.kill(conn.pid, signal.SIGKILL)
        started = time.monotonic()
        with anyio.fail_after(3):
            reason = await conn.wait_closed()
        assert time.monotonic() - started < 1.5
        assert isinstance(reason, ConnectionLost)
        assert reason.reason == "killed by SIGKILL"
        assert conn.closed
        with pytest.raises(ConnectError):
            await conn.refresh_tools()


async def test_child_exit_with_grandchild_holding_stdout_is_noticed(tmp_path):
    pidfile = tmp_path / "grandchild.pid"
    script = f"sleep 60 & echo $! > {pidfile}; exec {PYTHON} {MINIMAL_SERVER}"
    async with open_connection(sh(script), **TIMEOUTS) as conn:
        grandchild = int(pidfile.read_text())
        os.kill(conn.pid, signal.SIGKILL)
        with anyio.fail_after(3):
            reason = await conn.wait_closed()
        assert reason.reason == "killed by SIGKILL"
    # leaving the block ended the rest of the process group
    assert await wait_gone(grandchild, 3)


async def test_cancellation_kills_child_and_process_group(tmp_path):
    pidfile = tmp_path / "grandchild.pid"
    script = f"sleep 60 & echo $! > {pidfile}; exec {PYTHON} {MINIMAL_SERVER}"
    pids: list[int] = []
    connected = anyio.Event()

    async def run() -> None:
        async with open_connection(sh(script), **TIMEOUTS) as conn:
            pids.append(conn.pid)
            connected.set()
            await conn.wait_closed()

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        with anyio.fail_after(10):
            await connected.wait()
        pids.append(int(pidfile.read_text()))
        assert not any(process_gone(p) for p in pids)
        started = time.monotonic()
        tg.cancel_scope.cancel()
    assert time.monotonic() - started < 4
    for pid in pids:
        assert await wait_gone(pid, 1), pid


async def test_group_member_ignoring_sigterm_is_killed(tmp_path):
    pidfile = tmp_path / "grandchild.pid"
    # the grandchild inherits an ignored SIGTERM; the server itself exits on stdin EOF
    script = f"trap '' TERM; sleep 60 & echo $! > {pidfile}; trap - TERM; exec {PYTHON} {MINIMAL_SERVER}"
    async with open_connection(sh(script), **TIMEOUTS) as conn:
        leader = conn.pid
        grandchild = int(pidfile.read_text())
    assert await wait_gone(leader, 1)
    assert await wait_gone(grandchild, 2), "SIGKILL after the grace period"


async def test_stderr_tail_is_bounded():
    script = "import sys\nfor i in range(5000): print('line', i, 'x' * 5000, file=sys.stderr)\nprint('the end', file=sys.stderr)"
    transport = StdioTransport(stdio_config("-c", script), log=logging.getLogger("test.stderr"))
    async with transport as (read_stream, _write_stream):
        with anyio.fail_after(10):
            async for _ in read_stream:
                pass
    assert len(transport.stderr_tail) == STDERR_TAIL_LINES
    assert transport.stderr_tail[-1] == "the end"
    assert all(len(line) <= 1000 for line in transport.stderr_tail)
    assert transport.returncode == 0
