"""Live connections: start time of 20 stdio servers, memory and idle CPU with 20 HTTP servers.

    python bench/connections.py stdio     # start -> all 20 minimal stdio servers Available (target <= 3 s)
    python bench/connections.py sdk       # the same with 20 SDK-built stdio servers, vs their own start-up
    python bench/connections.py http      # RSS with 20 Streamable HTTP servers (target <= 90 MB) and
                                          # CPU of the idle process over 60 s (target <= 0.3 s)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from _common import isolated_env, start_until_available, tempdir

ROOT = Path(__file__).resolve().parent.parent
MINIMAL = str(ROOT / "tests" / "mcp" / "servers" / "minimal_stdio.py")
SDK = str(ROOT / "tests" / "mcp" / "servers" / "sdk_server.py")
TICK = os.sysconf("SC_CLK_TCK")


def run_until_available(servers: dict) -> tuple[subprocess.Popen[str], float]:
    d = tempdir()
    path = d / "mcp.json"
    path.write_text(json.dumps({"mcpServers": servers}, indent=2))
    return start_until_available(path, isolated_env(d))


def stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    proc.wait(10)


def proc_status(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("VmRSS", "VmHWM"):
            out[k] = int(v.split()[0])
    return out


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime, this process only


def bench_stdio() -> None:
    times = []
    for _ in range(5):
        proc, took = run_until_available({f"m{i}": {"command": sys.executable, "args": [MINIMAL]} for i in range(20)})
        stop(proc)
        times.append(took)
    times.sort()
    print(f"stdio: start -> 20 minimal stdio servers Available: median {times[2]:.2f} s "
          f"(min {times[0]:.2f}, max {times[-1]:.2f}; includes our own start-up)  (target <= 3 s)")


def bench_sdk() -> None:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import sys; sys.argv=['x','--help']; import mcp.server, mcp.server.stdio"], check=True)
    one = time.perf_counter() - t0
    proc, took = run_until_available({f"s{i}": {"command": sys.executable, "args": [SDK, "stdio"]} for i in range(20)})
    stop(proc)
    cores = os.cpu_count() or 1
    print(f"sdk: start -> 20 SDK-built stdio servers Available: {took:.2f} s; one server's own import alone "
          f"takes {one:.2f} s, so 20 need >= {20 * one / cores:.1f} s of CPU on {cores} cores")


def bench_http() -> None:
    helper = subprocess.Popen([sys.executable, str(Path(__file__).parent / "_http_servers.py"), "20"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        urls = []
        assert helper.stdout is not None
        for line in helper.stdout:
            if line.strip() == "READY":
                break
            urls.append(line.strip())
        proc, took = run_until_available({f"h{i}": {"url": u} for i, u in enumerate(urls)})
        try:
            time.sleep(5)
            mem = proc_status(proc.pid)
            c0 = cpu_seconds(proc.pid)
            time.sleep(60)
            c1 = cpu_seconds(proc.pid)
            mem_after = proc_status(proc.pid)
        finally:
            stop(proc)
        base = subprocess.run([sys.executable, "-c", "import broxy_tray.app, broxy_tray.cli, resource; "
                               "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"],
                              capture_output=True, text=True, check=True).stdout.strip()
        sdk = subprocess.run([sys.executable, "-c", "import resource, mcp.client, mcp.client.streamable_http, httpx2; "
                              "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"],
                             capture_output=True, text=True, check=True).stdout.strip()
        print(f"http: 20 Streamable HTTP servers Available after {took:.2f} s")
        print(f"http: broxy-tray RSS {mem['VmRSS'] / 1024:.1f} MiB after settling, {mem_after['VmRSS'] / 1024:.1f} MiB "
              f"after 60 s idle, peak {mem_after['VmHWM'] / 1024:.1f} MiB  (target <= 90 MB)")
        print(f"http: a bare Python importing our app modules: {int(base) / 1024:.1f} MiB; importing mcp.client + "
              f"streamable_http + httpx2: {int(sdk) / 1024:.1f} MiB")
        print(f"http: CPU used by the idle process over 60 s: {c1 - c0:.2f} s  (target <= 0.3 s)")
    finally:
        helper.stdin.close()  # type: ignore[union-attr]
        helper.wait(10)


if __name__ == "__main__":
    {"stdio": bench_stdio, "sdk": bench_sdk, "http": bench_http}[sys.argv[1] if len(sys.argv) > 1 else "stdio"]()
