"""Fixtures for OAuth tests: a strict authorization server and a protected MCP server on loopback.

``auth_server``      an AuthServer (tests/auth/authserver.py), started, default switches.
``mcp_server``       a ProtectedMCPServer (tests/auth/protected_mcp.py) trusting ``auth_server``.
``make_auth_server`` factory: ``make_auth_server(issuer_path="/t", cimd_supported=True)``.
``make_mcp_server``  factory: ``make_mcp_server(auth, prm_locations={"root"})``.
``secret_service``   a private D-Bus session bus with a real, unlocked gnome-keyring (secret_service.py).

Switches may also be flipped on a running server: ``auth_server.config.authorize_mode = "deny"``.
Everything started by a fixture is stopped at teardown.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from authserver import AuthServer  # noqa: E402
from protected_mcp import ProtectedMCPServer  # noqa: E402
from secret_service import secret_service  # noqa: E402  (fixture: a private bus with a real gnome-keyring)

SHARED_FIXTURES = (secret_service,)  # defined elsewhere, offered to every test here


@pytest.fixture
def _started_servers() -> Iterator[list[Any]]:
    """Everything the factories started; stopped together (in parallel) at teardown."""
    started: list[Any] = []
    yield started
    for server in started:
        server.signal_stop()
    for server in reversed(started):
        server.stop()


@pytest.fixture
def make_auth_server(_started_servers: list[Any]) -> Callable[..., AuthServer]:
    def make(**switches: Any) -> AuthServer:
        server = AuthServer(**switches).start()
        _started_servers.append(server)
        return server

    return make


@pytest.fixture
def make_mcp_server(_started_servers: list[Any]) -> Callable[..., ProtectedMCPServer]:
    def make(auth: AuthServer | None, **options: Any) -> ProtectedMCPServer:
        server = ProtectedMCPServer(auth, **options).start()
        _started_servers.append(server)
        return server

    return make


@pytest.fixture
def auth_server(make_auth_server: Callable[..., AuthServer]) -> AuthServer:
    return make_auth_server()


@pytest.fixture
def mcp_server(auth_server: AuthServer, make_mcp_server: Callable[..., ProtectedMCPServer]) -> ProtectedMCPServer:
    return make_mcp_server(auth_server)


# --------------------------------------------------------------------------- plain-HTTP helpers for the fixture tests


class Flow:
    """Drives the authorization server by hand with plain httpx2 requests.

    PKCE is computed here with hashlib (independently of authserver.s256)."""

    REDIRECT = "http://127.0.0.1:48123/callback"

    def __init__(self, auth: AuthServer) -> None:
        import httpx2

        self.auth = auth
        self.http = httpx2.Client(timeout=5.0, follow_redirects=False)

    @staticmethod
    def pkce() -> tuple[str, str]:
        import base64
        import hashlib
        import secrets

        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        return verifier, challenge

    def authorize(self, client_id: str, *, drop: tuple[str, ...] = (), **params: str) -> Any:
        """GET /authorize with sensible defaults; ``params`` override, ``drop`` removes."""
        query = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": self.REDIRECT,
            "code_challenge": params.pop("code_challenge", None) or self.pkce()[1],
            "code_challenge_method": "S256",
            "state": "st-123",
            "scope": "mcp:read",
        }
        if self.auth.resources:
            query["resource"] = sorted(self.auth.resources)[0]
        query.update(params)
        for k in drop:
            query.pop(k, None)
        return self.http.get(self.auth.authorization_endpoint, params=query)

    @staticmethod
    def callback(response: Any) -> dict[str, str]:
        """The query of the redirect an /authorize response points to (asserts a 302)."""
        from urllib.parse import parse_qsl, urlsplit

        assert response.status_code == 302, (response.status_code, response.text)
        return dict(parse_qsl(urlsplit(response.headers["location"]).query))

    def code(self, client_id: str, verifier: str | None = None, **params: str) -> tuple[str, str]:
        """Run /authorize and return (code, verifier)."""
        if verifier is None:
            verifier, challenge = self.pkce()
        else:
            import base64
            import hashlib

            challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        cb = self.callback(self.authorize(client_id, code_challenge=challenge, **params))
        assert "code" in cb, cb
        return cb["code"], verifier

    def token(self, data: dict[str, str], *, headers: dict[str, str] | None = None) -> Any:
        return self.http.post(self.auth.token_endpoint, data=data, headers=headers or {})

    def exchange(self, client_id: str, code: str, verifier: str, **extra: str) -> Any:
        data = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.REDIRECT,
            "code_verifier": verifier,
            "client_id": client_id,
        }
        if self.auth.resources:
            data["resource"] = sorted(self.auth.resources)[0]
        data.update(extra)
        return self.token({k: v for k, v in data.items() if v is not None})

    def tokens(self, client_id: str, **params: str) -> dict[str, Any]:
        """A full code flow for a public client; the token response JSON."""
        code, verifier = self.code(client_id, **params)
        extra = {"resource": params["resource"]} if "resource" in params else {}
        r = self.exchange(client_id, code, verifier, **extra)
        assert r.status_code == 200, r.text
        return r.json()

    def close(self) -> None:
        self.http.close()


@pytest.fixture
def flow(auth_server: AuthServer) -> Iterator[Flow]:
    f = Flow(auth_server)
    yield f
    f.close()


@pytest.fixture
def make_flow() -> Iterator[Callable[[AuthServer], Flow]]:
    """Factory for a Flow against any AuthServer: ``make_flow(auth)``."""
    made: list[Flow] = []

    def make(auth: AuthServer) -> Flow:
        f = Flow(auth)
        made.append(f)
        return f

    yield make
    for f in made:
        f.close()


@pytest.fixture
def public_client(auth_server: AuthServer) -> Any:
    return auth_server.add_client("public-app", redirect_uris=[Flow.REDIRECT])
