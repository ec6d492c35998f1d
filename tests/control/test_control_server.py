"""ControlServer + App in-process, against the real minimal stdio MCP server."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from broxy_tray.app import App
from broxy_tray.control import (
    MAX_REQUEST,
    ControlConnection,
    ControlError,
    ControlServer,
    request,
    server_json,
)
from broxy_tray.state import ServerStatus
from broxy_tray.ui.headless import HeadlessPrinter

from .conftest import raw_exchange

pytestmark = pytest.mark.skipif(os.name == "nt", reason="Unix socket tests")


async def call(path: Path, cmd: str, **kw):
    return await request(path, {"cmd": cmd, **kw}, timeout=20)


def snapshot(running):
    """What must not change after a rejected request."""
    state = running.app.store.state
    return running.app.config_path.read_text(), state.revision, [(s.id, s.status, s.tools) for s in state.servers]


# -- every command --


async def test_status_matches_the_store_and_the_headless_fields(running):
    r = await call(running.path, "status")
    assert r["ok"] is True and r["v"] == 1
    state = running.app.store.state
    assert r["result"]["servers"] == [server_json(s) for s in state.servers]
    by_id = {s["server"]: s for s in r["result"]["servers"]}
    assert list(by_id) == ["files", "off", "broken"]
    assert by_id["files"]["status"] == "Available" and by_id["files"]["tools"] == 3
    assert by_id["files"]["name"] == "Local files"
    assert by_id["off"]["status"] == "Disabled"
    assert by_id["broken"]["status"] == "Error" and "ftp" in by_id["broken"]["detail"]
    app = r["result"]["app"]
    assert app["pid"] == os.getpid() and app["configPath"] == str(running.app.config_path)
    assert app["summary"] == state.summary == "1 of 2 available"

    # Field names are those of the headless `status` lines (the JSON-lines contract).
    out = io.StringIO()
    printer = HeadlessPrinter(running.app.store, json_lines=True, out=out)
    printer._on_change(state, None)
    printer.close()
    line = json.loads(out.getvalue().splitlines()[0])
    headless_fields = set(line) - {"event", "ts"}
    assert headless_fields <= set(by_id["files"]), headless_fields - set(by_id["files"])
    assert {k: line[k] for k in headless_fields} == {k: by_id[line["server"]][k] for k in headless_fields}


async def test_ping(running):
    r = await call(running.path, "ping")
    assert r["ok"] and r["result"]["protocol"] == 1 and r["result"]["pid"] == os.getpid()


async def test_disable_writes_the_file_and_stops_the_server_then_enable_restarts_it(running):
    r = await call(running.path, "disable", server="files")
    assert r["ok"], r
    assert r["result"]["changed"] is True
    assert r["result"]["server"]["status"] == "Disabled"
    text = running.app.config_path.read_text()
    assert '"enabled": false' in text
    assert json.loads(text)["mcpServers"]["files"]["enabled"] is False
    assert running.status_of("files") is ServerStatus.DISABLED
    assert "files" not in running.app.supervisor.running

    again = await call(running.path, "disable", server="files")
    assert again["ok"] and again["result"]["changed"] is False
    assert running.app.config_path.read_text() == text

    r = await call(running.path, "enable", server="files")
    assert r["ok"] and r["result"]["changed"] is True
    assert json.loads(running.app.config_path.read_text())["mcpServers"]["files"]["enabled"] is True
    await running.wait_status("files", ServerStatus.AVAILABLE)


async def test_a_display_name_works_like_the_id(running):
    r = await call(running.path, "disable", server="local FILES")
    assert r["ok"], r
    assert r["result"]["server"]["server"] == "files"
    assert json.loads(running.app.config_path.read_text())["mcpServers"]["files"]["enabled"] is False


async def test_reload_applies_an_edit(running):
    cfg = json.loads(running.app.config_path.read_text())
    cfg["mcpServers"]["more"] = dict(cfg["mcpServers"]["files"], name="More files")
    running.app.config_path.write_text(json.dumps(cfg))  # the fixture's app does not watch the file
    r = await call(running.path, "reload")
    assert r["ok"] and r["result"] == {"configError": None, "servers": 4}
    await running.wait_status("more", ServerStatus.AVAILABLE)


async def test_reload_reports_a_broken_file(running):
    running.app.config_path.write_text("{ not json")
    r = await call(running.path, "reload")
    assert r["ok"] and "keeping the last good configuration" in r["result"]["configError"]
    assert running.status_of("files") is ServerStatus.AVAILABLE


async def test_quit_sets_quit_requested_after_answering(running):
    assert not running.app.quit_requested.is_set()
    r = await call(running.path, "quit")
    assert r["ok"] and r["result"]["quitting"] is True
    await asyncio.wait_for(running.app.quit_requested.wait(), 5)


@pytest.mark.parametrize("cmd", ["auth", "logout"])
async def test_auth_and_logout_reach_the_app(running, cmd):
    """Until the sign-in intents land they answer the app's own IntentError text; afterwards, success."""
    before = running.app.config_path.read_text()
    r = await call(running.path, cmd, server="files")
    if r["ok"]:
        assert r["result"]["server"]["server"] == "files"
    else:
        assert r["error"]["code"] == "refused"
        assert "not available" in r["error"]["message"] or "files" in r["error"]["message"]
    assert running.app.config_path.read_text() == before


