"""Fixtures for the control channel: an in-process App + ControlServer, and the real headless runner as a subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from broxy_tray.app import App
from broxy_tray.control import ControlServer
from broxy_tray.state import ServerStatus

MINIMAL_SERVER = Path(__file__).parents[1] / "mcp" / "servers" / "minimal_stdio.py"


def config_with_servers() -> dict[str, Any]:
    return {
        "mcpServers": {
            "files": {"name": "Local files", "command": sys.executable, "args": [str(MINIMAL_SERVER)]},
            "off": {"name": "Switched off", "command": sys.executable, "args": [str(MINIMAL_SERVER)], "enabled": False},
            "broken": {"name": "Broken", "url": "ftp://example.com/mcp"},
        }
    }


@pytest.fixture
def short_dir():
    """A short directory under /tmp (socket paths are limited to ~104 bytes), removed afterwards."""
    d = Path(tempfile.mkdtemp(prefix="bxt-", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def config_path(tmp_path) -> Path:
    path = tmp_path / "mcp.json"
    path.write_text(json.dumps(config_with_servers(), indent=2))
    return path


async def wait_until(pred: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise TimeoutError(f"{what} not reached within {timeout} s")
        await asyncio.sleep(0.02)


class Running:
    def __init__(self, app: App, server: ControlServer) -> None:
        self.app = app
        self.server = server
        self.path = server.path

    def status_of(self, sid: str) -> ServerStatus | None:
        s = self.app.store.state.server(sid)
        return s.status if s else None

    async def wait_status(self, sid: str, status: ServerStatus, timeout: float = 15.0) -> None:
        await wait_until(lambda: self.status_of(sid) is status, timeout, f"{sid} {status.value}")


@pytest.fixture
async def running(config_path, short_dir):
    """App on the real minimal stdio server, with its ControlServer on a socket in a fresh 0700 dir."""
    app = App(config_path, watch=False)
    await app.start()
    server = ControlServer(app, short_dir / "broxy" / "ctl.sock", idle_timeout=5.0)
    await server.start()
    r = Running(app, server)
    try:
        await r.wait_status("files", ServerStatus.AVAILABLE)
        yield r
    finally:
        await server.close()
        await app.shutdown()


async def raw_exchange(path: Path, payload: bytes, *, read_all: bool = False, timeout: float = 5.0) -> list[dict[str, Any]]:
    """Send raw bytes; return the response line(s) (all lines until EOF with read_all)."""
    reader, writer = await asyncio.open_unix_connection(str(path))
    try:
        writer.write(payload)
        await writer.drain()
        out = []
        while True:
            line = await asyncio.wait_for(reader.readline(), timeout)
            if not line:
                break
            out.append(json.loads(line))
            if not read_all:
                break
        return out
    finally:
        writer.close()


class Launched:
    """`broxy-tray run --headless --json` as a subprocess; stdout read as JSON lines."""

    def __init__(self, config: Path, env: dict[str, str]) -> None:
        self.config = config
        self.env = env
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "broxy_tray", "run", "--headless", "--json", "--config", str(config)], env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        )
        self.lines: list[dict[str, Any]] = []
        self._q: queue.Queue[dict[str, Any] | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self._q.put(json.loads(raw))
        self._q.put(None)

    def wait_for(self, pred: Callable[[dict[str, Any]], bool], timeout: float = 15.0) -> dict[str, Any]:
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no matching line in {timeout} s; seen {self.lines[-10:]}")
            try:
                item = self._q.get(timeout=left)
            except queue.Empty:
                continue
            if item is None:
                err = self.proc.stderr.read() if self.proc.stderr else ""
                raise EOFError(f"broxy-tray ended (rc={self.proc.wait()}): {err}")
            self.lines.append(item)
            if pred(item):
                return item

    def ready(self) -> Path:
        """Wait for the control channel and for `files` to be Available; returns the socket path."""
        from broxy_tray.control import NotRunning, control_path, request_sync

        path = control_path(self.config, Path(self.env["XDG_RUNTIME_DIR"]) / "broxy")
        if not any(e.get("server") == "files" and e.get("status") == "Available" for e in self.lines):
            self.wait_for(lambda e: e.get("server") == "files" and e.get("status") == "Available")
        end = time.monotonic() + 15  # the channel opens right after the first load
        while True:
            try:
                if request_sync(path, {"v": 1, "cmd": "ping"}, timeout=5).get("ok"):
                    return path
            except (NotRunning, OSError):
                pass
            if time.monotonic() > end or self.proc.poll() is not None:
                raise TimeoutError(f"the control channel at {path} never answered")
            time.sleep(0.05)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
        self.proc.wait(10)


@pytest.fixture
def launch(user_env):
    started: list[Launched] = []

    def start(config: Path, env: dict[str, str] | None = None) -> Launched:
        launched = Launched(config, env or user_env)
        started.append(launched)
        return launched

    yield start
    for launched in started:
        if launched.proc.poll() is None:
            launched.kill()
