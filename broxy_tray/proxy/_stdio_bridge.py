"""`broxy-tray stdio [--preset NAME]`: a stdio MCP server for clients that launch a command.

The bridge connects to the running broxy-tray over the control channel,
asks for an MCP relay (`{"v":1,"cmd":"mcp","preset":…}`), and from then on
forwards JSON-RPC lines both ways (`_bridge_session` keeps the client's
session alive across app restarts). The app is found through its instance
lock file, whatever environment the client gave us (see `control._locate`).
When no app runs, the bridge starts one headless (`broxy-tray run
--headless`, detached); a lock on `<key>.start` makes two bridges racing to
do so start exactly one.

stdin is read with `os.read` in a plain thread (no buffered-reader lock
that interpreter shutdown could trip over), stdout is written by one
worker thread (a slow client never blocks the loop); diagnostics go to
stderr, never stdout. The bridge exits 0 when the client hangs up; 1 only
when the very first connection fails (not running with `--no-start`, an
unknown preset, a running app that does not answer).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Sequence

from ._bridge_session import CHUNK, MAX_LINE, BridgeSession, LinkError

EXIT_OK = 0
EXIT_FAILURE = 1
START_TIMEOUT = 30.0
"""Seconds to wait for a headless instance (ours or another bridge's) to open its control channel."""
ANSWER_TIMEOUT = 5.0
"""Seconds the app may take to accept the relay request."""


def headless_command(config_path: Path) -> list[str]:
    """How to start the app headless for `config_path` (this installation's Python)."""
    return [sys.executable, "-m", "broxy_tray", "run", "--headless", "--config", str(config_path)]


def start_headless(command: Sequence[str]) -> subprocess.Popen[bytes]:
    """Start the app detached from us: its own session, no stdin/stdout (those are the client's)."""
    kwargs: dict[str, object] = {}
    if os.name == "nt":  # pragma: no cover - Windows only
        kwargs["creationflags"] = subprocess.DETACHED_PROCESS | subprocess.CREATE_NEW_PROCESS_GROUP  # type: ignore[attr-defined]
    else:
        kwargs["start_new_session"] = True
    return subprocess.Popen(
        list(command), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        close_fds=True, **kwargs,  # type: ignore[arg-type]
    )


class AppLink:
    """Connects to the app for a config and switches the connection to MCP; starts the app when allowed."""

    def __init__(
        self,
        config_path: Path,
        *,
        preset: str | None = None,
        start: Callable[[], Any] | None = None,
        start_timeout: float = START_TIMEOUT,
        socket_path: Path | None = None,
        lock_dir: Path | None = None,
        log: Callable[[str], None] = lambda m: None,
    ) -> None:
        self.config_path = config_path
        self.preset = preset
        self._start = start
        self.start_timeout = start_timeout
        self.socket_path = socket_path
        self.lock_dir = lock_dir
        self._log = log

    async def __call__(self, first: bool, wanted: bool) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        from broxy_tray.control._client import NotRunning
        from broxy_tray.control._locate import Location, Unreachable, connect, locate
        from broxy_tray.control._protocol import ControlError

        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.start_timeout
        started = False
        while True:
            location = locate(self.config_path, self.lock_dir)
            if self.socket_path is not None:
                location = Location(self.config_path, location.instance, (self.socket_path,))
            try:
                conn = await connect(location)
                break
            except Unreachable as e:
                raise LinkError(str(e), fail_fast=True) from None
            except NotRunning:
                # No socket path here: the one this environment would guess may not be where the app
                # will listen (it records its own socket in its lock file once started).
                reason = self._not_running(first)
            except ControlError as e:
                raise LinkError(f"cannot reach broxy-tray for {self.config_path}: {e}", fail_fast=True) from None
            inst = location.instance
            if inst.running:  # starting (or stopping): the lock is held, the channel is not open (yet)
                age = _age(inst.lock_path)
                if age is not None and age > self.start_timeout:
                    raise LinkError(location.unreachable("it never opened its control channel"), fail_fast=True)
                if not first:
                    raise LinkError(f"broxy-tray (process {inst.pid}) is starting or stopping", final=False)
            elif self._start is not None and (first or wanted) and not started:
                await asyncio.to_thread(self._ensure_started)
                started = True
                continue
            elif not first or self._start is None:
                raise LinkError(reason)
            if loop.time() > deadline:
                raise LinkError(f"broxy-tray did not open its control channel within {self.start_timeout:g} s "
                                f"({location.socket})")
            await asyncio.sleep(0.05)
        request: dict[str, Any] = {"cmd": "mcp"}
        if self.preset is not None:
            request["preset"] = self.preset
        try:
            answer = await conn.call(request, ANSWER_TIMEOUT)
        except ControlError as e:
            await conn.close()
            raise LinkError(f"broxy-tray did not accept the MCP connection: {e}", fail_fast=True) from None
        if answer.get("ok") is not True:
            await conn.close()
            err = answer.get("error") or {}
            message = err.get("message") if isinstance(err, dict) else None
            if isinstance(err, dict) and err.get("code") == "unknown-command":
                message = "the running broxy-tray is too old to offer the MCP endpoint; restart it"
            raise LinkError(message or "broxy-tray refused the MCP connection", fail_fast=True)
        return conn.reader, conn.writer

    def _not_running(self, first: bool) -> str:
        """Why there is no connection when no app holds the lock, and what the bridge does about it."""
        head = f"broxy-tray is not running for {self.config_path}"
        if self._start is None:
            return f"{head}; not starting it (--no-start)" if first else f"{head}; waiting for it to be started (--no-start)"
        return f"{head}; it is started again at the next request"

    def _ensure_started(self) -> None:
        """Start the app unless it runs or another process is starting it (blocking; run in a thread)."""
        from broxy_tray._instance import Instance, StartLock

        assert self._start is not None
        try:
            with StartLock(self.config_path, self.lock_dir, timeout=self.start_timeout + 10):
                if Instance.read(self.config_path, self.lock_dir).running:
                    return  # another bridge (or the user) started it: connect to that one
                self._log("broxy-tray is not running; starting it headless")
                proc = self._start()
                deadline = time.monotonic() + self.start_timeout
                while time.monotonic() < deadline:
                    inst = Instance.read(self.config_path, self.lock_dir)
                    if inst.running and inst.socket:
                        return
                    rc = proc.poll() if isinstance(proc, subprocess.Popen) else None
                    if rc is not None and not inst.running:
                        raise LinkError(f"broxy-tray exited (code {rc}) right after it was started; see its log")
                    time.sleep(0.05)
        except TimeoutError as e:
            raise LinkError(str(e)) from None


def _age(path: Path) -> float | None:
    try:
        return time.time() - os.stat(path).st_mtime
    except OSError:
        return None


class _Stdio:
    """stdin lines and stdout writes for the loop.

    Pipes and sockets (what MCP clients give us) are read and written by the loop itself; anything
    else (a terminal, a file) by a reader thread (`os.read`) and one writer thread, so nothing blocks
    the loop and no buffered-reader lock is held at exit.
    """

    def __init__(self, stdin_fd: int = 0, stdout_fd: int = 1) -> None:
        self.stdin_fd = stdin_fd
        self.stdout_fd = stdout_fd
        self._queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._pool: ThreadPoolExecutor | None = None
        self._out: asyncio.StreamWriter | None = None
        self._transports: list[asyncio.BaseTransport] = []
        self._client_gone = False
        self.reader_thread: threading.Thread | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        if _is_pipe(self.stdin_fd):
            queue = self._queue

            class Reader(asyncio.Protocol):
                def data_received(self, data: bytes) -> None:
                    queue.put_nowait(data)

                def eof_received(self) -> None:
                    queue.put_nowait(b"")

                def connection_lost(self, exc: Exception | None) -> None:
                    queue.put_nowait(b"")

            transport, _ = await loop.connect_read_pipe(Reader, os.fdopen(self.stdin_fd, "rb", buffering=0, closefd=False))
            self._transports.append(transport)
        else:
            self._start_reader_thread(loop)
        if _is_pipe(self.stdout_fd):
            from asyncio.streams import FlowControlMixin

            transport, protocol = await loop.connect_write_pipe(
                lambda: FlowControlMixin(loop=loop), os.fdopen(self.stdout_fd, "wb", buffering=0, closefd=False))
            self._transports.append(transport)
            self._out = asyncio.StreamWriter(transport, protocol, None, loop)  # type: ignore[arg-type]
        else:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="stdout")

    def _start_reader_thread(self, loop: asyncio.AbstractEventLoop) -> None:
        def read() -> None:
            try:
                while True:
                    data = os.read(self.stdin_fd, CHUNK)
                    if not data:
                        break
                    loop.call_soon_threadsafe(self._queue.put_nowait, data)
            except OSError:
                pass
            try:
                loop.call_soon_threadsafe(self._queue.put_nowait, b"")
            except RuntimeError:  # the loop is already closed: nobody waits for the end
                pass

        self.reader_thread = threading.Thread(target=read, name="stdin", daemon=True)
        self.reader_thread.start()

    async def lines(self) -> AsyncIterator[bytes]:
        buf = bytearray()
        while True:
            data = await self._queue.get()
            if not data:
                break
            buf += data
            start = 0
            while (nl := buf.find(b"\n", start)) >= 0:
                yield bytes(buf[start:nl + 1])
                start = nl + 1
            del buf[:start]
            if len(buf) > MAX_LINE:
                buf.clear()  # a runaway line: drop it rather than grow without end
        if buf.strip():
            yield bytes(buf)

    async def write(self, data: bytes) -> None:
        if self._client_gone:
            return
        try:
            if self._out is not None:
                self._out.write(data)
                await self._out.drain()
            elif self._pool is not None:
                await asyncio.get_running_loop().run_in_executor(self._pool, _write_all, self.stdout_fd, data)
        except (OSError, RuntimeError):  # EPIPE / reset: the client closed its end; stdin ends next
            self._client_gone = True

    def close(self) -> None:
        for t in self._transports:
            t.close()
        if self._pool is not None:
            self._pool.shutdown(wait=False)


