"""Load + validate a 200-server mcp.json (target: <= 20 ms).

Mixed entries like real files: stdio with args/env and placeholders, remote
servers with headers and auth blocks. Times `load_config` (read, parse,
validate, expand) end to end, warm, over many runs.
"""

from __future__ import annotations

import json
import time

from _common import summary, tempdir

from broxy_tray.config import load_config


def make(n: int = 200) -> dict:
    servers = {}
    for i in range(n):
        if i % 2:
            servers[f"local-{i}"] = {"name": f"Local {i}", "command": "uvx", "args": ["mcp-server-files", "--root", "${HOME}/w"],
                                     "env": {"ROOT": "${HOME}/work", "LEVEL": "${LEVEL:-info}"}, "enabled": i % 4 != 1}
        else:
            servers[f"remote-{i}"] = {"name": f"Remote {i}", "transport": "http", "url": f"https://mcp{i}.example.com/mcp",
                                      "headers": {"X-Team": "${TEAM:-t}"},
                                      "auth": {"type": "oauth", "clientId": f"c{i}", "redirectUri": "http://127.0.0.1:8080/callback",
                                               "authorizationServer": "https://auth.example.com", "scopes": ["files:read", "files:write"]}}
    return {"requestTimeoutSeconds": 60, "mcpServers": servers}


def main() -> None:
    d = tempdir()
    path = d / "mcp.json"
    path.write_text(json.dumps(make(), indent=2))
    env = {"HOME": "/home/u"}
    config, _ = load_config(path, env)
    assert len(config.servers) == 200 and not config.errors, config.errors[:3]
    times = []
    for _ in range(200):
        t0 = time.perf_counter()
        load_config(path, env)
        times.append((time.perf_counter() - t0) * 1000)
    print(f"config_load: 200 servers, {path.stat().st_size} bytes: {summary(times)}  (target p50 <= 20 ms)")


if __name__ == "__main__":
    main()
