"""The loopback redirect receiver and the test "browser", over real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlencode

import pytest

from broxy_tray.auth._errors import AuthError
from broxy_tray.auth._loopback import (
    MAX_CONNECTIONS,
    AuthorizationDenied,
    AuthorizationErrorResponse,
    CallbackError,
    CallbackResult,
    CallbackTimeout,
    IssuerMismatch,
    LoopbackPortInUse,
    LoopbackReceiver,
)

STATE = "st4te-Zq9XwY1uV3tR5pO7nM2lK4jH6gF8dS0a"
CODE = "c0de-Ab1Cd2Ef3Gh4Ij5Kl6Mn7Op8Qr9St0Uv"
ISSUER = "http://127.0.0.1:9/issuer"
BROWSER = Path(__file__).resolve().parent / "redirect_browser.py"


class Reply:
    def __init__(self, raw: bytes) -> None:
        head, _, self.body_bytes = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split(" ")[1]) if lines[0] else 0
        self.headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}

    @property
    def text(self) -> str:
        return self.body_bytes.decode("utf-8")


async def raw_request(port: int, data: bytes, host: str = "127.0.0.1") -> Reply:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(data)
        await writer.drain()
        return Reply(await asyncio.wait_for(reader.read(), 5))
    finally:
        writer.close()


async def get(port: int, target: str, *, method: str = "GET", host_header: str | None = None) -> Reply:
    host_header = host_header or f"127.0.0.1:{port}"
    return await raw_request(port, f"{method} {target} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: t\r\n\r\n".encode())


def callback(**params: str) -> str:
    return "/callback?" + urlencode(params)


async def assert_refused(port: int) -> None:
    with pytest.raises(ConnectionRefusedError):
        _, w = await asyncio.open_connection("127.0.0.1", port)
        w.close()


def receiver(**kw: object) -> LoopbackReceiver:
    args: dict[str, object] = dict(state=STATE, issuer=ISSUER, iss_required=False, server_name="Demo")
    args.update(kw)
    return LoopbackReceiver(**args)  # type: ignore[arg-type]


@pytest.fixture
async def rx() -> AsyncIterator[LoopbackReceiver]:
    async with receiver() as r:
        yield r


# ---------------------------------------------------------------- the happy path


async def test_happy_path_returns_code_and_closes(rx: LoopbackReceiver) -> None:
    assert rx.redirect_uri == f"http://127.0.0.1:{rx.port}/callback"
    waiter = asyncio.create_task(rx.wait(5))
    reply = await get(rx.port, callback(code=CODE, state=STATE, iss=ISSUER))
    result = await waiter
    assert result == CallbackResult(CODE, ISSUER)
    assert CODE not in repr(result)
    assert reply.status == 200
    assert "Signed in to Demo" in reply.text and "close this tab" in reply.text
    assert reply.headers["content-type"] == "text/html; charset=utf-8"
    assert reply.headers["cache-control"] == "no-store"
    assert reply.headers["referrer-policy"] == "no-referrer"
    assert reply.headers["connection"] == "close"
    assert int(reply.headers["content-length"]) == len(reply.body_bytes)
    assert "http" not in reply.text.split("<body>")[1]  # no external resources, no links
    assert "<script" not in reply.text and "src=" not in reply.text
    assert rx.closed
    await assert_refused(rx.port)


async def test_result_arrives_even_before_wait_is_called(rx: LoopbackReceiver) -> None:
    reply = await get(rx.port, callback(code=CODE, state=STATE))
    assert reply.status == 200
    assert await rx.wait(1) == CallbackResult(CODE, None)


async def test_fixed_free_port_is_used() -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    async with receiver(port=port) as r:
        assert r.port == port
        assert r.redirect_uri == f"http://127.0.0.1:{port}/callback"


# ---------------------------------------------------------------- state


async def test_state_mismatch_is_ignored_then_real_callback_succeeds(rx: LoopbackReceiver) -> None:
    waiter = asyncio.create_task(rx.wait(5))
    bad = await get(rx.port, callback(code="forged", state="wrong"))
    assert bad.status == 400
    assert "This sign-in response was not accepted" in bad.text
    missing = await get(rx.port, callback(code="forged"))
    duplicated = await get(rx.port, f"/callback?code=forged&state={STATE}&state=x")
    assert missing.status == duplicated.status == 400
    assert not waiter.done() and rx.rejected == 3
    good = await get(rx.port, callback(code=CODE, state=STATE))
    assert good.status == 200
    assert (await waiter).code == CODE


async def test_timeout_mentions_rejected_response(rx: LoopbackReceiver) -> None:
    await get(rx.port, callback(code="forged", state="wrong"))
    with pytest.raises(CallbackTimeout) as info:
        await rx.wait(0.3)
    assert isinstance(info.value, AuthError)
    assert "no sign-in response arrived within 0.3 s" in str(info.value)
    assert "1 response with a missing or wrong state was rejected" in str(info.value)
    assert info.value.rejected == 1
    await assert_refused(rx.port)


async def test_plain_timeout(rx: LoopbackReceiver) -> None:
    with pytest.raises(CallbackTimeout) as info:
        await rx.wait(0.1)
    assert "rejected" not in str(info.value) and rx.redirect_uri in str(info.value)


# ---------------------------------------------------------------- iss (RFC 9207)


async def test_iss_mismatch_fails_without_using_the_code(rx: LoopbackReceiver) -> None:
    waiter = asyncio.create_task(rx.wait(5))
    reply = await get(rx.port, callback(code=CODE, state=STATE, iss="https://evil.example"))
    with pytest.raises(IssuerMismatch) as info:
        await waiter
    assert "mix-up" in str(info.value)
    assert reply.status == 400 and "not accepted" in reply.text
    assert "evil" not in reply.text and CODE not in reply.text
    await assert_refused(rx.port)


async def test_iss_is_compared_exactly(rx: LoopbackReceiver) -> None:
    await get(rx.port, callback(code=CODE, state=STATE, iss=ISSUER + "/"))
    with pytest.raises(IssuerMismatch):
        await rx.wait(5)


async def test_iss_mismatch_on_an_error_response_is_not_reported_as_declined(rx: LoopbackReceiver) -> None:
    await get(rx.port, callback(error="access_denied", state=STATE, iss="https://evil.example"))
    with pytest.raises(IssuerMismatch):
        await rx.wait(5)


async def test_iss_missing_when_required_fails() -> None:
    async with receiver(iss_required=True) as r:
        reply = await get(r.port, callback(code=CODE, state=STATE))
        with pytest.raises(IssuerMismatch) as info:
            await r.wait(5)
        assert "iss" in str(info.value) and reply.status == 400


async def test_iss_missing_when_not_required_succeeds(rx: LoopbackReceiver) -> None:
    await get(rx.port, callback(code=CODE, state=STATE))
    assert await rx.wait(5) == CallbackResult(CODE, None)


async def test_iss_present_when_required_succeeds() -> None:
    async with receiver(iss_required=True) as r:
        await get(r.port, callback(code=CODE, state=STATE, iss=ISSUER))
        assert (await r.wait(5)).iss == ISSUER


# ---------------------------------------------------------------- error responses


async def test_access_denied_is_a_clean_decline(rx: LoopbackReceiver) -> None:
    reply = await get(rx.port, callback(error="access_denied", error_description="<b>nope</b>", state=STATE))
    with pytest.raises(AuthorizationDenied) as info:
        await rx.wait(5)
    assert info.value.reason == "you declined the sign-in"
    assert reply.status == 200 and "declined" in reply.text and "nope" not in reply.text
    await assert_refused(rx.port)


async def test_other_error_carries_its_code_and_a_sanitized_description(rx: LoopbackReceiver) -> None:
    hostile = "<script>alert(1)</script>\r\nFAKE LOG LINE é" + "x" * 1000
    reply = await get(rx.port, callback(error="invalid_scope", error_description=hostile, state=STATE))
    with pytest.raises(AuthorizationErrorResponse) as info:
        await rx.wait(5)
    err = info.value
    assert err.error == "invalid_scope" and "invalid_scope" in str(err)
    assert err.description is not None and len(err.description) <= 200
    assert "\n" not in err.description and "\r" not in err.description and "é" not in err.description
    assert "script" not in reply.text and "FAKE" not in reply.text
    assert "invalid_scope" in reply.text


async def test_error_code_outside_the_grammar_is_not_echoed(rx: LoopbackReceiver) -> None:
    reply = await get(rx.port, callback(error='<img src=x onerror="1">', state=STATE))
    with pytest.raises(AuthorizationErrorResponse) as info:
        await rx.wait(5)
    assert info.value.error == "invalid error code"
    assert "<img" not in reply.text and "onerror" not in reply.text


async def test_right_state_without_code_or_error_fails(rx: LoopbackReceiver) -> None:
    await get(rx.port, callback(state=STATE))
    with pytest.raises(CallbackError, match="neither a usable code nor an error"):
        await rx.wait(5)


# ---------------------------------------------------------------- other requests


async def test_other_paths_get_404_and_it_keeps_waiting(rx: LoopbackReceiver) -> None:
    for target in ("/favicon.ico", "/", "/callback/", f"/other?code={CODE}&state={STATE}"):
        assert (await get(rx.port, target)).status == 404
    await get(rx.port, callback(code=CODE, state=STATE))
    assert (await rx.wait(5)).code == CODE


async def test_post_gets_405(rx: LoopbackReceiver) -> None:
    reply = await get(rx.port, callback(code=CODE, state=STATE), method="POST")
    assert reply.status == 405 and reply.headers["allow"] == "GET"
    assert rx.rejected == 0 and not rx.closed


async def test_malformed_requests_get_400(rx: LoopbackReceiver) -> None:
    for data in (b"GARBAGE\r\n\r\n", b"GET /callback\r\n\r\n", b"GET /callback HTTP/1.1\r\nbad header\r\n\r\n",
                 b"GET /callback HTTP/1.1\r\n\r\n"):
        assert (await raw_request(rx.port, data)).status == 400
    assert (await raw_request(rx.port, b"GET /callback HTTP/2.0\r\nHost: 127.0.0.1\r\n\r\n")).status == 505


async def test_non_loopback_host_header_is_refused(rx: LoopbackReceiver) -> None:
    reply = await get(rx.port, callback(code=CODE, state=STATE), host_header="attacker.example")
    assert reply.status == 421
    assert not rx.closed
    await get(rx.port, callback(code=CODE, state=STATE), host_header=f"localhost:{rx.port}")
    assert (await rx.wait(5)).code == CODE


async def test_oversized_request_gets_431_and_it_keeps_waiting(rx: LoopbackReceiver) -> None:
    data = b"GET /callback?x=" + b"a" * 9000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    reply = await raw_request(rx.port, data)
    assert reply.status == 431
    await get(rx.port, callback(code=CODE, state=STATE))
    assert (await rx.wait(5)).code == CODE


async def test_silent_connections_do_not_block_the_real_callback(rx: LoopbackReceiver) -> None:
    idle = [await asyncio.open_connection("127.0.0.1", rx.port) for _ in range(MAX_CONNECTIONS + 20)]
    partial_r, partial_w = await asyncio.open_connection("127.0.0.1", rx.port)
    partial_w.write(b"GET /callback?code=x")
    await partial_w.drain()
    reply = await asyncio.wait_for(get(rx.port, callback(code=CODE, state=STATE)), 5)
    assert reply.status == 200
    assert (await rx.wait(5)).code == CODE
    # every other connection is dropped once the callback is answered
    for reader, writer in [*idle, (partial_r, partial_w)]:
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()


async def test_read_timeout_drops_a_silent_connection() -> None:
    async with receiver(read_timeout=0.2) as r:
        reader, writer = await asyncio.open_connection("127.0.0.1", r.port)
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
        assert not r.closed


# ---------------------------------------------------------------- ports, hosts, lifecycle


async def test_busy_fixed_port_gives_a_clear_error() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = receiver(port=port)
        with pytest.raises(LoopbackPortInUse) as info:
            await r.start()
    assert f"port {port} for the redirect URI is in use by another program" in str(info.value)
    assert info.value.port == port and isinstance(info.value, AuthError)


async def test_localhost_redirect_uri_is_kept_but_127_0_0_1_is_bound() -> None:
    r = LoopbackReceiver.for_redirect_uri(
        "http://localhost/cb", state=STATE, issuer=ISSUER, iss_required=False
    )
    async with r:
        assert r.redirect_uri == f"http://localhost:{r.port}/cb"
        assert r._server is not None
        addrs = [s.getsockname()[0] for s in r._server.sockets]
        assert addrs == ["127.0.0.1"]
        await get(r.port, f"/cb?code={CODE}&state={STATE}", host_header=f"localhost:{r.port}")
        assert (await r.wait(5)).code == CODE


async def test_port_named_in_the_redirect_uri_wins() -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    r = LoopbackReceiver.for_redirect_uri(
        f"http://127.0.0.1:{port}/callback", state=STATE, issuer=ISSUER, iss_required=False, port=1
    )
    async with r:
        assert r.port == port


@pytest.mark.parametrize(
    "uri",
    ["https://127.0.0.1/cb", "http://0.0.0.0:1234/cb", "http://example.com/cb", "http://127.0.0.1/cb?x=1",
     "http://127.0.0.1/cb#f", "http://user@127.0.0.1/cb"],
)
def test_unusable_redirect_uris_are_refused(uri: str) -> None:
    with pytest.raises(ValueError):
        LoopbackReceiver.for_redirect_uri(uri, state=STATE, issuer=ISSUER, iss_required=False)


def test_wildcard_hosts_are_refused() -> None:
    for host in ("0.0.0.0", "::", "", "10.0.0.1"):
        with pytest.raises(ValueError):
            receiver(host=host)


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback")
async def test_ipv6_redirect_uri_binds_ipv6_loopback() -> None:
    r = LoopbackReceiver.for_redirect_uri("http://[::1]/callback", state=STATE, issuer=ISSUER, iss_required=False)
    async with r:
        assert r.redirect_uri == f"http://[::1]:{r.port}/callback"
        reply = await raw_request(
            r.port, f"GET {callback(code=CODE, state=STATE)} HTTP/1.1\r\nHost: [::1]:{r.port}\r\n\r\n".encode(), "::1"
        )
        assert reply.status == 200
        assert (await r.wait(5)).code == CODE


async def test_cancellation_closes_the_socket(rx: LoopbackReceiver) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", rx.port)
    waiter = asyncio.create_task(rx.wait(30))
    await asyncio.sleep(0.05)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert rx.closed
    await assert_refused(rx.port)
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()


async def test_close_stops_listening_and_drops_connections() -> None:
    r = receiver()
    await r.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", r.port)
    await asyncio.sleep(0.05)
    r.close()
    await assert_refused(r.port)
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()
    with pytest.raises(CallbackError, match="stopped"):
        await r.wait(1)


async def test_hostile_server_name_is_escaped() -> None:
    async with receiver(server_name='<script>alert("x")</script>&\x1b[31m') as r:
        reply = await get(r.port, callback(code=CODE, state=STATE))
        await r.wait(5)
    assert "<script>" not in reply.text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;" in reply.text
    assert "\x1b" not in reply.text


async def test_logs_never_contain_code_or_state(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with receiver() as r:
        await get(r.port, callback(code=CODE, state="wrong-" + STATE))
        await get(r.port, f"/favicon.ico?code={CODE}&state={STATE}")
        await get(r.port, callback(code=CODE, state=STATE), method="PUT")
        await get(r.port, callback(code=CODE, state=STATE, iss=ISSUER))
        await r.wait(5)
    async with receiver() as r:
        await get(r.port, callback(code=CODE, state=STATE, iss="https://evil.example/"))
        with pytest.raises(IssuerMismatch) as info:
            await r.wait(5)
        assert CODE not in str(info.value) and STATE not in str(info.value)
    async with receiver() as r:
        await get(r.port, callback(error="server_error", error_description="try later", state=STATE))
        with pytest.raises(AuthorizationErrorResponse):
            await r.wait(5)
    assert "callback arrived" in caplog.text and "accepted" in caplog.text
    assert CODE not in caplog.text
    assert STATE not in caplog.text


# ---------------------------------------------------------------- the redirect browser


class _Redirector(BaseHTTPRequestHandler):
    location: str | None = None
    status = 302

    def do_GET(self) -> None:  # noqa: N802
        self.send_response(self.status)
        if self.location:
            self.send_header("Location", self.location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def authorize_server() -> Iterator[tuple[str, type[_Redirector]]]:
    handler = type("Handler", (_Redirector,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/authorize?client_id=c&x=1", handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


async def run_browser(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env
    )
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, err.decode()


def test_browser_script_is_executable_stdlib_only() -> None:
    assert os.access(BROWSER, os.X_OK)
    assert BROWSER.read_text().startswith("#!/usr/bin/env python3\n")
    assert "broxy_tray" not in BROWSER.read_text()


async def test_browser_follows_the_redirect_to_the_receiver(
    rx: LoopbackReceiver, authorize_server: tuple[str, type[_Redirector]]
) -> None:
    url, handler = authorize_server
    handler.location = f"{rx.redirect_uri}?{urlencode({'code': CODE, 'state': STATE, 'iss': ISSUER})}"
    rc, err = await run_browser(str(BROWSER), url)
    assert rc == 0, err
    assert await rx.wait(5) == CallbackResult(CODE, ISSUER)


async def test_browser_works_through_the_webbrowser_module(
    rx: LoopbackReceiver, authorize_server: tuple[str, type[_Redirector]]
) -> None:
    url, handler = authorize_server
    handler.location = f"{rx.redirect_uri}?{urlencode({'code': CODE, 'state': STATE})}"
    env = {**os.environ, "BROWSER": str(BROWSER)}
    code = "import sys, webbrowser; sys.exit(0 if webbrowser.open(sys.argv[1]) else 1)"
    rc, err = await run_browser(sys.executable, "-c", code, url, env=env)
    assert rc == 0, err
    assert (await rx.wait(5)).code == CODE


async def test_browser_refuses_a_non_loopback_location(authorize_server: tuple[str, type[_Redirector]]) -> None:
    url, handler = authorize_server
    handler.location = f"http://example.invalid/callback?code={CODE}&state={STATE}"
    rc, err = await run_browser(str(BROWSER), url)
    assert rc == 1
    assert "off loopback" in err and len(err.strip().splitlines()) == 1
    assert CODE not in err


async def test_browser_fails_without_a_redirect(authorize_server: tuple[str, type[_Redirector]]) -> None:
    url, handler = authorize_server
    handler.status = 200
    rc, err = await run_browser(str(BROWSER), url)
    assert rc == 1 and "200 without a redirect" in err


def test_browser_fails_when_nothing_listens() -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    proc = subprocess.run([str(BROWSER), f"http://127.0.0.1:{port}/authorize"], capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 1 and "failed" in proc.stderr
