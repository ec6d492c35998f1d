"""OAuth for the whole app: one `ServerAuth` per server, the shared store, the countdown, refresh timers.

The coordinator is UI-agnostic. It hands the connection layer an
`httpx2.Auth` per server, executes the reconciler's auth actions (clear,
move, drop), keeps tokens fresh in the background (one `TokenLifecycle` per
server), and reports sign-in progress as `AuthNotice`s: started (with the
URL), a tick every second with the seconds left, succeeded, failed (with the
reason), cancelled.

Every per-server `ServerAuth` is one *generation*: removing, renaming,
signing out or changing a server ends it (its tasks stop first, then
storage changes), and whatever it still receives — a refresh answer, a
sign-in — is dropped, never saved, so a removed server cannot come back.
A refresh in flight is never abandoned where that would lose a rotated
refresh token: quitting and renaming wait for it (at most
`REFRESH_SETTLE` seconds) so the new token is saved first.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ..config import AuthAction, Config, ServerConfig
from ..state import AuthNotice
from ._errors import AuthError

if TYPE_CHECKING:  # the real imports wait until a server uses OAuth (httpx2, pydantic models)
    import httpx2

    from ._lifecycle import TokenLifecycle
    from ._signin import AuthEvent, AuthSettings, ServerAuth
    from ._store import CredentialStore

log = logging.getLogger(__name__)

REFRESH_SETTLE = 5.0  # the longest quit, rename or sign-out waits for a refresh in flight


def settings_for(server: ServerConfig, config: Config) -> AuthSettings:
    from ._client import ClientSettings
    from ._signin import AuthSettings

    a = server.auth
    return AuthSettings(
        server_id=server.id,
        server_name=server.name,
        server_url=server.url or "",
        client=ClientSettings(
            client_id=a.client_id if a else None,
            client_secret=a.client_secret if a else None,
            client_id_metadata_url=a.client_id_metadata_url if a else None,
            token_endpoint_auth_method=a.token_endpoint_auth_method if a else None,
            allow_dynamic_registration=a.allow_dynamic_registration if a else True,
        ),
        configured_issuer=a.authorization_server if a else None,
        configured_scopes=a.scopes if a else None,
        redirect_uri=a.redirect_uri if a else None,
        authorization_timeout=config.authorization_timeout,
        request_timeout=min(config.request_timeout, 30.0),
    )


def uses_oauth(server: ServerConfig) -> bool:
    """Remote, valid, and without a user-managed Authorization header."""
    return bool(server.valid and server.transport and server.transport.is_remote and not server.has_authorization_header)


@dataclass
class _Entry:
    auth: ServerAuth
    settings: AuthSettings
    lifecycle: TokenLifecycle
    ticker: asyncio.Task[None] | None = None
    failure: str | None = None  # why the last sign-in ended without tokens (cancel, timeout, error)


class AuthCoordinator:
    """Call from the event loop only."""

    def __init__(
        self,
        store: CredentialStore,
        *,
        open_browser: Callable[[str], Any],
        on_notice: Callable[[AuthNotice], None],
        clock: Callable[[], float] = time.time,
        http: httpx2.AsyncClient | None = None,
    ) -> None:
        self.store = store
        self._open_browser = open_browser
        self._on_notice = on_notice
        self._clock = clock
        self._http = http
        self._entries: dict[str, _Entry] = {}
        self._generations = itertools.count(1)
        self._draining: dict[str, asyncio.Task[Any]] = {}  # refreshes in flight of servers no longer managed

    # -- for the connection layer ------------------------------------------------

    def auth_for(self, server: ServerConfig, config: Config) -> httpx2.Auth | None:
        """The `httpx2.Auth` for this server's connection (None: no OAuth for it)."""
        if not uses_oauth(server):
            return None
        from ._bearer import BearerAuth

        return BearerAuth(self._entry(server, config).auth)

    def signin_failure(self, server_id: str) -> str | None:
        """Why the last sign-in of this server ended without tokens (then: do not retry on a timer)."""
        entry = self._entries.get(server_id)
        return entry.failure if entry else None

    def _entry(self, server: ServerConfig, config: Config) -> _Entry:
        settings = settings_for(server, config)
        entry = self._entries.get(server.id)
        if entry is not None and entry.settings == settings:
            return entry
        after = None
        if entry is not None:  # settings changed under a running entry: a new generation
            self._entries.pop(server.id)
            self._stop(entry)
            entry.auth.retire()
        else:
            after = self._draining.pop(server.id, None)  # e.g. re-enabled while its last refresh still runs
            if after is not None and after.done():
                after = None
        from ._lifecycle import TokenLifecycle
        from ._signin import ServerAuth

        generation = next(self._generations)
        lifecycle_ref: list[TokenLifecycle] = []
        auth = ServerAuth(settings, store=self.store, http=self._client(), open_browser=self._open_browser,
                          on_event=lambda e: self._on_event(server.id, generation, e), clock=self._clock,
                          generation=generation, on_due=lambda: lifecycle_ref[0].nudge(), after=after)
        lifecycle = TokenLifecycle(auth, wall=self._clock)
        lifecycle_ref.append(lifecycle)
        entry = _Entry(auth, settings, lifecycle)
        self._entries[server.id] = entry
        lifecycle.start()
        return entry

    def _client(self) -> httpx2.AsyncClient:
        if self._http is None:
            import httpx2

            from ..mcp._http import shared_ssl_context

            self._http = httpx2.AsyncClient(verify=shared_ssl_context(), follow_redirects=False,
                                            timeout=httpx2.Timeout(30.0))
        return self._http

    # -- events from the ServerAuths ------------------------------------------------

    def _on_event(self, server_id: str, generation: int, event: AuthEvent) -> None:
        entry = self._entries.get(server_id)
        if entry is None or entry.auth.generation != generation:
            return  # news from an ended generation
        if event.kind == "authorize":
            entry.failure = None
            self._start_ticker(server_id, entry, event.url or "")
        elif event.kind == "token":
            self._stop_ticker(entry)
            entry.failure = None
            self._notify(AuthNotice(server_id, "succeeded"))
            entry.lifecycle.nudge()
        elif event.kind == "refreshed":
            entry.lifecycle.nudge()
        elif event.kind in ("failed", "cancelled"):
            self._stop_ticker(entry)
            entry.failure = event.message
            self._notify(AuthNotice(server_id, event.kind, reason=event.message))

    def _start_ticker(self, server_id: str, entry: _Entry, url: str) -> None:
        self._stop_ticker(entry)
        timeout = entry.settings.authorization_timeout
        started = time.monotonic()
        self._notify(AuthNotice(server_id, "started", url=url, seconds_left=int(timeout)))

        async def tick() -> None:
            while True:
                left = timeout - (time.monotonic() - started)
                if left <= 0:
                    return
                await asyncio.sleep(left - int(left) or 1.0)  # land on whole seconds
                left = max(0, int(round(timeout - (time.monotonic() - started))))
                self._notify(AuthNotice(server_id, "tick", url=url, seconds_left=left))

        entry.ticker = asyncio.get_running_loop().create_task(tick(), name=f"auth-countdown:{server_id}")

    def _stop_ticker(self, entry: _Entry) -> None:
        if entry.ticker is not None:
            entry.ticker.cancel()
            entry.ticker = None

    def _notify(self, notice: AuthNotice) -> None:
        try:
            self._on_notice(notice)
        except Exception:
            log.exception("auth notice listener failed")

    # -- intents -------------------------------------------------------------------------

    def cancel(self, server_id: str) -> bool:
        entry = self._entries.get(server_id)
        return entry.auth.cancel() if entry else False

    def signing_in(self, server_id: str) -> bool:
        entry = self._entries.get(server_id)
        return bool(entry and entry.auth.signing_in)

    async def authorize(self, server: ServerConfig, config: Config) -> None:
        """Force a new browser sign-in (re-authorize); returns when it ends."""
        if not uses_oauth(server):
            raise AuthError(f"{server.id} does not use OAuth sign-in")
        await self._entry(server, config).auth.sign_in()

    async def sign_out(self, server_id: str) -> None:
        """Revoke what the AS lets us revoke, then forget the server's tokens."""
        await self._end(server_id, settle=REFRESH_SETTLE)  # the newest tokens are the ones to revoke
        stored = await self.store.load(server_id)
        if stored and stored.tokens and stored.revocation_endpoint:
            reg = stored.registration_for(stored.tokens.issuer)
            if reg is not None:
                from ._drive import drive
                from ._tokens import revoke

                for token, hint in ((stored.tokens.refresh_token, "refresh_token"),
                                    (stored.tokens.access_token, "access_token")):
                    if not token:
                        continue
                    try:
                        await drive(revoke(reg, stored.revocation_endpoint, token, hint), self._client(), timeout=10)
                    except AuthError as e:
                        log.warning("%s: revoking the %s failed: %s", server_id, hint.replace("_", " "), e)
        if stored is not None:
            await self.store.save(server_id, replace(stored, tokens=None))
        log.info("%s: signed out", server_id)

    async def apply(self, actions: tuple[AuthAction, ...]) -> None:
        """Execute the reconciler's auth actions: first end the generations concerned, then change storage."""
        ending = [a.server for a in actions if a.kind in ("clear", "drop-tokens", "drop-client")]
        ending += [a.server for a in actions if a.kind == "move"]
        moving = [a.source for a in actions if a.kind == "move" and a.source]
        for sid in ending:
            await self._end(sid)
        # a renamed server's refresh in flight may land first (≤ REFRESH_SETTLE s): its rotated token moves along
        await asyncio.gather(*(self._end(sid, settle=REFRESH_SETTLE) for sid in moving))
        for a in actions:
            try:
                if a.kind == "clear":
                    await self.store.delete(a.server)
                elif a.kind == "move" and a.source:
                    entry = await self.store.load(a.source)
                    if entry is not None:
                        await self.store.save(a.server, entry)
                    await self.store.delete(a.source)
                elif a.kind == "drop-tokens":
                    entry = await self.store.load(a.server)
                    if entry is not None:
                        await self.store.save(a.server, replace(entry, tokens=None))
                elif a.kind == "drop-client":
                    await self.store.delete(a.server)
                # step-up: the next 403 insufficient_scope asks for the union; nothing to do now
                log.info("auth: %s %s (%s)", a.kind, a.server, a.reason)
            except Exception:
                log.exception("auth: %s for %s failed", a.kind, a.server)

    async def _end(self, server_id: str, *, settle: float = 0.0) -> None:
        """End the server's generation: stop its tasks, optionally let a refresh in flight land (≤ `settle`
        seconds, so a rotated refresh token is saved), then drop whatever arrives later."""
        entry = self._entries.pop(server_id, None)
        pending = self._draining.pop(server_id, None)
        tasks = {t for t in (pending, entry.auth.refreshing if entry else None) if t is not None and not t.done()}
        if entry is not None:
            self._stop(entry)
            entry.auth.cancel()
        if tasks and settle > 0:
            await asyncio.wait(tasks, timeout=settle)
        if entry is not None:
            entry.auth.retire()
        if pending is not None and not pending.done():
            pending.cancel()  # a disabled server's refresh, now of a server that is gone

    def forget_missing(self, config: Config) -> None:
        """Stop the timers of servers that are gone or disabled.

        A disabled server keeps its tokens, so a refresh in flight still lands and is saved.
        """
        keep = {s.id for s in config.servers if s.enabled and uses_oauth(s)}
        for sid in [sid for sid in self._entries if sid not in keep]:
            entry = self._entries.pop(sid)
            self._stop(entry)
            entry.auth.cancel()
            if entry.auth.refreshing is not None:
                self._draining[sid] = entry.auth.refreshing

    def _stop(self, entry: _Entry) -> None:
        self._stop_ticker(entry)
        entry.lifecycle.stop()

    def lifecycle(self, server_id: str) -> TokenLifecycle | None:
        """The server's background refresher (diagnostics and tests)."""
        entry = self._entries.get(server_id)
        return entry.lifecycle if entry else None

    async def close(self) -> None:
        """Shutdown: stop every timer and sign-in, let refreshes in flight land (≤ `REFRESH_SETTLE` s)."""
        tasks = {t for t in self._draining.values() if not t.done()}
        for entry in self._entries.values():
            self._stop(entry)
            entry.auth.cancel()
            if entry.auth.refreshing is not None:
                tasks.add(entry.auth.refreshing)
        if tasks:
            log.info("waiting for %d token refresh(es) in flight to be saved", len(tasks))
            _, late = await asyncio.wait(tasks, timeout=REFRESH_SETTLE)
            if late:
                log.warning("%d token refresh(es) did not finish within %.0f s", len(late), REFRESH_SETTLE)
        for entry in self._entries.values():
            entry.auth.retire()
        for task in tasks:
            task.cancel()  # (only the late ones are still running; their answers would be dropped anyway)
        self._entries.clear()
        self._draining.clear()
        if self._http is not None:
            await self._http.aclose()
            self._http = None
