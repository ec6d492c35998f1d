"""`broxy-tray probe URL`: connect to one remote MCP server, signing in if it asks, and report each step.

A diagnostic for users ("why doesn't this server work?") and the client the
MCP conformance suite drives. It uses exactly the app's machinery (config
validation, discovery, client registration, PKCE browser sign-in, the live
connection layer); only the token store is in memory, for this run.
"""

from __future__ import annotations

import asyncio
import json
import sys
import webbrowser
from dataclasses import dataclass
from typing import Any, TextIO

from .config import ServerConfig, Transport
from .config._model import TRANSPORT_ALIASES


@dataclass(frozen=True)
class ProbeOptions:
    url: str
    transport: str = "http"
    headers: tuple[tuple[str, str], ...] = ()
    client_id: str | None = None
    client_secret: str | None = None
    client_metadata_url: str | None = None
    authorization_server: str | None = None
    scopes: tuple[str, ...] | None = None
    redirect_uri: str | None = None
    call: str | None = None
    call_first: bool = False
    call_args: dict[str, Any] | None = None
    timeout: float = 120.0
    open_browser: bool = True


class ProbeFailed(Exception):
    pass


def server_config(o: ProbeOptions) -> ServerConfig:
    """The options as the same validated `ServerConfig` an mcp.json entry would give."""
    from .config import parse_config

    transport = TRANSPORT_ALIASES.get(o.transport.lower())
    if transport is None or transport is Transport.STDIO:
        raise ProbeFailed(f"--transport must be http, sse or websocket, not {o.transport!r}")
    auth: dict[str, Any] = {}
    for key, value in (("clientId", o.client_id), ("clientSecret", o.client_secret),
                       ("clientIdMetadataUrl", o.client_metadata_url), ("redirectUri", o.redirect_uri),
                       ("authorizationServer", o.authorization_server)):
        if value:
            auth[key] = value
    if o.scopes is not None:
        auth["scopes"] = list(o.scopes)
    entry: dict[str, Any] = {"name": o.url, "transport": transport.value, "url": o.url, "headers": dict(o.headers)}
    if auth:
        entry["auth"] = auth
    # parse through the real validator so probe accepts exactly what mcp.json accepts; "$" is escaped
    text = json.dumps({"mcpServers": {"probe": entry}}).replace("${", "$${")
    config = parse_config(text, "probe options", environ={})
    server = config.server("probe")
    assert server is not None
    if server.problems:
        raise ProbeFailed(server.problems[0].message.replace("clientId", "--client-id"))
    return server


async def run_probe(o: ProbeOptions, out: TextIO = sys.stderr) -> int:
    """Returns the exit code: 0 when connected (and the call succeeded), 1 otherwise."""
    from .mcp import ConnectError, open_connection, preload_sdk

    def say(text: str) -> None:
        print(f"probe: {text}", file=out, flush=True)

    try:
        server = server_config(o)
    except ProbeFailed as e:
        say(f"failed: {e}")
        return 1
    await preload_sdk()
    server_auth = None
    http = None
    auth = None
    if server.has_authorization_header:
        say("Authorization header given: no OAuth")
    else:
        server_auth, http = _server_auth(server, o, say)
        from .auth import BearerAuth

        auth = BearerAuth(server_auth)
    say(f"connecting to {server.url} ({server.transport.value})")  # type: ignore[union-attr]
    # a sign-in happens inside the connect, so the connect may take the sign-in's time and then some
    connect_timeout = o.timeout + min(o.timeout, 30.0) + 5.0
    try:
        async with open_connection(server, connect_timeout=connect_timeout, request_timeout=o.timeout,
                                   auth=auth) as conn:
            say(f"connected: {conn.server_name or '?'} {conn.server_version or ''}".rstrip()
                + f", protocol {conn.protocol_version}, {len(conn.tools)} tools")
            for tool in conn.tools:
                say(f"  tool {tool.name}")
            name = o.call or (conn.tools[0].name if o.call_first and conn.tools else None)
            if o.call_first and not conn.tools:
                say("failed: --call-first, but the server lists no tools")
                return 1
            if name:
                return await _call(conn, name, o, say)
            return 0
    except ConnectError as e:
        reason = server_auth.last_error if server_auth and server_auth.last_error else e.reason
        say(f"failed: {reason}")
        return 1
    finally:
        if server_auth is not None:
            server_auth.cancel()  # quietly: nothing waits for it any more
        if http is not None:
            await http.aclose()


async def _call(conn: Any, name: str, o: ProbeOptions, say: Any) -> int:
    args = o.call_args if o.call_args is not None else _default_args(conn, name)
    try:
        result = await asyncio.wait_for(conn.session.call_tool(name, args), o.timeout)
    except Exception as e:  # the SDK raises several types; the message is what the user needs
        say(f"failed: calling {name}: {type(e).__name__}: {' '.join(str(e).split())[:300]}")
        return 1
    text = " ".join(getattr(c, "text", "") for c in result.content if getattr(c, "text", None))
    if result.is_error:
        say(f"failed: {name} returned an error: {text[:300]}")
        return 1
    say(f"called {name}: {text[:300] or 'ok'}")
    return 0


def _default_args(conn: Any, name: str) -> dict[str, Any]:
    """Arguments for a call without --args: a placeholder for each required string/number/boolean."""
    tool = next((t for t in conn.tools if t.name == name), None)
    schema = getattr(tool, "input_schema", None) or {}
    props = schema.get("properties") or {}
    args: dict[str, Any] = {}
    for key in schema.get("required") or ():
        kind = (props.get(key) or {}).get("type")
        args[key] = {"string": "test", "number": 1, "integer": 1, "boolean": True, "array": [], "object": {}}.get(kind, "test")
    return args


def _server_auth(server: ServerConfig, o: ProbeOptions, say: Any) -> tuple[Any, Any]:
    import httpx2

    from .auth import MemoryStore, ServerAuth
    from .mcp._http import shared_ssl_context

    from .auth._coordinator import settings_for
    from .config import Config

    # the same settings the app derives from an mcp.json entry, with probe's timeout for every step
    settings = settings_for(server, Config(path="probe", servers=(server,), authorization_timeout=o.timeout,
                                           request_timeout=o.timeout))
    http = httpx2.AsyncClient(verify=shared_ssl_context(), follow_redirects=False,
                              timeout=httpx2.Timeout(settings.request_timeout))

    async def open_browser(url: str) -> bool:
        if not o.open_browser:
            say("open the sign-in page above in your browser")
            return False
        opened = await asyncio.to_thread(webbrowser.open, url)
        if not opened:
            say("no browser could be opened: open the sign-in page above yourself")
        return opened

    def on_event(event: Any) -> None:
        say(event.message)

    return ServerAuth(settings, store=MemoryStore(), http=http, open_browser=open_browser, on_event=on_event), http
