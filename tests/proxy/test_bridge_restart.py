"""`broxy-tray stdio` outlives the app: real clients across SIGKILL, `broxy-tray quit` and a restart with a new config.

The app is the real `broxy-tray run --headless` (a subprocess, full test environment with its own
XDG_RUNTIME_DIR); the bridge is started the way MCP clients start it: only HOME and PATH
(`env -i`), so it must find the app through the instance lock file.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest
from proxy_testlib import MINIMAL_SERVER, PYTHON, save

pytestmark = pytest.mark.skipif(os.name == "nt", reason="Unix sockets, SIGKILL")

TOOLS = "files__tool_1"


def minimal_env(user_env: dict[str, str]) -> dict[str, str]:
    """What an MCP client passes to a server it launches (`env -i HOME=… PATH=…`)."""
    return {"HOME": user_env["HOME"], "PATH": os.environ["PATH"]}


def write_config(path: Path, tools: int = 3) -> None:
    save(path, {"mcpServers": {"files": {"command": sys.executable, "args": [str(MINIMAL_SERVER), "--tools", str(tools)]}}})


@pytest.fixture
def app_env(user_env, short_dir):
    runtime = short_dir / "run"
    runtime.mkdir(mode=0o700)
    user_env["XDG_RUNTIME_DIR"] = str(runtime)  # the app's; the bridge gets none at all
    user_env["DISPLAY_NAME_FOR_TEST"] = "full-desktop-environment"
    return user_env


@pytest.fixture
def config(tmp_path) -> Path:
    path = tmp_path / "mcp.json"
    write_config(path)
    return path


def start_app(headless, config: Path):
    h = headless("--config", str(config))
    h.wait_for(lambda e: e.get("server") == "files" and e.get("status") == "Available", timeout=30)
    return h


def no_python_noise(text: str) -> None:
    assert "Traceback" not in text, text
    assert "Fatal Python error" not in text, text
    assert "_enter_buffered_busy" not in text, text


@asynccontextmanager
async def sdk_client(config: Path, env: dict[str, str], errlog, on_message=None, *extra: str):
    from mcp import Client, StdioServerParameters
    from mcp.client.stdio import stdio_client

    async def handler(message):
        if on_message is not None:
            on_message(message)

    params = StdioServerParameters(command=PYTHON, args=["-m", "broxy_tray", "stdio", "--config", str(config), *extra],
                                   env=env)
    async with Client(stdio_client(params, errlog=errlog), mode="legacy", message_handler=handler, cache=None) as c:
        yield c


async def call_fails_in_bound(client, name: str, bound: float = 12.0) -> str:
    """A call while the app is away errors (never hangs) within `bound` seconds; returns the message."""
    from mcp.shared.exceptions import MCPError

    with anyio.fail_after(bound):
        with pytest.raises(MCPError) as e:
            await client.call_tool(name, {})
    return e.value.error.message


async def wait_changed(changes: list[str], before: int) -> None:
    with anyio.fail_after(20):
        while len(changes) <= before:
            await anyio.sleep(0.02)


async def test_sdk_client_keeps_working_across_sigkill_quit_and_a_changed_config(app_env, config, headless, cli, tmp_path):
    import mcp_types as types

    changes: list[str] = []

    def on_message(message):
        if isinstance(message, types.ToolListChangedNotification):
            changes.append("tools")

    app = start_app(headless, config)
    errfile = tmp_path / "bridge.err"
    with errfile.open("w") as errlog:
        async with sdk_client(config, minimal_env(app_env), errlog, on_message, "--no-start") as client:
            assert (await client.call_tool(TOOLS, {})).content[0].text == "called tool_1"

            # 1. SIGKILL: a call during the outage errors within the bound; after the restart the next call works
            os.killpg(app.proc.pid, signal.SIGKILL)
            app.proc.wait(10)
            message = await call_fails_in_bound(client, TOOLS)
            assert "broxy-tray" in message, message
            before = len(changes)
            app = start_app(headless, config)
            await wait_changed(changes, before)
            assert (await client.call_tool(TOOLS, {})).content[0].text == "called tool_1"

            # 2. `broxy-tray quit` (from a client-like environment too), then a restart with a changed config
            quit_ = cli("quit", "--config", str(config), env=minimal_env(app_env))
            assert quit_.returncode == 0, quit_.stderr
            app.proc.wait(20)
            await call_fails_in_bound(client, TOOLS)
            write_config(config, tools=5)
            before = len(changes)
            app = start_app(headless, config)
            await wait_changed(changes, before)
            names = {t.name for t in (await client.list_tools()).tools}
            assert "files__tool_4" in names, names
            assert (await client.call_tool("files__tool_4", {})).content[0].text == "called tool_4"

            # the app counts this bridge as a connected stdio client
            status = cli("status", "--json", "--config", str(config), env=minimal_env(app_env))
            assert status.returncode == 0, status.stderr
            assert json.loads(status.stdout.splitlines()[0])["clients"] == {"stdio": 1, "http": 0, "presets": {}}
    no_python_noise(errfile.read_text())


def raw_bridge(config: Path, env: dict[str, str], *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([PYTHON, "-m", "broxy_tray", "stdio", "--config", str(config), *extra], env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "race", "version": "1"}}}


def initialize(bridge: subprocess.Popen[bytes]) -> None:
    """The client's handshake through a raw bridge: initialize, its answer, initialized."""
    bridge.stdin.write(json.dumps(INIT).encode() + b"\n")  # type: ignore[union-attr]
    bridge.stdin.write(b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n')  # type: ignore[union-attr]
    bridge.stdin.flush()  # type: ignore[union-attr]
    assert json.loads(bridge.stdout.readline())["id"] == 1  # type: ignore[union-attr]


def app_processes(config: Path) -> list[int]:
    """PIDs of `broxy-tray run --headless --config <config>` processes alive now."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"--headless" in argv and str(config).encode() in argv and b"stdio" not in argv:
            pids.append(int(entry.name))
    return pids


def test_two_bridges_racing_with_no_app_start_exactly_one(app_env, config):
    env = minimal_env(app_env)
    bridges = [raw_bridge(config, env), raw_bridge(config, env)]
    try:
        for b in bridges:
            b.stdin.write(json.dumps(INIT).encode() + b"\n")
            b.stdin.flush()
        for b in bridges:
            answer = json.loads(b.stdout.readline())
            assert answer["id"] == 1 and answer["result"]["serverInfo"]["name"] == "broxy-tray", answer
        assert len(app_processes(config)) == 1
        for b in bridges:
            b.stdin.close()
            assert b.wait(30) == 0
        errs = [b.stderr.read().decode() for b in bridges]
        assert sum(e.count("starting it headless") for e in errs) == 1, errs
        for e in errs:
            no_python_noise(e)
    finally:
        for b in bridges:
            if b.poll() is None:
                b.kill()
        for pid in app_processes(config):
            os.kill(pid, signal.SIGTERM)


def test_running_but_unreachable_app_fails_fast_naming_pid_config_and_socket(app_env, config, headless, cli):
    from broxy_tray._instance import Instance

    app = start_app(headless, config)
    env = minimal_env(app_env)
    inst = Instance.read(config, Path(env["HOME"]) / ".local/state/broxy/instances")
    assert inst.running and inst.pid == app.proc.pid and inst.socket
    os.unlink(inst.socket)  # the app runs on, but nobody can reach it any more
    t0 = time.monotonic()
    proc = subprocess.run([PYTHON, "-m", "broxy_tray", "stdio", "--config", str(config)], env=env,
                          input=json.dumps(INIT).encode() + b"\n", capture_output=True, timeout=30)
    elapsed = time.monotonic() - t0
    err = proc.stderr.decode()
    assert proc.returncode == 1 and proc.stdout == b""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert str(app.proc.pid) in lines[0] and str(config) in lines[0] and inst.socket in lines[0], lines[0]
    no_python_noise(err)
    assert elapsed < 15  # generous: the figure (≤ 2 s) is measured by bench/bridge_restart.py
    assert len(app_processes(config)) == 1  # and no second app was started
    for command in (["status"], ["quit"], ["auth", "files"], ["reload"]):
        r = cli(*command, "--config", str(config), env=env)
        assert r.returncode == 3, (command, r.stdout, r.stderr)
        assert inst.socket in r.stderr + r.stdout and str(app.proc.pid) in r.stderr + r.stdout, (command, r.stderr)
        no_python_noise(r.stderr)


def test_client_hanging_up_ends_the_bridge_with_0_even_while_the_app_is_away(app_env, config, headless):
    app = start_app(headless, config)
    bridge = raw_bridge(config, minimal_env(app_env), "--no-start")
    try:
        bridge.stdin.write(json.dumps(INIT).encode() + b"\n")
        bridge.stdin.flush()
        assert json.loads(bridge.stdout.readline())["id"] == 1
        os.killpg(app.proc.pid, signal.SIGKILL)
        app.proc.wait(10)
        call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": TOOLS, "arguments": {}}}
        ping = {"jsonrpc": "2.0", "id": 3, "method": "ping"}
        bridge.stdin.write(json.dumps(call).encode() + b"\n" + json.dumps(ping).encode() + b"\n")
        bridge.stdin.flush()
        answers = {a["id"]: a for a in (json.loads(bridge.stdout.readline()) for _ in range(2))}
        assert answers[3]["result"] == {}  # answered by the bridge itself
        assert answers[2]["error"]["code"] == -32000 and "broxy-tray" in answers[2]["error"]["message"]
        bridge.stdin.close()
        assert bridge.wait(20) == 0
        err = bridge.stderr.read().decode()
        no_python_noise(err)
        assert f"broxy-tray is not running for {config}; waiting for it to be started (--no-start)" in err
        assert ".sock" not in err
    finally:
        if bridge.poll() is None:
            bridge.kill()


def test_a_call_made_while_the_app_restarts_waits_for_it_and_succeeds(app_env, config, headless):
    """Held by the bridge until the app is back, then held by the app while its server is still Connecting."""
    app = start_app(headless, config)
    bridge = raw_bridge(config, minimal_env(app_env), "--no-start")
    try:
        initialize(bridge)
        os.killpg(app.proc.pid, signal.SIGKILL)
        app.proc.wait(10)
        headless("--config", str(config))  # not waited for: the call goes out at once
        call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": TOOLS, "arguments": {}}}
        bridge.stdin.write(json.dumps(call).encode() + b"\n")
        bridge.stdin.flush()
        seen = []
        while True:
            msg = json.loads(bridge.stdout.readline())
            seen.append(msg.get("method") or msg.get("id"))
            if msg.get("id") == 2:
                break
        if msg.get("result", {}).get("content", [{}])[0].get("text") != "called tool_1":
            bridge.kill()
            pytest.fail(f"the call failed: {msg}; bridge stderr: {bridge.stderr.read().decode()}")
        assert "notifications/tools/list_changed" in seen  # the client also heard it should list again
        bridge.stdin.close()
        assert bridge.wait(20) == 0
        no_python_noise(bridge.stderr.read().decode())
    finally:
        if bridge.poll() is None:
            bridge.kill()


def test_a_bridge_that_may_start_the_app_brings_it_back_after_a_crash(app_env, config, headless):
    """Without --no-start, a call made after the app died starts it again (once), headless."""
    app = start_app(headless, config)
    bridge = raw_bridge(config, minimal_env(app_env))
    try:
        initialize(bridge)
        os.killpg(app.proc.pid, signal.SIGKILL)
        app.proc.wait(10)
        answer: dict = {}
        for rid in range(2, 12):  # a slow machine may need longer than one hold time to start it
            call = {"jsonrpc": "2.0", "id": rid, "method": "tools/call", "params": {"name": TOOLS, "arguments": {}}}
            bridge.stdin.write(json.dumps(call).encode() + b"\n")
            bridge.stdin.flush()
            while (answer := json.loads(bridge.stdout.readline())).get("id") != rid:
                pass
            if "result" in answer:
                break
        assert answer["result"]["content"][0]["text"] == "called tool_1", answer
        assert len(app_processes(config)) == 1
        bridge.stdin.close()
        assert bridge.wait(20) == 0
        err = bridge.stderr.read().decode()
        assert err.count("starting it headless") == 1, err
        no_python_noise(err)
    finally:
        if bridge.poll() is None:
            bridge.kill()
        for pid in app_processes(config):
            os.kill(pid, signal.SIGTERM)


@pytest.mark.parametrize("bridge_runtime", ["unset", "other"])
def test_a_bridge_finds_an_app_started_with_another_runtime_dir(app_env, config, headless, short_dir, bridge_runtime):
    start_app(headless, config)
    env = minimal_env(app_env)
    if bridge_runtime == "other":
        other = short_dir / "other-run"
        other.mkdir(mode=0o700)
        env["XDG_RUNTIME_DIR"] = str(other)
    listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
    proc = subprocess.run([PYTHON, "-m", "broxy_tray", "stdio", "--config", str(config), "--no-start"], env=env,
                          input=json.dumps(INIT).encode() + b"\n" + json.dumps(listing).encode() + b"\n",
                          capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    answers = {a["id"]: a for a in map(json.loads, proc.stdout.splitlines())}
    assert {t["name"] for t in answers[2]["result"]["tools"]} == {"files__tool_0", "files__tool_1", "files__tool_2"}
    no_python_noise(proc.stderr.decode())
