#!/usr/bin/env python3
"""The app with its control channel and HTTP endpoint, in a process of its own, for the hardening tests.

Like `broxy-tray run --headless --json` (same App, same control channel, same JSON lines on stdout),
but with the endpoint token in memory (secure storage is not reachable from the test) and printed
on a first `{"event": "ready", "token": …, "port": …}` line. Commands on stdin:
    hog      open descriptors until none is left (EMFILE), like an exhausted process
    release  close them again
Runs until stdin closes.

    python endpoint_app.py CONFIG [--nofile N]   (N: soft and hard open-file limit of this process)
"""

import argparse
import asyncio
import json
import os
import resource
import sys
from pathlib import Path


async def main(config: Path) -> None:
    from broxy_tray._logging import setup_logging
    from broxy_tray.app import App
    from broxy_tray.auth._store import MemoryStore
    from broxy_tray.control import serve_app
    from broxy_tray.mcp import preload_sdk
    from broxy_tray.ui.headless import HeadlessPrinter

    setup_logging("info", stderr_level="warning")
    app = App(config, credentials=MemoryStore())
    printer = HeadlessPrinter(app.store, json_lines=True)
    await app.start()
    control = await serve_app(app, config)
    token = await app.endpoint._token().get()
    print(json.dumps({"event": "ready", "token": token, "port": app.endpoint.port, "pid": os.getpid()}), flush=True)
    hogged: list[int] = []
    try:
        while line := await asyncio.to_thread(sys.stdin.readline):
            if line.strip() == "hog":
                # the SDK warm-up imports in a thread, opening and closing files: let it finish, or a
                # descriptor it frees later lets the very read this hog is meant to starve go through
                await preload_sdk()
                for _ in range(3):  # and take again whatever other work in flight let go of meanwhile
                    while True:
                        try:
                            hogged.append(os.open(os.devnull, os.O_RDONLY))
                        except OSError:
                            break
                    await asyncio.sleep(0.1)
                print(json.dumps({"event": "hogged", "count": len(hogged)}), flush=True)
            elif line.strip() == "release":
                for fd in hogged:
                    os.close(fd)
                hogged.clear()
                print(json.dumps({"event": "released"}), flush=True)
    finally:
        if control is not None:
            await control.close()
        await app.shutdown()
        printer.close()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("config")
    p.add_argument("--nofile", type=int)
    a = p.parse_args()
    if a.nofile:
        resource.setrlimit(resource.RLIMIT_NOFILE, (a.nofile, a.nofile))
    asyncio.run(main(Path(a.config)))
