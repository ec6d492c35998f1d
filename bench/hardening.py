#!/usr/bin/env python3
"""Figures for the hardening audit (issue 17): run one part or all, each prints its own figures.

    .venv/bin/python bench/hardening.py http     # half-open flood vs. a legitimate HTTP client and the CLI
    .venv/bin/python bench/hardening.py stdout   # app RSS while a stdio server writes stdout without newlines
    .venv/bin/python bench/hardening.py stderr   # app CPU and log growth while a stdio server floods stderr
    .venv/bin/python bench/hardening.py junk     # log and stderr lines while a stdio server writes junk on stdout
    .venv/bin/python bench/hardening.py orphans  # servers + grandchildren left after 20 SIGKILLs of the app
    .venv/bin/python bench/hardening.py fuzz     # >= 1,000 fuzzed configs through `config check`
    .venv/bin/python bench/hardening.py all
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).parent))
from _common import isolated_env, percentile, start_headless, tempdir  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MINIMAL = str(ROOT / "tests" / "mcp" / "servers" / "minimal_stdio.py")
HOSTILE = str(ROOT / "tests" / "mcp" / "servers" / "hostile_stdio.py")
DRIVER = str(ROOT / "tests" / "proxy" / "endpoint_app.py")


def events(proc: subprocess.Popen[str]):
    assert proc.stdout is not None
    for line in proc.stdout:
        yield json.loads(line)


def wait_event(it, pred, timeout: float = 60.0) -> dict:
    end = time.monotonic() + timeout
    for e in it:
        if pred(e):
            return e
        if time.monotonic() > end:
            break
    raise RuntimeError("expected event did not come")


def env_for(root: Path) -> dict[str, str]:
    env = isolated_env(root)
    run = root / "run"
    run.mkdir(mode=0o700, exist_ok=True)
    env["XDG_RUNTIME_DIR"] = str(run)
    env["HOME"] = str(root)
    return env


# -- 1. HTTP endpoint under a half-open flood ---------------------------------------------------


def bench_http(attackers: int = 2000, seconds: float = 20.0, nofile: int = 1024) -> None:
    from broxy_tray._fdlimit import raise_open_file_limit

    raise_open_file_limit(attackers + 1000)
    root = tempdir()
    env = env_for(root)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = root / "mcp.json"
    config.write_text(json.dumps({"mcpServers": {"a": {"command": sys.executable, "args": [MINIMAL]}},
                                  "endpoint": {"port": port}}))
    app = subprocess.Popen([sys.executable, DRIVER, str(config), "--nofile", str(nofile)], env=env,
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    it = events(app)
    ready = wait_event(it, lambda e: e["event"] == "ready")
    wait_event(it, lambda e: e["event"] == "status" and e["status"] == "Available")
    token = ready["token"]
    threading.Thread(target=lambda: [None for _ in it], daemon=True).start()  # keep draining its output
    sys.path.insert(0, str(ROOT / "tests" / "proxy"))
    from test_proxy_http_dos import legit_request

    stop = threading.Event()
    opened = [0]
    held = [0]
    socks: list[socket.socket] = []

    def attack() -> None:
        def one() -> socket.socket:
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            opened[0] += 1
            return s

        socks.extend(one() for _ in range(attackers))
        while not stop.wait(0.5):  # reopen every connection the app closed: the attacker never lets go
            for i, s in enumerate(socks):
                try:
                    closed = s.recv(1) == b""
                except BlockingIOError:
                    closed = False
                except OSError:
                    closed = True
                if closed:
                    s.close()
                    socks[i] = one()
            held[0] = len(socks)

    app_fds: list[int] = []
    attacker = threading.Thread(target=attack, daemon=True)
    attacker.start()
    time.sleep(1.0)
    latencies: list[float] = []
    failures = 0
    cli_times: list[float] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t0 = time.perf_counter()
        try:
            ok = legit_request(port, token, timeout=5) == 200
        except OSError:
            ok = False
        latencies.append((time.perf_counter() - t0) * 1000)
        failures += not ok
        app_fds.append(len(os.listdir(f"/proc/{app.pid}/fd")))
        if len(latencies) % 20 == 1:
            t0 = time.perf_counter()
            r = subprocess.run([sys.executable, "-m", "broxy_tray", "status", "--config", str(config)], env=env,
                               capture_output=True, timeout=30)
            cli_times.append((time.perf_counter() - t0) * 1000 if r.returncode == 0 else float("inf"))
        time.sleep(0.1)
    stop.set()
    attacker.join(5)
    print(f"http: attacker held {held[0]} connections ({opened[0]} opened over {seconds:.0f} s, app open-file "
          f"limit {nofile}); app descriptors max {max(app_fds)}")
    print(f"http: legitimate requests {len(latencies)}, failed {failures}, within 1 s "
          f"{sum(v <= 1000 for v in latencies)}; p50 {percentile(latencies, 50):.1f} ms, "
          f"p95 {percentile(latencies, 95):.1f} ms, max {max(latencies):.1f} ms")
    print(f"http: `broxy-tray status` meanwhile: {len(cli_times)} runs, max {max(cli_times):.0f} ms (incl. start-up)")
    for s in socks:
        s.close()
    assert app.stdin is not None
    app.stdin.close()
    app.wait(20)


# -- 2./3. stdio floods ---------------------------------------------------------------------------


def bench_stdout(flood_mib: int = 192, extra_cycles: int = 2) -> None:
    root = tempdir()
    env = env_for(root)
    config = root / "mcp.json"
    config.write_text(json.dumps({"mcpServers": {"flood": {"command": sys.executable, "args": [
        HOSTILE, "--stdout-flood", str(flood_mib << 20), "--flood-delay", "2", "--lifetime", "120"]}}}))
    app = start_headless(config, env)
    it = events(app)
    wait_event(it, lambda e: e["event"] == "status" and e["status"] == "Available")
    proc = psutil.Process(app.pid)
    baseline = proc.memory_info().rss
    peak = [baseline]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.01):
            peak[0] = max(peak[0], proc.memory_info().rss)

    threading.Thread(target=sample, daemon=True).start()
    cpu0 = sum(proc.cpu_times()[:2])
    t0 = time.monotonic()
    error = wait_event(it, lambda e: e["event"] == "status" and e["status"] == "Error")
    cut_after = time.monotonic() - t0 - 2
    for _ in range(extra_cycles):  # restarted with backoff, cut again
        wait_event(it, lambda e: e["event"] == "status" and e["status"] == "Available")
        wait_event(it, lambda e: e["event"] == "status" and e["status"] == "Error")
    stop.set()
    cpu = sum(proc.cpu_times()[:2]) - cpu0
    print(f"stdout: flood of {flood_mib} MiB without a newline, {1 + extra_cycles} cycles: app RSS {baseline / 2**20:.1f} MiB "
          f"before, peak {peak[0] / 2**20:.1f} MiB (+{(peak[0] - baseline) / 2**20:.1f} MiB); cut {cut_after:.2f} s "
          f"after the flood began; app CPU {cpu:.2f} s over {time.monotonic() - t0:.1f} s")
    print(f"stdout: status {error['status']}: {error['detail']}")
    app.send_signal(signal.SIGTERM)
    app.wait(20)


def bench_stderr(seconds: float = 10.0) -> None:
    root = tempdir()
    env = env_for(root)
    config = root / "mcp.json"
    config.write_text(json.dumps({"mcpServers": {"noisy": {"command": sys.executable, "args": [
        HOSTILE, "--stderr-flood", str(seconds), "--lifetime", "120"]}}}))
    app = start_headless(config, env)
    it = events(app)
    wait_event(it, lambda e: e["event"] == "status" and e["status"] == "Available")
    log = Path(env["XDG_STATE_HOME"]) / "broxy" / "log" / "broxy-tray.log"
    proc = psutil.Process(app.pid)
    cpu0 = sum(proc.cpu_times()[:2])
    time.sleep(seconds)
    cpu = sum(proc.cpu_times()[:2]) - cpu0
    text = log.read_text()
    lines = sum(1 for ln in text.splitlines() if "stderr: stderr flood" in ln)
    print(f"stderr: {seconds:.0f} s flood (from the server's start): app CPU {cpu:.2f} s while it lasted "
          f"({100 * cpu / seconds:.1f} % of one core); the whole log is {len(text) / 1024:.1f} KiB, "
          f"{lines} stderr lines logged")
    app.send_signal(signal.SIGTERM)
    app.wait(20)


def bench_junk(seconds: float = 10.0) -> None:
    """`yes garbage-not-json` as a server: before the fix ~3,800 log lines/s and as many on stderr."""
    root = tempdir()
    env = env_for(root)
    config = root / "mcp.json"
    config.write_text(json.dumps({"mcpServers": {"flood": {"command": "yes", "args": ["garbage-not-json"]}}}))
    with open(root / "stderr.txt", "wb") as err:
        app = subprocess.Popen([sys.executable, "-m", "broxy_tray", "run", "--headless", "--json", "--config",
                                str(config)], env=env, stdout=subprocess.PIPE, stderr=err, text=True)
        statuses: list[str] = []
        threading.Thread(target=lambda: statuses.extend(e.get("status", "") for e in events(app)),
                         daemon=True).start()
        time.sleep(seconds)
        app.send_signal(signal.SIGTERM)
        app.wait(20)
    folder = Path(env["XDG_STATE_HOME"]) / "broxy" / "log"
    lines = sum(len(f.read_text(errors="replace").splitlines()) for f in folder.glob("broxy-tray.log*"))
    err_lines = len((root / "stderr.txt").read_bytes().splitlines())
    print(f"junk: {seconds:.0f} s of `yes garbage-not-json` as a server: {lines} log lines, {err_lines} stderr "
          f"lines, {statuses.count('Error')} Error statuses")


# -- 4. orphans after SIGKILL ---------------------------------------------------------------------------


def bench_orphans(runs: int = 20) -> None:
    root = tempdir()
    env = env_for(root)
    left = 0
    total = 0
    waits = []
    for run in range(runs):
        marker = uuid.uuid4().hex
        pidfiles = [root / f"{run}-{i}.pids" for i in range(2)]
        config = root / "mcp.json"
        config.write_text(json.dumps({"mcpServers": {f"s{i}": {"command": sys.executable, "args": [
            HOSTILE, "--ignore-eof", "--grandchild", str(pf), "--marker", marker, "--lifetime", "120"]}
            for i, pf in enumerate(pidfiles)}}))
        app = start_headless(config, env)
        it = events(app)
        for _ in pidfiles:
            wait_event(it, lambda e: e["event"] == "status" and e["status"] == "Available")
        pids = [int(p) for pf in pidfiles for p in pf.read_text().split()]
        total += len(pids)
        app.send_signal(signal.SIGKILL)
        app.wait(10)
        t0 = time.monotonic()

        def alive() -> list[int]:
            out = []
            for p in pids:
                try:
                    if psutil.Process(p).status() != psutil.STATUS_ZOMBIE:
                        out.append(p)
                except psutil.NoSuchProcess:
                    pass
            return out

        while alive() and time.monotonic() - t0 < 10:
            time.sleep(0.05)
        waits.append(time.monotonic() - t0)
        survivors = alive()
        left += len(survivors)
        for p in survivors:
            os.kill(p, signal.SIGKILL)
    print(f"orphans: {runs} SIGKILLs of the app with 2 servers (ignoring EOF and SIGTERM) + 2 grandchildren each: "
          f"{left} of {total} processes left; all gone within {max(waits):.2f} s (median {percentile(waits, 50):.2f} s)")


# -- 5. fuzzed configs -----------------------------------------------------------------------------------

BASE = {
    "mcpServers": {
        "files": {"command": "uvx", "args": ["mcp-server-files"], "env": {"ROOT": "${HOME}/work"}},
        "web": {"url": "https://mcp.example.com/mcp", "headers": {"X-Team": "${TEAM:-t}"},
                "auth": {"clientId": "c", "scopes": ["a"], "redirectUri": "http://127.0.0.1:8080/cb"}},
        "ws": {"transport": "websocket", "url": "wss://x.example/ws", "enabled": False},
    },
    "presets": {"coding": {"servers": ["files"], "tools": ["web__search"]}},
    "endpoint": {"port": 3335},
    "requestTimeoutSeconds": 30,
}
_LOCATED = re.compile(r"^.+?:\d+:\d+: ")
_ODD = ["[", "]", "{", "}", '"', ",", ":", "\\", "\\u", "\\ud800", "\x00", "\n", " ", "9" * 5000, "-", "1e999",
        "NaN", "true", "null", "é", "__", "${", "}"]


def _random_value(rng: random.Random, depth: int = 0):
    kind = rng.randrange(8 if depth < 3 else 5)
    if kind == 0:
        return rng.choice([None, True, False])
    if kind == 1:
        return rng.choice([0, -1, 65536, 10 ** rng.randrange(1, 4000), 1.5, 1e308])
    if kind == 2:
        return "".join(rng.choice("ab_${}:-/\\\"\n\x01é\ud800") for _ in range(rng.randrange(0, 12)))
    if kind in (3, 4):
        return rng.choice(["stdio", "http", "sse", "ws", "https://h/x", "x__y", "", "${UNSET}", "${A:-${B}}"])
    if kind == 5:
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(0, 4))]
    return {rng.choice(["command", "url", "args", "env", "auth", "x", "servers", "tools", "port", "a__b"]):
            _random_value(rng, depth + 1) for _ in range(rng.randrange(0, 4))}


def _set_random(rng: random.Random, obj, value) -> None:
    """Replace a random member somewhere inside `obj` with `value`."""
    for _ in range(rng.randrange(1, 4)):
        keys = list(obj) if isinstance(obj, dict) else list(range(len(obj))) if isinstance(obj, list) else []
        if not keys:
            break
        k = rng.choice(keys)
        if rng.random() < 0.5 or not isinstance(obj[k], (dict, list)):
            obj[k] = value
            return
        obj = obj[k]
    if isinstance(obj, dict):
        obj[rng.choice(["x", "command", "args", "port"])] = value


def fuzz_text(rng: random.Random) -> str:
    kind = rng.randrange(6)
    data = json.loads(json.dumps(BASE))
    if kind == 0:  # deep nesting
        depth = rng.choice([99, 101, 500, 1000, 5000, 100000])
        o, c = rng.choice([("[", "]"), ('{"a":', "}")])
        _set_random(rng, data, "@@")
        text = json.dumps(data, indent=rng.choice([None, 2]))
        return text.replace('"@@"', o * depth + "1" * (o == "[") + (c * depth if rng.random() < 0.8 else ""), 1)
    if kind == 1:  # huge numbers
        _set_random(rng, data, "@@")
        digits = rng.choice([999, 1001, 4300, 4301, 10000, 100000])
        number = rng.choice(["", "-"]) + "7" * digits + rng.choice(["", ".5", "e5"])
        return json.dumps(data, indent=2).replace('"@@"', number, 1)
    if kind == 2:  # wrong types and odd values anywhere
        for _ in range(rng.randrange(1, 6)):
            _set_random(rng, data, _random_value(rng))
        return json.dumps(data, indent=rng.choice([None, 2]), ensure_ascii=rng.random() < 0.5)
    text = json.dumps(data, indent=2)
    if kind == 3:  # byte-level mutations
        chars = list(text)
        for _ in range(rng.randrange(1, 8)):
            i = rng.randrange(len(chars))
            op = rng.randrange(3)
            if op == 0:
                del chars[i]
            elif op == 1:
                chars.insert(i, rng.choice(_ODD))
            else:
                chars[i] = rng.choice(_ODD)
        return "".join(chars)
    if kind == 4:  # truncation
        return text[: rng.randrange(len(text))]
    return "".join(rng.choice(_ODD) for _ in range(rng.randrange(1, 40)))  # junk


def bench_fuzz(n: int = 1200, seed: int = 17, subprocess_runs: int = 25) -> None:
    from broxy_tray import cli

    rng = random.Random(seed)
    root = tempdir()
    path = root / "mcp.json"
    tracebacks = 0
    unlocated: list[str] = []
    messages = 0
    kinds: dict[str, int] = {"ok": 0, "errors": 0}
    for _ in range(n):
        text = fuzz_text(rng)
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
        err = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="backslashreplace")  # like sys.stderr
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                rc = cli.main(["config", "check", "--config", str(path)])
        except BaseException as e:  # noqa: BLE001 - a traceback is what is counted
            tracebacks += 1
            print(f"fuzz: traceback {type(e).__name__}: {e!s:.200}")
            continue
        err.seek(0)
        lines = [ln for ln in err.buffer.getvalue().decode("utf-8").splitlines() if ln]
        kinds["errors" if rc else "ok"] += 1
        for line in lines:
            messages += 1
            if not _LOCATED.match(line) or not line.startswith(str(path)):
                unlocated.append(line)
    sub_tb = 0
    for i in range(subprocess_runs):
        path.write_text(fuzz_text(random.Random(seed * 1000 + i)), encoding="utf-8", errors="surrogatepass")
        r = subprocess.run([sys.executable, "-m", "broxy_tray", "config", "check", "--config", str(path)],
                           capture_output=True, text=True, errors="replace", timeout=60)
        sub_tb += "Traceback" in r.stderr or r.returncode not in (0, 1)
    print(f"fuzz: {n} configs (seed {seed}; deep nesting, huge numbers, wrong types, byte mutations, truncation, "
          f"junk): {tracebacks} tracebacks, {len(unlocated)} of {messages} messages without file:line:column "
          f"({kinds['ok']} OK, {kinds['errors']} with errors); {subprocess_runs} more through the real CLI: "
          f"{sub_tb} tracebacks")
    for line in unlocated[:10]:
        print(f"fuzz: unlocated: {line[:200]}")


if __name__ == "__main__":
    which = sys.argv[1] if len(sys.argv) > 1 else "all"
    parts = {"http": bench_http, "stdout": bench_stdout, "stderr": bench_stderr, "junk": bench_junk, "orphans": bench_orphans,
             "fuzz": bench_fuzz}
    for name, fn in parts.items():
        if which in (name, "all"):
            fn()
