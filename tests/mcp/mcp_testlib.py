"""Helpers for the connection tests: real MCP servers on loopback (uvicorn in a thread) and as child processes."""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from broxy_tray.config._model import ServerConfig, Transport

SERVERS = Path(__file__).parent / "servers"
SDK_SERVER = str(SERVERS / "sdk_server.py")
MINIMAL_SERVER = str(SERVERS / "minimal_stdio.py")
PYTHON = sys.executable

sys.path.insert(0, str(SERVERS))


def stdio_config(*args: str, command: str = PYTHON, **kw: Any) -> ServerConfig:
    return ServerConfig(id="test", name="Test", transport=Transport.STDIO, command=command, args=tuple(args), **kw)


def remote_config(transport: Transport, url: str, **kw: Any) -> ServerConfig:
    return ServerConfig(id="test", name="Test", transport=transport, url=url, **kw)


@dataclass
class LoopbackServer:
    port: int
    thread: threading.Thread
    server: Any

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)


def serve(app: Any, *, ssl_certfile: str | None = None, ssl_keyfile: str | None = None) -> LoopbackServer:
    """Run `app` under uvicorn on a free 127.0.0.1 port, in a thread, until `.stop()`."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # accepted sockets inherit this; without it uvicorn's replies on a pre-bound socket
    # meet Nagle + delayed ACK: every request on a kept-alive connection takes ~44 ms
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_level="warning",
        ws="wsproto",
        lifespan="auto",
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("test server did not start")
        time.sleep(0.01)
    return LoopbackServer(port, thread, server)


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _sdk_apps(n_tools: int = 5, page_size: int = 1000, legacy_only: bool = False) -> dict[str, Any]:
    import sdk_server

    return {
        "http": sdk_server.build_server(n_tools, page_size, legacy_only=legacy_only).streamable_http_app(),
        "sse": sdk_server.sse_app(sdk_server.build_server(n_tools, page_size)),
        "ws": sdk_server.websocket_app(sdk_server.build_server(n_tools, page_size)),
    }


def sdk_servers_fixture() -> Iterator[dict[str, str]]:
    """URLs of fresh SDK servers (12 tools, 5 per page) for each remote transport."""
    apps = _sdk_apps(12, 5)
    running = {name: serve(app) for name, app in apps.items()}
    try:
        yield {
            "http": f"{running['http'].base}/mcp",
            "sse": f"{running['sse'].base}/sse",
            "ws": f"ws://127.0.0.1:{running['ws'].port}/ws",
        }
    finally:
        for r in running.values():
            r.stop()


def process_gone(pid: int) -> bool:
    """True once `pid` no longer runs (a zombie left for init to reap counts as gone)."""
    import psutil

    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def wait_gone(pid: int, timeout: float) -> bool:
    import anyio

    with anyio.move_on_after(timeout):
        while not process_gone(pid):
            await anyio.sleep(0.02)
    return process_gone(pid)
