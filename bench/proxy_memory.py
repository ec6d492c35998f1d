"""Resident memory the MCP endpoint adds to the app with 20 servers (target: <= 10 MB).

    .venv/bin/python bench/proxy_memory.py [SERVERS]

Starts `broxy-tray run --headless` with 20 minimal stdio servers, waits until all
are Available and the process has settled, then reads its VmRSS from /proc:
before any client, with one `broxy-tray stdio` client connected that listed
(and called) tools, with 5 such clients, and after they all left. Also prints
the RSS of one bridge process (the per-client process a launching client runs).
The first client's figure includes the lazy import of the SDK's server side
and the facade's first listing of all 20 servers. Linux only.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path

from _common import isolated_env, start_until_available

ROOT = Path(__file__).resolve().parent.parent
MINIMAL = str(ROOT / "tests" / "mcp" / "servers" / "minimal_stdio.py")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key == "VmRSS":
            return int(value.split()[0])
    raise RuntimeError(f"no VmRSS for {pid}")


def settled_rss(pid: int, seconds: float = 2.0) -> float:
    """Median VmRSS (MiB) over a few samples after letting the process settle."""
    time.sleep(seconds)
    samples = []
    for _ in range(5):
        samples.append(rss_kib(pid))
        time.sleep(0.2)
    return statistics.median(samples) / 1024


def bridges(config: Path) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"stdio" in cmd and str(config).encode() in cmd and b"run" not in cmd:
            out.append(int(d.name))
    return out


def start(n: int) -> tuple[subprocess.Popen[str], Path, dict[str, str]]:
    d = Path(tempfile.mkdtemp(prefix="bxm-", dir="/tmp"))
    path = d / "mcp.json"
    servers = {f"m{i}": {"command": sys.executable, "args": [MINIMAL, "--tools", "3"]} for i in range(n)}
    path.write_text(json.dumps({"mcpServers": servers}, indent=2))
    env = isolated_env(d)
    runtime = d / "run"
    runtime.mkdir(mode=0o700)
    env["XDG_RUNTIME_DIR"] = str(runtime)
    proc, _ = start_until_available(path, env)
    # keep draining stdout so the app never blocks on a full pipe
    import threading

    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
    return proc, path, env


async def connect(stack: AsyncExitStack, path: Path, env: dict[str, str], n_servers: int) -> None:
    from mcp import Client, StdioServerParameters

    params = StdioServerParameters(command=sys.executable,
                                   args=["-m", "broxy_tray", "stdio", "--config", str(path), "--no-start"], env=env)
    client = await stack.enter_async_context(Client(params, mode="legacy", cache=None))
    tools = (await client.list_tools()).tools
    assert len(tools) == 3 * n_servers, len(tools)
    await client.call_tool("m0__tool_1", {})


async def measure(n: int) -> None:
    proc, path, env = start(n)
    try:
        base = await asyncio.to_thread(settled_rss, proc.pid, 3.0)
        print(f"proxy_memory: app with {n} minimal stdio servers Available, no client: RSS {base:.1f} MiB")
        async with AsyncExitStack() as stack:
            await connect(stack, path, env, n)
            one = await asyncio.to_thread(settled_rss, proc.pid)
            pids = bridges(path)
            bridge = rss_kib(pids[0]) / 1024 if pids else float("nan")
            print(f"proxy_memory: 1 `broxy-tray stdio` client (listed {3 * n} tools, 1 call): RSS {one:.1f} MiB "
                  f"(+{one - base:.1f} MiB)  (target <= +10 MB)")
            for _ in range(4):
                await connect(stack, path, env, n)
            five = await asyncio.to_thread(settled_rss, proc.pid)
            print(f"proxy_memory: 5 clients: RSS {five:.1f} MiB (+{five - base:.1f} MiB; "
                  f"+{(five - one) / 4:.2f} MiB per further client)")
            print(f"proxy_memory: one bridge process (`broxy-tray stdio`, separate): RSS {bridge:.1f} MiB")
        after = await asyncio.to_thread(settled_rss, proc.pid)
        print(f"proxy_memory: after the clients left: RSS {after:.1f} MiB (+{after - base:.1f} MiB)")
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    if not Path("/proc/self/status").exists():
        sys.exit("proxy_memory: Linux only (/proc)")
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    asyncio.run(measure(n))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
