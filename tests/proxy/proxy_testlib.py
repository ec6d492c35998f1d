"""Helpers for the proxy tests: an in-process App with the session registry, the proxy and its control channel."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import tempfile
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Callable


HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent / "mcp"))
sys.path.insert(0, str(HERE))

from mcp_testlib import MINIMAL_SERVER, SDK_SERVER, serve  # noqa: E402

from broxy_tray.app import App  # noqa: E402
from broxy_tray.control import ControlServer, control_path  # noqa: E402
from broxy_tray.proxy._facade import Proxy  # noqa: E402
from broxy_tray.servers import LiveRunner  # noqa: E402
from broxy_tray.servers._sessions import SessionRegistry  # noqa: E402
from broxy_tray.state import ServerStatus  # noqa: E402

PYTHON = sys.executable


async def until(pred: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = pred()
        if value:
            return value
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def save(path: Path, obj: Any) -> None:
    tmp = path.with_name(".saving")
    tmp.write_text(json.dumps(obj, indent=2))
    tmp.replace(path)


def http_server_fixture() -> Any:
    """A Streamable HTTP SDK server (5 tools: add_tool, tool_1..tool_4) on loopback."""
    import sdk_server

    running = serve(sdk_server.build_server(5, 1000).streamable_http_app())
    yield f"{running.base}/mcp"
    running.stop()


def short_dir_fixture():
    d = Path(tempfile.mkdtemp(prefix="bxp-", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def base_config(http_url: str) -> dict[str, Any]:
    return {
        "mcpServers": {
            "files": {"command": PYTHON, "args": [MINIMAL_SERVER, "--tools", "3"]},
            "web": {"url": http_url},
            "sdk": {"command": PYTHON, "args": [SDK_SERVER, "stdio", "--tools", "3"]},
        },
        "presets": {
            "coding": {"servers": ["files"], "tools": ["web__tool_1"]},
        },
    }


class Running:
    def __init__(self, app: App, proxy: Proxy, sessions: SessionRegistry, server: ControlServer | None) -> None:
        self.app = app
        self.proxy = proxy
        self.sessions = sessions
        self.control = server

    def status_of(self, sid: str) -> ServerStatus | None:
        s = self.app.store.state.server(sid)
        return s.status if s else None

    async def wait_available(self, *sids: str, timeout: float = 20.0) -> None:
        for sid in sids:
            await until(lambda: sid in self.sessions, timeout, f"{sid} available")


@asynccontextmanager
async def running_app(config_path: Path, socket_dir: Path | None = None) -> AsyncIterator[Running]:
    sessions = SessionRegistry()
    app = App(config_path, watch=False, runner=LiveRunner(sessions=sessions))
    proxy = Proxy(sessions, store=app.store, config=lambda: app.config)
    app.proxy = proxy  # what the lead's app.py patch does
    await app.start()
    control = None
    if socket_dir is not None:
        control = ControlServer(app, control_path(config_path, socket_dir / "broxy"), idle_timeout=5.0)
        await control.start()
    try:
        yield Running(app, proxy, sessions, control)
    finally:
        if control is not None:
            await control.close()
        await app.shutdown()
        proxy.close()


def config_path_fixture(tmp_path, http_server) -> Path:
    path = tmp_path / "mcp.json"
    save(path, base_config(http_server))
    return path


@asynccontextmanager
async def in_memory_client(proxy: Proxy, *, preset: str | None = None, mode: str = "legacy",
                           on_message: Callable[[Any], Any] | None = None) -> AsyncIterator[Any]:
    """An SDK `Client` talking to the proxy over in-memory streams (the relay's shape, minus the socket)."""
    import anyio
    from mcp import Client
    from mcp.shared.memory import create_client_server_memory_streams

    async def handler(message: Any) -> None:
        if on_message is not None:
            on_message(message)

    @asynccontextmanager
    async def transport() -> AsyncIterator[Any]:
        async with create_client_server_memory_streams() as (client_streams, server_streams):
            async with anyio.create_task_group() as tg:
                tg.start_soon(lambda: proxy.serve(server_streams[0], server_streams[1], preset=preset))
                yield client_streams
                tg.cancel_scope.cancel()

    async with Client(transport(), mode=mode, message_handler=handler, cache=None) as client:
        yield client
