"""The async driver against a real HTTP server on 127.0.0.1 (starlette under uvicorn, ephemeral port)."""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from broxy_tray.auth import AuthNetworkError, DiscoveryError, discover, drive


class LoopbackSite:
    """An MCP server and its authorization server on one loopback origin."""

    def __init__(self) -> None:
        self.base = ""
        self.release = asyncio.Event()
        self.seen: list[tuple[str, str | None]] = []
        self.body_chunks_sent = 0
        self.as_doc: dict[str, Any] | None = None

    def app(self) -> Starlette:
        async def prm(request: Request) -> Response:
            self._seen(request)
            return JSONResponse({"resource": f"{self.base}/mcp", "authorization_servers": [f"{self.base}/tenant"]})

        async def redirect(request: Request) -> Response:
            self._seen(request)
            return RedirectResponse("https://elsewhere.example/metadata", status_code=302)

        async def oidc(request: Request) -> Response:
            self._seen(request)
            doc = self.as_doc or {
                "issuer": f"{self.base}/tenant",
                "authorization_endpoint": f"{self.base}/tenant/authorize",
                "token_endpoint": f"{self.base}/tenant/token",
                "code_challenge_methods_supported": ["S256"],
            }
            raw = gzip.compress(json.dumps(doc).encode())
            return Response(raw, media_type="application/json", headers={"Content-Encoding": "gzip"})

        async def endless(request: Request) -> Response:
            self._seen(request)

            async def chunks() -> AsyncIterator[bytes]:
                yield b'{"issuer": "'
                while not self.release.is_set():  # endless until teardown
                    self.body_chunks_sent += 1
                    yield b"x" * 65536
                    await asyncio.sleep(0)

            return StreamingResponse(chunks(), media_type="application/json")

        async def slow(request: Request) -> Response:
            self._seen(request)
            await self.release.wait()
            return JSONResponse({})

        return Starlette(
            routes=[
                Route("/.well-known/oauth-protected-resource/mcp", prm),
                Route("/.well-known/oauth-authorization-server/tenant", redirect),
                Route("/.well-known/openid-configuration/tenant", oidc),
                Route("/.well-known/oauth-protected-resource/big", endless),
                Route("/.well-known/oauth-protected-resource/slow", slow),
            ]
        )

    def _seen(self, request: Request) -> None:
        self.seen.append((request.url.path, request.headers.get("accept")))


@pytest.fixture
async def site() -> AsyncIterator[LoopbackSite]:
    s = LoopbackSite()
    config = uvicorn.Config(s.app(), host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    s.base = f"http://127.0.0.1:{port}"
    try:
        yield s
    finally:
        s.release.set()
        server.should_exit = True
        await asyncio.wait_for(task, 10)


async def test_full_discovery_over_loopback(site: LoopbackSite) -> None:
    async with httpx2.AsyncClient() as client:
        d = await drive(discover(f"{site.base}/mcp"), client, timeout=10)
    assert d.issuer == f"{site.base}/tenant"
    assert d.as_metadata.token_endpoint == f"{site.base}/tenant/token"  # gzip body decoded once
    assert d.tried[1].outcome == "redirect to https://elsewhere.example/metadata not followed"
    assert [p for p, _ in site.seen] == [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-authorization-server/tenant",
        "/.well-known/openid-configuration/tenant",
    ]
    assert all(accept == "application/json" for _, accept in site.seen)


async def test_client_configured_to_follow_redirects_still_does_not(site: LoopbackSite) -> None:
    async with httpx2.AsyncClient(follow_redirects=True) as client:
        d = await drive(discover(f"{site.base}/mcp"), client, timeout=10)
    assert d.tried[1].status == 302


async def test_insecure_document_error_propagates(site: LoopbackSite) -> None:
    site.as_doc = {
        "issuer": f"{site.base}/tenant",
        "authorization_endpoint": "http://auth.example.com/authorize",
        "token_endpoint": f"{site.base}/tenant/token",
        "code_challenge_methods_supported": ["S256"],
    }
    async with httpx2.AsyncClient() as client:
        with pytest.raises(DiscoveryError, match="authorization_endpoint http://auth.example.com/authorize is not https"):
            await drive(discover(f"{site.base}/mcp"), client, timeout=10)


async def test_huge_body_is_cut_short_and_refused(site: LoopbackSite) -> None:
    async with httpx2.AsyncClient() as client:
        with pytest.raises(DiscoveryError) as info:
            await drive(discover(f"{site.base}/big"), client, timeout=10)
    # The body never ends: had the driver tried to read it all, this would be a timeout instead.
    assert info.value.reason == "protected resource metadata is larger than 256 KiB"


async def test_timeout_names_the_url(site: LoopbackSite) -> None:
    async with httpx2.AsyncClient() as client:
        with pytest.raises(AuthNetworkError) as info:
            await drive(discover(f"{site.base}/slow"), client, timeout=0.3)
    assert str(info.value) == f"no answer from {site.base}/.well-known/oauth-protected-resource/slow within 0.3 s"


async def test_connection_refused() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with httpx2.AsyncClient() as client:
        with pytest.raises(AuthNetworkError) as info:
            await drive(discover(f"http://127.0.0.1:{port}/mcp"), client, timeout=5)
    assert str(info.value) == (
        f"request to http://127.0.0.1:{port}/.well-known/oauth-protected-resource/mcp failed: ConnectError"
    )


async def test_drive_returns_value_of_a_flow_without_requests() -> None:
    def nothing():  # type: ignore[no-untyped-def]
        return 42
        yield  # pragma: no cover

    async with httpx2.AsyncClient() as client:
        assert await drive(nothing(), client, timeout=1) == 42
