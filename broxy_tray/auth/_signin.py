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
from collections.abc import Callable
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
from ._schedule import refresh_due_at
from ._scopes import scope_param, union_scopes
from ._store import CredentialStore, StoredAuth
from ._tokens import TokenError, TokenSet, exchange_code, refresh

log = logging.getLogger(__name__)

DEFAULT_CALLBACK_PATH = "/callback"

BrowserOpener = Callable[[str], "Awaitable[bool] | bool"]
EventSink = Callable[["AuthEvent"], None]


class SignInCancelled(AuthError):
    """The user (or the app) cancelled the sign-in."""


class SignInTimeout(AuthError):
    """Nobody completed the sign-in in the browser in time."""


class Retired(AuthError):
    """This `ServerAuth` belongs to an older generation (server removed, renamed, signed out, changed)."""


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
        generation: int = 0,
        on_due: Callable[[], None] | None = None,
        after: asyncio.Task[Any] | None = None,
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
        self.generation = generation
        self.retired = False
        self._on_due = on_due  # the background lifecycle's nudge; None: refresh in the background here
        self._after = after  # a predecessor's refresh still in flight: its result is saved first
        self._entry: StoredAuth | None = None  # what is stored for this server, kept for the run
        self._loaded = False
        self.refresh_waits = 0  # requests that waited for a refresh (their token had expired)

    # -- what the HTTP layer asks ----------------------------------------------

    async def tokens(self) -> TokenSet | None:
        """The current tokens (from secure storage once, then kept in memory for the run)."""
        entry = await self._stored()
        return entry.tokens if entry else None

    async def _stored(self) -> StoredAuth | None:
        if not self._loaded:
            if self._after is not None and not self._after.done():
                await asyncio.wait({self._after}, timeout=self.settings.request_timeout)
            self._after = None
            entry = await self._store.load(self.settings.server_id)
            if not self._loaded:  # a save may have happened meanwhile; it is newer
                self._entry, self._loaded = entry, True
        return self._entry

    async def _save(self, entry: StoredAuth) -> None:
        """Keep and store `entry`, unless this generation is over (then the result is dropped)."""
        if self.retired:
            log.info("%s: dropping a result of an ended sign-in generation (%d)", self.settings.server_id,
                     self.generation)
            raise Retired("the server was removed, renamed, signed out or changed meanwhile")
        self._entry, self._loaded = entry, True
        await self._store.save(self.settings.server_id, entry)

    def retire(self) -> None:
        """End this generation: cancel its sign-in; whatever arrives later is dropped, never saved."""
        self.retired = True
        self.cancel()

    @property
    def refreshing(self) -> asyncio.Task[TokenSet] | None:
        """The refresh in flight, if any."""
        task = self._refreshing
        return task if task is not None and not task.done() else None

    async def current_token(self) -> TokenSet | None:
        """The token to send now. A valid token is used at once, even when due (the refresh
        then runs in the background); only an expired one waits for the single refresh."""
        tokens = await self.tokens()
        if tokens is None or tokens.expires_at is None:
            return tokens
        now = self._clock()
        if now < tokens.expires_at:
            if tokens.refresh_token and now >= refresh_due_at(tokens):
                self._refresh_in_background()
            return tokens
        if not tokens.refresh_token:
            return None  # expired, nothing to refresh with: the 401 leads to a sign-in
        self.refresh_waits += 1
        try:
            return await self._refresh_shared()
        except AuthError as e:
            if isinstance(e, TokenError) and not e.transient:
                return None  # e.g. invalid_grant: the next 401 leads to a sign-in
            log.warning("%s: refresh failed (%s)", self.settings.server_id, e)
            raise AuthNetworkError(f"the token expired and refreshing it failed: {e}") from None

    def _refresh_in_background(self) -> None:
        if self._on_due is not None:
            self._on_due()  # the lifecycle refreshes (it knows about backoff)
        elif self.refreshing is None:
            self._start_refresh()

    async def on_unauthorized(self, challenge: BearerChallenge | None, sent: TokenSet | None) -> TokenSet:
        """A `401`: another request may already have a fresh token; else refresh; else sign in."""
        self._event("challenge", _describe_challenge(401, challenge))
        tokens = await self.tokens()
        newer = tokens is not None and (sent is None or tokens.access_token != sent.access_token)
        if newer and tokens is not None and not tokens.expires_within(0, self._clock()):
            return tokens  # a refresh or sign-in finished since this request left: retry with its token
        if tokens is not None and tokens.refresh_token:
            try:
                return await self._refresh_shared()
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
        entry = await self._stored() or StoredAuth()
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
                        await self._save(entry)
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
                    await self._save(entry)
                    self._event("client", "the authorization server no longer knows this client; registering again")
                    continue
                raise
            entry = replace(entry.with_registration(reg), tokens=tokens, token_endpoint=meta.token_endpoint,
                            revocation_endpoint=meta.revocation_endpoint)
            await self._save(entry)
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
        """When to refresh (see `_schedule`)."""
        return refresh_due_at(tokens)

    async def refresh_now(self) -> TokenSet:
        """Refresh the current tokens now, or join the refresh already in flight."""
        return await self._refresh_shared()

    def _start_refresh(self) -> asyncio.Task[TokenSet]:
        task = asyncio.get_running_loop().create_task(self._refresh(), name=f"refresh:{self.settings.server_id}")
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
        self._refreshing = task
        return task

    async def _refresh_shared(self) -> TokenSet:
        """At most one refresh per server in flight; everyone who needs one joins it."""
        task = self.refreshing or self._start_refresh()
        return await asyncio.shield(task)

    async def _refresh(self) -> TokenSet:
        """One refresh_token grant with the newest refresh token; the result is saved before it counts."""
        if self.retired:
            raise Retired("the server was removed, renamed, signed out or changed")
        entry = await self._stored() or StoredAuth()
        tokens = entry.tokens
        if tokens is None or not tokens.refresh_token:
            raise TokenError("no refresh token to refresh with", error="invalid_grant")
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
            if not e.transient:
                # the refresh token is dead: forget it, keep the registration, and keep using the
                # access token while it lasts (the request after its expiry signs in, once)
                latest = self._entry or entry
                left = replace(tokens, refresh_token=None) if not tokens.expires_within(0, self._clock()) else None
                await self._save(replace(latest, tokens=left))
            raise
        latest = self._entry or entry
        await self._save(replace(latest, tokens=fresh))
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
