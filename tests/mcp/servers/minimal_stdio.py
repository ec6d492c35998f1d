#!/usr/bin/env python3
"""A minimal stdio MCP server in plain Python: no SDK, nothing but the standard library.

Answers the `initialize` handshake (2025-03-26 … 2025-11-25) and/or the
stateless 2026-07-28 revision (`server/discover`, per-request `_meta`), plus
`tools/list` with pagination and `tools/call`. Benchmarks and tests use it.

    python minimal_stdio.py [--era both|legacy|modern] [--legacy-version V]
                            [--tools N] [--page-size K] [--marker TEXT]
"""

import argparse
import json
import sys

MODERN = "2026-07-28"
HANDSHAKE = ("2025-03-26", "2025-06-18", "2025-11-25")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--era", choices=["both", "legacy", "modern"], default="both")
    p.add_argument("--legacy-version", default="2025-11-25", choices=HANDSHAKE)
    p.add_argument("--tools", type=int, default=3)
    p.add_argument("--page-size", type=int, default=100)
    p.add_argument("--tool-name", action="append", default=[], help="name the first tools (repeatable)")
    p.add_argument("--marker", default="", help="ignored; lets tests find this process by its command line")
    a = p.parse_args()
    names = a.tool_name + [f"tool_{i}" for i in range(len(a.tool_name), a.tools)]
    tools = [{"name": names[i], "description": f"Tool {i}", "inputSchema": {"type": "object"}} for i in range(a.tools)]
    info = {"name": "minimal-stdio", "version": "0.1"}
    modern_result = {"resultType": "complete", "ttlMs": 0, "cacheScope": "private"}

    def reply(msg_id, result=None, error=None):
        out = {"jsonrpc": "2.0", "id": msg_id}
        out["error" if error else "result"] = error or result
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()

    for line in sys.stdin:
        if not line.strip():
            continue
        msg = json.loads(line)
        method, msg_id, params = msg.get("method"), msg.get("id"), msg.get("params") or {}
        if msg_id is None:  # notifications: nothing to answer
            continue
        modern = "io.modelcontextprotocol/protocolVersion" in (params.get("_meta") or {})
        extra = modern_result if modern else {}
        if method == "server/discover" and a.era != "legacy":
            reply(msg_id, {**modern_result, "supportedVersions": [MODERN], "capabilities": {"tools": {}},
                           "_meta": {"io.modelcontextprotocol/serverInfo": info}})
        elif method == "initialize" and a.era != "modern":
            reply(msg_id, {"protocolVersion": a.legacy_version, "capabilities": {"tools": {}}, "serverInfo": info})
        elif method == "initialize":
            reply(msg_id, error={"code": -32022, "message": "only 2026-07-28 is served",
                                 "data": {"supported": [MODERN], "requested": params.get("protocolVersion")}})
        elif method == "tools/list":
            start = int((params.get("cursor") or "0"))
            page = tools[start:start + a.page_size]
            result = {**extra, "tools": page}
            if start + a.page_size < len(tools):
                result["nextCursor"] = str(start + a.page_size)
            reply(msg_id, result)
        elif method == "tools/call":
            text = f"called {params.get('name')}"
            reply(msg_id, {**extra, "content": [{"type": "text", "text": text}], "isError": False})
        elif method == "ping":
            reply(msg_id, {})
        else:
            reply(msg_id, error={"code": -32601, "message": f"Method not found: {method}"})


if __name__ == "__main__":
    main()