def _is_pipe(fd: int) -> bool:
    import stat

    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


async def serve(link: AppLink, log: Callable[[str], None], stdio: _Stdio | None = None) -> int:
    stdio = stdio or _Stdio()
    await stdio.start()
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, done.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - Windows
            pass
    session = BridgeSession(link, stdio.write, log=log)
    task = asyncio.ensure_future(session.run(stdio.lines()))
    stop = asyncio.ensure_future(done.wait())
    try:
        await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            return task.result()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return EXIT_OK  # told to stop (the client's SIGTERM, Ctrl-C): that is the client hanging up
    finally:
        stop.cancel()
        stdio.close()


def run(
    config_path: Path,
    *,
    preset: str | None = None,
    autostart: bool = True,
    start_command: Sequence[str] | None = None,
    socket_path: Path | None = None,
) -> int:
    """The `broxy-tray stdio` command: serve this process's stdin/stdout through the running app."""

    def log(message: str) -> None:
        try:
            print(f"broxy-tray stdio: {message}", file=sys.stderr, flush=True)
        except (OSError, ValueError):
            pass

    start = None
    if autostart:
        command = list(start_command or headless_command(config_path))
        start = lambda: start_headless(command)  # noqa: E731
    link = AppLink(config_path, preset=preset, start=start, socket_path=socket_path, log=log)
    stdio = _Stdio()
    try:
        code = asyncio.run(serve(link, log, stdio))
    except KeyboardInterrupt:
        code = EXIT_OK
    if stdio.reader_thread is not None and stdio.reader_thread.is_alive():
        # Still blocked in os.read on the client's stdin (we are exiting for another reason):
        # leave without the interpreter's shutdown, which has nothing left to do for us.
        try:
            sys.stderr.flush()
        finally:
            os._exit(code)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m broxy_tray.proxy._stdio_bridge [--config PATH] [--preset NAME] [--no-start]`."""
    import argparse

    from broxy_tray.config import resolve_config_path

    parser = argparse.ArgumentParser(prog="broxy-tray stdio")
    parser.add_argument("--config", metavar="PATH", default=None)
    parser.add_argument("--preset", metavar="NAME", default=None)
    parser.add_argument("--no-start", action="store_true")
    args = parser.parse_args(argv)
    path = resolve_config_path(args.config)
    return run(path, preset=args.preset, autostart=not args.no_start)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
