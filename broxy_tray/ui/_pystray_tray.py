"""The pystray tray: macOS, Windows, and the Linux XEmbed fallback (GTK through PyGObject).

Threads: the toolkit owns the main thread (pystray's `run()`; GLib on Linux,
AppKit on macOS); the App runs on an asyncio loop in the "broxy-loop"
thread. Refreshes are posted to the toolkit thread (`_call_in_gui`), which
rebuilds the pystray menu only when the model changed; menu callbacks hand
their action to `TrayRunner._dispatch` and return at once.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from typing import Any, Callable

from ..state import AppState
from . import menu as m
from .icons import IconKind, icon_kind, tray_image
from .tray import TrayRunner, _trace

log = logging.getLogger(__name__)


class PystrayTray(TrayRunner):
    """Runs the App on a loop thread and the tray on the calling (main) thread. `run()` returns the exit code."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pystray = self.backend.pystray
        self._icon: Any = None
        self._thread: threading.Thread | None = None

    # main thread

    def run(self) -> int:
        pystray = self._pystray
        self._initial_model()
        assert self._model is not None
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

    # UI thread

    def _show(self, state: AppState, model: tuple[m.MenuItem, ...], menu_changed: bool) -> None:
        icon = self._icon
        if menu_changed:
            icon.menu = self._pystray.Menu(*self._to_pystray(model))
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


def _constant(value: bool) -> Callable[[Any], bool]:
    def checked(item: Any) -> bool:
        return value

    return checked


