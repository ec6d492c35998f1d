"""`broxy-tray stdio`: a real SDK client launches the bridge, which relays to the app over the control socket."""

from __future__ import annotations

import os
import subprocess
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from proxy_testlib import PYTHON, running_app, until

BRIDGE = ["-m", "broxy_tray.proxy._stdio_bridge"]


def bridge_env(short_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BROXY_", "XDG_"))}
    env["XDG_RUNTIME_DIR"] = str(short_dir)
    return env


@asynccontextmanager
async def stdio_client(config_path: Path, short_dir: Path, *extra: str, on_message=None):
    from mcp import Client, StdioServerParameters

    async def handler(message):
        if on_message is not None:
            on_message(message)

    params = StdioServerParameters(
        command=PYTHON, args=[*BRIDGE, "--config", str(config_path), "--no-start", *extra], env=bridge_env(short_dir),
    )
    async with Client(params, mode="legacy", message_handler=handler, cache=None) as client:
        yield client


async def test_lists_and_calls_through_the_bridge(config_path, short_dir):
    from mcp.shared.exceptions import MCPError

    async with running_app(config_path, short_dir) as r:
        await r.wait_available("files", "web", "sdk")
        async with stdio_client(config_path, short_dir) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            assert {"files__tool_0", "web__tool_1", "sdk__tool_2"} <= names
            assert (await client.call_tool("files__tool_2", {})).content[0].text == "called tool_2"
            assert (await client.call_tool("web__tool_4", {"x": 1})).content[0].text == "called tool_4"
            with pytest.raises(MCPError) as e:
                await client.call_tool("files__missing", {})
            assert e.value.code == -32602
            assert r.proxy.clients == 1
        await until(lambda: r.proxy.clients == 0, 10, "the relay to end")


async def test_preset_through_the_bridge_hides_a_server(config_path, short_dir):
    async with running_app(config_path, short_dir) as r:
        await r.wait_available("files", "web", "sdk")
        async with stdio_client(config_path, short_dir, "--preset", "coding") as client:
            names = {t.name for t in (await client.list_tools()).tools}
            assert names == {"files__tool_0", "files__tool_1", "files__tool_2", "web__tool_1"}
            counts = r.app.store.state.clients
            assert (counts.stdio, counts.http, counts.presets) == (1, 0, (("coding", 1),))
        await until(lambda: r.app.store.state.clients.total == 0, 10, "the bridge's relay to end")


async def test_server_going_away_through_the_bridge_notifies_the_client(config_path, short_dir):
    import anyio
    import mcp_types as types

    changes: list[str] = []

    def on_message(message):
        if isinstance(message, types.ToolListChangedNotification):
            changes.append("tools")

    async with running_app(config_path, short_dir) as r:
        await r.wait_available("files", "web", "sdk")
        async with stdio_client(config_path, short_dir, on_message=on_message) as client:
            await client.list_tools()
            await r.app.set_enabled("sdk", False)
            with anyio.fail_after(10):
                while not changes:
                    await anyio.sleep(0.02)
            assert not any(t.name.startswith("sdk__") for t in (await client.list_tools()).tools)
            await r.app.set_enabled("sdk", True)
            await r.wait_available("sdk")
            with anyio.fail_after(10):
                while not any(t.name.startswith("sdk__") for t in (await client.list_tools()).tools):
                    await anyio.sleep(0.05)
            assert len(changes) >= 2


async def test_unknown_preset_makes_the_bridge_exit_with_the_reason(config_path, short_dir):
    import asyncio

    async with running_app(config_path, short_dir):
        proc = await asyncio.create_subprocess_exec(
            PYTHON, *BRIDGE, "--config", str(config_path), "--no-start", "--preset", "nope",
            env=bridge_env(short_dir), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 20)
        assert proc.returncode == 1
        assert out == b""
        assert b"no preset 'nope'" in err


def test_without_a_running_app_the_bridge_says_so(config_path, short_dir):
    proc = subprocess.run(
        [PYTHON, *BRIDGE, "--config", str(config_path), "--no-start"], env=bridge_env(short_dir),
        input=b"", capture_output=True, timeout=20,
    )
    assert proc.returncode == 1
    err = proc.stderr.decode()
    assert f"broxy-tray is not running for {config_path}; not starting it (--no-start)" in err
    assert ".sock" not in err  # no guessed socket path: the app may record another one when it starts

