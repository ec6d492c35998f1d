"""Audit item 1: the HTTP endpoint under a local denial-of-service attack, against a real app process.

Before the fix ~1,100 unauthenticated half-open connections used up the app's 1,024 descriptors:
no HTTP client got an answer, the CLI could not connect, and a config edit made meanwhile was never
applied (its read failed with EMFILE and nothing retried it).
"""

from __future__ import annotations

import http.client
import json
import os
import queue
import resource
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

import pytest
from proxy_testlib import MINIMAL_SERVER, PYTHON, save

from broxy_tray._fdlimit import TARGET, raise_open_file_limit

DRIVER = str(Path(__file__).parent / "endpoint_app.py")
ATTACKERS = 1100


class AppProcess:
    """tests/proxy/endpoint_app.py as a subprocess: JSON lines out, commands in."""

    def __init__(self, config: Path, env: dict[str, str], nofile: int | None = None) -> None:
        argv = [sys.executable, DRIVER, str(config)] + (["--nofile", str(nofile)] if nofile else [])
        self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, start_new_session=True)
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self._before_ready: list[dict[str, Any]] = []
        ready = self.wait_for(lambda e: e["event"] == "ready", 30, keep=self._before_ready)
        self.token, self.port = ready["token"], ready["port"]

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self._queue.put(json.loads(raw))
        self._queue.put(None)

    def wait_for(self, pred: Callable[[dict[str, Any]], bool], timeout: float = 20,
                 keep: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """The next line satisfying `pred` (lines printed before "ready" count too)."""
        while keep is None and self._before_ready:
            item = self._before_ready.pop(0)
            if pred(item):
                return item
        end = time.monotonic() + timeout
        while (left := end - time.monotonic()) > 0:
            try:
                item = self._queue.get(timeout=left)
            except queue.Empty:
                break
            if item is None:
                raise EOFError(f"app ended: {self.proc.wait()} {self.proc.stderr.read() if self.proc.stderr else ''}")
            if pred(item):
                return item
            if keep is not None:
                keep.append(item)
        raise TimeoutError("no matching line")

    def descriptors(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def stop(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait()


@pytest.fixture
def app_process(user_env):
    started: list[AppProcess] = []

    def start(config: Path, nofile: int | None = None) -> AppProcess:
        started.append(AppProcess(config, user_env, nofile))
        return started[-1]

    yield start
    for a in started:
        a.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config(tmp_path: Path, port: int, *servers: str) -> Path:
    path = tmp_path / "mcp.json"
    save(path, {"mcpServers": {s: {"command": PYTHON, "args": [MINIMAL_SERVER]} for s in servers},
                "endpoint": {"port": port}})
    return path


INITIALIZE = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "legit", "version": "1"}}})


def legit_request(port: int, token: str, timeout: float = 10) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", "/mcp", INITIALIZE, {
            "Host": f"127.0.0.1:{port}", "Authorization": f"Bearer {token}", "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream"})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def open_half_open(port: int, n: int) -> list[socket.socket]:
    """`n` connections that never send a byte (connect is non-blocking: the attacker does not wait)."""
    out = []
    for _ in range(n):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        out.append(s)
    return out


@pytest.fixture
def room_for_attackers():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < ATTACKERS + 200:
        pytest.skip(f"the test process itself needs {ATTACKERS + 200} descriptors (hard limit {hard})")
    raise_open_file_limit()


def test_half_open_flood_starves_nobody(app_process, tmp_path, cli, save_config, room_for_attackers):
    port = free_port()
    path = config(tmp_path, port, "a")
    app = app_process(path, nofile=256)  # the limit a default desktop session gives, scaled down
    app.wait_for(lambda e: e["event"] == "status" and e["server"] == "a" and e["status"] == "Available")
    assert legit_request(app.port, app.token) == 200
    baseline = app.descriptors()
    attackers = open_half_open(app.port, ATTACKERS)
    try:
        for _ in range(5):  # answered while the attacker holds every connection it could open
            assert legit_request(app.port, app.token) == 200
        status = cli("status", "--config", str(path))
        assert status.returncode == 0 and "Available" in status.stdout
        save_config(path, json.loads(path.read_text()) | {"mcpServers": {
            s: {"command": PYTHON, "args": [MINIMAL_SERVER]} for s in ("a", "b")}})
        event = app.wait_for(lambda e: e["event"] == "config", 20)
        assert event["action"] == "reloaded" and event["started"] == ["b"]
        # the header timeout closes every half-open connection the app still holds
        end = time.monotonic() + 40
        while time.monotonic() < end and app.descriptors() > baseline + 8:
            time.sleep(0.5)
        assert app.descriptors() <= baseline + 8, "half-open connections outlived the header timeout"
    finally:
        for s in attackers:
            s.close()


def test_wrong_token_is_refused_before_the_body_and_the_connection_closed(app_process, tmp_path):
    app = app_process(config(tmp_path, free_port()))
    with socket.create_connection(("127.0.0.1", app.port), timeout=10) as s:
        s.sendall(f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{app.port}\r\nAuthorization: Bearer wrong\r\n"
                  f"Content-Type: application/json\r\nContent-Length: {1 << 30}\r\n\r\n".encode())
        received = b""
        while chunk := s.recv(65536):  # EOF: the app closed it instead of waiting for a 1 GiB body
            received += chunk
    assert received.startswith(b"HTTP/1.1 401 ")
    assert b"connection: close" in received.lower()


def test_app_raises_its_soft_open_file_limit(headless, tmp_path):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= 1024:
        pytest.skip("the hard limit leaves nothing to raise")
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))  # what the child inherits, like a desktop session
    try:
        h = headless("--config", str(config(tmp_path, free_port())))
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    h.config_event()
    limits = Path(f"/proc/{h.proc.pid}/limits").read_text()
    line = next(ln for ln in limits.splitlines() if ln.startswith("Max open files"))
    expected = TARGET if hard == resource.RLIM_INFINITY else min(hard, TARGET)
    assert int(line.split()[3]) == expected
    assert h.stop() == 0


def test_reload_that_failed_for_lack_of_descriptors_is_retried(app_process, tmp_path, save_config):
    path = config(tmp_path, free_port(), "a")
    app = app_process(path, nofile=256)
    app.wait_for(lambda e: e["event"] == "config" and e["action"] == "loaded")
    app.send("hog")
    app.wait_for(lambda e: e["event"] == "hogged")
    save_config(path, json.loads(path.read_text()) | {"mcpServers": {
        s: {"command": PYTHON, "args": [MINIMAL_SERVER]} for s in ("a", "b")}})
    failed = app.wait_for(lambda e: e["event"] == "config")
    assert failed["action"] == "error" and "Too many open files" in failed["errors"][0]["message"]
    app.send("release")  # no file event follows: only a retry can pick the edit up
    applied = app.wait_for(lambda e: e["event"] == "config" and e["action"] != "error", 30)
    assert applied["action"] == "reloaded" and applied["started"] == ["b"]
