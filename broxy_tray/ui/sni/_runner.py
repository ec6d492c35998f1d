"""The StatusNotifierItem tray: the App, the item and its menu all on one asyncio loop, on the main thread.

No toolkit and no second thread: refreshes run as loop callbacks, menu
clicks arrive as D-Bus method calls on the same loop, and SIGINT/SIGTERM are
loop signal handlers. The item goes on the bus before the App is even built,
so the icon shows at once and fills in as servers connect.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any, Callable

from ...state import AppState, ServerStatus
from .. import menu as m
from ..icons import IconKind, icon_kind
from ..tray import TrayRunner, _trace
from ._dbusmenu import DbusMenu
from ._host import SniHost
from ._item import ACTIVE, NEEDS_ATTENTION, StatusNotifierItem

log = logging.getLogger(__name__)

ITEM_ID = "broxy-tray"


def tooltip(state: AppState) -> str:
    """`5 of 6 available` (plus a line when mcp.json was rejected)."""
    text = state.summary if state.servers else "no servers configured"
    if state.config_error:
        text += "\nmcp.json has an error (see the menu)"
    return text


def item_status(state: AppState) -> str:
    """NeedsAttention while a sign-in waits for the user, Active otherwise."""
    waiting = any(s.status is ServerStatus.AUTHORIZATION for s in state.servers)
    return NEEDS_ATTENTION if waiting else ACTIVE


class SniTray(TrayRunner):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.host: SniHost | None = None
        self._item: StatusNotifierItem | None = None
        self._menu: DbusMenu | None = None
        self._signals: list[int] = []

    def run(self) -> int:
        self._initial_model()
        _trace("tray run")
        try:
            asyncio.run(self._amain())
        except KeyboardInterrupt:  # before the signal handlers were in place
            pass
        _trace("tray exit")
        return self.exit_code

    def _call_in_gui(self, fn: Callable[[], Any]) -> None:
        loop = self._loop
        if loop is None:
            return

        def once() -> None:
            try:
                fn()
            except Exception:
                log.exception("tray update failed")

        try:
            loop.call_soon_threadsafe(once)
        except RuntimeError:  # loop closed: shutting down
            pass

    async def _ui_start(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, self.request_quit)
                self._signals.append(sig)
            except (NotImplementedError, RuntimeError, ValueError):
                pass
        assert self._model is not None
        self._kind = IconKind.IDLE
        self._title = f"{m.APP_NAME} — starting…"
        self._item = StatusNotifierItem(ITEM_ID, self._title, self._kind, "starting…")
        self._menu = DbusMenu(self._dispatch)
        self._menu.show(self._model)
        self.host = SniHost(self._item, self._menu, on_registered=self._registered, on_disconnect=self._bus_lost)
        await self.host.start()

    def _attach(self, app: Any) -> Callable[[], None]:
        if not self.backend.waiting:
            return lambda: None
        from ..headless import HeadlessPrinter  # no icon yet: the terminal shows what the menu would

        printer = HeadlessPrinter(app.store)
        return printer.close

    def _registered(self, owner: str) -> None:
        _trace("sni registered")

    def _bus_lost(self) -> None:
        self.exit_code = self.exit_code or 1
        self.request_quit()

    async def _ui_stop(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in self._signals:
            loop.remove_signal_handler(sig)
        if self.host is not None:
            await self.host.close()

    def _show(self, state: AppState, model: tuple[m.MenuItem, ...], menu_changed: bool) -> None:
        if self._item is None or self._menu is None:
            return
        if menu_changed:
            self._menu.show(model)
        self._kind = icon_kind(state)
        self._title = m.title(state)
        self._item.update(title=self._title, status=item_status(state), kind=self._kind, tooltip=tooltip(state))