async def test_retry_and_cancel(running):
    r = await call(running.path, "retry", server="off")
    assert not r["ok"] and "disabled" in r["error"]["message"]
    r = await call(running.path, "retry", server="files")
    assert r["ok"], r
    await running.wait_status("files", ServerStatus.AVAILABLE)
    r = await call(running.path, "cancel", server="files")
    assert r["ok"] or r["error"]["code"] == "refused"


# -- the channel itself --


async def test_socket_is_0600_in_a_0700_dir(running):
    st = os.lstat(running.path)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert stat.S_IMODE(os.stat(running.path.parent).st_mode) == 0o700
    assert st.st_uid == os.geteuid()


async def test_an_existing_dir_is_tightened_and_missing_parents_are_private(config_path, short_dir):
    loose = short_dir / "loose"
    loose.mkdir(mode=0o755)
    os.chmod(loose, 0o755)
    app = App(config_path, watch=False, runner=_idle)
    server = ControlServer(app, loose / "ctl.sock")
    await server.start()
    try:
        assert stat.S_IMODE(os.stat(loose).st_mode) == 0o700
    finally:
        await server.close()
    deep = short_dir / "a" / "b" / "ctl.sock"
    server = ControlServer(app, deep)
    await server.start()
    try:
        for d in (short_dir / "a", short_dir / "a" / "b"):
            assert stat.S_IMODE(os.stat(d).st_mode) == 0o700
    finally:
        await server.close()


async def test_the_socket_is_removed_on_close_and_a_foreign_one_is_left_alone(config_path, short_dir):
    app = App(config_path, watch=False, runner=_idle)
    path = short_dir / "broxy" / "ctl.sock"
    server = ControlServer(app, path)
    await server.start()
    assert path.exists()
    await server.close()
    assert not path.exists()

    server = ControlServer(app, path)
    await server.start()
    os.unlink(path)
    path.write_text("someone else's")  # replaced behind our back: close() must not delete it
    await server.close()
    assert path.read_text() == "someone else's"


async def test_many_clients_at_once(running):
    results = await asyncio.gather(*(call(running.path, "status") for _ in range(40)))
    assert all(r["ok"] for r in results)
    assert len({json.dumps(r["result"]["servers"]) for r in results}) == 1


async def test_several_requests_on_one_connection_in_order(running):
    conn = await ControlConnection.open(running.path)
    try:
        a = await conn.call({"cmd": "ping"})
        b = await conn.call({"cmd": "status"})
        c = await conn.call({"cmd": "nope"})
        assert [a["id"], b["id"], c["id"]] == [1, 2, 3]
        assert a["ok"] and b["ok"] and not c["ok"]
    finally:
        await conn.close()
    # pipelined: both lines sent before reading
    out = await raw_exchange(
        running.path, b'{"v":1,"cmd":"ping","id":"a"}\n{"v":1,"cmd":"status","id":"b"}\n', read_all=False
    )
    assert out[0]["id"] == "a"


