"""One server's OAuth state and the sign-in that fills it.

`ServerAuth` answers three questions for the HTTP layer: which token to send
now (refreshing ahead of expiry), what to do about a `401` (refresh, else
sign in), and what to do about a `403 insufficient_scope` (sign in again for
the union of held and challenged scopes). A sign-in runs discovery, settles
the client identity, opens the browser through the injected opener, waits on
the loopback receiver and exchanges the code. Only one sign-in per server
runs at a time; a second need joins the first. Progress goes out as
`AuthEvent`s; nothing here knows about a UI.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx2

from ._challenge import BearerChallenge
from ._client import ClientRegistration, ClientSettings, resolve_client
from ._discovery import Discovery, discover
from ._drive import drive
from ._errors import AuthError, AuthNetworkError
from ._loopback import LoopbackReceiver
from ._metadata import AuthorizationServerMetadata
from ._pkce import Pkce, make_state
from ._scopes import scope_param, union_scopes
from ._store import CredentialStore, StoredAuth
from ._tokens import TokenError, TokenSet, exchange_code, refresh

log = logging.getLogger(__name__)

REFRESH_MARGIN = 60.0  # refresh at least this long before expiry
REFRESH_FRACTION = 0.2  # … or when less than this share of the lifetime is left
DEFAULT_CALLBACK_PATH = "/callback"

BrowserOpener = Callable[[str], "Awaitable[bool] | bool"]
EventSink = Callable[["AuthEvent"], None]


class SignInCancelled(AuthError):
    """The user (or the app) cancelled the sign-in."""


class SignInTimeout(AuthError):
    """Nobody completed the sign-in in the browser in time."""


@dataclass(frozen=True)
class AuthSettings:
    """What the sign-in needs to know about one server (from its config entry)."""

    server_id: str
    server_name: str
    server_url: str
    client: ClientSettings = field(default_factory=ClientSettings)
    configured_issuer: str | None = None
    configured_scopes: tuple[str, ...] | None = None
    redirect_uri: str | None = None
    authorization_timeout: float = 120.0
    request_timeout: float = 30.0


@dataclass(frozen=True)
class AuthEvent:
    """A step of the auth machinery, for the UI or `probe` to show (never carries secrets)."""

    server: str
    kind: str  # challenge | discovered | client | authorize | token | refreshed | failed | cancelled
    message: str
    url: str | None = None


def authorization_url(
    meta: AuthorizationServerMetadata,
    reg: ClientRegistration,
    *,
    redirect_uri: str,
    pkce: Pkce,
    state: str,
    resource: str,
    scopes: tuple[str, ...],
) -> str:
    """The authorization endpoint URL with PKCE S256, state, resource and scope (existing query kept)."""
    params = {
        "response_type": "code",
        "client_id": reg.client_id,
        "redirect_uri": redirect_uri,
        "code_challenge": pkce.challenge,
        "code_challenge_method": "S256",
        "state": state,
        "resource": resource,
    }
    scope = scope_param(scopes)
    if scope:
        params["scope"] = scope
    parts = urlsplit(meta.authorization_endpoint)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params]
    return urlunsplit(parts._replace(query=urlencode([*query, *params.items()])))


class ServerAuth:
    """OAuth for one server. Use from one event loop."""

    def __init__(
        self,
        settings: AuthSettings,
        *,
        store: CredentialStore,
        http: httpx2.AsyncClient,
        open_browser: BrowserOpener,
        on_event: EventSink | None = None,
        clock: Callable[[], float] = time.time,
        receiver_factory: Callable[..., LoopbackReceiver] = LoopbackReceiver,
    ) -> None:
        self.settings = settings
        self._store = store
        self._http = http
        self._open_browser = open_browser
        self._on_event = on_event or (lambda e: None)
        self._clock = clock
        self._receiver_factory = receiver_factory
        self._signin: asyncio.Task[TokenSet] | None = None
        self._refreshing: asyncio.Task[TokenSet] | None = None
        self._discovery: Discovery | None = None
        self.last_error: AuthError | None = None
        self.sign_ins = 0  # completed browser sign-ins (diagnostics and tests)

    # -- what the HTTP layer asks ----------------------------------------------

    async def current_token(self) -> TokenSet | None:
        """The token to send now; refreshed first when it is about to expire (if it can be)."""
        entry = await self._store.load(self.settings.server_id)
        tokens = entry.tokens if entry else None
        if tokens is None or not self._due_for_refresh(tokens):
            return tokens
        if not tokens.refresh_token:
            return tokens if not tokens.expires_within(0, self._clock()) else None
        try:
            return await self._refresh_shared(tokens)
        except AuthError as e:
            if isinstance(e, TokenError) and not e.transient:
                return None  # e.g. invalid_grant: the next 401 leads to a sign-in
            log.warning("%s: refresh failed (%s); using the current token while it lasts", self.settings.server_id, e)
            return tokens if not tokens.expires_within(0, self._clock()) else None

    async def on_unauthorized(self, challenge: BearerChallenge | None, sent: TokenSet | None) -> TokenSet:
        """A `401`: another request may already have a fresh token; else refresh; else sign in."""
        self._event("challenge", _describe_challenge(401, challenge))
        entry = await self._store.load(self.settings.server_id)
        tokens = entry.tokens if entry else None
        if tokens is not None and sent is not None and tokens.access_token != sent.access_token:
            return tokens
        if tokens is not None and tokens.refresh_token:
            try:
                return await self._refresh_shared(tokens)
            except TokenError as e:
                if e.transient:
                    raise
                self._event("refreshed", f"refresh refused ({e.error or e}); signing in again")
            except AuthNetworkError:
                raise  # a transient fault never opens a browser
        return await self.sign_in(challenge)

    async def on_insufficient_scope(self, challenge: BearerChallenge, sent: TokenSet | None) -> TokenSet:
        """A `403 insufficient_scope`: sign in again for held ∪ challenged scopes."""
        self._event("challenge", _describe_challenge(403, challenge))
        held = sent.scopes if sent else ()
        return await self.sign_in(challenge, scopes=union_scopes(held, challenge.scope))

    # -- sign-in ----------------------------------------------------------------

    async def sign_in(self, challenge: BearerChallenge | None = None, scopes: tuple[str, ...] | None = None) -> TokenSet:
        """Run the browser sign-in, or join the one already running."""
        if self._signin is None or self._signin.done():
            self._signin = asyncio.get_running_loop().create_task(
                self._sign_in(challenge, scopes), name=f"sign-in:{self.settings.server_id}"
            )
            # its outcome is reported as events; waiters may all be gone (cancelled) by the time it ends
            self._signin.add_done_callback(lambda t: t.cancelled() or t.exception())
        return await asyncio.shield(self._signin)

    def cancel(self) -> bool:
        """Cancel a running sign-in; True if there was one."""
        if self._signin is not None and not self._signin.done():
            self._signin.cancel()
            return True
        return False

    @property
    def signing_in(self) -> bool:
        return self._signin is not None and not self._signin.done()

    async def _sign_in(self, challenge: BearerChallenge | None, scopes: tuple[str, ...] | None) -> TokenSet:
        try:
            tokens = await self._sign_in_flow(challenge, scopes)
        except asyncio.CancelledError:
            self._event("cancelled", "sign-in cancelled")
            self.last_error = SignInCancelled("sign-in cancelled")
            raise self.last_error from None
        except AuthError as e:
            self.last_error = e
            self._event("failed", str(e))
            raise
        self.last_error = None
        self.sign_ins += 1
        return tokens

    async def _sign_in_flow(self, challenge: BearerChallenge | None, scopes: tuple[str, ...] | None) -> TokenSet:
        s = self.settings
        disc = await self._drive(
            discover(s.server_url, challenge=challenge, configured_issuer=s.configured_issuer), what="discovery"
        )
        self._discovery = disc
        self._event(
            "discovered",
            f"resource metadata: {disc.prm_url or 'none'}; authorization server: {disc.issuer} "
            f"(from {disc.issuer_source}{', default endpoints' if disc.defaulted else ''})",
            url=disc.issuer,
        )
        meta = disc.as_metadata
        wanted = scopes if scopes is not None else disc.scopes(s.configured_scopes)
        entry = await self._store.load(s.server_id) or StoredAuth()
        for attempt in (1, 2):
            stored_reg = entry.registration_for(meta.issuer)
            state = make_state()
            receiver = await self._start_receiver(stored_reg, meta, state)
            try:
                reg = await self._drive(
                    resolve_client(s.client, meta, receiver.redirect_uri, stored_reg), what="client registration"
                )
                if reg is not stored_reg:
                    self._event("client", f"client: {reg.kind} ({reg.client_id})")
                    if reg.kind == "dynamic":  # keep it even if the user never finishes signing in
                        entry = entry.with_registration(reg)
                        await self._store.save(s.server_id, entry)
                else:
                    self._event("client", f"client: {reg.kind}, registered before ({reg.client_id})")
                pkce = Pkce.new()
                url = authorization_url(meta, reg, redirect_uri=receiver.redirect_uri, pkce=pkce,
                                        state=state, resource=disc.resource, scopes=wanted)
                self._event("authorize", f"Authorize {s.server_name}: open {url}", url=url)
                await self._open(url)
                result = await receiver.wait(s.authorization_timeout)
            finally:
                await receiver.aclose()
            try:
                tokens = await self._drive(
                    exchange_code(reg, meta.token_endpoint, code=result.code, verifier=pkce.verifier,
                                  redirect_uri=receiver.redirect_uri, resource=disc.resource,
                                  requested_scopes=wanted, clock=self._clock),
                    what="token request",
                )
            except TokenError as e:
                if e.error == "invalid_client" and reg.kind == "dynamic" and attempt == 1:
                    entry = entry.without_registration(meta.issuer)
                    await self._store.save(s.server_id, entry)
                    self._event("client", "the authorization server no longer knows this client; registering again")
                    continue
                raise
            entry = replace(entry.with_registration(reg), tokens=tokens, token_endpoint=meta.token_endpoint,
                            revocation_endpoint=meta.revocation_endpoint)
            await self._store.save(s.server_id, entry)
            self._event("token", _describe_tokens(tokens, self._clock()))
            return tokens
        raise AuthError("sign-in failed")  # pragma: no cover - the loop returns or raises

    async def _start_receiver(
        self, stored: ClientRegistration | None, meta: AuthorizationServerMetadata, state: str
    ) -> LoopbackReceiver:
        """Listen where the redirect URI points: the config's, else the stored registration's, else anywhere."""
        configured = self.settings.redirect_uri
        source = configured or (stored.redirect_uri if stored is not None and stored.kind == "dynamic" else None)
        host, port, path = "127.0.0.1", 0, DEFAULT_CALLBACK_PATH
        if source:
            parts = urlsplit(source)
            if parts.scheme != "http" or parts.hostname not in ("127.0.0.1", "localhost", "::1"):
                raise AuthError(
                    f"redirectUri {source} is not a loopback http address; broxy-tray receives sign-ins on "
                    "http://127.0.0.1:PORT/… (or http://localhost:PORT/…)"
                )
            host, port, path = parts.hostname or host, parts.port or 0, parts.path or "/"
        iss_required = bool(meta.authorization_response_iss_parameter_supported)
        receiver = self._receiver_factory(
            state=state, issuer=meta.issuer, iss_required=iss_required, path=path, port=port, host=host,
            server_name=self.settings.server_name,
        )
        try:
            await receiver.start()
        except AuthError:
            if configured or port == 0:
                raise
            # the remembered port is taken: listen elsewhere, which means registering anew
            log.info("%s: redirect port %d is busy; using another", self.settings.server_id, port)
            receiver = self._receiver_factory(
                state=state, issuer=meta.issuer, iss_required=iss_required, path=path, port=0, host=host,
                server_name=self.settings.server_name,
            )
            await receiver.start()
        return receiver

    async def _open(self, url: str) -> None:
        try:
            opened = self._open_browser(url)
            if inspect.isawaitable(opened):
                await opened
        except Exception as e:  # the URL was announced in the event; the user can open it by hand
            log.warning("%s: could not open the browser: %s", self.settings.server_id, type(e).__name__)

    # -- refresh ------------------------------------------------------------------

    def refresh_due_at(self, tokens: TokenSet) -> float:
        """When to refresh: at ~80 % of the lifetime, and at least 60 s before expiry."""
        if tokens.expires_at is None:
            return float("inf")
        lifetime = max(0.0, tokens.expires_at - (tokens.issued_at or tokens.expires_at))
        return tokens.expires_at - max(REFRESH_MARGIN, REFRESH_FRACTION * lifetime)

    def _due_for_refresh(self, tokens: TokenSet) -> bool:
        return self._clock() >= self.refresh_due_at(tokens)

    async def refresh_now(self, tokens: TokenSet) -> TokenSet:
        """Refresh `tokens` (joining a refresh already running)."""
        return await self._refresh_shared(tokens)

    async def _refresh_shared(self, tokens: TokenSet) -> TokenSet:
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.get_running_loop().create_task(self._refresh(tokens))
            self._refreshing.add_done_callback(lambda t: t.cancelled() or t.exception())
        return await asyncio.shield(self._refreshing)

    async def _refresh(self, tokens: TokenSet) -> TokenSet:
        sid = self.settings.server_id
        entry = await self._store.load(sid) or StoredAuth()
        reg = entry.registration_for(tokens.issuer)
        if reg is None and self.settings.client.client_id:
            reg = ClientRegistration(client_id=self.settings.client.client_id, kind="pre-registered",
                                     issuer=tokens.issuer, redirect_uri=self.settings.redirect_uri or "",
                                     auth_method=self.settings.client.token_endpoint_auth_method
                                     or ("client_secret_basic" if self.settings.client.client_secret else "none"),
                                     client_secret=self.settings.client.client_secret)
        if reg is None or not entry.token_endpoint:
            raise TokenError("no client registration or token endpoint to refresh with", error="invalid_grant")
        try:
            fresh = await self._drive(refresh(reg, entry.token_endpoint, tokens, clock=self._clock), what="token refresh")
        except TokenError as e:
            if not e.transient:  # the refresh token is dead: forget it, keep the registration
                latest = await self._store.load(sid) or entry
                await self._store.save(sid, replace(latest, tokens=None))
            raise
        latest = await self._store.load(sid) or entry
        await self._store.save(sid, replace(latest, tokens=fresh))
        self._event("refreshed", _describe_tokens(fresh, self._clock()))
        return fresh

    # -- plumbing -------------------------------------------------------------------

    async def _drive(self, flow: Any, *, what: str) -> Any:
        try:
            return await drive(flow, self._http, timeout=self.settings.request_timeout)
        except AuthNetworkError as e:
            raise AuthNetworkError(f"{what} failed: {e}") from None

    def _event(self, kind: str, message: str, url: str | None = None) -> None:
        event = AuthEvent(self.settings.server_id, kind, message, url)
        log.info("%s: %s", self.settings.server_id, message if kind != "authorize" else "sign-in page opened")
        try:
            self._on_event(event)
        except Exception:
            log.exception("auth event listener failed")


def _describe_challenge(status: int, ch: BearerChallenge | None) -> str:
    if ch is None:
        return f"HTTP {status} without a Bearer challenge"
    parts = [f"HTTP {status} Bearer challenge"]
    if ch.error:
        parts.append(f"error={ch.error}")
    if ch.scope:
        parts.append(f"scope={' '.join(ch.scope)}")
    if ch.resource_metadata:
        parts.append(f"resource_metadata={ch.resource_metadata}")
    return ", ".join(parts)


def _describe_tokens(tokens: TokenSet, now: float) -> str:
    life = f", expires in {int(tokens.expires_at - now)} s" if tokens.expires_at else ""
    scopes = f" for scopes {' '.join(tokens.scopes)}" if tokens.scopes else ""
    refresh_note = ", with refresh token" if tokens.refresh_token else ""
    return f"token obtained{scopes}{life}{refresh_note}"
