"""The client end: send requests to a running instance.

`request(path, message)` is one round trip on a fresh connection;
`ControlConnection` keeps one open for several (the stdio bridge's use).
`request_sync` is for code without a loop (the CLI).
"""

from __future__ import annotations

import asyncio
import errno
import os
from pathlib import Path
from typing import Any

from ._protocol import (
    MAX_RESPONSE,
    PROTOCOL_VERSION,
    ControlError,
    ProtocolError,
    decode,
    encode,
    read_line,
)

DEFAULT_TIMEOUT = 10.0


class NotRunning(ControlError):
    """Nothing listens on the control channel."""

    def __init__(self, path: Path | str, reason: str = "") -> None:
        super().__init__(f"nothing is listening on {path}" + (f" ({reason})" if reason else ""))
        self.path = path


class ControlConnection:
    """One open connection; `call()` sends a request and returns its response (one at a time)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._lock = asyncio.Lock()
        self._next_id = 0

    @property
    def reader(self) -> asyncio.StreamReader:
        """The stream itself, for a connection switched to another protocol (the `mcp` relay)."""
        return self._reader

    @property
    def writer(self) -> asyncio.StreamWriter:
        return self._writer

    @classmethod
    async def open(cls, path: Path | str, timeout: float = DEFAULT_TIMEOUT) -> "ControlConnection":
        try:
            reader, writer = await asyncio.wait_for(_open(path), timeout)
        except asyncio.TimeoutError:
            raise ControlError(f"connecting to {path} timed out after {timeout:g} s") from None
        except (FileNotFoundError, ConnectionRefusedError) as e:
            raise NotRunning(path, e.strerror or "") from None
        except OSError as e:
            if e.errno in (errno.ENOENT, errno.ECONNREFUSED, errno.ENOTSOCK):
                raise NotRunning(path, e.strerror or "") from None
            raise ControlError(f"cannot connect to {path}: {e.strerror or e}") from None
        return cls(reader, writer)

    async def call(self, message: dict[str, Any], timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
        """Send `message` (`v` and `id` are filled in) and wait for its response."""
        async with self._lock:
            self._next_id += 1
            msg = {"v": PROTOCOL_VERSION, "id": self._next_id, **message}
            try:
                try:
                    self._writer.write(encode(msg))
                    await asyncio.wait_for(self._writer.drain(), timeout)
                except ConnectionError:
                    pass  # the server may have answered (e.g. refused us) and hung up: read what it said
                line = await asyncio.wait_for(read_line(self._reader, MAX_RESPONSE), timeout)
            except asyncio.TimeoutError:
                raise ControlError(f"no answer within {timeout:g} s") from None
            except ProtocolError as e:
                raise ControlError(f"bad answer: {e}") from None
            except ConnectionError as e:
                raise ControlError(f"the connection was closed: {e.strerror or e}") from None
            if line is None:
                raise ControlError("the instance closed the connection without answering")
            try:
                response = decode(line)
            except ProtocolError as e:
                raise ControlError(f"bad answer: {e}") from None
            if not isinstance(response.get("ok"), bool):
                raise ControlError("bad answer: no 'ok' field")
            return response

    async def close(self) -> None:
        self._writer.close()
        try:
            await self._writer.wait_closed()
        except Exception:
            pass


async def request(path: Path | str, message: dict[str, Any], timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
    """One request on a fresh connection; returns the response object (`ok` true or false).

    Raises `NotRunning` when nothing listens, `ControlError` on timeouts and broken answers.
    """
    conn = await ControlConnection.open(path, timeout)
    try:
        return await conn.call(message, timeout)
    finally:
        await conn.close()


def request_sync(path: Path | str, message: dict[str, Any], timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
    """`request` for callers without an event loop."""
    return asyncio.run(request(path, message, timeout))


async def _open(path: Path | str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    if os.name != "nt":
        return await asyncio.open_unix_connection(os.fspath(path), limit=MAX_RESPONSE)
    return await _open_pipe(str(path))  # pragma: no cover - Windows only


async def _open_pipe(address: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:  # pragma: no cover
    loop = asyncio.get_running_loop()
    create = getattr(loop, "create_pipe_connection", None)
    if create is None:
        raise ControlError("the control channel needs the Proactor event loop on Windows")
    reader = asyncio.StreamReader(limit=MAX_RESPONSE)
    protocol = asyncio.StreamReaderProtocol(reader)
    transport, _ = await create(lambda: protocol, address)
    return reader, asyncio.StreamWriter(transport, protocol, reader, loop)
