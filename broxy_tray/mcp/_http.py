"""The HTTP side: one httpx2 client configuration for Streamable HTTP, SSE and the WebSocket handshake."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from ._errors import safe_url

if TYPE_CHECKING:
    import httpx2

    from broxy_tray.config._model import ServerConfig

SSE_READ_TIMEOUT = 300.0
"""Longest silence on a server-to-client stream (SSE, a listen stream) before it counts as dropped."""


class StatusRecorder:
    """Remembers the last non-success HTTP response, so an MCP-level error can name its HTTP cause.

    The SDK's Streamable HTTP transport turns a bare 401/403/404 into a JSON-RPC
    error that no longer carries the status; this is the way to get it back.
    """

    def __init__(self) -> None:
        self.status: int | None = None
        self.url: str = ""
        self.location: str | None = None

    def reset(self) -> None:
        self.status, self.url, self.location = None, "", None

    async def hook(self, response: httpx2.Response) -> None:
        status = response.status_code
        if status < 300 or status == 304:
            return
        self.status = status
        self.url = str(response.request.url)
        self.location = None
        location = response.headers.get("location")
        if 300 <= status < 400 and location:
            try:
                self.location = safe_url(str(response.request.url.join(location)))
            except Exception:  # a malformed Location is not worth failing over
                self.location = None


@functools.lru_cache(maxsize=1)
def shared_ssl_context() -> Any:
    """One TLS context (the system trust store, `SSL_CERT_FILE`/`SSL_CERT_DIR` honoured) for every client.

    httpx2 builds a fresh context per client by default, loading the whole CA
    bundle each time: about a megabyte per connection, for identical contexts.
    """
    import httpx2

    return httpx2.create_ssl_context()


def make_http_client(
    server: ServerConfig,
    *,
    connect_timeout: float,
    request_timeout: float,
    auth: httpx2.Auth | None,
    recorder: StatusRecorder,
) -> httpx2.AsyncClient:
    """An AsyncClient carrying the configured headers on every request.

    Redirects: httpx2's own following is off. The SDK transports follow a
    redirect only within the endpoint's origin (same scheme, host and port, or
    the http→https upgrade), so configured headers such as Authorization, and
    the `auth` flow, never reach another origin; the WebSocket handshake
    follows none.
    """
    import httpx2

    kwargs: dict[str, Any] = {
        "headers": dict(server.headers),
        "timeout": httpx2.Timeout(
            connect=connect_timeout, read=max(SSE_READ_TIMEOUT, request_timeout), write=request_timeout, pool=connect_timeout
        ),
        "follow_redirects": False,
        "verify": shared_ssl_context(),
        "event_hooks": {"response": [recorder.hook]},
    }
    if auth is not None:
        kwargs["auth"] = auth
    return httpx2.AsyncClient(**kwargs)
