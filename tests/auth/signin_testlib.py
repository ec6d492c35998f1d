"""The automatic "user" of the sign-in tests, shared by the test modules (tests/auth is on sys.path via conftest).

It loads the authorization URL as a browser would (the test AS approves at once
with a 302) and delivers the redirect to our loopback receiver. It uses
http.client, which logs nothing, so log checks see only what the app logs.
"""

from __future__ import annotations

import asyncio
import http.client
import socket
import stat
import sys
from pathlib import Path
from urllib.parse import urlsplit

REDIRECT_BROWSER = Path(__file__).resolve().parent / "redirect_browser.py"


def browser_command(directory: Path) -> str:
    """A `BROWSER` executable for a subprocess app that signs in automatically (redirect_browser.py)."""
    wrapper = directory / "browser"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{REDIRECT_BROWSER}" "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return str(wrapper)


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def http_get(url: str) -> tuple[int, str | None]:
    """GET without following redirects: the status and the Location header."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""))
        response = conn.getresponse()
        response.read()
        return response.status, response.getheader("Location")
    finally:
        conn.close()


class Browser:
    """A browser opener: records each URL and (with `follow`) completes the sign-in in a worker thread."""

    def __init__(self, follow: bool = True) -> None:
        self.follow = follow
        self.opened: list[str] = []

    async def __call__(self, url: str) -> bool:
        self.opened.append(url)
        if self.follow:
            def visit() -> None:
                status, location = http_get(url)
                if status in (302, 303) and location:
                    http_get(location)

            asyncio.get_running_loop().run_in_executor(None, visit)
        return True
