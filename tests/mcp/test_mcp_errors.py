"""Remote failures become one actionable line; headers go out on every request but never into a message."""

from __future__ import annotations

import subprocess

import anyio
import pytest
from mcp_testlib import PYTHON, free_port, remote_config, serve
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse, RedirectResponse
from starlette.routing import Route

from broxy_tray.config._model import Transport
from broxy_tray.mcp import ConnectError, open_connection

TIMEOUTS = {"connect_timeout": 5, "request_timeout": 5}
ALL_METHODS = ["GET", "POST", "DELETE"]


async def connect_error(config, **timeouts) -> str:
    with pytest.raises(ConnectError) as info:
        async with open_connection(config, **(timeouts or TIMEOUTS)):
            pass
    reason = info.value.reason
    assert "\n" not in reason
    return reason


def status_app() -> Starlette:
    async def status(request):
        code = int(request.path_params["code"])
        headers = {"WWW-Authenticate": 'Bearer resource_metadata="x"'} if code == 401 else {}
        return PlainTextResponse("no", status_code=code, headers=headers)

    async def hang(request):
        await anyio.sleep(30)
        return PlainTextResponse("late")

    app = Starlette(
        routes=[
            Route("/status/{code:int}", status, methods=ALL_METHODS),
            Route("/hang", hang, methods=ALL_METHODS),
        ]
    )

    async def with_websocket_denials(scope, receive, send):
        """A WebSocket handshake to /status/<code> is refused with that HTTP status (ASGI denial response)."""
        if scope["type"] == "websocket" and scope["path"].startswith("/status/"):
            code = int(scope["path"].rsplit("/", 1)[1])
            await receive()  # websocket.connect
            await send({"type": "websocket.http.response.start", "status": code, "headers": [(b"content-type", b"text/plain")]})
            await send({"type": "websocket.http.response.body", "body": b"no"})
            return
        await app(scope, receive, send)

    return with_websocket_denials


@pytest.fixture
def status_server():
    running = serve(status_app())
    yield running
    running.stop()


@pytest.mark.parametrize("transport, scheme", [(Transport.HTTP, "http"), (Transport.SSE, "http"), (Transport.WEBSOCKET, "ws")])
async def test_connection_refused(transport, scheme):
    port = free_port()
    reason = await connect_error(remote_config(transport, f"{scheme}://127.0.0.1:{port}/mcp"))
    assert reason == f"connection refused at 127.0.0.1:{port}"


@pytest.mark.parametrize("transport", [Transport.HTTP, Transport.SSE])
async def test_http_404_names_the_url_without_query(status_server, transport):
    url = f"{status_server.base}/status/404?api_key=SECRET"
    reason = await connect_error(remote_config(transport, url))
    assert reason == f"HTTP 404 at {status_server.base}/status/404"


async def test_websocket_404(status_server):
    reason = await connect_error(remote_config(Transport.WEBSOCKET, f"ws://127.0.0.1:{status_server.port}/status/404"))
    assert reason == f"HTTP 404 at ws://127.0.0.1:{status_server.port}/status/404"


@pytest.mark.parametrize("transport", [Transport.HTTP, Transport.SSE, Transport.WEBSOCKET])
@pytest.mark.parametrize(
    "code, expected", [(401, "requires authorization (HTTP 401)"), (403, "access denied (HTTP 403)")]
)
async def test_authorization_required(status_server, transport, code, expected):
    base = status_server.base if transport is not Transport.WEBSOCKET else f"ws://127.0.0.1:{status_server.port}"
    headers = {"Authorization": "Bearer SECRET-TOKEN", "X-Api-Key": "SECRET-KEY"}
    reason = await connect_error(remote_config(transport, f"{base}/status/{code}", headers=headers))
    assert reason == expected
    assert "SECRET" not in reason


async def test_http_timeout_during_initialize(status_server):
    reason = await connect_error(
        remote_config(Transport.HTTP, f"{status_server.base}/hang"), connect_timeout=0.5, request_timeout=5
    )
    assert reason == "timed out after 0.5 s during initialize"


async def test_tls_certificate_not_trusted(tmp_path):
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("localhost")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    running = serve(status_app(), ssl_certfile=str(cert_file), ssl_keyfile=str(key_file))
    try:
        for transport, scheme in [(Transport.HTTP, "https"), (Transport.SSE, "https"), (Transport.WEBSOCKET, "wss")]:
            reason = await connect_error(remote_config(transport, f"{scheme}://localhost:{running.port}/status/200"))
            assert reason == "TLS certificate not trusted for localhost"
    finally:
        running.stop()


async def test_headers_on_every_request_and_no_cross_origin_redirect(sdk_servers):
    """Configured headers reach the server on every request; a redirect to another origin is not followed."""
    import sdk_server

    seen: list[tuple[str, str | None]] = []
    inner = sdk_server.build_server(3, 100).streamable_http_app()

    async def recording(scope, receive, send):
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            seen.append((scope["path"], (headers.get(b"x-team") or b"").decode() or None))
        await inner(scope, receive, send)

    target = serve(recording)
    redirect_hits: list[str] = []

    async def elsewhere(request):
        redirect_hits.append(request.url.path)
        return RedirectResponse(f"{target.base}/mcp", status_code=307)

    redirector = serve(Starlette(routes=[Route("/mcp", elsewhere, methods=ALL_METHODS)]))
    try:
        config = remote_config(Transport.HTTP, f"{target.base}/mcp", headers={"X-Team": "blue"})
        async with open_connection(config, **TIMEOUTS) as conn:
            await conn.session.call_tool("tool_1", {})
        assert len(seen) >= 3
        assert all(value == "blue" for _, value in seen), seen

        seen.clear()
        config = remote_config(Transport.HTTP, f"{redirector.base}/mcp", headers={"Authorization": "Bearer SECRET"})
        reason = await connect_error(config)
        assert reason.startswith(f"HTTP 307 redirect to {target.base}/mcp")
        assert "SECRET" not in reason
        assert seen == []  # the other origin never saw the request (nor its Authorization header)
    finally:
        target.stop()
        redirector.stop()


async def test_invalid_configuration_is_reported_before_connecting():
    from broxy_tray.config._model import ServerConfig

    assert await connect_error(ServerConfig(id="x", name="x", transport=Transport.HTTP)) == "no url configured"
    reason = await connect_error(remote_config(Transport.HTTP, "ftp://example.com/mcp"))
    assert reason == "invalid url scheme for http: ftp"


def test_importing_the_package_does_not_import_the_sdk():
    code = "import sys, broxy_tray.mcp; print(sorted(m for m in sys.modules if m.split('.')[0] in ('mcp', 'mcp_types', 'httpx2')))"
    out = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, check=True, timeout=30)
    assert out.stdout.strip() == "[]"
    importtime = subprocess.run(
        [PYTHON, "-X", "importtime", "-c", "import broxy_tray.mcp"], capture_output=True, text=True, timeout=30
    )
    assert not any(line.split("|")[-1].strip() in ("mcp", "httpx2") for line in importtime.stderr.splitlines())
