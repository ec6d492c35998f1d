"""A long run of the real token lifecycle in simulated time (tests and bench/token_lifecycle.py).

The app's own `AuthCoordinator` (its `ServerAuth`s and `TokenLifecycle`s)
runs against the strict test authorization server served in-process, on a
`virtual_time` loop: N servers, each its own pre-registered client and token
lifetime, already signed in (one code grant each), with "requests" at random
moments that take the token the connection layer would send and check it at
the AS. Counts come from the AS's own grant log.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import math
import random
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx2

from authserver import AuthServer
from broxy_tray.auth import MemoryStore
from broxy_tray.auth._client import ClientRegistration
from broxy_tray.auth._coordinator import AuthCoordinator
from broxy_tray.auth._drive import drive
from broxy_tray.auth._schedule import refresh_margin
from broxy_tray.auth._store import StoredAuth
from broxy_tray.auth._tokens import exchange_code
from broxy_tray.config import AuthConfig, Config, ServerConfig, Transport
from virtual_time import VirtualClock

ORIGIN = "http://as.sim.invalid"
REDIRECT = "http://127.0.0.1:9/callback"


def resource(sid: str) -> str:
    return f"https://{sid}.sim.invalid/mcp"


def expected_refreshes(lifetime: float, duration: float) -> int:
    """Refreshes of a token of this lifetime over `duration`, starting with a fresh token."""
    return math.floor(duration / (lifetime - refresh_margin(lifetime)))


@dataclass
class ServerStats:
    sid: str
    lifetime: float
    requests: int = 0
    waited_while_valid: int = 0  # requests that waited for a refresh although their token was still valid
    waited: int = 0  # requests that waited for a refresh (their token had expired)
    failed: int = 0  # requests without a token the AS accepts


@dataclass
class Sim:
    """One simulated desktop: an AS, a coordinator, servers, and what happened."""

    clock: VirtualClock
    auth: AuthServer
    coordinator: AuthCoordinator
    http: httpx2.AsyncClient
    config: Config
    store: MemoryStore
    browser_opens: list[str] = field(default_factory=list)
    stats: dict[str, ServerStats] = field(default_factory=dict)

    def server(self, sid: str) -> ServerConfig:
        s = self.config.server(sid)
        assert s is not None
        return s

    def server_auth(self, sid: str):  # type: ignore[no-untyped-def]
        return self.coordinator.auth_for(self.server(sid), self.config).server_auth  # type: ignore[union-attr]

    def grants(self, sid: str, outcome: str | None = "issued") -> int:
        return len(self.auth.refresh_grants(client_id=f"client-{sid}", outcome=outcome))

    async def request(self, sid: str) -> bool:
        """What a connection does per HTTP request: take the token, send it (the AS checks it)."""
        st = self.stats[sid]
        sa = self.server_auth(sid)
        held = await sa.tokens()
        valid_before = held is not None and held.expires_at is not None and self.clock.wall() < held.expires_at
        loop = asyncio.get_running_loop()
        started, waits = loop.time(), sa.refresh_waits
        st.requests += 1
        try:
            token = await sa.current_token()
        except Exception:
            token = None
        if loop.time() > started and sa.refresh_waits > waits:
            st.waited += 1
            if valid_before:
                st.waited_while_valid += 1
        ok = token is not None and self.auth.introspect(token.access_token).active
        if not ok:
            st.failed += 1
        return ok

    async def close(self) -> None:
        await self.coordinator.close()
        await self.http.aclose()


async def start(clock: VirtualClock, lifetimes: dict[str, float], *, refresh_delay: float = 0.5,
                request_timeout: float = 30.0, **as_switches: object) -> Sim:
    """Servers `lifetimes` (id → access-token lifetime), each signed in once, coordinator running."""
    auth = AuthServer(clock=clock.wall, **as_switches)  # type: ignore[arg-type]
    auth.attach(ORIGIN)
    http = httpx2.AsyncClient(transport=auth.transport(), timeout=30)
    store = MemoryStore()
    servers = []
    for sid, lifetime in lifetimes.items():
        auth.add_resource(resource(sid))
        auth.add_client(f"client-{sid}", redirect_uris=[REDIRECT])
        tokens = await _sign_in(auth, http, sid, lifetime, clock)
        reg = ClientRegistration(client_id=f"client-{sid}", kind="pre-registered", issuer=auth.issuer,
                                 redirect_uri=REDIRECT, auth_method="none")
        await store.save(sid, StoredAuth(tokens=tokens, registrations=(reg,), token_endpoint=auth.token_endpoint,
                                         revocation_endpoint=auth.revocation_endpoint))
        servers.append(ServerConfig(id=sid, name=sid, transport=Transport.HTTP, url=resource(sid),
                                    auth=AuthConfig(client_id=f"client-{sid}", authorization_server=auth.issuer)))
    config = Config(path="sim.json", servers=tuple(servers), request_timeout=request_timeout)
    opens: list[str] = []
    coordinator = AuthCoordinator(store, open_browser=opens.append, on_notice=lambda n: None, clock=clock.wall,
                                  http=http)
    sim = Sim(clock, auth, coordinator, http, config, store, opens,
              {sid: ServerStats(sid, lt) for sid, lt in lifetimes.items()})
    if refresh_delay:
        auth.set_fault("token", "slow", delay=refresh_delay)  # a refresh takes time: waiting is visible
    for sid in lifetimes:
        sim.server_auth(sid)  # the connection asks for its auth: the lifecycle starts
    return sim


async def _sign_in(auth: AuthServer, http: httpx2.AsyncClient, sid: str, lifetime: float, clock: VirtualClock):  # type: ignore[no-untyped-def]
    """A code grant, as the browser sign-in would end (the lifetime is set per server)."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    query = {"response_type": "code", "client_id": f"client-{sid}", "redirect_uri": REDIRECT, "state": "s",
             "code_challenge": challenge, "code_challenge_method": "S256", "resource": resource(sid)}
    r = await http.get(f"{auth.authorization_endpoint}?{urlencode(query)}")
    code = dict(parse_qsl(urlsplit(r.headers["location"]).query))["code"]
    reg = ClientRegistration(client_id=f"client-{sid}", kind="pre-registered", issuer=auth.issuer,
                             redirect_uri=REDIRECT, auth_method="none")
    auth.config.access_token_ttl = lifetime
    return await drive(exchange_code(reg, auth.token_endpoint, code=code, verifier=verifier, redirect_uri=REDIRECT,
                                     resource=resource(sid), requested_scopes=(), clock=clock.wall),
                       http, timeout=30)


