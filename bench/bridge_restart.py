"""`broxy-tray stdio` across app restarts: how soon a connected client is served again, how soon it hears "no".

Figures (median of N rounds, real headless app, real bridge started with only HOME and PATH):
- app back (its server `Available`) → first successful tools/call through a bridge connected before
  the restart (the app was SIGKILLed): target ≤ 1 s; and the same call made the moment the new app
  process is spawned (held by the bridge until the app is back): report;
- app running but unreachable (its socket deleted) → a new bridge's one-line error (exit 1): target ≤ 2 s;
- the same for a connected bridge: a call → its JSON-RPC error: target ≤ 2 s;
- app gone, nothing to reconnect to (`--no-start`) → the call's error: bounded by the hold time (8 s).

    .venv/bin/python bench/bridge_restart.py [ROUNDS]
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import isolated_env, start_headless, start_until_available, summary, tempdir  # noqa: E402

SERVER = Path(__file__).parents[1] / "tests" / "mcp" / "servers" / "minimal_stdio.py"
INIT = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
    "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}}


class Bridge:
    def __init__(self, config: Path, env: dict[str, str], *extra: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "broxy_tray", "stdio", "--config", str(config), *extra],
                                     env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.next_id = 1

    def send(self, msg: dict) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(msg).encode() + b"\n")
        self.proc.stdin.flush()

    def answer(self, rid: int) -> dict:
        assert self.proc.stdout is not None
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("the bridge ended: " + (self.proc.stderr.read().decode() if self.proc.stderr else ""))
            msg = json.loads(line)
            if msg.get("id") == rid:
                return msg

    def initialize(self) -> None:
        self.send(INIT)
        self.answer(0)
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def call(self) -> dict:
        rid, self.next_id = self.next_id, self.next_id + 1
        self.send({"jsonrpc": "2.0", "id": rid, "method": "tools/call", "params": {"name": "files__tool_1", "arguments": {}}})
        return self.answer(rid)

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def wait_available(app: subprocess.Popen[str]) -> None:
    assert app.stdout is not None
    for line in app.stdout:
        e = json.loads(line)
        if e["event"] == "status" and e["server"] == "files" and e["status"] == "Available":
            return
    raise RuntimeError("the app ended")


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    root = tempdir()
    env = isolated_env(root)
    env["HOME"] = str(root / "home")
    os.makedirs(env["HOME"], exist_ok=True)
    runtime = root / "run"
    runtime.mkdir(mode=0o700)
    env["XDG_RUNTIME_DIR"] = str(runtime)
    client_env = {"HOME": env["HOME"], "PATH": os.environ["PATH"]}  # what an MCP client passes
    config = root / "mcp.json"
    config.write_text(json.dumps({"mcpServers": {"files": {"command": sys.executable, "args": [str(SERVER)]}}}))

    back, spawn, unreachable_new, unreachable_connected, gone = [], [], [], [], []
    app, _ = start_until_available(config, env)
    bridge = Bridge(config, client_env, "--no-start")
    try:
        bridge.initialize()
        assert "result" in bridge.call()
        for _ in range(rounds):
            # app back → first successful call through the connected bridge
            app.send_signal(signal.SIGKILL)
            app.wait()
            app, _ = start_until_available(config, env)
            t0 = time.perf_counter()
            answer = bridge.call()
            back.append((time.perf_counter() - t0) * 1000)
            assert "result" in answer, answer

            # the same, with the call made the moment the new app process is spawned (held until it is back)
            app.send_signal(signal.SIGKILL)
            app.wait()
            time.sleep(0.6)
            t0 = time.perf_counter()
            app = start_headless(config, env)
            answer = bridge.call()
            spawn.append((time.perf_counter() - t0) * 1000)
            assert "result" in answer, answer
            wait_available(app)

            # running but unreachable: a new bridge, and the connected one
            from broxy_tray._instance import Instance

            inst = Instance.read(config, Path(env["HOME"]) / ".local/state/broxy/instances")
            assert inst.socket
            os.unlink(inst.socket)
            t0 = time.perf_counter()
            fresh = subprocess.run([sys.executable, "-m", "broxy_tray", "stdio", "--config", str(config)],
                                   env=client_env, input=json.dumps(INIT).encode() + b"\n", capture_output=True,
                                   timeout=60)
            unreachable_new.append((time.perf_counter() - t0) * 1000)
            assert fresh.returncode == 1 and str(inst.pid) in fresh.stderr.decode(), fresh.stderr
            # the connected bridge's connection still works; make the app drop it, with nothing to come back to
            holder = subprocess.Popen(
                [sys.executable, "-c", "import sys,time; from pathlib import Path; "
                 "from broxy_tray._instance import InstanceLock, record_socket; "
                 "InstanceLock(Path(sys.argv[1])).acquire(); record_socket(sys.argv[1], sys.argv[2]); "
                 "print('held', flush=True); time.sleep(120)", str(config), inst.socket],
                env=env, stdout=subprocess.PIPE, text=True)
            app.send_signal(signal.SIGKILL)
            app.wait()
            assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
            time.sleep(0.6)  # the bridge noticed the loss and tried to reconnect (fast backoff)
            t0 = time.perf_counter()
            answer = bridge.call()
            unreachable_connected.append((time.perf_counter() - t0) * 1000)
            assert "error" in answer, answer
            holder.kill()
            holder.wait()
            time.sleep(1.0)  # the bridge's next attempt finds nothing running (no longer "unreachable")

            # app gone, --no-start: the call waits for the hold time, then errors
            t0 = time.perf_counter()
            answer = bridge.call()
            gone.append((time.perf_counter() - t0) * 1000)
            assert "error" in answer, answer
            app, _ = start_until_available(config, env)
            assert "result" in bridge.call()
    finally:
        bridge.close()
        if app.poll() is None:
            app.send_signal(signal.SIGTERM)
            app.wait(20)
    print(f"bridge_restart: app Available → first successful call (connected bridge): {summary(back)} (target ≤ 1000 ms)")
    print(f"bridge_restart: new app process spawned → call (made at once, held) answered: {summary(spawn)} (report)")
    print(f"bridge_restart: running but unreachable → new bridge's error: {summary(unreachable_new)} (target ≤ 2000 ms)")
    print(f"bridge_restart: running but unreachable → connected bridge's call error: {summary(unreachable_connected)} "
          "(target ≤ 2000 ms)")
    print(f"bridge_restart: app gone (--no-start) → call error: {summary(gone)} (bound: hold time 8000 ms)")


if __name__ == "__main__":
    main()
