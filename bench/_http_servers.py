"""Serve N SDK-built Streamable HTTP MCP servers on loopback ports (benchmark helper).

Prints the URLs, one per line, then `READY`, and serves until stdin closes.
"""

from __future__ import annotations

import socket
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "mcp" / "servers"))


def main(n: int) -> None:
    import sdk_server
    import uvicorn

    servers = []
    for _ in range(n):
        sock = socket.socket()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # inherited by accepted sockets (no Nagle stalls)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(sdk_server.build_server(10, 100).streamable_http_app(), log_level="warning"))
        threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
        servers.append((server, port))
    for server, port in servers:
        while not server.started:
            time.sleep(0.01)
        print(f"http://127.0.0.1:{port}/mcp", flush=True)
    print("READY", flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    main(int(sys.argv[1]))
