"""Load the SDK's server side in a worker thread before the first client is served.

Importing it on the loop thread would stall every other task, and racing
the app's own SDK preload thread on the loop thread can trip Python's
import deadlock detection (`_DeadlockError` in whichever import loses).
So the proxy waits for the client-side preload, then imports what it
needs in one worker thread, once.
"""

from __future__ import annotations

import asyncio
import importlib
import sys

PROXY_MODULES = (
    "mcp_types",
    "mcp_types.version",
    "mcp.shared.exceptions",
    "mcp.shared.message",
    "mcp.shared.subscriptions",
    "mcp.server",
    "mcp.server.subscriptions",
)

_lock: asyncio.Lock | None = None


def _import_all() -> None:
    for name in PROXY_MODULES:
        importlib.import_module(name)


async def preload_proxy() -> None:
    global _lock
    if all(name in sys.modules for name in PROXY_MODULES):
        return
    from broxy_tray.mcp import preload_sdk

    await preload_sdk()
    if _lock is None:
        _lock = asyncio.Lock()
    async with _lock:
        if not all(name in sys.modules for name in PROXY_MODULES):
            await asyncio.to_thread(_import_all)
