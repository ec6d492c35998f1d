"""A live MCP client session for one configured server, on stdio, Streamable HTTP, SSE or WebSocket.

    async with open_connection(server, connect_timeout=30, request_timeout=60) as conn:
        conn.tools, conn.protocol_version, conn.session
        reason = await conn.wait_closed()

Importing this package does not import the MCP SDK; it loads on first connect.
"""

from ._connection import Connection, open_connection
from ._errors import ConnectError, ConnectionLost
from ._preload import preload_sdk

__all__ = ["ConnectError", "Connection", "ConnectionLost", "open_connection", "preload_sdk"]
