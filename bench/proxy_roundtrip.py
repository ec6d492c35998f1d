"""Benchmark (not collected by pytest): tools/call round trip through `broxy-tray stdio` vs. the SDK client direct.

    .venv/bin/python tests/proxy/bench_proxy_roundtrip.py [N]

Both clients call the same tool of the same Streamable HTTP SDK server on
loopback. The bridged path is client → bridge process (stdio) → control
socket → app's facade → the app's live session → HTTP server. Also fires
200 concurrent calls through the bridge and checks every answer is its own.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent / "tests" / "proxy"
sys.path.insert(0, str(HERE))
from proxy_testlib import PYTHON, running_app, save, serve  # noqa: E402


async def timed_calls(client, name: str, n: int) -> list[float]:
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        await client.call_tool(name, {"i": i})
        out.append((time.perf_counter() - t0) * 1000)
    return out


def summary(label: str, ms: list[float]) -> str:
    ms = sorted(ms)
    return f"{label:<28} median {statistics.median(ms):6.2f} ms   p90 {ms[int(len(ms) * 0.9)]:6.2f} ms   (n={len(ms)})"


async def main(n: int) -> None:
    import mcp_types as types
    from mcp import Client, StdioServerParameters
    from mcp.server import Server

    # an echo tool so concurrent answers can be matched to their calls
    async def call_tool(ctx, params):
        return types.CallToolResult(content=[types.TextContent(type="text", text=json.dumps(params.arguments))])

    async def list_tools(ctx, params):
        return types.ListToolsResult(tools=[types.Tool(name="echo", input_schema={"type": "object"})])

    http = serve(Server("bench", on_list_tools=list_tools, on_call_tool=call_tool).streamable_http_app())
    url = f"{http.base}/mcp"
    d = Path(tempfile.mkdtemp(prefix="bxb-", dir="/tmp"))
    cfg = d / "mcp.json"
    from mcp_testlib import MINIMAL_SERVER

    save(cfg, {"mcpServers": {"web": {"url": url}, "files": {"command": PYTHON, "args": [MINIMAL_SERVER]}}})
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BROXY_", "XDG_"))}
    env["XDG_RUNTIME_DIR"] = str(d)
    try:
        async with running_app(cfg, d) as r:
            await r.wait_available("web", "files")
            async with Client(url, cache=None) as direct:
                await direct.list_tools()
                await timed_calls(direct, "echo", 20)
                d_ms = await timed_calls(direct, "echo", n)
            async with Client(StdioServerParameters(command=PYTHON, args=[MINIMAL_SERVER]), cache=None) as direct:
                await direct.list_tools()
                await timed_calls(direct, "tool_0", 20)
                ds_ms = await timed_calls(direct, "tool_0", n)
            params = StdioServerParameters(
                command=PYTHON, args=["-m", "broxy_tray.proxy._stdio_bridge", "--config", str(cfg), "--no-start"], env=env)
            async with Client(params, mode="legacy", cache=None) as bridged:
                await bridged.list_tools()
                await timed_calls(bridged, "web__echo", 20)
                b_ms = await timed_calls(bridged, "web__echo", n)
                await timed_calls(bridged, "files__tool_0", 20)
                bs_ms = await timed_calls(bridged, "files__tool_0", n)
                t0 = time.perf_counter()
                results = await asyncio.gather(*(bridged.call_tool("web__echo", {"i": i}) for i in range(200)))
                elapsed = time.perf_counter() - t0
                ok = all(json.loads(res.content[0].text) == {"i": i} for i, res in enumerate(results))
            print(summary("direct (SDK → HTTP)", d_ms))
            print(summary("via broxy-tray stdio", b_ms))
            print(f"added by the proxy: median {statistics.median(b_ms) - statistics.median(d_ms):+.2f} ms")
            print(summary("direct (SDK → stdio server)", ds_ms))
            print(summary("via broxy-tray stdio → stdio", bs_ms))
            print(f"added by the proxy: median {statistics.median(bs_ms) - statistics.median(ds_ms):+.2f} ms")
            print(f"200 concurrent calls via stdio: all answered and matched: {ok}; "
                  f"{elapsed * 1000:.0f} ms, {200 / elapsed:.0f} calls/s")
    finally:
        http.stop()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 300))
