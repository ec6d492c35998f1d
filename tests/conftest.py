"""Shared fixtures: an isolated user environment and a headless app run as a real subprocess."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

import pytest


@pytest.fixture
def user_env(tmp_path: Path) -> dict[str, str]:
    """Environment for a subprocess whose config, state, logs and runtime dirs live in tmp_path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BROXY_", "XDG_"))}
    home = tmp_path / "home"
    runtime = tmp_path / "run"
    for d in (home, runtime):
        d.mkdir()
    os.chmod(runtime, 0o700)
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_STATE_HOME=str(home / ".local/state"),
        XDG_CACHE_HOME=str(home / ".cache"),
        XDG_DATA_HOME=str(home / ".local/share"),
        XDG_RUNTIME_DIR=str(runtime),
        PYTHONUNBUFFERED="1",
    )
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    return env


def run_cli(args: list[str], env: dict[str, str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "broxy_tray", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


class Headless:
    """`broxy-tray run --headless --json` as a subprocess, its stdout read as JSON lines."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "broxy_tray", "run", "--headless", "--json", *args],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        )
        self.lines: list[dict[str, Any]] = []
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self._queue.put(json.loads(raw))
        self._queue.put(None)

    def wait_for(self, pred: Callable[[dict[str, Any]], bool], timeout: float = 10.0) -> dict[str, Any]:
        """The next line (from now on) that satisfies `pred`."""
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no matching line within {timeout} s; seen: {self.lines[-10:]}")
            try:
                item = self._queue.get(timeout=left)
            except queue.Empty:
                continue
            if item is None:
                raise EOFError(f"process ended (rc={self.proc.wait()}); stderr: {self.stderr()}")
            self.lines.append(item)
            if pred(item):
                return item

    def config_event(self, timeout: float = 10.0) -> dict[str, Any]:
        return self.wait_for(lambda e: e["event"] == "config", timeout)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            raise

    def stderr(self) -> str:
        if self.proc.poll() is None or self.proc.stderr is None:
            return ""
        return self.proc.stderr.read()


@pytest.fixture
def headless(user_env):
    started: list[Headless] = []

    def start(*args: str, env: dict[str, str] | None = None) -> Headless:
        h = Headless(list(args), env or user_env)
        started.append(h)
        return h

    yield start
    for h in started:
        if h.proc.poll() is None:
            os.killpg(h.proc.pid, signal.SIGKILL)
            h.proc.wait()


def save(path: Path, obj_or_text: Any) -> None:
    """Save like most editors do: write a temp file, then rename over the config."""
    text = obj_or_text if isinstance(obj_or_text, str) else json.dumps(obj_or_text, indent=2)
    tmp = path.with_name(f".{path.name}.saving")
    tmp.write_text(text)
    os.replace(tmp, path)


MINIMAL_SERVER = Path(__file__).parent / "mcp" / "servers" / "minimal_stdio.py"


@pytest.fixture
def minimal_server() -> dict[str, Any]:
    """A `mcpServers` entry for a tiny real stdio MCP server (3 tools, no SDK import)."""
    return {"command": sys.executable, "args": [str(MINIMAL_SERVER)]}


@pytest.fixture
def closed_port_url() -> str:
    """An http URL on loopback where nothing listens (connection refused at once)."""
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}/mcp"


@pytest.fixture
def save_config() -> Callable[[Path, Any], None]:
    return save


@pytest.fixture
def cli(user_env) -> Callable[..., subprocess.CompletedProcess[str]]:
    def call(*args: str, env: dict[str, str] | None = None, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return run_cli(list(args), env or user_env, timeout)

    return call