async def test_bad_input_gets_an_error_and_changes_nothing(running):
    before = snapshot(running)
    cases = [
        (b"garbage\n", "bad-json"),
        (b"\xff\xfe\n", "bad-json"),
        (b"[1, 2]\n", "bad-request"),
        (b'{"cmd":"status"}\n', "bad-request"),
        (b'{"v":2,"cmd":"status"}\n', "unsupported-version"),
        (b'{"v":"1","cmd":"status"}\n', "unsupported-version"),
        (b'{"v":1}\n', "bad-request"),
        (b'{"v":1,"cmd":"rm -rf"}\n', "unknown-command"),
        (b'{"v":1,"cmd":"disable"}\n', "bad-request"),
        (b'{"v":1,"cmd":"disable","server":7}\n', "bad-request"),
        (b'{"v":1,"cmd":"disable","server":"nope","id":9}\n', "refused"),
        (b'{"v":1,"cmd":"enable","server":"nope"}\n', "refused"),
        (b'{"v":1,"cmd":"auth","server":"nope"}\n', "refused"),
    ]
    for payload, code in cases:
        [resp] = await raw_exchange(running.path, payload)
        assert resp["ok"] is False, payload
        assert resp["error"]["code"] == code, (payload, resp)
        assert resp["error"]["message"]
    [resp] = await raw_exchange(running.path, b'{"v":1,"cmd":"disable","server":"nope","id":9}\n')
    assert resp["id"] == 9
    assert "no server 'nope'" in resp["error"]["message"]  # the app's IntentError text
    await asyncio.sleep(0.1)
    assert snapshot(running) == before


async def test_oversized_request_is_refused_and_the_connection_closed(running):
    before = snapshot(running)
    big = b'{"v":1,"cmd":"disable","server":"' + b"x" * (MAX_REQUEST + 10) + b'"}\n'
    out = await raw_exchange(running.path, big, read_all=True)
    assert len(out) == 1 and out[0]["error"]["code"] == "too-large"
    # no newline at all, just a flood
    out = await raw_exchange(running.path, b"{" * (MAX_REQUEST * 2), read_all=True)
    assert len(out) == 1 and out[0]["error"]["code"] == "too-large"
    assert snapshot(running) == before
    assert (await call(running.path, "ping"))["ok"]


async def test_a_silent_client_is_timed_out(config_path, short_dir):
    app = App(config_path, watch=False, runner=_idle)
    server = ControlServer(app, short_dir / "ctl.sock", idle_timeout=0.3)
    await server.start()
    try:
        reader, writer = await asyncio.open_unix_connection(str(server.path))
        line = await asyncio.wait_for(reader.readline(), 5)
        assert json.loads(line)["error"]["code"] == "timeout"
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
    finally:
        await server.close()


async def test_close_does_not_wait_for_idle_clients(config_path, short_dir):
    app = App(config_path, watch=False, runner=_idle)
    server = ControlServer(app, short_dir / "ctl.sock")
    await server.start()
    conns = [await asyncio.open_unix_connection(str(server.path)) for _ in range(5)]
    await asyncio.sleep(0.05)
    await asyncio.wait_for(server.close(), 3)
    for reader, writer in conns:
        assert await asyncio.wait_for(reader.read(), 3) == b""
        writer.close()


