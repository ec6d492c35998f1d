"""An OAuth-protected MCP server for tests (official SDK, Streamable HTTP, 127.0.0.1).

* ``/mcp`` (configurable) serves the SDK's Streamable HTTP app with the tools
  ``echo``, ``whoami`` and ``admin_echo`` (the last needs the extra scope
  ``mcp:admin``, for step-up tests);
* RFC 9728 protected resource metadata at
  ``/.well-known/oauth-protected-resource/mcp`` and/or
  ``/.well-known/oauth-protected-resource``;
* every request to ``/mcp`` needs a bearer token that the authorization server
  reports active, unexpired and issued for exactly this server's resource URL;
  otherwise ``401`` with ``WWW-Authenticate: Bearer resource_metadata=…,
  scope=…``; a token without a needed scope gets ``403`` with
  ``error="insufficient_scope"``.

Usage::

    with AuthServer() as auth, ProtectedMCPServer(auth) as mcp_server:
        mcp_server.url          # http://127.0.0.1:<port>/mcp (also the resource)
        mcp_server.config.prm_locations = {"root"}

Standalone, for manual probing (an AS is started in-process unless --issuer
is given, in which case tokens cannot be validated and every call is 401)::

    python tests/auth/protected_mcp.py --port 8765
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from mcp.server.mcpserver import Context, MCPServer

if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
from authserver import AuthServer, ServerThread  # noqa: E402

__all__ = ["RSConfig", "ProtectedMCPServer", "build_mcp_server"]

PRMLocation = Literal["path", "root"]


@dataclass
class RSConfig:
    """Switches of the protected resource (mutable at run time)."""

    prm_locations: set[PRMLocation] = field(default_factory=lambda: {"path", "root"})
    """Where protected resource metadata is served: "path" =
    /.well-known/oauth-protected-resource<mcp path>, "root" =
    /.well-known/oauth-protected-resource. Empty: no PRM at all."""
    prm_resource: str | None = None
    """Advertise this ``resource`` in the PRM instead of the real URL (mismatch tests)."""
    authorization_servers: list[str] | None = None
    """Override the PRM's authorization_servers (default: [the AS issuer])."""
    scopes_supported: list[str] | None = None
    """PRM scopes_supported (default: required_scopes); [] omits the field."""
    required_scopes: list[str] = field(default_factory=lambda: ["mcp:read"])
    """Needed for any request to the MCP endpoint."""
    tool_scopes: dict[str, list[str]] = field(default_factory=lambda: {"admin_echo": ["mcp:admin"]})
    """Extra scopes a tools/call needs, per tool name."""
    challenge_resource_metadata: bool = True
    """Put resource_metadata in WWW-Authenticate (which PRM URL: the first of prm_locations
    in the order path, root; the path URL when there is none)."""
    challenge_scope: bool = True
    """Put scope in the 401 challenge."""
    step_up_scope: Literal["all", "missing"] = "all"
    """scope in a 403 challenge: every scope the operation needs, or only the missing ones."""
    always_insufficient_scope: bool = False
    """Tools listed in tool_scopes answer 403 insufficient_scope whatever the token holds."""


@dataclass
class LoggedRSRequest:
    method: str
    path: str
    kind: str
    status: int | None = None
    rpc_methods: list[str] = field(default_factory=list)
    had_token: bool = False


def build_mcp_server(auth: AuthServer | None) -> MCPServer:
    # MCPServer() calls logging.basicConfig(); keep the process's logging as it was.
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        server = MCPServer("broxy-test-protected", instructions="OAuth-protected test server")
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)

    @server.tool()
    def echo(text: str) -> str:
        """Return the text unchanged."""
        return text

    @server.tool()
    def admin_echo(text: str) -> str:
        """Like echo, but needs the mcp:admin scope."""
        return f"admin:{text}"

    @server.tool()
    def whoami(ctx: Context) -> str:
        """Who the bearer token belongs to: client id, scopes, resource (JSON)."""
        headers = ctx.headers or {}
        authz = headers.get("authorization") or headers.get("Authorization") or ""
        token = authz.split(" ", 1)[1].strip() if " " in authz else ""
        if auth is None or not token:
            return json.dumps({"client_id": None})
        info = auth.introspect(token)
        return json.dumps({"client_id": info.client_id, "scopes": list(info.scopes), "resource": info.resource})

    return server


