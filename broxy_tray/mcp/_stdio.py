"""stdio transport: run the server as a child process, JSON-RPC over its stdin/stdout.

Why not the SDK's `mcp.client.stdio.stdio_client`: it starts the child in its
own session and kills the group on close, but
- it hides the process, so the exit code and PID are out of reach, and a child
  whose stdout is held open by a grandchild is never noticed as exited;
- stderr must be a real file (`errlog`), so it cannot feed a logger with a
  bounded tail for error messages;
- it only signals the group when the leader outlives the stdin grace period,
  so grandchildren left behind by a leader that exited on EOF become orphans;
- it passes only a whitelist of the app's environment to the child.

So this is a small replacement with the same stream contract (the read/write
memory-stream pair that `mcp.Client` consumes) and the same shutdown order as
the MCP spec: close stdin, a short grace period, SIGTERM to the process group,
SIGKILL after `KILL_GRACE`. It reuses the SDK's JSON-RPC message model.
"""

from __future__ import annotations

import collections
import logging
import os
import signal
import subprocess
import sys
from contextlib import suppress
from typing import TYPE_CHECKING, Any, Callable

import anyio
import anyio.abc

from broxy_tray._redact import redact

from . import _orphans
from ._errors import ConnectError, one_line
from ._log_budget import budget

if TYPE_CHECKING:
    from broxy_tray.config._model import ServerConfig

STDIN_GRACE = 0.5
"""Seconds the child gets to exit on its own after its stdin closes."""

KILL_GRACE = 2.0
"""Seconds between SIGTERM to the process group and SIGKILL."""

EXIT_SETTLE = 0.5
"""After stdout ends, how long to wait for the exit status and the rest of stderr."""

STDERR_TAIL_LINES = 20
STDERR_LINE_MAX = 1000
"""Longer stderr lines are cut (in the tail and in the log)."""

_READ_CHUNK = 65536

MAX_MESSAGE = 32 * 1024 * 1024
"""Longest stdout message (one line) accepted, like the control channel's relay; past it the server
is stopped with that reason and restarted with backoff (a line that never ends cannot fill memory)."""

STDERR_LOG_BURST = 200
"""stderr lines reach the log at most `LOG_PER_SECOND` per server (after this burst), so a flooding
server can neither rotate the whole log away nor cost much CPU; the rest is counted, the tail still kept."""

JUNK_LOG_BURST = 10
"""Warnings about non-JSON-RPC stdout lines logged per server before the budget's ~1 line/s."""
JUNK_WINDOW = 100
JUNK_SHARE = 0.9
"""A server whose last `JUNK_WINDOW` stdout lines are at least this share of non-JSON-RPC output is
stopped with that reason (and restarted with backoff): it logs to stdout, which is reserved for MCP
messages. A few banner lines before it starts serving are ignored."""
JUNK_EXAMPLE_MAX = 60
"""Characters of a junk line quoted in the reason (after redaction)."""
STDERR_DROPPING_RATE = 8 * 1024 * 1024
"""Bytes/s read from a server's stderr while its lines are being dropped: the pipe pushes back on the
server instead of the app spending a core on reading it."""


def child_environment(server: ServerConfig) -> dict[str, str]:
    """The app's environment with the server's `env` merged over it."""
    env = dict(os.environ)
    env.update(server.env)
    return env


