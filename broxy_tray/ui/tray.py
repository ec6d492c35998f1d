"""The tray: pystray glue, the Linux backend choice, and the runner that owns the threads (DESIGN §4).

Threads:
- main thread: the toolkit (pystray's `run()`; GLib on Linux, AppKit on macOS);
- "broxy-loop": one asyncio loop running the `App`, the notifications and every intent.

The UI thread only ever reads immutable `AppState` snapshots. Store changes
(loop thread) post one coalesced refresh to the UI thread; a refresh turns the
latest snapshot into a menu model (`menu.build_menu`) and rebuilds the pystray
menu only if the model changed. A change that only ticks a sign-in countdown
is throttled to one rebuild per second; any other change shows at once. Menu
callbacks never block: intents go to the loop with `run_coroutine_threadsafe`,
openers run in daemon threads.

Backend choice on Linux: appindicator (StatusNotifierItem, falling back to
XEmbed) or gtk (XEmbed) when PyGObject and GTK 3 are usable; never the xorg
backend, which has no menu and whose clicks do not arrive, unless the user
asks for it with PYSTRAY_BACKEND. Anything that fails raises
`TrayUnavailable` with one line saying what to install; the caller then runs
headless.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Protocol

from .. import __version__
from ..state import AppState
from . import desktop
from . import menu as m
from .icons import IconKind, icon_kind, png_bytes, tray_image

log = logging.getLogger(__name__)

GTK_BACKENDS = ("appindicator", "gtk")
COUNTDOWN_REFRESH_SECONDS = 1.0

LINUX_INSTALL_HINT = (
    "install the tray extra: pip install 'broxy-tray[tray]' "
    "(Debian/Ubuntu first: apt install gir1.2-gtk-3.0 gir1.2-ayatanaappindicator3-0.1 "
    "libgirepository1.0-dev libcairo2-dev pkg-config)"
)


class TrayUnavailable(Exception):
    """No tray here; the message is one line for the user (what is missing, what to install)."""


class Autostart(Protocol):
    """What the "Start at login" item needs: `broxy_tray.autostart.Autostart` (issue 7). May raise."""

    def is_enabled(self) -> bool: ...

    def enable(self) -> Any: ...

    def disable(self) -> Any: ...


@dataclass(frozen=True)
class TrayBackend:
    name: str  # "appindicator" | "gtk" | "darwin" | "win32" | "xorg" (only when asked for)
    pystray: ModuleType

    @property
    def glib(self) -> bool:
        return self.name in GTK_BACKENDS


# -- backend choice ------------------------------------------------------------------------------


def choose_backend(environ: dict[str, str] | None = None, platform: str | None = None) -> str:
    """The pystray backend to use here, or `TrayUnavailable` saying why there is none."""
    env = os.environ if environ is None else environ
    platform = platform or sys.platform
    if platform == "darwin":
        return "darwin"
    if platform == "win32":
        return "win32"
    explicit = env.get("PYSTRAY_BACKEND", "").strip()
    if explicit:
        if explicit == "xorg":
            log.warning("PYSTRAY_BACKEND=xorg: this backend has no menu; clicks may not arrive")
        return explicit
    if not (env.get("DISPLAY") or env.get("WAYLAND_DISPLAY")):
        raise TrayUnavailable("no display (DISPLAY and WAYLAND_DISPLAY are unset)")
    try:
        import gi
    except Exception:
        raise TrayUnavailable(f"no tray backend: PyGObject is not installed; {LINUX_INSTALL_HINT}") from None
    # A tray icon draws nothing with OpenGL, but GDK probes GLX when it opens the display and so
    # maps the whole GL driver (Mesa with LLVM: ~50 MiB). GDK reads this once, when it initialises.
    os.environ.setdefault("GDK_GL", "disable")
    try:
        gi.require_version("Gtk", "3.0")
        from gi.repository import Gtk
    except Exception:
        raise TrayUnavailable("no tray backend: GTK 3 is not available to PyGObject "
                              "(Debian/Ubuntu: apt install gir1.2-gtk-3.0)") from None
    try:
        ok = Gtk.init_check()[0]
    except Exception:
        ok = False
    if not ok:
        shown = env.get("DISPLAY") or env.get("WAYLAND_DISPLAY")
        raise TrayUnavailable(f"GTK cannot open the display {shown}")
    for namespace in ("AyatanaAppIndicator3", "AppIndicator3"):
        try:
            gi.require_version(namespace, "0.1")
            return "appindicator"
        except Exception:
            continue
    return "gtk"


def load_backend(environ: dict[str, str] | None = None, platform: str | None = None) -> TrayBackend:
    """Choose a backend and import pystray with it. Any exception from pystray means "no tray"."""
    name = choose_backend(environ, platform)
    candidates = [name] + (["gtk"] if name == "appindicator" else [])
    errors = []
    for candidate in candidates:
        module = _import_pystray(candidate)
        if isinstance(module, ModuleType):
            return TrayBackend(candidate, module)
        errors.append(f"{candidate}: {module}")
    hint = f"; {LINUX_INSTALL_HINT}" if (platform or sys.platform).startswith("linux") else ""
    raise TrayUnavailable(f"no tray backend works ({'; '.join(errors)}){hint}")


def _import_pystray(backend: str) -> ModuleType | str:
    previous = os.environ.get("PYSTRAY_BACKEND")
    os.environ["PYSTRAY_BACKEND"] = backend  # pystray reads it at import time
    try:
        import pystray

        return pystray
    except Exception as e:  # without a display it raises Xlib errors, not ImportError
        for name in [k for k in sys.modules if k == "pystray" or k.startswith("pystray.")]:
            del sys.modules[name]
        return f"{type(e).__name__}: {e}"
    finally:  # keep it out of the servers' environment
        if previous is None:
            os.environ.pop("PYSTRAY_BACKEND", None)
        else:
            os.environ["PYSTRAY_BACKEND"] = previous


def unavailable_reason() -> str:
    """Why the tray cannot run here ('' when it can). Imports the toolkit when it can."""
    try:
        load_backend()
    except TrayUnavailable as e:
        return str(e)
    return ""


# -- tracing (benchmarks) ------------------------------------------------------------------------

_TRACE = os.environ.get("BROXY_TRAY_TRACE")


def _trace(what: str) -> None:
    if _TRACE:
        with open(_TRACE, "a", encoding="utf-8") as f:
            f.write(f"{time.time():.6f} {what}\n")


# -- the runner ----------------------------------------------------------------------------------


class TrayRunner:
    """Runs the App on a loop thread and the tray on the calling (main) thread. `run()` returns the exit code."""

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
        self._pystray = backend.pystray
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
        self._icon: Any = None
        self._thread: threading.Thread | None = None

    # main thread

    def run(self) -> int:
        pystray = self._pystray
        if self.autostart is not None:
            self._autostart_on = self._read_autostart()
        self._model = m.build_menu(self._latest, version=self.version, autostart=self._autostart_on,
                                   log_dir=str(self.log_dir or ""), importable=self._importable)
        self._kind = IconKind.IDLE
        self._title = f"{m.APP_NAME} — starting…"
        self._icon = pystray.Icon("broxy-tray", tray_image(self._kind), self._title,
                                  menu=pystray.Menu(*self._to_pystray(self._model)))
        self._thread = threading.Thread(target=self._loop_main, name="broxy-loop", daemon=True)
        self._thread.start()
        if not self.backend.glib:
            self._install_signal_handlers()
        _trace("tray run")
        try:
            self._icon.run(self._setup)
        finally:
            self.request_quit()
            if self._thread is not None:
                self._thread.join(timeout=30)
                if self._thread.is_alive():
                    log.error("the app did not shut down within 30 s")
                    self.exit_code = self.exit_code or 1
        _trace("tray exit")
        return self.exit_code

    def _setup(self, icon: Any) -> None:  # pystray's setup thread, once the toolkit loop runs
        icon.visible = True
        if self._thread is not None and not self._thread.is_alive():  # the app ended before the tray ran
            icon.stop()
            return
        if self.backend.glib:
            self._call_in_gui(self._install_glib_signal_handlers)
            self._call_in_gui(self._set_tooltip)
        _trace("tray visible")
        log.info("tray icon shown (backend %s)", self.backend.name)

    def _install_signal_handlers(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                signal.signal(sig, lambda *_: self.request_quit())
            except (ValueError, OSError):
                pass

    def _install_glib_signal_handlers(self) -> None:
        from gi.repository import GLib

        def on_signal(*_: Any) -> bool:
            self.request_quit()
            return True

        for sig in (signal.SIGINT, signal.SIGTERM):
            GLib.unix_signal_add(GLib.PRIORITY_HIGH, sig, on_signal)  # pystray resets SIGINT; take it back

    def _call_in_gui(self, fn: Callable[[], Any]) -> None:
        """Run `fn` on the toolkit's thread soon (callable from any thread)."""
        if self.backend.glib:
            from gi.repository import GLib

            def once() -> bool:
                try:
                    fn()
                except Exception:
                    log.exception("tray update failed")
                return False

            GLib.idle_add(once)
        elif self.backend.name == "darwin":
            from PyObjCTools import AppHelper  # type: ignore[import-not-found]

            AppHelper.callAfter(fn)
        else:
            fn()

    # loop thread

    def _loop_main(self) -> None:
        try:
            asyncio.run(self._amain())
        except Exception:
            log.exception("the app loop failed")
            self.exit_code = 1
        finally:
            if self._icon is not None:
                self._icon.stop()

    async def _amain(self) -> None:
        from .notifications import DesktopNotifications

        self._loop = asyncio.get_running_loop()
        if self._app_factory is not None:
            app = self._app_factory(self.config_path)
        else:
            from ..app import App

            app = App(self.config_path)
        self._app = app
        self._notes = DesktopNotifications(app, open_url=desktop.open_url, icon_png=png_bytes(IconKind.AVAILABLE, 128))
        unsubscribe = app.store.subscribe(self._on_state)
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
        icon = self._icon
        if model != self._model:
            self._model = model
            icon.menu = self._pystray.Menu(*self._to_pystray(model))
            _trace(f"menu {state.revision}")
        kind = icon_kind(state)
        if kind != self._kind:
            self._kind = kind
            icon.icon = tray_image(kind)
        t = m.title(state)
        if t != self._title:
            self._title = t
            icon.title = t
            if self.backend.glib:
                self._set_tooltip()

    def _set_tooltip(self) -> None:
        status_icon = getattr(self._icon, "_status_icon", None)  # gtk backend: the title is not the tooltip
        if status_icon is not None:
            status_icon.set_tooltip_text(self._title)

    def _to_pystray(self, items: tuple[m.MenuItem, ...]) -> list[Any]:
        pystray = self._pystray
        out: list[Any] = []
        for it in items:
            if it.separator:
                out.append(pystray.Menu.SEPARATOR)
            elif it.submenu:
                out.append(pystray.MenuItem(it.label, pystray.Menu(*self._to_pystray(it.submenu)), enabled=it.enabled))
            else:
                action = it.action
                out.append(pystray.MenuItem(
                    it.label,
                    self._callback(action) if action else None,
                    enabled=it.enabled and action is not None,
                    checked=_constant(it.checked) if it.checked is not None else None,
                ))
        return out

    def _callback(self, action: m.Action) -> Callable[[Any, Any], None]:
        def on_click(icon: Any, item: Any) -> None:  # pystray counts the arguments: exactly two
            self._dispatch(action)

        return on_click

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
            desktop.copy_text(payload, gtk=self.backend.glib)
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
            threading.Thread(target=self._set_secret, args=(payload,), name="secret-prompt", daemon=True).start()
        elif k == m.TOGGLE_AUTOSTART:
            self._toggle_autostart()
        elif k == m.IMPORT_SERVERS:
            self._import_servers()
        elif k == m.ABOUT:
            self._message(f"broxy-tray {self.version} · config {self.config_path}"
                          + (f" · logs {self.log_dir}" if self.log_dir else ""))

    def _set_secret(self, name: str) -> None:
        """"Set NAME…" (its own thread): the platform's password prompt, then store it and apply it at once."""
        from .secret_prompt import Cancelled, ask_secret

        answer = ask_secret(name)
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
        asyncio.run_coroutine_threadsafe(self._run_intent(make), self._loop)

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
        if loop is not None and notes is not None:
            loop.call_soon_threadsafe(notes.message, text)
        else:
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
            text = await asyncio.to_thread(offer.run)  # the app's reload picks up the new entries
            self._notes.message(text)
            self._importable = offer.clients
            self._model = None
            self._call_in_gui(self._refresh)

        asyncio.run_coroutine_threadsafe(run(), self._loop)


def _constant(value: bool) -> Callable[[Any], bool]:
    def checked(item: Any) -> bool:
        return value

    return checked


def run_tray(config_path: Path, backend: TrayBackend | None = None, *, autostart: Autostart | None = None,
             log_dir: Path | None = None, app_factory: Callable[[Path], Any] | None = None) -> int:
    """Run the tray for `config_path` on this (main) thread until Quit; returns the exit code."""
    backend = backend or load_backend()
    if log_dir is None:
        from .._logging import default_log_dir

        log_dir = default_log_dir()
    return TrayRunner(config_path, backend, autostart=autostart, log_dir=log_dir, app_factory=app_factory).run()


def main(argv: list[str] | None = None) -> int:
    """`python -m broxy_tray.ui.tray [--config PATH]`: what `broxy-tray` does on a desktop (until cli.py calls run_tray)."""
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
