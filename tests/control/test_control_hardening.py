"""Hardening of the control channel and the CLI (audit items 17.6 and 17.8), each reproduced first.

- relays (`broxy-tray stdio`) must not take the CLI's command slots; idle command connections time out;
- a request nested thousands deep gets an error reply, not a dropped connection;
- XDG_RUNTIME_DIR unset and the fallback runtime directory squatted by another user: a clear error;
- output piped into a reader that stops early (`| head`) ends quietly.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from broxy_tray.app import App
from broxy_tray.control import ControlServer, request
from broxy_tray.control._server import MAX_CONNECTIONS

from .conftest import wait_until

pytestmark = pytest.mark.skipif(os.name == "nt", reason="Unix socket tests")
NOBODY = 65534


async def open_relay(path: Path) -> asyncio.StreamWriter:
    reader, writer = await asyncio.open_unix_connection(str(path))
    writer.write(b'{"v":1,"id":1,"cmd":"mcp"}\n')
    await writer.drain()
    answer = json.loads(await asyncio.wait_for(reader.readline(), 10))
    assert answer["ok"] is True, answer
    return writer


async def test_relays_do_not_take_the_command_slots(running):
    """The audit: 64 `broxy-tray stdio` clients locked every CLI command out ("busy")."""
    relays = [await open_relay(running.path) for _ in range(MAX_CONNECTIONS + 6)]
    try:
        for _ in range(3):
            r = await request(running.path, {"cmd": "status"})
            assert r["ok"] is True, r
        await wait_until(lambda: running.app.store.state.clients.stdio == MAX_CONNECTIONS + 6, 10, "relays counted")
    finally:
        for w in relays:
            w.close()
    await wait_until(lambda: running.app.store.state.clients.stdio == 0, 10, "relays gone")


async def test_idle_command_connections_time_out_and_free_their_slots(config_path, short_dir):
    app = App(config_path, watch=False)
    server = ControlServer(app, short_dir / "ctl.sock", idle_timeout=0.5, max_connections=4)
    await server.start()
    silent = []
    try:
        for _ in range(4):
            silent.append(await asyncio.open_unix_connection(str(server.path)))
        await asyncio.sleep(0)  # the four are accepted
        for reader, _ in silent:  # each is told it timed out, then closed
            answer = json.loads(await asyncio.wait_for(reader.readline(), 10))
            assert answer["error"]["code"] == "timeout"
            assert await asyncio.wait_for(reader.read(), 10) == b""
        r = await request(server.path, {"cmd": "ping"})
        assert r["ok"] is True
    finally:
        for _, w in silent:
            w.close()
        await server.close()


async def test_a_deeply_nested_request_gets_an_error_reply_and_the_connection_lives_on(running):
    nested = b'{"v":1,"id":7,"cmd":"status","x":' + b"[" * 30_000 + b"]" * 30_000 + b"}\n"
    assert len(nested) < 64 * 1024
    reader, writer = await asyncio.open_unix_connection(str(running.path))
    try:
        writer.write(nested + b'{"v":1,"id":8,"cmd":"ping"}\n')
        await writer.drain()
        answers = [json.loads(await asyncio.wait_for(reader.readline(), 10)) for _ in range(2)]
    finally:
        writer.close()
    assert answers[0]["ok"] is False and answers[0]["error"]["code"] == "bad-json"
    assert "nested too deeply" in answers[0]["error"]["message"]
    assert answers[1]["id"] == 8 and answers[1]["ok"] is True


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                    reason="needs root to create a directory owned by another user")
def test_no_runtime_dir_and_a_squatted_fallback_is_a_clear_error(user_env, short_dir, tmp_path):
    """XDG_RUNTIME_DIR unset: platformdirs falls back to $TMPDIR/runtime-<uid>; another user made it first."""
    if Path(f"/run/user/{os.geteuid()}").is_dir():
        pytest.skip("/run/user/<uid> exists: platformdirs would use it, not the temporary fallback")
    tmp = short_dir / "tmp"
    tmp.mkdir()
    squatted = tmp / f"runtime-{os.geteuid()}"
    squatted.mkdir(mode=0o700)
    os.chown(squatted, NOBODY, NOBODY)
    env = {k: v for k, v in user_env.items() if k != "XDG_RUNTIME_DIR"}
    env["TMPDIR"] = str(tmp)
    config = tmp_path / "mcp.json"
    config.write_text('{"mcpServers": {}}')
    for argv in (["status"], ["reload"], ["stdio", "--no-start"]):
        proc = subprocess.run([sys.executable, "-m", "broxy_tray", *argv, "--config", str(config)], env=env,
                              input="", capture_output=True, text=True, timeout=60)
        assert proc.returncode in (1, 3), (argv, proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stderr, proc.stderr
        assert "runtime" in proc.stderr + proc.stdout, (argv, proc.stdout, proc.stderr)


def test_output_cut_short_by_the_reader_ends_quietly(user_env, tmp_path):
    """`broxy-tray status | head -1` with a long listing: no BrokenPipeError traceback."""
    config = tmp_path / "mcp.json"
    servers = {f"server{i}": {"command": "true", "enabled": False} for i in range(4000)}
    config.write_text(json.dumps({"mcpServers": servers}))
    for argv in (["status"], ["--help"]):
        proc = subprocess.Popen([sys.executable, "-m", "broxy_tray", *argv, "--config", str(config)], env=user_env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdout.read(10)
        proc.stdout.close()  # like `head` exiting after its first line
        _, err = proc.communicate(timeout=60)
        assert b"BrokenPipe" not in err and b"Traceback" not in err and b"Exception ignored" not in err, err