def lifetime_switch(sim: Sim) -> None:
    """Each server's refreshes get its own lifetime: the AS reads the client id of the grant."""
    by_client = {f"client-{sid}": st.lifetime for sid, st in sim.stats.items()}
    issue = sim.auth._issue  # noqa: SLF001 - per-client lifetimes are a test-only twist of the AS

    def per_client(client, *args, **kwargs):  # type: ignore[no-untyped-def]
        sim.auth.config.access_token_ttl = by_client[client.client_id]
        return issue(client, *args, **kwargs)

    sim.auth._issue = per_client  # type: ignore[method-assign]  # noqa: SLF001


async def traffic(sim: Sim, duration: float, *, mean_gap: float = 600.0, seed: int = 1,
                  until: Callable[[], Awaitable[None]] | None = None) -> None:
    """Requests at random moments (exponential gaps, mean `mean_gap`) to every server for `duration`."""
    rng = random.Random(seed)
    loop = asyncio.get_running_loop()
    end = loop.time() + duration

    async def one(sid: str) -> None:
        while True:
            gap = rng.expovariate(1 / mean_gap)
            if loop.time() + gap >= end:
                await asyncio.sleep(end - loop.time())
                return
            await asyncio.sleep(gap)
            await sim.request(sid)

    await asyncio.gather(*(one(sid) for sid in sim.stats))