async def test_a_stale_socket_from_a_killed_process_is_replaced(config_path, short_dir):
    path = short_dir / "broxy" / "ctl.sock"
    path.parent.mkdir(mode=0o700)
    code = textwrap.dedent(f"""
        import socket, sys, time
        s = socket.socket(socket.AF_UNIX); s.bind({str(path)!r}); s.listen()
        print("bound", flush=True); time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "bound"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert stat.S_ISSOCK(os.lstat(path).st_mode)  # left behind
    with pytest.raises(ConnectionRefusedError):
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect(str(path))
        finally:
            s.close()

    app = App(config_path, watch=False, runner=_idle)
    server = ControlServer(app, path)
    await server.start()
    try:
        assert (await call(path, "ping"))["result"]["pid"] == os.getpid()
    finally:
        await server.close()


async def test_a_live_socket_is_not_taken_over(config_path, short_dir):
    path = short_dir / "ctl.sock"
    other = socket.socket(socket.AF_UNIX)
    other.bind(str(path))
    other.listen()
    try:
        app = App(config_path, watch=False, runner=_idle)
        with pytest.raises(ControlError, match="already listening"):
            await ControlServer(app, path).start()
        assert stat.S_ISSOCK(os.lstat(path).st_mode)
    finally:
        other.close()


async def test_a_path_too_long_is_a_clear_error(config_path, short_dir):
    app = App(config_path, watch=False, runner=_idle)
    with pytest.raises(ControlError, match="too long"):
        await ControlServer(app, short_dir / ("d" * 120) / "ctl.sock").start()


NOBODY = 65534


def _as_nobody(path: Path) -> str:
    """Fork a child that drops to uid/gid nobody, connects, asks to disable `files`; returns what it saw."""
    r, w = os.pipe()
    request_line = b'{"v":1,"cmd":"disable","server":"files"}\n'
    pid = os.fork()
    if pid == 0:  # child: only system calls from here on, then _exit
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(str(path))
            except OSError as e:
                os.write(w, b"connect: %d" % e.errno)
                os._exit(0)
            s.settimeout(10)
            try:
                s.sendall(request_line)
            except OSError:  # a refusing server may answer and hang up before reading anything
                pass
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            os.write(w, data)
        except BaseException as e:  # report, do not raise into pytest's copy of itself
            os.write(w, f"child failed: {e!r}".encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        out = f.read()
    os.waitpid(pid, 0)
    return out.decode().strip()


@pytest.mark.skipif(os.name == "nt" or not hasattr(os, "geteuid") or os.geteuid() != 0,
                    reason="needs root to run a client as another user")
async def test_a_peer_of_another_user_is_refused(running):
    before = snapshot(running)
    # 1) the permissions alone keep it out
    assert await asyncio.to_thread(_as_nobody, running.path) == "connect: 13"  # EACCES
    # 2) with the permissions opened up by mistake, the peer-credential check still refuses
    os.chmod(running.path.parent, 0o755)
    os.chmod(running.path.parent.parent, 0o755)
    os.chmod(running.path, 0o666)
    seen = await asyncio.to_thread(_as_nobody, running.path)
    assert seen.startswith("{"), seen
    resp = json.loads(seen)
    assert resp["ok"] is False and resp["error"]["code"] == "forbidden"
    assert "another user" in resp["error"]["message"]
    assert snapshot(running) == before
    assert json.loads(running.app.config_path.read_text())["mcpServers"]["files"].get("enabled", True) is True


@pytest.mark.skipif(os.name == "nt" or not hasattr(os, "geteuid") or os.geteuid() != 0,
                    reason="needs root to create a directory owned by another user")
async def test_a_runtime_dir_owned_by_another_user_is_refused(config_path, short_dir):
    d = short_dir / "theirs"
    d.mkdir(mode=0o700)
    os.chown(d, NOBODY, NOBODY)
    app = App(config_path, watch=False, runner=_idle)
    with pytest.raises(ControlError, match="another user"):
        await ControlServer(app, d / "ctl.sock").start()


async def _idle(server, config, store):
    store.update_server(server.id, status=ServerStatus.CONNECTING)
    await asyncio.Event().wait()


async def test_a_refusal_before_reading_still_reaches_the_client(config_path, short_dir):
    """The server may answer and hang up before reading (busy, forbidden): the client reports that answer."""
    app = App(config_path, watch=False, runner=_idle)
    server = ControlServer(app, short_dir / "ctl.sock", max_connections=0)
    await server.start()
    try:
        for _ in range(5):
            r = await request(server.path, {"cmd": "status"})
            assert r["ok"] is False and r["error"]["code"] == "busy"
    finally:
        await server.close()
