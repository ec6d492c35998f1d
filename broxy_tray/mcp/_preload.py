"""Load the MCP SDK in a worker thread, so its import never stalls the event loop.

`import mcp.client` takes over a second on a small machine. Connections
import lazily, which keeps start-up fast, but the first connect would then do
that import on the loop thread and freeze every other task (status updates,
config reloads, the tray) meanwhile. The shared TLS context (the CA bundle) is
built here too, for the same reason. Awaiting `preload_sdk()` first moves the
work to a thread; afterwards the imports inside the connection code are
dictionary look-ups.
"""

from __future__ import annotations

import importlib
import sys

import anyio

SDK_MODULES = (
    "mcp",
    "mcp_types",
    "mcp_types.version",
    "mcp.shared.exceptions",
    "mcp.shared.message",
    "mcp.client.streamable_http",
    "mcp.client.sse",
    "mcp.client.subscriptions",
    "httpx2",
    "httpx2.websockets",
    "wsproto.events",
)


def _import_all() -> None:
    for name in SDK_MODULES:
        importlib.import_module(name)
    from ._http import shared_ssl_context

    shared_ssl_context()  # loads the CA bundle once, here rather than on the loop at the first connect


async def preload_sdk() -> None:
    """Import the SDK modules the connections use, off the event loop (once)."""
    if all(name in sys.modules for name in SDK_MODULES):
        return
    await anyio.to_thread.run_sync(_import_all)
