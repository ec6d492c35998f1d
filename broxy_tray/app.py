"""Wires config, reload, reconcile, supervisor and state together on one loop.

`App` is UI-agnostic: the headless runner and the tray both drive it the same
way (start, user intents, shutdown) and watch it through the `StateStore`.
Every method runs on the asyncio loop; file reads and writes go to a worker
thread so the loop never blocks on the disk.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import webbrowser
from pathlib import Path
from typing import Any, Callable, Mapping

from . import _logging
from .config import (
    Config,
    ConfigFileError,
    ConfigIssue,
    ConfigWatcher,
    Plan,
    load_config,
    parse_config,
    reconcile,
    remove_stale_temp_copies,
    set_enabled,
)
from .config._expand import Sources
from .servers import LiveRunner, ServerRunner, Supervisor
from .state import AuthNotice, ConfigEvent, ServerStatus, StateStore

log = logging.getLogger(__name__)

RELOAD_RETRY_MIN = 0.5
RELOAD_RETRY_MAX = 10.0
SECRET_RETRY = 15.0
"""Seconds between attempts to read secrets from a keyring that was locked or did not answer."""


class IntentError(Exception):
    """A user intent cannot be carried out (unknown server, nothing to cancel, …); the message says why."""


class App:
    """The running broxy-tray core for one `mcp.json`."""

    def __init__(
        self,
        config_path: Path,
        *,
        store: StateStore | None = None,
        runner: ServerRunner | None = None,
        environ: Mapping[str, str] | None = None,
        watch: bool = True,
        debounce: float | None = None,
        credentials: object | None = None,
        open_browser: Callable[[str], Any] | None = None,
        secrets: Any | None = None,
    ) -> None:
        from .auth._coordinator import AuthCoordinator

        self.config_path = config_path
        self.store = store or StateStore(str(config_path))
        if credentials is None:
            from .auth._keyring_store import KeyringStore

            credentials = KeyringStore()
        if hasattr(credentials, "on_change") and getattr(credentials, "on_change") is None:
            credentials.on_change = lambda cs: self.store.set_storage(cs.description)  # type: ignore[attr-defined]
        self.credentials = credentials
        self.auth = AuthCoordinator(self.credentials, open_browser=open_browser or _open_in_browser,  # type: ignore[arg-type]
                                    on_notice=self._on_auth_notice)
        from .proxy import Proxy
        from .servers._sessions import SessionRegistry

        self.sessions = SessionRegistry()
        """Live sessions of Available servers (fed by the default LiveRunner), for the proxy."""
        self.supervisor = Supervisor(self.store, runner or LiveRunner(auth=self.auth, sessions=self.sessions))
        self.proxy = Proxy(self.sessions, store=self.store, config=lambda: self._config)
        """The MCP facade the control channel's `mcp` command relays clients to (`broxy-tray stdio`)."""
        from .proxy import EndpointManager

        self.endpoint = EndpointManager(self)
        """The optional Streamable HTTP endpoint on 127.0.0.1 (`"endpoint"` in mcp.json); `.error` says why it is off."""
        self._environ = environ
        if secrets is None:
            from .secrets import SecretStore

            secrets = SecretStore()
        self.secrets = secrets
        """Values for `${NAME}` missing from the environment (`broxy_tray.secrets.SecretStore`)."""
        self._secret_values: dict[str, str] = {}  # read from the store at the last reload, for names the environment lacks
        self._secret_error: str | None = None  # why the store could not be read (variables then show missing)
        self._last_secret_error: str | None = None  # the reason last logged as a warning (a retry repeats it at INFO)
        self._force_reload = False
        self._watch = watch
        self._debounce = debounce
        self._config: Config | None = None  # the effective (last good) config
        self._digest: str | None = None  # of the text the running config came from
        self._watcher: ConfigWatcher | None = None
        self._reload_lock = asyncio.Lock()
        self._reload_again = False
        self._deleted_reported = False
        self._pending: set[asyncio.Task[None]] = set()
        self.quit_requested = asyncio.Event()
        self._disabled_reasons: dict[str, str] = {}  # why a server was saved as disabled by us
        self._preloading: asyncio.Task[None] | None = None
        self._closing = False
        self._reload_retry: asyncio.TimerHandle | None = None
        self._reload_retry_delay = 0.0

    @property
    def config(self) -> Config | None:
        return self._config

    async def start(self) -> None:
        """Begin watching the file, then load it and start what it enables.

        Watching first means a save that lands during the first load is never missed.
        """
        await asyncio.to_thread(remove_stale_temp_copies, self.config_path)  # a kill mid-save left them
        if getattr(self.credentials, "open", None) is None:  # a plain in-memory store
            self.store.set_storage(getattr(self.credentials, "description", "in memory for this run"))
        if self._watch:
            loop = asyncio.get_running_loop()
            kwargs = {"debounce": self._debounce} if self._debounce is not None else {}
            self._watcher = ConfigWatcher(self.config_path, self._on_file_changed, loop, **kwargs)
            await asyncio.to_thread(self._watcher.start)
        await self.reload()

    async def shutdown(self) -> None:
        """Stop watching, cancel pending reloads and sign-ins, stop every server."""
        self._closing = True  # a sign-in cancelled by quitting is not the user's cancel: mcp.json stays as it is
        if self._watcher is not None:
            await asyncio.to_thread(self._watcher.stop)
            self._watcher = None
        if self._reload_retry is not None:
            self._reload_retry.cancel()
        for t in list(self._pending):
            t.cancel()
        if self._pending:
            await asyncio.wait(self._pending, timeout=5)
        await self.endpoint.close()  # clients go before the servers they reach
        await self.supervisor.close()
        self.proxy.close()
        await self.auth.close()
        for store in (self.credentials, self.secrets):
            closer = getattr(store, "close", None)
            if closer is not None:
                closer()

    def _on_file_changed(self) -> None:
        self._track(asyncio.get_running_loop().create_task(self.reload(), name="config-reload"))

    async def reload(self) -> None:
        """Re-read the file and apply what changed. Concurrent calls coalesce."""
        if self._reload_lock.locked():
            self._reload_again = True
            return
        async with self._reload_lock:
            while True:
                self._reload_again = False
                await self._reload_once()
                if not self._reload_again:
                    break

    async def _reload_once(self) -> None:
        first = self._config is None and self._digest is None
        force, self._force_reload = self._force_reload, False
        known = self._secret_values
        self._secret_values, self._secret_error = {}, None  # every reload asks the store again (a retry after unlock)
        try:
            config, text = await asyncio.to_thread(load_config, self.config_path, self._sources())
        except ConfigFileError as e:
            self._secret_values = known  # nothing was re-read: keep what this run already had
            self._report_file_error(e.issue)
            if e.transient:
                self._retry_reload()
            return
        if await self._read_secrets(config.missing_variables(), known):
            config = await asyncio.to_thread(parse_config, text, str(self.config_path), self._sources())
        self._reload_retry_delay = 0.0
        digest = self._digest_of(text)
        if digest == self._digest and self.store.state.config_error is None and not force:
            return  # touched, not changed
        self._digest = digest
        self._deleted_reported = False
        _logging.register_secrets(_secrets_of(config))
        for w in config.warnings:
            log.warning("%s", w)
        plan = reconcile(self._config, config)
        self._config = plan.config
        for e in config.errors:
            log.error("%s", e)
        self.store.set_config_error(None)
        self.store.publish(_config_event("loaded" if first else "reloaded", plan, config.errors))
        held = {
            sid: f"{_first_problem(config, sid)} — still running the last good settings" for sid in plan.held
        }
        # stop the connections of servers whose stored sign-in changes, then their auth, then storage
        await self.supervisor.stop([a.source or a.server for a in plan.auth if a.kind != "step-up"])
        await self.auth.apply(plan.auth)
        for sid in plan.start:
            self._disabled_reasons.pop(sid, None)
        await self.supervisor.apply(plan, held, self._disabled_reasons)
        self.auth.forget_missing(plan.config)
        self._maybe_preload(plan.config)
        await self.endpoint.apply(plan.config)  # start, move (port change) or stop the HTTP endpoint
        if not plan.is_noop:
            log.info(
                "config %s: start=%s stop=%s restart=%s keep=%s",
                "loaded" if first else "reloaded",
                list(plan.start), list(plan.stop), list(plan.restart), list(plan.keep),
            )

    def _sources(self) -> Sources:
        env = os.environ if self._environ is None else self._environ
        return Sources(env, dict(self._secret_values), self._secret_error)

    def _digest_of(self, text: str) -> str:
        """Of the text and what the secret store supplied: a changed secret is a changed config."""
        h = hashlib.sha256(text.encode("utf-8"))
        for name, value in sorted(self._secret_values.items()):
            h.update(b"\0" + name.encode() + b"\0" + value.encode("utf-8", "surrogatepass"))
        h.update(b"\0" + (self._secret_error or "").encode())
        return h.hexdigest()

    async def _read_secrets(self, names: tuple[str, ...], known: dict[str, str]) -> bool:
        """Fetch from the secret store the variables the environment lacks; True if that changed anything.

        Off the loop and bounded by the store's timeout (a keyring still stuck on an unlock
        prompt fails at once); a locked or missing keyring leaves those variables missing,
        with the reason in their servers' errors — except values this run already read
        (`known`): a keyring locked later on does not stop what runs.
        """
        if not names or self.secrets is None:
            return False
        from .secrets import SecretStoreUnavailable

        try:
            found = await self.secrets.get_many(names)
        except SecretStoreUnavailable as e:
            again = e.reason == self._last_secret_error
            log.log(logging.INFO if again else logging.WARNING,
                    "secret store unavailable; %s reported missing: %s", ", ".join(names), e.reason)
            self._secret_error = self._last_secret_error = e.reason
            self._secret_values = {n: known[n] for n in names if n in known}
            # a keyring locked at login is unlocked later without any file event: ask it again by ourselves
            self._retry_reload(SECRET_RETRY, quiet=True)
            return True
        self._last_secret_error = None
        _logging.register_secrets(found.values())
        self._secret_values = found
        return bool(found)

    async def secrets_changed(self) -> dict[str, Any]:
        """A secret was set, changed or removed: re-read the store and re-expand mcp.json now.

        Only servers whose expanded settings changed restart (the reconciler's rule).
        """
        self._force_reload = True
        await self.reload()
        while self._reload_lock.locked():  # a reload already running picks the change up; wait for it
            await asyncio.sleep(0.02)
        return {"secretStoreError": self._secret_error, "configError": self.store.state.config_error}

    async def set_secret(self, name: str, value: str) -> None:
        """Store a secret (e.g. from the tray's "Set NAME…" prompt) and apply it at once."""
        from .secrets import InvalidSecretName, SecretStoreUnavailable

        if self.secrets is None:
            raise IntentError("this instance has no secret store")
        try:
            await self.secrets.set(name, value)
        except (SecretStoreUnavailable, InvalidSecretName, ValueError) as e:
            raise IntentError(f"could not store {name}: {e}") from None
        await self.secrets_changed()

    def _retry_reload(self, delay: float | None = None, *, quiet: bool = False) -> None:
        """Reading failed for lack of resources (no descriptor left; by default backing off from 0.5 s
        to 10 s) or the secret store could not be read (`delay`): no file event will come, so try
        again by ourselves until it works."""
        if self._closing or (self._reload_retry is not None and not self._reload_retry.cancelled()):
            return
        if delay is None:
            delay = min(RELOAD_RETRY_MAX, max(RELOAD_RETRY_MIN, self._reload_retry_delay * 2))
            self._reload_retry_delay = delay
        log.log(logging.DEBUG if quiet else logging.WARNING, "will read %s again in %.1f s", self.config_path, delay)

        def fire() -> None:
            self._reload_retry = None
            self._on_file_changed()

        self._reload_retry = asyncio.get_running_loop().call_later(delay, fire)

    def _maybe_preload(self, config: Config) -> None:
        """Warm up, off the loop, what a server about to connect needs: secure storage (remote
        servers) and the MCP SDK import (any enabled or remote server).

        Enabling a server (or signing in) then starts within milliseconds instead of
        waiting ~0.5 s for the import; a config of disabled local servers costs nothing.
        """
        if self._preloading is not None:
            return
        remote = any(s.transport is not None and s.transport.is_remote for s in config.servers)
        if any(s.enabled for s in config.servers) or remote:
            self._preloading = asyncio.get_running_loop().create_task(self._preload(remote), name="preload")
            self._track(self._preloading)

    async def _preload(self, remote: bool) -> None:
        opener = getattr(self.credentials, "open", None)
        if remote and opener is not None:
            # secure storage is needed only for remote servers: find its backend now (off the loop,
            # bounded by a timeout) so the menu can name it; `keyring` costs ~18 MiB to load
            await opener()
            self.store.set_storage(getattr(self.credentials, "description", ""))
        from .mcp import preload_sdk

        await preload_sdk()

    def _report_file_error(self, issue: ConfigIssue) -> None:
        running = self._config is not None
        if issue.message == "file not found" and running:
            if self._deleted_reported:
                return
            self._deleted_reported = True
            message = f"{issue.file} was deleted; keeping the last good configuration running"
        else:
            suffix = "; keeping the last good configuration running" if running else ""
            message = f"{issue}{suffix}"
        log.error("%s", message)
        self.store.set_config_error(message)
        self.store.publish(ConfigEvent(action="error", errors=(issue,), message=message))

    # -- user intents (the tray menu, the control channel and the CLI call these) --

    def _known(self, server_id: str):  # type: ignore[no-untyped-def]
        server = self._config.server(server_id) if self._config else None
        if server is None:
            raise IntentError(f"no server {server_id!r} in {self.config_path}")
        return server

    async def set_enabled(self, server_id: str, enabled: bool) -> bool:
        """Write `enabled` into mcp.json (minimal edit) and apply it now."""
        self._known(server_id)
        changed = await asyncio.to_thread(set_enabled, self.config_path, server_id, enabled)
        await self.reload()
        return changed

    async def retry(self, server_id: str) -> None:
        """Reconnect now instead of waiting for the backoff (an enabled, valid server)."""
        server = self._known(server_id)
        if not server.enabled or not server.valid:
            raise IntentError(f"{server_id} is {'disabled' if not server.enabled else 'not valid'}; nothing to retry")
        if self.auth.signing_in(server_id):
            return  # the connection waits for the sign-in; restarting it would only hide the countdown
        await self.supervisor.restart(server_id)

    async def authorize(self, server_id: str) -> None:
        """Start (or restart) the browser sign-in for a remote server; returns once it has started."""
        from .auth._coordinator import uses_oauth

        server = self._known(server_id)
        if not uses_oauth(server):
            why = "has an Authorization header" if server.has_authorization_header else "is not an OAuth server"
            raise IntentError(f"{server_id} {why}; there is nothing to sign in to")
        if not server.enabled:
            await self.set_enabled(server_id, True)  # connecting signs in if it needs to
            return
        if self.auth.signing_in(server_id):
            return  # one sign-in per server: this one joins
        assert self._config is not None
        config = self._config

        async def run() -> None:
            try:
                await self.auth.authorize(server, config)
            except Exception as e:  # reported through the auth notices
                log.info("%s: re-authorization ended: %s", server_id, e)
                return
            await self.supervisor.restart(server_id)  # reconnect with the new token

        self._track(asyncio.get_running_loop().create_task(run(), name=f"authorize:{server_id}"))

    async def cancel_authorization(self, server_id: str) -> bool:
        """Cancel a running sign-in; the server is then saved as disabled."""
        self._known(server_id)
        if not self.auth.cancel(server_id):
            raise IntentError(f"no sign-in is running for {server_id}")
        return True

    async def sign_out(self, server_id: str) -> None:
        """Revoke and forget the server's tokens, and save it as disabled (enable it to sign in again)."""
        server = self._known(server_id)
        from .auth._coordinator import uses_oauth

        if not uses_oauth(server):
            raise IntentError(f"{server_id} does not use OAuth sign-in")
        await self.auth.sign_out(server_id)
        self._disabled_reasons[server_id] = "signed out"
        if server.enabled:
            await self.set_enabled(server_id, False)
        else:
            self.store.update_server(server_id, detail="signed out")

    # -- sign-in progress → state ------------------------------------------------------

    def _on_auth_notice(self, n: AuthNotice) -> None:
        if n.action == "started":
            self.store.update_server(n.server, status=ServerStatus.AUTHORIZATION, seconds_left=n.seconds_left,
                                     auth_url=n.url, detail="", tools=None)
        elif n.action == "tick":
            current = self.store.state.server(n.server)
            if current is not None and current.status is ServerStatus.AUTHORIZATION:
                self.store.update_server(n.server, seconds_left=n.seconds_left)
            return  # ticks are status changes, not events of their own
        elif n.action == "succeeded":
            self.store.update_server(n.server, status=ServerStatus.CONNECTING, seconds_left=None, auth_url=None)
        elif n.action in ("failed", "cancelled") and not self._closing:
            reason = n.reason or "sign-in failed"
            self._disabled_reasons[n.server] = reason
            self.store.update_server(n.server, seconds_left=None, auth_url=None)
            self._track(asyncio.get_running_loop().create_task(self._save_disabled(n.server, reason)))
        self.store.publish(n)

    async def _save_disabled(self, server_id: str, reason: str) -> None:
        """After a cancelled or failed sign-in the server is saved as disabled, with the reason shown."""
        from .config import ConfigWriteError

        try:
            changed = await asyncio.to_thread(set_enabled, self.config_path, server_id, False)
        except ConfigWriteError as e:
            log.error("%s: could not save it as disabled: %s", server_id, e)
            self.store.update_server(server_id, status=ServerStatus.ERROR, detail=f"{reason}; {e}")
            return
        if changed:
            await self.reload()
        else:
            self.store.update_server(server_id, status=ServerStatus.DISABLED, detail=reason)

    def _track(self, task: asyncio.Task[None]) -> None:
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def request_quit(self) -> None:
        """Ask the runner (tray or headless) to shut down cleanly."""
        self.quit_requested.set()


