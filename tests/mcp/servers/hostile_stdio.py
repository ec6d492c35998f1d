#!/usr/bin/env python3
"""A stdio MCP server (standard library only) that misbehaves on purpose, for the hardening tests.

Serves the `initialize` handshake, `tools/list` (one tool) and `ping`; then, depending on flags:
    --stdout-flood BYTES   after the first tools/list, write BYTES of output without a newline
    --flood-delay SECONDS  wait this long after tools/list before the stdout flood
    --stderr-flood SECONDS write stderr lines as fast as it can for SECONDS (while serving)
    --ignore-eof           keep running after stdin closes (and ignore SIGTERM/SIGHUP)
    --grandchild PIDFILE   start a grandchild in the same process group; write "<self> <grandchild>" there
    --stdout-junk N        write N lines that are not JSON-RPC on stdout before serving (a startup banner)
    --marker TEXT          ignored; lets tests find these processes by their command line
Every loop is bounded: the process exits by itself after --lifetime seconds (default 120).
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--stdout-flood", type=int, default=0)
    p.add_argument("--flood-delay", type=float, default=0.0)
    p.add_argument("--stderr-flood", type=float, default=0.0)
    p.add_argument("--ignore-eof", action="store_true")
    p.add_argument("--grandchild")
    p.add_argument("--stdout-junk", type=int, default=0)
    p.add_argument("--marker", default="")
    p.add_argument("--lifetime", type=float, default=120.0)
    a = p.parse_args()
    threading.Timer(a.lifetime, lambda: os._exit(0)).start()
    out = sys.stdout.buffer

    if a.ignore_eof:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    if a.grandchild:
        code = f"import time\nend = time.time() + {a.lifetime}\nwhile time.time() < end: time.sleep(0.2)"
        child = subprocess.Popen([sys.executable, "-c", code, "--marker", a.marker], stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(a.grandchild + ".tmp", "w") as f:
            f.write(f"{os.getpid()} {child.pid}\n")
        os.replace(a.grandchild + ".tmp", a.grandchild)
    if a.stderr_flood:
        def flood_stderr() -> None:
            line = b"stderr flood " + b"y" * 80 + b"\n"
            end = time.monotonic() + a.stderr_flood
            while time.monotonic() < end:
                os.write(2, line * 100)
        threading.Thread(target=flood_stderr, daemon=True).start()

    def flood_stdout() -> None:
        time.sleep(a.flood_delay)
        block = b"x" * (1 << 20)
        left = a.stdout_flood
        while left > 0:
            out.write(block[:left])
            out.flush()
            left -= len(block)

    def reply(msg_id, result=None, error=None) -> None:
        msg = {"jsonrpc": "2.0", "id": msg_id}
        msg["error" if error else "result"] = error or result
        out.write(json.dumps(msg).encode() + b"\n")
        out.flush()

    for i in range(a.stdout_junk):
        out.write(f"starting up, step {i} (this should have gone to stderr)\n".encode())
    out.flush()

    flooded = False
    for line in sys.stdin:
        if not line.strip():
            continue
        msg = json.loads(line)
        method, msg_id = msg.get("method"), msg.get("id")
        if msg_id is None:
            continue
        if method == "initialize":
            reply(msg_id, {"protocolVersion": "2025-11-25", "capabilities": {"tools": {}},
                           "serverInfo": {"name": "hostile-stdio", "version": "0.1"}})
        elif method == "tools/list":
            reply(msg_id, {"tools": [{"name": "echo", "inputSchema": {"type": "object"}}]})
            if a.stdout_flood and not flooded:
                flooded = True
                threading.Thread(target=flood_stdout, daemon=True).start()
        elif method == "ping":
            reply(msg_id, {})
        else:
            reply(msg_id, error={"code": -32601, "message": f"Method not found: {method}"})
    if a.ignore_eof:
        time.sleep(a.lifetime)


if __name__ == "__main__":
    main()
