"""Live connections through the app: every transport, crashes, restarts, reconcile by PID, 20 at once."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import socket
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from broxy_tray.app import App
from broxy_tray.servers import Backoff, LiveRunner
from broxy_tray.state import ServerStatus

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent / "mcp"))
from mcp_testlib import MINIMAL_SERVER, sdk_servers_fixture  # noqa: E402

sdk_servers = pytest.fixture(sdk_servers_fixture)


def minimal(*extra: str) -> dict:
    return {"command": sys.executable, "args": [MINIMAL_SERVER, *extra]}


def save(path: Path, obj) -> None:
    tmp = path.with_name(".saving")
    tmp.write_text(json.dumps(obj, indent=2))
    os.replace(tmp, path)


async def until(pred, timeout: float = 15.0, what: str = "condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = pred()
        if value:
            return value
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def status(app, sid):
    s = app.store.state.server(sid)
    return s.status if s else None


def children_by_marker(marker_prefix: str) -> dict[str, int]:
    """PIDs of our child servers, keyed by their `--marker` argument."""
    out = {}
    for child in psutil.Process().children(recursive=True):
        try:
            cmd = child.cmdline()
        except psutil.Error:
            continue
        if child.status() == psutil.STATUS_ZOMBIE:
            continue
        for i, arg in enumerate(cmd):
            if arg == "--marker" and i + 1 < len(cmd) and cmd[i + 1].startswith(marker_prefix):
                out[cmd[i + 1]] = child.pid
    return out


@pytest.fixture
async def make_app(tmp_path):
    apps = []

    async def make(cfg: dict, **kw) -> App:
        path = tmp_path / "mcp.json"
        save(path, cfg)
        app = App(path, **kw)
        await app.start()
        apps.append(app)
        return app

    yield make
    for app in apps:
        await app.shutdown()


def test_backoff_doubles_caps_and_resets():
    b = Backoff(rng=lambda: 0.5)  # no jitter at the midpoint
    assert [b.next() for _ in range(10)] == [0.5, 1, 2, 4, 8, 16, 32, 60, 60, 60]
    b.reset()
    assert b.next() == 0.5
    low, high = Backoff(rng=lambda: 0.0), Backoff(rng=lambda: 0.999999)
    assert low.next() == pytest.approx(0.4) and high.next() == pytest.approx(0.6, rel=1e-3)
    assert all(Backoff(rng=lambda: 0.999999).next() <= 60 for _ in range(3))


async def test_every_transport_reaches_available_with_tool_count(make_app, sdk_servers):
    cfg = {"mcpServers": {
        "stdio": minimal("--tools", "7"),
        "http": {"url": sdk_servers["http"]},
        "sse": {"url": sdk_servers["sse"], "transport": "sse"},
        "ws": {"url": sdk_servers["ws"]},
    }}
    app = await make_app(cfg)
    await until(lambda: all(status(app, s) is ServerStatus.AVAILABLE for s in cfg["mcpServers"]), what="all available")
    tools = {s.id: s.tools for s in app.store.state.servers}
    assert tools == {"stdio": 7, "http": 12, "sse": 12, "ws": 12}
    http = app.store.state.server("http")
    assert http.detail == "sdk-test-server 1.2.3 · protocol 2026-07-28"
    assert app.store.state.server("stdio").detail.startswith("minimal-stdio 0.1 · protocol ")


@pytest.mark.parametrize(("era", "protocol"), [("legacy", "2025-11-25"), ("modern", "2026-07-28")])
async def test_single_generation_servers(make_app, era, protocol):
    app = await make_app({"mcpServers": {"s": minimal("--era", era)}})
    await until(lambda: status(app, "s") is ServerStatus.AVAILABLE)
    assert app.store.state.server("s").detail.endswith(f"protocol {protocol}")


async def test_tool_list_change_updates_count(make_app, sdk_servers):
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    app = await make_app({"mcpServers": {"http": {"url": sdk_servers["http"]}}})
    await until(lambda: status(app, "http") is ServerStatus.AVAILABLE)
    assert app.store.state.server("http").tools == 12
    async with Client(streamable_http_client(sdk_servers["http"])) as other:  # another client adds a tool
        await other.call_tool("add_tool", {})
    await until(lambda: app.store.state.server("http").tools == 13, what="count updated to 13")


async def test_crashing_stdio_server_errors_backs_off_and_recovers(make_app, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="broxy_tray.server.flaky")
    marker = tmp_path / "ready"
    script = tmp_path / "flaky.py"
    script.write_text(textwrap.dedent(f"""\
        import os, sys
        if not os.path.exists({str(marker)!r}):
            print("starting up", file=sys.stderr)
            print("fatal: database is locked", file=sys.stderr)
            sys.exit(3)
        os.execv(sys.executable, [sys.executable, {MINIMAL_SERVER!r}])
        """))
    app = await make_app({"mcpServers": {"flaky": {"command": sys.executable, "args": [str(script)]}}})
    err = await until(lambda: (s := app.store.state.server("flaky")).status is ServerStatus.ERROR and s, what="error")
    assert err.detail.startswith("exited with code 3: fatal: database is locked · retrying in ")
    details = set()
    await until(lambda: details.add(app.store.state.server("flaky").detail) or len(
        {d for d in details if "retrying in" in d}) >= 2, what="a second retry")
    retries = [r for r in caplog.records if r.name == "broxy_tray.server.flaky" and "retrying in" in r.getMessage()]
    assert [r.levelname for r in retries][:2] == ["WARNING", "INFO"], "the same reason again is not a new warning"
    assert all(re.search(r"retrying in \d+ s$", r.getMessage()) for r in retries), "whole seconds, as on the menu"
    shown = {d.rsplit("retrying in ", 1)[1] for d in details if "retrying in" in d}
    logged = {r.getMessage().rsplit("retrying in ", 1)[1] for r in retries}
    assert shown <= logged, "the log and the status line name the same delay"
    marker.write_text("ok")
    await until(lambda: status(app, "flaky") is ServerStatus.AVAILABLE, timeout=20, what="recovery")
    assert app.store.state.server("flaky").tools == 3


def _serve_on(port: int):
    """The SDK test server's Streamable HTTP app on a fixed loopback port."""
    import uvicorn
    import sdk_server
    import threading

    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", port))
    server = uvicorn.Server(uvicorn.Config(sdk_server.build_server(4, 100).streamable_http_app(),
                                           log_level="warning", timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    end = time.monotonic() + 10
    while not server.started and time.monotonic() < end:
        time.sleep(0.01)

    def stop():
        server.should_exit = True
        thread.join(5)
    return stop


async def test_http_server_stopped_and_restarted_recovers(make_app):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    stop = _serve_on(port)
    app = await make_app({"mcpServers": {"h": {"url": f"http://127.0.0.1:{port}/mcp"}}})
    await until(lambda: status(app, "h") is ServerStatus.AVAILABLE)
    await asyncio.to_thread(stop)
    err = await until(lambda: (x := app.store.state.server("h")).status is ServerStatus.ERROR and x, what="error")
    assert "retrying in" in err.detail
    stop = await asyncio.to_thread(_serve_on, port)
    try:
        await until(lambda: status(app, "h") is ServerStatus.AVAILABLE, timeout=20, what="recovered")
        assert app.store.state.server("h").tools == 4
    finally:
        await asyncio.to_thread(stop)


async def test_errors_are_actionable(make_app, tmp_path):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    app = await make_app({"mcpServers": {
        "nocmd": {"command": "definitely-not-a-command-xyz"},
        "refused": {"url": f"http://127.0.0.1:{port}/mcp"},
    }})
    await until(lambda: all(status(app, x) is ServerStatus.ERROR for x in ("nocmd", "refused")))
    assert app.store.state.server("nocmd").detail.startswith("command not found: definitely-not-a-command-xyz · retrying in")
    assert app.store.state.server("refused").detail.startswith(f"connection refused at 127.0.0.1:{port} · retrying in")


async def test_hanging_initialize_times_out(make_app, tmp_path):
    script = tmp_path / "hang.py"
    script.write_text("import time\ntime.sleep(60)\n")
    cfg = {"connectTimeoutSeconds": 0.5, "mcpServers": {"hang": {"command": sys.executable, "args": [str(script)]}}}
    app = await make_app(cfg)
    err = await until(lambda: (x := app.store.state.server("hang")).status is ServerStatus.ERROR and x, what="timeout")
    assert err.detail.startswith("timed out after 0.5 s during initialize")


async def test_reconcile_touches_only_what_changed_by_pid(make_app, tmp_path):
    cfg = {"mcpServers": {f"s{i}": minimal("--marker", f"rc-{i}") for i in range(5)}}
    app = await make_app(cfg)
    await until(lambda: all(status(app, f"s{i}") is ServerStatus.AVAILABLE for i in range(5)))
    before = await until(lambda: len(p := children_by_marker("rc-")) == 5 and p, what="5 children")
    cfg["mcpServers"]["s2"]["args"] = [MINIMAL_SERVER, "--marker", "rc-2", "--tools", "5"]
    save(app.config_path, cfg)
    await until(lambda: app.store.state.server("s2").tools == 5, what="s2 restarted with 5 tools")
    after = await until(lambda: len(p := children_by_marker("rc-")) == 5 and p, what="5 children again")
    assert after["rc-2"] != before["rc-2"], "the edited server got a new process"
    assert {k: v for k, v in after.items() if k != "rc-2"} == {k: v for k, v in before.items() if k != "rc-2"}
    assert not psutil.pid_exists(before["rc-2"]) or psutil.Process(before["rc-2"]).status() == psutil.STATUS_ZOMBIE

    await app.set_enabled("s4", False)
    await until(lambda: "rc-4" not in children_by_marker("rc-"), what="s4 child stopped")
    assert status(app, "s4") is ServerStatus.DISABLED
    assert json.loads(app.config_path.read_text())["mcpServers"]["s4"]["enabled"] is False
    await app.set_enabled("s4", True)
    await until(lambda: status(app, "s4") is ServerStatus.AVAILABLE, what="s4 back")

    pids = list(children_by_marker("rc-").values())
    await app.shutdown()
    await until(lambda: children_by_marker("rc-") == {}, timeout=10, what="no children after shutdown")
    assert all(not psutil.pid_exists(p) or psutil.Process(p).status() == psutil.STATUS_ZOMBIE for p in pids)


async def test_twenty_stdio_servers_at_once(make_app):
    cfg = {"mcpServers": {f"m{i}": minimal("--tools", str(i + 1)) for i in range(20)}}
    app = await make_app(cfg)
    await until(lambda: all(status(app, f"m{i}") is ServerStatus.AVAILABLE for i in range(20)), timeout=30,
                what="20 available")
    assert [s.tools for s in app.store.state.servers] == list(range(1, 21))


async def test_quitting_headless_leaves_no_child_processes(headless, tmp_path, save_config):
    p = tmp_path / "mcp.json"
    save_config(p, {"mcpServers": {"a": minimal("--marker", "quit-a"), "b": minimal("--marker", "quit-b")}})
    h = headless("--config", str(p))
    for _ in range(2):
        h.wait_for(lambda e: e["event"] == "status" and e["status"] == "Available")
    proc = psutil.Process(h.proc.pid)
    children = proc.children(recursive=True)
    kids = [c.pid for c in children]  # the two servers and the orphan watchdog
    assert len([c for c in children if "--marker" in c.cmdline()]) == 2
    assert h.stop() == 0
    for pid in kids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


async def test_live_runner_reports_internal_errors_as_error(make_app):
    class Broken(Exception):
        pass

    def connect(*a, **k):
        raise Broken("boom")

    app = await make_app({"mcpServers": {"x": minimal()}}, runner=LiveRunner(connect=connect))
    await until(lambda: status(app, "x") is ServerStatus.ERROR)
    assert app.store.state.server("x").detail == "internal error: boom"