class StdioTransport:
    """Async context manager yielding `(read_stream, write_stream)` for `mcp.Client`.

    After entry: `pid`, `returncode` (None while running), `stderr_tail`, and
    `exit_reason` (set once the child is gone). `on_exit(reason)` is called
    once, before the session sees end-of-stream.
    """

    def __init__(
        self,
        server: ServerConfig,
        *,
        log: logging.Logger,
        on_exit: Callable[[str], None] | None = None,
    ) -> None:
        if not server.command:
            raise ConnectError("no command configured")
        self._server = server
        self._log = log
        self._on_exit = on_exit
        self.pid: int | None = None
        self.returncode: int | None = None
        self.exit_reason: str | None = None
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
        self._process: anyio.abc.Process | None = None
        self._recent_junk: collections.deque[bool] = collections.deque(maxlen=JUNK_WINDOW)
        self._junk_budget = budget(log, "stdout", JUNK_LOG_BURST)
        self._exited = anyio.Event()
        self._stderr_done = anyio.Event()
        self._closing = False
        self._cm: Any = None

    # -- spawning ---------------------------------------------------------

    async def _spawn(self) -> anyio.abc.Process:
        server = self._server
        cwd = server.cwd
        if cwd is not None and not os.path.isdir(cwd):
            raise ConnectError(f"working directory not found: {cwd}")
        kwargs: dict[str, Any] = {}
        if sys.platform == "win32":  # pragma: no cover - not exercised on this CI
            kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP | getattr(subprocess, "CREATE_NO_WINDOW", 0)
        else:
            kwargs["start_new_session"] = True
        try:
            return await anyio.open_process(
                [server.command, *server.args],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=cwd,
                env=child_environment(server),
                **kwargs,
            )
        except FileNotFoundError:
            raise ConnectError(f"command not found: {server.command}") from None
        except PermissionError:
            raise ConnectError(f"command not executable: {server.command}") from None
        except OSError as e:
            raise ConnectError(f"cannot start {server.command}: {e.strerror or e}") from None
        except ValueError as e:  # embedded NUL bytes and the like
            raise ConnectError(f"cannot start {server.command}: {e}") from None

    # -- context manager ----------------------------------------------------

    async def __aenter__(self) -> tuple[Any, Any]:
        self._cm = self._run()
        return await self._cm.__aenter__()

    async def __aexit__(self, *exc: Any) -> bool | None:
        cm, self._cm = self._cm, None
        return await cm.__aexit__(*exc)

    def _run(self) -> Any:
        from contextlib import asynccontextmanager

        @asynccontextmanager
        async def run() -> Any:
            from mcp.shared.message import SessionMessage

            process = await self._spawn()
            self._process = process
            self.pid = process.pid
            _orphans.track(process.pid)  # the watchdog ends the group if the app dies without stopping it
            self._log.debug("started %s (pid %d)", self._server.command, process.pid)

            read_writer, read_stream = anyio.create_memory_object_stream[Any](0)
            write_stream, write_reader = anyio.create_memory_object_stream[SessionMessage](0)

            try:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._wait_exit, process)
                    tg.start_soon(self._read_stderr, process)
                    tg.start_soon(self._read_stdout, process, read_writer)
                    tg.start_soon(self._write_stdin, process, write_reader)
                    try:
                        yield read_stream, write_stream
                    finally:
                        self._closing = True
                        with anyio.CancelScope(shield=True):
                            write_stream.close()
                            read_stream.close()
                            await self._stop(process)
                            _orphans.untrack(process.pid)
                        tg.cancel_scope.cancel()
            finally:
                with anyio.CancelScope(shield=True):
                    for s in (read_writer, read_stream, write_stream, write_reader):
                        s.close()
                    if self._exited.is_set() or process.returncode is not None:
                        # also closes the pipe transports (and so the asyncio subprocess transport), which
                        # would otherwise be closed by the garbage collector, possibly after the loop ended
                        with suppress(Exception), anyio.move_on_after(EXIT_SETTLE):
                            await process.aclose()
                    for pipe in (process.stdin, process.stdout, process.stderr):
                        if pipe is not None:
                            with suppress(Exception):
                                await pipe.aclose()

        return run()

    # -- pipe tasks -----------------------------------------------------------

    async def _read_stdout(self, process: anyio.abc.Process, writer: Any) -> None:
        assert process.stdout is not None
        parts: list[bytes] = []  # the unfinished line, in pieces (no quadratic re-concatenation)
        size = 0
        stopped = False  # a line ended the session (mostly junk on stdout)
        try:
            async with writer:
                try:
                    while True:
                        chunk = await process.stdout.receive(_READ_CHUNK)
                        start = 0
                        while (end := chunk.find(b"\n", start)) >= 0:
                            piece = chunk[start:end]
                            start = end + 1
                            if size + len(piece) > MAX_MESSAGE:
                                break
                            line = b"".join((*parts, piece)) if parts else piece
                            parts, size = [], 0
                            if not await self._deliver(line, writer):
                                stopped = True
                                break
                        else:
                            if start < len(chunk):
                                parts.append(chunk[start:])
                                size += len(chunk) - start
                            if size <= MAX_MESSAGE:
                                continue
                        parts = []
                        if not stopped:
                            self._overflow()
                        break
                except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
                    pass
                # stdout ended: the child exited or closed it. Settle the exit status
                # and the stderr tail before the session learns the stream is over,
                # so the connection reports *why*.
                if not self._closing and self.exit_reason is None:
                    with anyio.move_on_after(EXIT_SETTLE):
                        await self._exited.wait()
                        await self._stderr_done.wait()
                    self._report_exit(closed_stdout=not self._exited.is_set())
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass

    async def _deliver(self, line: bytes, writer: Any) -> bool:
        """Pass one stdout line to the session; False when the server is being stopped for junk."""
        import mcp_types as types
        from mcp.shared.message import SessionMessage

        line = line.strip()
        if not line:
            return True
        try:
            message = SessionMessage(types.jsonrpc_message_adapter.validate_json(line, by_name=False))
        except ValueError:
            # Not handed to the session: it would only log it again, unbudgeted.
            return self._junk(line)
        self._recent_junk.append(False)
        await writer.send(message)
        return True

    def _junk(self, line: bytes) -> bool:
        """A stdout line that is not JSON-RPC: log it within the budget; stop a server that mostly writes junk."""
        self._recent_junk.append(True)
        if self._junk_budget.take(1):
            self._log.warning("ignoring a line that is not JSON-RPC on stdout: %s", _quote(line, 200))
        if len(self._recent_junk) < JUNK_WINDOW or sum(self._recent_junk) < JUNK_SHARE * JUNK_WINDOW:
            return True
        if self.exit_reason is None and not self._closing:
            self.exit_reason = (f"writes non-JSON-RPC output on stdout (e.g. '{_quote(line, JUNK_EXAMPLE_MAX)}'); "
                                "stdout is reserved for MCP messages — log to stderr")
            self._log.error("server process %s; stopped it", self.exit_reason)
            if self._on_exit is not None:
                self._on_exit(self.exit_reason)
        return False

    def _overflow(self) -> None:
        """A stdout message past `MAX_MESSAGE`: end the session with that reason (the server is restarted)."""
        if self.exit_reason is not None or self._closing:
            return
        self.exit_reason = (f"sent a message over {MAX_MESSAGE // (1024 * 1024)} MiB on stdout "
                            "(or output without a newline); stopped it")
        self._log.error("server process %s", self.exit_reason)
        if self._on_exit is not None:
            self._on_exit(self.exit_reason)

    async def _write_stdin(self, process: anyio.abc.Process, reader: Any) -> None:
        assert process.stdin is not None
        try:
            async with reader:
                async for message in reader:
                    data = message.message.model_dump_json(by_alias=True, exclude_unset=True) + "\n"
                    await process.stdin.send(data.encode("utf-8"))
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
            pass
        finally:
            with suppress(Exception):
                await process.stdin.aclose()

    async def _read_stderr(self, process: anyio.abc.Process) -> None:
        assert process.stderr is not None
        buffer = b""
        limiter = budget(self._log, "stderr", STDERR_LOG_BURST)
        try:
            while True:
                try:
                    chunk = await process.stderr.receive(_READ_CHUNK)
                except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
                    break
                lines = (buffer + chunk).split(b"\n")
                buffer = lines.pop()
                if len(buffer) > STDERR_LINE_MAX:  # a line without end: cut it, keep memory bounded
                    lines.append(buffer)
                    buffer = b""
                allowed = limiter.take(len(lines))
                if allowed < len(lines):
                    # past the budget: only the lines the log and the tail can still use are decoded
                    for line in lines[:allowed]:
                        self._stderr_line(line)
                    for line in lines[max(allowed, len(lines) - STDERR_TAIL_LINES):]:
                        self._stderr_line(line, log=False)
                    await anyio.sleep(len(chunk) / STDERR_DROPPING_RATE)
                else:
                    for line in lines:
                        self._stderr_line(line)
            if buffer:
                self._stderr_line(buffer, log=limiter.take(1) == 1)
        finally:
            self._stderr_done.set()

    def _stderr_line(self, raw: bytes, *, log: bool = True) -> None:
        text = raw[:STDERR_LINE_MAX].decode("utf-8", errors="replace").rstrip()
        if not text.strip():
            return
        self.stderr_tail.append(text)
        if log:
            self._log.info("stderr: %s", text)

    async def _wait_exit(self, process: anyio.abc.Process) -> None:
        """Set `_exited` when the child exits, without polling, then report it.

        `process.wait()` only returns once the pipes are closed too, so a
        grandchild holding stdout would hide the exit; on Linux a pidfd
        reports the exit itself.
        """
        async with anyio.create_task_group() as tg:

            async def wait_process() -> None:
                with suppress(Exception):
                    self.returncode = await process.wait()
                tg.cancel_scope.cancel()

            async def wait_pidfd() -> None:
                pidfd_open = getattr(os, "pidfd_open", None)
                if pidfd_open is None:
                    return
                try:
                    fd = pidfd_open(process.pid)
                except OSError:
                    return
                try:
                    await anyio.wait_readable(fd)
                finally:
                    os.close(fd)
                tg.cancel_scope.cancel()

            tg.start_soon(wait_process)
            tg.start_soon(wait_pidfd)
        if self.returncode is None:
            self.returncode = process.returncode
        if self.returncode is None:
            self.returncode = _peek_status(process.pid)
        if self.returncode is None:
            # The event loop's child watcher reaped it first; its status lands on
            # `process.returncode` a moment later (set on exit, not on pipe close).
            with anyio.move_on_after(EXIT_SETTLE):
                while process.returncode is None:
                    await anyio.sleep(0.01)
            self.returncode = process.returncode
        self._exited.set()
        if not self._closing:
            # The leader is gone, even if a grandchild still holds stdout open.
            with anyio.move_on_after(EXIT_SETTLE):
                await self._stderr_done.wait()
            if not self._closing:
                self._report_exit(closed_stdout=False)

    def _report_exit(self, *, closed_stdout: bool) -> None:
        if self.exit_reason is not None:
            return
        code = self.returncode if self.returncode is not None else (self._process.returncode if self._process else None)
        self.returncode = code
        if code is None and closed_stdout:
            reason = "closed its stdout"
        elif code is None:
            reason = "exited"
        elif code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            reason = f"killed by {name}"
        else:
            reason = f"exited with code {code}"
        if self.stderr_tail:
            reason += f": {self.stderr_tail[-1]}"
        self.exit_reason = one_line(reason)
        self._log.info("server process %s", self.exit_reason)
        # The session sees end-of-stream right after this (stdout reader closes
        # its writer); a leader that exited with stdout still held open needs a push.
        if self._on_exit is not None:
            self._on_exit(self.exit_reason)

    # -- shutdown ---------------------------------------------------------------

    async def _stop(self, process: anyio.abc.Process) -> None:
        """Close stdin, give the child `STDIN_GRACE`, then SIGTERM the group, SIGKILL after `KILL_GRACE`."""
        if process.stdin is not None:
            with suppress(Exception):
                await process.stdin.aclose()
        with anyio.move_on_after(STDIN_GRACE):
            await self._exited.wait()
        if sys.platform == "win32":  # pragma: no cover
            await self._stop_windows(process)
            return
        pgid = process.pid  # the leader's pid is the group id (start_new_session)
        if not _signal_group(pgid, signal.SIGTERM):
            return
        with anyio.move_on_after(KILL_GRACE):
            while _group_alive(pgid):
                await anyio.sleep(0.02)
            return
        self._log.warning("process group %d survived SIGTERM for %g s; sending SIGKILL", pgid, KILL_GRACE)
        _signal_group(pgid, signal.SIGKILL)
        with anyio.move_on_after(1.0):
            await self._exited.wait()

    async def _stop_windows(self, process: anyio.abc.Process) -> None:  # pragma: no cover
        if self._exited.is_set():
            return
        with suppress(Exception):
            process.terminate()
        with anyio.move_on_after(KILL_GRACE):
            await self._exited.wait()
            return
        with suppress(Exception):
            process.kill()


def _quote(raw: bytes, limit: int) -> str:
    """A stdout line fit to show: decoded, redacted (before cutting, so no secret is half-shown), one short line."""
    text = raw[:4096].decode("utf-8", errors="replace")
    return one_line(redact(text), limit)


def _signal_group(pgid: int, sig: int) -> bool:
    """Signal the group; False when it is already gone."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def _peek_status(pid: int) -> int | None:
    """The exit status of an exited child without reaping it (the event loop reaps it)."""
    waitid = getattr(os, "waitid", None)
    if waitid is None:
        return None
    try:
        info = waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT | os.WNOHANG)
    except ChildProcessError:
        return None
    if info is None:
        return None
    if info.si_code == os.CLD_EXITED:
        return info.si_status
    return -info.si_status