async def _open_in_browser(url: str) -> bool:
    """The default browser opener: Python's webbrowser (honours $BROWSER), off the event loop."""
    try:
        return await asyncio.to_thread(webbrowser.open, url)
    except Exception:
        return False


def _first_problem(config: Config, server_id: str) -> str:
    s = config.server(server_id)
    return s.problems[0].message if s and s.problems else "invalid entry"


def _config_event(action: str, plan: Plan, errors: tuple[ConfigIssue, ...]) -> ConfigEvent:
    return ConfigEvent(
        action=action,
        started=plan.start,
        stopped=plan.stop,
        restarted=plan.restart,
        updated=plan.keep,
        unchanged=plan.unchanged,
        removed=plan.removed,
        auth_cleared=tuple(a.server for a in plan.auth_of("clear")),
        auth_moved=tuple((a.source or "", a.server) for a in plan.auth_of("move")),
        auth_dropped=tuple(a.server for a in plan.auth if a.kind in ("drop-tokens", "drop-client")),
        errors=errors,
    )


def _secrets_of(config: Config) -> list[str]:
    """Values that must never reach a log line, even by accident."""
    out: list[str] = []
    for s in config.servers:
        out.extend(s.headers.values())
        out.extend(s.env.values())
        if s.auth and s.auth.client_secret:
            out.append(s.auth.client_secret)
    return out
