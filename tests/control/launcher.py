"""Runs the app the way `broxy-tray run --headless --json` does once the cli.py patch is applied.

    python launcher.py CONFIG

Holds the instance lock, starts App, then the ControlServer; prints the
headless JSON lines plus {"event":"listening","path":…} once the control
channel is up; stops on SIGTERM/SIGINT or when a `quit` arrives.
"""

import asyncio
import json
import signal
import sys
from pathlib import Path

from broxy_tray._instance import InstanceLock
from broxy_tray.app import App
from broxy_tray.control import ControlError, ControlServer, control_path
from broxy_tray.ui.headless import HeadlessPrinter


async def run_headless(path: Path) -> int:  # the body of the patched cli._run_headless
    app = App(path)
    printer = HeadlessPrinter(app.store, json_lines=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    control = None
    try:
        await app.start()
        control = ControlServer(app, control_path(path))
        try:
            await control.start()
        except ControlError as e:
            print(f"broxy-tray: control channel unavailable: {e}", file=sys.stderr)
            control = None
        else:
            print(json.dumps({"event": "listening", "path": str(control.path)}), flush=True)
        waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(app.quit_requested.wait())]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()
    finally:
        if control is not None:
            await control.close()
        await app.shutdown()
        printer.close()
    return 0


def main() -> int:
    path = Path(sys.argv[1]).absolute()
    lock = InstanceLock(path)
    lock.acquire()
    try:
        return asyncio.run(run_headless(path))
    finally:
        lock.release()


if __name__ == "__main__":
    sys.exit(main())
