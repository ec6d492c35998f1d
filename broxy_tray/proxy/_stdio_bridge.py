"""`broxy-tray stdio [--preset NAME]`: a stdio MCP server for clients that launch a command.

The bridge itself speaks no MCP. It connects to the running broxy-tray
over the control channel (the user-only socket), asks for an MCP relay
(`{"v":1,"cmd":"mcp","preset":…}`), and from then on copies bytes both
ways: stdin → socket, socket → stdout, as they are. When no instance runs,
it starts one headless (`broxy-tray run --headless --config PATH`,
detached) and waits for its socket.

Two plain threads do the copying (blocking reads and writes, no event
loop): that costs no more than a pipe hop per message. stdin at its end
half-closes the socket, so the app finishes answering what is in flight;
the app closing the socket ends the bridge. Diagnostics go to stderr,
never stdout.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Sequence

EXIT_OK = 0
EXIT_FAILURE = 1
START_TIMEOUT = 30.0
"""Seconds to wait for a headless instance we started to open its control socket."""
CHUNK = 256 * 1024


class BridgeError(Exception):
    """The bridge cannot reach an instance that serves MCP; the message says why."""


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


def _connect(path: Path) -> socket.socket:
    if os.name == "nt":  # pragma: no cover - Windows only
        raise BridgeError("broxy-tray stdio needs a Unix socket; named pipes are not supported yet")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(os.fspath(path))
    except OSError:
        sock.close()
        raise
    return sock


def _read_line(sock: socket.socket, limit: int = 1024 * 1024) -> tuple[bytes, bytes]:
    """One line (without its newline) and whatever arrived after it."""
    buf = bytearray()
    while True:
        nl = buf.find(b"\n")
        if nl >= 0:
            return bytes(buf[:nl]), bytes(buf[nl + 1:])
        if len(buf) > limit:
            raise BridgeError("the instance answered with an over-long line")
        chunk = sock.recv(65536)
        if not chunk:
            raise BridgeError("the instance closed the connection without answering")
        buf += chunk


def open_relay(
    path: Path,
    *,
    preset: str | None = None,
    start: Callable[[], object] | None = None,
    start_timeout: float = START_TIMEOUT,
    log: Callable[[str], None] = lambda m: None,
) -> tuple[socket.socket, bytes]:
    """Connect to the instance on `path` and switch the connection to MCP.

    Calls `start()` (once) when nothing listens, then waits up to
    `start_timeout` for the socket. Returns the socket and any bytes that
    already followed the answer. Raises `BridgeError`.
    """
    deadline: float | None = None
    while True:
        try:
            sock = _connect(path)
            break
        except OSError as e:
            if deadline is None:
                if start is None:
                    raise BridgeError(f"broxy-tray is not running (nothing listens on {path})") from None
                log(f"broxy-tray is not running; starting it headless ({e.strerror or e})")
                start()
                deadline = time.monotonic() + start_timeout
            elif time.monotonic() > deadline:
                raise BridgeError(
                    f"started broxy-tray, but its control socket {path} did not appear within {start_timeout:g} s"
                ) from None
            time.sleep(0.05)
    try:
        request = {"v": 1, "id": 1, "cmd": "mcp"}
        if preset is not None:
            request["preset"] = preset
        sock.sendall(json.dumps(request).encode("ascii") + b"\n")
        line, rest = _read_line(sock)
        try:
            answer = json.loads(line)
        except ValueError:
            raise BridgeError("the instance gave an answer that is not JSON") from None
        if not isinstance(answer, dict) or answer.get("ok") is not True:
            err = answer.get("error") if isinstance(answer, dict) else None
            message = err.get("message") if isinstance(err, dict) else None
            code = err.get("code") if isinstance(err, dict) else None
            if code == "unknown-command":
                message = "the running broxy-tray is too old to offer the MCP endpoint; restart it"
            raise BridgeError(message or "the instance refused the MCP relay")
    except BaseException:
        sock.close()
        raise
    return sock, rest


def pump(sock: socket.socket, stdin: object, stdout: object, first: bytes = b"") -> int:
    """Copy stdin → sock and sock → stdout until the app closes the connection; returns an exit code."""

    def upstream() -> None:
        read = getattr(stdin, "read1", None) or stdin.read  # type: ignore[attr-defined]
        try:
            while True:
                data = read(CHUNK)
                if not data:
                    break
                sock.sendall(data)
        except (OSError, ValueError):
            pass
        finally:
            try:
                sock.shutdown(socket.SHUT_WR)  # the client is done; let in-flight answers come back
            except OSError:
                pass

    threading.Thread(target=upstream, name="stdin-to-broxy", daemon=True).start()
    write = stdout.write  # type: ignore[attr-defined]
    flush = stdout.flush  # type: ignore[attr-defined]
    try:
        if first:
            write(first)
            flush()
        while True:
            data = sock.recv(CHUNK)
            if not data:
                break
            write(data)
            flush()
    except (OSError, ValueError):
        return EXIT_FAILURE
    finally:
        sock.close()
    return EXIT_OK


def run(
    config_path: Path,
    *,
    preset: str | None = None,
    autostart: bool = True,
    start_command: Sequence[str] | None = None,
    socket_path: Path | None = None,
) -> int:
    """The `broxy-tray stdio` command: bridge this process's stdin/stdout to the running app."""
    from broxy_tray.control import control_path

    def log(message: str) -> None:
        print(f"broxy-tray stdio: {message}", file=sys.stderr, flush=True)

    path = socket_path or control_path(config_path)
    start = None
    if autostart:
        command = list(start_command or headless_command(config_path))
        start = lambda: start_headless(command)  # noqa: E731
    try:
        sock, rest = open_relay(path, preset=preset, start=start, log=log)
    except BridgeError as e:
        log(str(e))
        return EXIT_FAILURE
    return pump(sock, sys.stdin.buffer, sys.stdout.buffer, rest)


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
