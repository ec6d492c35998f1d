"""The app's end of `broxy-tray stdio`: a control connection switched into MCP.

After the control request `{"v":1,"cmd":"mcp","preset":…}` is answered, the
same connection carries newline-delimited JSON-RPC both ways (the stdio
transport's framing), and the app serves it with the proxy facade. The
bridge on the other end copies bytes between its stdin/stdout and this
socket without looking at them.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger(__name__)

MAX_MESSAGE = 32 * 1024 * 1024
"""Bytes one JSON-RPC message may have on the relay (a newline-free run longer than this ends it)."""
READ_CHUNK = 256 * 1024


async def relay(
    proxy: Any,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    *,
    preset: str | None = None,
    max_message: int = MAX_MESSAGE,
) -> None:
    """Serve MCP on an open connection until the peer closes it (or the task is cancelled)."""
    from ._preload import preload_proxy

    await preload_proxy()
    import anyio
    import mcp_types as types
    from mcp.shared.message import SessionMessage

    read_send, read_recv = anyio.create_memory_object_stream[Any](16)
    write_send, write_recv = anyio.create_memory_object_stream[Any](16)

    async def from_socket() -> None:
        buf = bytearray()
        async with read_send:
            while True:
                try:
                    chunk = await reader.read(READ_CHUNK)
                except (ConnectionError, OSError):
                    break
                if not chunk:
                    break
                start = len(buf)
                buf += chunk
                pos = 0
                while (nl := buf.find(b"\n", max(pos, start))) >= 0:
                    line = bytes(buf[pos:nl])
                    pos = nl + 1
                    start = pos
                    if line.strip():
                        await read_send.send(_parse(line, types, SessionMessage))
                del buf[:pos]
                if len(buf) > max_message:
                    log.warning("a relayed MCP message is larger than %d bytes; closing the connection", max_message)
                    break
            if buf.strip():
                await read_send.send(_parse(bytes(buf), types, SessionMessage))

    async def to_socket() -> None:
        async with write_recv:
            async for message in write_recv:
                data = message.message.model_dump_json(by_alias=True, exclude_unset=True).encode("utf-8")
                writer.write(data + b"\n")
                try:
                    await writer.drain()
                except (ConnectionError, OSError):
                    break

    async with anyio.create_task_group() as tg:
        tg.start_soon(from_socket)
        tg.start_soon(to_socket)
        try:
            await proxy.serve(read_recv, write_send, preset=preset, kind="stdio")
        finally:
            tg.cancel_scope.cancel()


def _parse(line: bytes, types: Any, session_message: Any) -> Any:
    try:
        return session_message(types.jsonrpc_message_adapter.validate_json(line, by_name=False))
    except Exception as e:  # handed to the server loop, which logs it (and answers nothing: no id is known)
        return e
