"""Runs App + proxy + control channel the way `broxy-tray run --headless` does once the app.py patch is in.

    python launcher_app.py CONFIG

Used to test that `broxy-tray stdio` starts an instance when none runs.
"""

import asyncio
import signal
import sys
from pathlib import Path

from broxy_tray._instance import InstanceLock
from broxy_tray.app import App
from broxy_tray.control import ControlServer, control_path
from broxy_tray.proxy._facade import Proxy
from broxy_tray.servers import LiveRunner
from broxy_tray.servers._sessions import SessionRegistry


async def run(path: Path) -> int:
    sessions = SessionRegistry()
    app = App(path, runner=LiveRunner(sessions=sessions))
    app.proxy = Proxy(sessions, store=app.store, config=lambda: app.config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await app.start()
    control = ControlServer(app, control_path(path))
    await control.start()
    try:
        waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(app.quit_requested.wait())]
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        for w in waiters:
            w.cancel()
    finally:
        await control.close()
        await app.shutdown()
    return 0


def main() -> int:
    path = Path(sys.argv[1]).absolute()
    lock = InstanceLock(path)
    lock.acquire()
    try:
        return asyncio.run(run(path))
    finally:
        lock.release()


if __name__ == "__main__":
    sys.exit(main())
