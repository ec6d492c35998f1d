"""The tray runner: the App on an asyncio loop, a menu model for every snapshot, clicks turned into intents.

`TrayRunner` is what every tray backend shares: it builds the menu model
(`menu.build_menu`) from the latest immutable `AppState`, coalesces store
changes into one refresh, throttles refreshes that only tick a sign-in
countdown to one per second (any other change shows at once), and maps each
menu `Action` to an App intent or an OS action without ever blocking. A
backend subclass draws: `sni.SniTray` (Linux: StatusNotifierItem + dbusmenu
over D-Bus, all on the loop thread) or `_pystray_tray.PystrayTray` (macOS,
Windows, and the Linux XEmbed fallback: the toolkit on the main thread, the
loop in a "broxy-loop" thread). `_backend` chooses between them; anything
that fails raises `TrayUnavailable` with one line saying what to install and
the caller runs headless.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Protocol

from .. import __version__
from ..state import AppState
from . import desktop
from . import menu as m
from ._backend import (  # the public surface other modules and tests import from here
    GTK_BACKENDS,
    LINUX_INSTALL_HINT,
    SNI,
    XEMBED_HINT,
    TrayBackend,
    TrayUnavailable,
    choose_backend,
    load_backend,
    unavailable_reason,
)

__all__ = ["GTK_BACKENDS", "LINUX_INSTALL_HINT", "SNI", "XEMBED_HINT", "Autostart", "TrayBackend", "TrayRunner",
           "TrayUnavailable", "choose_backend", "load_backend", "run_tray", "unavailable_reason"]
from .icons import IconKind, png_bytes

log = logging.getLogger(__name__)

COUNTDOWN_REFRESH_SECONDS = 1.0


class Autostart(Protocol):
    """What the "Start at login" item needs: `broxy_tray.autostart.Autostart` (issue 7). May raise."""

    def is_enabled(self) -> bool: ...

    def enable(self) -> Any: ...

    def disable(self) -> Any: ...


# -- tracing (benchmarks) ------------------------------------------------------------------------

_TRACE = os.environ.get("BROXY_TRAY_TRACE")


def _trace(what: str) -> None:
    if _TRACE:
        with open(_TRACE, "a", encoding="utf-8") as f:
            f.write(f"{time.time():.6f} {what}\n")


# -- the runner ----------------------------------------------------------------------------------


class TrayRunner:
    """What every tray backend shares. Subclasses implement `run()`, `_call_in_gui()` and `_show()`."""

    def __init__(
        self,
        config_path: Path,
        backend: TrayBackend,
        *,
        autostart: Autostart | None = None,
        log_dir: Path | None = None,
        app_factory: Callable[[Path], Any] | None = None,
        version: str = __version__,
    ) -> None:
        self.config_path = config_path
        self.backend = backend
        self.autostart = autostart
        self.log_dir = log_dir
        self.version = version
        self._app_factory = app_factory
        self.exit_code = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._app: Any = None
        self._notes: Any = None
        self._quit_early = False
        self._latest = AppState(config_path=str(config_path))
        self._gui_pending = False
        self._delayed: asyncio.TimerHandle | None = None  # a throttled (countdown-only) refresh, loop thread
        self._shown_key: AppState | None = None
        self._last_refresh = 0.0
        self._model: tuple[m.MenuItem, ...] | None = None
        self._kind: IconKind | None = None
        self._title = ""
        self._autostart_on: bool | None = None
        self._importable: tuple[str, ...] = ()  # clients whose servers mcp.json lacks ("Import from …")
        self._offer: Any = None  # importer.ImportOffer, made on first use (keeps the importer off the start path)

    # what a backend implements

    def run(self) -> int:
        """Run until Quit (on the calling, main thread); returns the exit code."""
        raise NotImplementedError

    def _call_in_gui(self, fn: Callable[[], Any]) -> None:
        """Run `fn` on the thread that draws, soon (callable from any thread)."""
        raise NotImplementedError

    def _show(self, state: AppState, model: tuple[m.MenuItem, ...], menu_changed: bool) -> None:
        """Draw `state` (icon, title) and, when `menu_changed`, `model` (on the thread that draws)."""
        raise NotImplementedError

    async def _ui_start(self) -> None:
        """On the loop, before the App exists (backends living on the loop put their icon up here)."""

    async def _ui_stop(self) -> None:
        """On the loop, after the App shut down."""

    def _attach(self, app: Any) -> Callable[[], None]:
        """On the loop, once the App exists: anything else that follows its store; returns its closer."""
        return lambda: None

    def _initial_model(self) -> tuple[m.MenuItem, ...]:
        if self.autostart is not None:
            self._autostart_on = self._read_autostart()
        self._model = m.build_menu(self._latest, version=self.version, autostart=self._autostart_on,
                                   log_dir=str(self.log_dir or ""), importable=self._importable)
        return self._model

    # loop thread

    async def _amain(self) -> None:
        self._loop = asyncio.get_running_loop()
        try:
            await self._ui_start()
        except Exception as e:
            log.error("the tray could not start: %s", e)
            log.debug("tray start failure", exc_info=True)
            self.exit_code = 1
            return
        try:
            await self._run_app()
        finally:
            await self._ui_stop()

    async def _run_app(self) -> None:
        from .notifications import DesktopNotifications

        if self._app_factory is not None:
            app = self._app_factory(self.config_path)
        else:
            from ..app import App

            app = App(self.config_path)
        self._app = app
        self._notes = DesktopNotifications(app, open_url=desktop.open_url, icon_png=png_bytes(IconKind.AVAILABLE, 128))
        unsubscribe = app.store.subscribe(self._on_state)
        detach = self._attach(app)
        if self._quit_early:
            app.request_quit()
        control = None
        try:
            await app.start()
            if self._app_factory is None:  # the real app: reachable by broxy-tray status/enable/… (lock held by caller)
                from ..control import serve_app

                control = await serve_app(app, self.config_path)
            self._on_state(app.store.state, None)
            await self._offer_import()
            await app.quit_requested.wait()
            log.info("quit requested; shutting down")
        except Exception:
            log.exception("the app failed")
            self.exit_code = 1
        finally:
            try:
                if control is not None:
                    await control.close()
                await app.shutdown()
            finally:
                unsubscribe()
                detach()
                await self._notes.close()

    def request_quit(self) -> None:
        """From any thread: shut the app down cleanly; the tray stops when it has."""
        loop, app = self._loop, self._app
        if loop is None or app is None:
            self._quit_early = True
            return
        try:
            loop.call_soon_threadsafe(app.request_quit)
        except RuntimeError:  # loop already closed
            pass

    def _on_state(self, state: AppState, event: Any) -> None:
        """Store listener (loop thread): post at most one refresh; countdown-only changes at most 1/s."""
        self._latest = state
        _trace(f"state {state.revision}")
        countdown_only = self._shown_key is not None and m.without_countdown(state) == self._shown_key
        if self._gui_pending and (countdown_only or self._delayed is None):
            return  # the refresh already on its way reads the latest snapshot
        if self._delayed is not None:  # a real change overtakes a throttled countdown refresh
            self._delayed.cancel()
            self._delayed = None
        self._gui_pending = True
        delay = self._last_refresh + COUNTDOWN_REFRESH_SECONDS - time.monotonic() if countdown_only else 0.0
        if delay > 0 and self._loop is not None:
            self._delayed = self._loop.call_later(delay, self._post_delayed)
        else:
            self._call_in_gui(self._refresh)

    def _post_delayed(self) -> None:
        self._delayed = None
        self._call_in_gui(self._refresh)

    # UI thread

    def _refresh(self) -> None:
        self._gui_pending = False
        state = self._latest
        self._shown_key = m.without_countdown(state)
        self._last_refresh = time.monotonic()
        model = m.build_menu(state, version=self.version, autostart=self._autostart_on,
                             log_dir=str(self.log_dir or ""), importable=self._importable)
        changed = model != self._model
        if changed:
            self._model = model
        self._show(state, model, changed)
        if changed:
            _trace(f"menu {state.revision}")

    # UI thread

    def _dispatch(self, action: m.Action) -> None:
        """A menu click (UI thread): hand it on and return at once."""
        k, sid, payload = action.kind, action.server, action.payload
        log.info("menu: %s%s", k, f" {sid}" if sid else "")
        intents: dict[str, Callable[[Any], Any]] = {
            m.ENABLE: lambda app: app.set_enabled(sid, True),
            m.DISABLE: lambda app: app.set_enabled(sid, False),
            m.RETRY: lambda app: app.retry(sid),
            m.AUTHORIZE: lambda app: app.authorize(sid),
            m.SIGN_OUT: lambda app: app.sign_out(sid),
            m.CANCEL_AUTHORIZATION: lambda app: app.cancel_authorization(sid),
            m.RELOAD: lambda app: app.reload(),
        }
        if k in intents:
            self._intent(intents[k])
        elif k == m.QUIT:
            self.request_quit()
        elif k == m.OPEN_SIGN_IN and payload:
            desktop.open_url(payload)
        elif k in (m.COPY_SIGN_IN, m.COPY_ERROR) and payload:
            if not desktop.copy_text(payload, gtk=self.backend.glib):
                self._message(f"could not copy to the clipboard: {desktop.CLIPBOARD_HINT}")
        elif k == m.OPEN_CONFIG:
            desktop.open_path(payload or self.config_path)
        elif k == m.COPY_CLIENT_CONFIG:
            self._copy_client_config(Path(payload) if payload else self.config_path)
        elif k == m.OPEN_LOGS:
            folder = Path(payload) if payload else self.log_dir
            if folder is not None:
                folder.mkdir(parents=True, exist_ok=True)
                desktop.open_path(folder)
        elif k == m.SET_SECRET and payload:
            threading.Thread(target=self._set_secret, args=(payload, sid), name="secret-prompt", daemon=True).start()
        elif k == m.TOGGLE_AUTOSTART:
            self._toggle_autostart()
        elif k == m.IMPORT_SERVERS:
            self._import_servers()
        elif k == m.ABOUT:
            self._message(f"broxy-tray {self.version} · config {self.config_path}"
                          + (f" · logs {self.log_dir}" if self.log_dir else ""))

    def _set_secret(self, name: str, server: str | None = None) -> None:
        """"Set NAME…" (its own thread): the platform's password prompt, then store it and apply it at once."""
        from .secret_prompt import Cancelled, ask_secret

        answer = ask_secret(name, server=server)
        if answer is None:
            self._message(f"To set {name}, run in a terminal: broxy-tray secret set {name}")
        elif isinstance(answer, Cancelled):
            log.info("set %s: %s; nothing changed", name, answer.reason)
        else:
            self._intent(lambda app: app.set_secret(name, answer))

    def _copy_client_config(self, config_path: Path) -> None:
        """"Copy client config": the Claude Desktop snippet that launches `broxy-tray stdio` for this config."""
        from ..proxy._client_config import DEFAULT_CLIENT, client_config, where

        try:
            text = client_config(DEFAULT_CLIENT, config_path=config_path)
        except Exception as e:
            log.exception("could not render the client config")
            self._message(f"could not make the client config: {e}")
            return
        if desktop.copy_text(text, gtk=self.backend.glib):
            self._message(f"Client config copied. {where(DEFAULT_CLIENT)}")
        else:
            self._message("could not copy to the clipboard; `broxy-tray client-config` prints the same snippet")

    def _intent(self, make: Callable[[Any], Any]) -> None:
        if self._loop is None or self._app is None:
            self._message("still starting; try again in a moment")
            return
        try:
            asyncio.run_coroutine_threadsafe(self._run_intent(make), self._loop)
        except RuntimeError:  # the loop has closed (e.g. a password prompt answered after Quit)
            log.info("menu action after shutdown ignored")

    async def _run_intent(self, make: Callable[[Any], Any]) -> None:
        from ..app import IntentError

        try:
            await make(self._app)
        except IntentError as e:
            log.info("menu action not done: %s", e)
            self._notes.message(str(e))
        except Exception as e:
            log.exception("menu action failed")
            self._notes.message(f"that did not work: {e}")

    def _message(self, text: str) -> None:
        loop, notes = self._loop, self._notes
        try:
            if loop is not None and notes is not None:
                loop.call_soon_threadsafe(notes.message, text)
                return
        except RuntimeError:  # the loop has closed meanwhile
            pass
        log.info("%s", text)

    # "Start at login" hook (issue 7 passes `autostart`)

    def _read_autostart(self) -> bool | None:
        try:
            return bool(self.autostart.is_enabled()) if self.autostart is not None else None
        except Exception:
            log.exception("could not read the start-at-login setting")
            return False

    def _toggle_autostart(self) -> None:
        autostart = self.autostart
        if autostart is None or self._loop is None:
            return
        wanted = not bool(self._autostart_on)

        async def toggle() -> None:
            try:
                await asyncio.to_thread(autostart.enable if wanted else autostart.disable)
            except Exception as e:
                log.warning("start at login: %s", e)
                self._notes.message(f"Start at login: {e}")
            self._autostart_on = await asyncio.to_thread(self._read_autostart)
            self._model = None  # force a rebuild with the new check mark
            self._call_in_gui(self._refresh)

        asyncio.run_coroutine_threadsafe(toggle(), self._loop)


    # "Import from Claude Desktop, Cursor…" (issue 16): offered when other clients have servers mcp.json lacks

    def _import_offer(self) -> Any:
        if self._offer is None:
            from ..importer import ImportOffer, default_sink

            self._offer = ImportOffer(self.config_path, sink=default_sink())
        return self._offer

    async def _offer_import(self) -> None:
        try:
            self._importable = await asyncio.to_thread(self._import_offer().refresh)
        except Exception:
            log.exception("could not look for other clients' servers")
            return
        if self._importable:
            self._model = None
            self._call_in_gui(self._refresh)

    def _import_servers(self) -> None:
        if self._loop is None:
            return

        async def run() -> None:
            offer = self._import_offer()
            try:
                text = await asyncio.to_thread(offer.run)  # the app's reload picks up the new entries
            except Exception as e:  # e.g. mcp.json's folder not writable: say so rather than nothing
                log.exception("import from other clients failed")
                text = f"Nothing imported: {type(e).__name__}: {e}"
            self._notes.message(text)
            self._importable = offer.clients
            self._model = None
            self._call_in_gui(self._refresh)

        asyncio.run_coroutine_threadsafe(run(), self._loop)