class ProtectedMCPServer:
    """The resource server. A context manager; see the module docstring.

    ``embed_auth_server=True`` serves the authorization server's endpoints on
    this same origin (2025-03-26 style: AS at the MCP server's origin)."""

    def __init__(
        self,
        auth: AuthServer | None,
        config: RSConfig | None = None,
        *,
        mcp_path: str = "/mcp",
        json_response: bool = False,
        embed_auth_server: bool = False,
        port: int = 0,
        **overrides: Any,
    ) -> None:
        self.auth = auth
        self.config = dataclasses.replace(config or RSConfig(), **overrides)
        self.mcp_path = mcp_path
        self.embed_auth_server = embed_auth_server
        self._port = port
        self._json_response = json_response
        self._lock = threading.Lock()
        self.log: list[LoggedRSRequest] = []
        self.counts: Counter[str] = Counter()
        self._thread: ServerThread | None = None
        self._inner: Any = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> ProtectedMCPServer:
        self._inner = build_mcp_server(self.auth).streamable_http_app(
            streamable_http_path=self.mcp_path, json_response=self._json_response, host="127.0.0.1"
        )
        self._thread = ServerThread(self.asgi, port=self._port)
        self._thread.start()
        if self.auth is not None:
            if self.embed_auth_server:
                self.auth.attach(self.origin)
            self.auth.add_resource(self.resource)
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._thread.stop()
            self._thread = None

    def signal_stop(self) -> None:
        """Begin shutting down (several servers can then stop() in parallel)."""
        if self._thread is not None:
            self._thread.signal_stop()

    def __enter__(self) -> ProtectedMCPServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ------------------------------------------------------------------ URLs

    @property
    def origin(self) -> str:
        assert self._thread is not None, "not started"
        return self._thread.origin

    @property
    def url(self) -> str:
        return self.origin + self.mcp_path

    @property
    def resource(self) -> str:
        """The canonical resource URL (what tokens must be bound to)."""
        return self.url

    def prm_url(self, location: PRMLocation = "path") -> str:
        base = self.origin + "/.well-known/oauth-protected-resource"
        return base + self.mcp_path if location == "path" else base

    def count(self, kind: str) -> int:
        """Requests by kind: "prm", "mcp", "mcp_401", "mcp_403", "mcp_ok", "auth" (embedded AS), "other"."""
        with self._lock:
            return self.counts[kind]

    def reset_log(self) -> None:
        with self._lock:
            self.log.clear()
            self.counts.clear()

    # ------------------------------------------------------------------ metadata and challenges

    def prm(self) -> dict[str, Any]:
        c = self.config
        doc: dict[str, Any] = {
            "resource": c.prm_resource or self.resource,
            "authorization_servers": (
                c.authorization_servers
                if c.authorization_servers is not None
                else ([self.auth.issuer] if self.auth else [])
            ),
            "bearer_methods_supported": ["header"],
        }
        scopes = c.scopes_supported if c.scopes_supported is not None else c.required_scopes
        if scopes:
            doc["scopes_supported"] = list(scopes)
        return doc

    def _challenge_prm_url(self) -> str:
        locs = self.config.prm_locations
        return self.prm_url("root") if ("path" not in locs and "root" in locs) else self.prm_url("path")

    def challenge(self, *, error: str | None = None, scope: list[str] | None = None, description: str | None = None) -> str:
        parts: list[str] = []
        if error:
            parts.append(f'error="{error}"')
        if scope:
            parts.append(f'scope="{" ".join(scope)}"')
        if self.config.challenge_resource_metadata:
            parts.append(f'resource_metadata="{self._challenge_prm_url()}"')
        if description:
            parts.append(f'error_description="{description}"')
        return "Bearer " + ", ".join(parts) if parts else "Bearer"

    # ------------------------------------------------------------------ ASGI

    async def asgi(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._inner(scope, receive, send)
            return
        if scope["type"] != "http":  # pragma: no cover
            return
        path = scope["path"]
        prm_paths = {
            "/.well-known/oauth-protected-resource" + self.mcp_path: "path",
            "/.well-known/oauth-protected-resource": "root",
        }
        if path in prm_paths:
            entry = self._log(scope, "prm")
            if prm_paths[path] in self.config.prm_locations and scope["method"] == "GET":
                resp: Response = JSONResponse(self.prm())
            else:
                resp = JSONResponse({"error": "not_found"}, status_code=404)
            entry.status = resp.status_code
            await resp(scope, receive, send)
            return
        if path == self.mcp_path or path == self.mcp_path + "/":
            await self._mcp(scope, receive, send)
            return
        if self.embed_auth_server and self.auth is not None:
            entry = self._log(scope, "auth")
            resp = await self.auth.handle(Request(scope, receive))
            entry.status = resp.status_code
            await resp(scope, receive, send)
            return
        entry = self._log(scope, "other")
        resp = JSONResponse({"error": "not_found"}, status_code=404)
        entry.status = 404
        await resp(scope, receive, send)

    def _log(self, scope: dict[str, Any], kind: str) -> LoggedRSRequest:
        entry = LoggedRSRequest(scope["method"], scope["path"], kind)
        with self._lock:
            self.log.append(entry)
            self.counts[kind] += 1
        return entry

    async def _mcp(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        entry = self._log(scope, "mcp")
        c = self.config
        request = Request(scope, receive)
        authz = request.headers.get("authorization")
        token = None
        if authz:
            scheme, _, value = authz.partition(" ")
            if scheme.lower() == "bearer" and value.strip():
                token = value.strip()
        entry.had_token = token is not None

        async def deny(status: int, challenge: str, error: str) -> None:
            entry.status = status
            with self._lock:
                self.counts[f"mcp_{status}"] += 1
            resp = JSONResponse(
                {"error": error}, status_code=status, headers={"WWW-Authenticate": challenge}
            )
            await resp(scope, receive, send)

        scope_param = list(c.required_scopes) if c.challenge_scope else None
        if token is None:
            await deny(401, self.challenge(scope=scope_param), "unauthorized")
            return
        info = self.auth.introspect(token) if self.auth else None
        if info is None or not info.active:
            await deny(401, self.challenge(error="invalid_token", scope=scope_param, description="token is not active"), "invalid_token")
            return
        if info.resource != self.resource:
            await deny(
                401,
                self.challenge(error="invalid_token", scope=scope_param, description="token audience mismatch"),
                "invalid_token",
            )
            return

        # Read the body (to see which tool is called), then replay it to the SDK app.
        body = b""
        if scope["method"] == "POST":
            chunks = []
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                chunks.append(message.get("body", b""))
                if not message.get("more_body"):
                    break
            body = b"".join(chunks)

        needed = list(c.required_scopes)
        forced = False
        try:
            payload = json.loads(body) if body else None
        except ValueError:
            payload = None
        messages = payload if isinstance(payload, list) else [payload]
        for msg in messages:
            if isinstance(msg, dict) and isinstance(msg.get("method"), str):
                entry.rpc_methods.append(msg["method"])
                if msg["method"] == "tools/call":
                    name = (msg.get("params") or {}).get("name")
                    for s in c.tool_scopes.get(name, []):
                        if s not in needed:
                            needed.append(s)
                    if name in c.tool_scopes and c.always_insufficient_scope:
                        forced = True
        missing = [s for s in needed if s not in info.scopes]
        if missing or forced:
            announce = needed if c.step_up_scope == "all" else (missing or needed)
            await deny(
                403,
                self.challenge(error="insufficient_scope", scope=announce, description="additional scope required"),
                "insufficient_scope",
            )
            return

        sent_body = False

        async def replay() -> dict[str, Any]:
            nonlocal sent_body
            if not sent_body:
                sent_body = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        async def send_wrapper(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                entry.status = message["status"]
                if 200 <= message["status"] < 300:
                    with self._lock:
                        self.counts["mcp_ok"] += 1
            await send(message)

        await self._inner(scope, replay if scope["method"] == "POST" else receive, send_wrapper)


def main(argv: list[str] | None = None) -> int:
    import time

    parser = argparse.ArgumentParser(description="OAuth-protected MCP test server")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--issuer", help="advertise this issuer (tokens then cannot be validated)")
    parser.add_argument("--embed", action="store_true", help="serve the AS on the MCP server's origin")
    args = parser.parse_args(argv)
    auth = AuthServer(registration="open", cimd_supported=True, loopback_any_port=True)
    if not args.embed and not args.issuer:
        auth.start()
    rs = ProtectedMCPServer(auth if not args.issuer else None, port=args.port, embed_auth_server=args.embed)
    if args.issuer:
        rs.config.authorization_servers = [args.issuer]
    rs.start()
    print(f"MCP server: {rs.url}")
    print(f"PRM:        {rs.prm_url()}")
    if not args.issuer:
        print(f"issuer:     {auth.issuer}")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        rs.stop()
        auth.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