def run_tray(config_path: Path, backend: TrayBackend | None = None, *, autostart: Autostart | None = None,
             log_dir: Path | None = None, app_factory: Callable[[Path], Any] | None = None) -> int:
    """Run the tray for `config_path` on this (main) thread until Quit; returns the exit code."""
    backend = backend or load_backend()
    if log_dir is None:
        from .._logging import default_log_dir

        log_dir = default_log_dir()
    if backend.waiting:
        log.info("tray: %s; headless until a StatusNotifierWatcher appears", backend.note)  # cli said it
    elif backend.note:  # e.g. no StatusNotifierWatcher: say why this is the XEmbed fallback
        log.warning("tray: %s; using the XEmbed fallback (%s)", backend.note, backend.name)
    runner: type[TrayRunner]
    if backend.name == SNI:
        from .sni._runner import SniTray

        runner = SniTray
    else:
        from ._pystray_tray import PystrayTray

        runner = PystrayTray
    return runner(config_path, backend, autostart=autostart, log_dir=log_dir, app_factory=app_factory).run()


def main(argv: list[str] | None = None) -> int:
    """`python -m broxy_tray.ui.tray [--config PATH]`: the tray only (no headless fallback; tests and benchmarks)."""
    import argparse

    from .._instance import AlreadyRunning, InstanceLock
    from .._logging import setup_logging
    from ..config import ensure_config, resolve_config_path

    p = argparse.ArgumentParser(prog="python -m broxy_tray.ui.tray")
    p.add_argument("--config")
    p.add_argument("--log-level", default="info")
    args = p.parse_args(argv)
    _trace("process start")
    path = resolve_config_path(args.config)
    try:
        backend = load_backend()
    except TrayUnavailable as e:
        print(f"broxy-tray: {e}", file=sys.stderr)
        return 1
    log_file = setup_logging(args.log_level)
    ensure_config(path)
    lock = InstanceLock(path)
    try:
        lock.acquire()
    except AlreadyRunning as e:
        print(f"broxy-tray: {e}", file=sys.stderr)
        return 1
    try:
        return run_tray(path, backend, log_dir=log_file.parent)
    finally:
        lock.release()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
