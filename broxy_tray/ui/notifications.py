"""Native notifications for the moments that need the user (desktop-notifier).

Two parts:

- `NotificationPolicy` is pure: fed every `(AppState, event)` the store
  publishes, it returns the `Note`s to show — "Server Authorization" /
  "Authorize <name>" when a sign-in starts; "<name> is available" after a
  successful sign-in; "<name>: <reason>" when a sign-in fails or a server
  that was available falls into Error; "mcp.json: line L, column C: <message>"
  when an edit is rejected. At most one note per server per 30 s, except
  sign-in prompts; nothing for routine reconnects.
- `DesktopNotifications` subscribes a policy to the store (on the loop
  thread) and sends the notes with desktop-notifier. The sign-in prompt has a
  Cancel button (cancels the sign-in through the App) and clicking it reopens
  the sign-in page. Without a notification service the app keeps working:
  that is logged once, and everything stays reachable from the menu.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from .._redact import redact
from ..state import AppState, ConfigEvent, ServerStatus

if TYPE_CHECKING:
    from ..app import App

log = logging.getLogger(__name__)

APP_TITLE = "broxy-tray"
SIGN_IN_TITLE = "Server Authorization"
RATE_LIMIT_SECONDS = 30.0

SIGN_IN = "sign_in"
AVAILABLE = "available"
FAILED = "failed"
CONFIG = "config"
MESSAGE = "message"


@dataclass(frozen=True)
class Note:
    kind: str  # SIGN_IN | AVAILABLE | FAILED | CONFIG | MESSAGE
    title: str
    message: str
    server: str | None = None


def config_issue_text(issue: Any, fallback: str = "") -> str:
    """`mcp.json: line 3, column 7: Expecting ',' delimiter` (from a ConfigIssue)."""
    file = Path(getattr(issue, "file", "") or "mcp.json").name
    line, column = getattr(issue, "line", None), getattr(issue, "column", None)
    message = getattr(issue, "message", None) or fallback
    where = ""
    if line is not None:
        where = f"line {line}" + (f", column {column}" if column is not None else "") + ": "
    return f"{file}: {where}{message}"


class NotificationPolicy:
    """Decides which notes a stream of state changes deserves. Pure apart from the injected clock."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, interval: float = RATE_LIMIT_SECONDS) -> None:
        self._clock = clock
        self._interval = interval
        self._status: dict[str, ServerStatus] = {}
        self._was_available: set[str] = set()
        self._signing_in: set[str] = set()
        self._last_sent: dict[str, float] = {}

    def feed(self, state: AppState, event: Any = None) -> list[Note]:
        notes: list[Note] = []
        if isinstance(event, ConfigEvent) and event.errors:
            first = config_issue_text(event.errors[0], event.message)
            more = len(event.errors) - 1
            text = first + (f" (and {more} more)" if more > 0 else "")
            notes.append(Note(CONFIG, APP_TITLE, text))
        present = set()
        for s in state.servers:
            present.add(s.id)
            before = self._status.get(s.id)
            now = s.status
            self._status[s.id] = now
            if now is before:
                continue
            if now is ServerStatus.AUTHORIZATION:
                self._signing_in.add(s.id)
                notes.append(Note(SIGN_IN, SIGN_IN_TITLE, f"Authorize {s.name}", s.id))
            elif now is ServerStatus.AVAILABLE:
                if s.id in self._signing_in:
                    notes.append(Note(AVAILABLE, APP_TITLE, f"{s.name} is available", s.id))
                self._signing_in.discard(s.id)
                self._was_available.add(s.id)
            elif now in (ServerStatus.ERROR, ServerStatus.DISABLED):
                failed_sign_in = s.id in self._signing_in
                fell = now is ServerStatus.ERROR and s.id in self._was_available
                if failed_sign_in or fell:
                    reason = s.detail or ("sign-in did not complete" if failed_sign_in else "error")
                    notes.append(Note(FAILED, APP_TITLE, f"{s.name}: {reason}", s.id))
                self._signing_in.discard(s.id)
                self._was_available.discard(s.id)  # one note per fall, not one per failed retry
        for gone in set(self._status) - present:
            self._status.pop(gone, None)
            self._signing_in.discard(gone)
            self._was_available.discard(gone)
        return [n for n in notes if self._allowed(n)]

    def _allowed(self, note: Note) -> bool:
        if note.kind == SIGN_IN:
            return True  # sign-in prompts are never held back (and do not count)
        key = note.server if note.server is not None else f"{note.kind}:{note.message}"
        now = self._clock()
        last = self._last_sent.get(key)
        if last is not None and now - last < self._interval:
            log.debug("notification held back (rate limit): %s", note.message)
            return False
        self._last_sent[key] = now
        return True


class DesktopNotifications:
    """Sends the policy's notes as native notifications. Create, use and close on the App's loop thread."""

    def __init__(self, app: App, *, open_url: Callable[[str], Any], icon_png: bytes | None = None,
                 policy: NotificationPolicy | None = None, app_name: str = APP_TITLE) -> None:
        self._app = app
        self._open_url = open_url
        self._policy = policy or NotificationPolicy()
        self._app_name = app_name
        self._icon_png = icon_png
        self._icon_dir: tempfile.TemporaryDirectory[str] | None = None
        self._notifier: Any = None
        self._unavailable_logged = False
        self._prompts: dict[str, str] = {}  # server id -> identifier of its sign-in prompt
        self._state = app.store.state
        self._tasks: set[asyncio.Task[Any]] = set()
        self._unsubscribe = app.store.subscribe(self._on_change)
        self.sent: list[Note] = []  # what was handed to the service (for the log and tests)

    # -- store listener (loop thread) --

    def _on_change(self, state: AppState, event: Any) -> None:
        self._state = state
        for note in self._policy.feed(state, event):
            self._spawn(self._send(note))
        for sid in list(self._prompts):
            s = state.server(sid)
            if s is None or s.status is not ServerStatus.AUTHORIZATION:
                self._spawn(self._clear(self._prompts.pop(sid)))

    def message(self, text: str) -> None:
        """Show a one-off message (e.g. why a menu action could not be done). Loop thread only."""
        self._spawn(self._send(Note(MESSAGE, APP_TITLE, text)))

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- sending --

    async def _ensure(self) -> Any | None:
        """The notifier when a notification service answers, else None (logged once)."""
        try:
            if self._notifier is None:
                from desktop_notifier import DesktopNotifier, Icon

                icon = None
                if self._icon_png:
                    self._icon_dir = tempfile.TemporaryDirectory(prefix="broxy-tray-")
                    path = Path(self._icon_dir.name) / "broxy-tray.png"
                    path.write_bytes(self._icon_png)
                    icon = Icon(path=path)
                self._notifier = DesktopNotifier(app_name=self._app_name, app_icon=icon)
            await asyncio.wait_for(self._notifier.get_capabilities(), 5)
            return self._notifier
        except Exception as e:  # no bus, no service, no permission: all the same to the user
            if not self._unavailable_logged:
                self._unavailable_logged = True
                log.warning("no notification service (%s: %s); notifications are off, the menu shows everything",
                            type(e).__name__, e)
                logging.getLogger("desktop_notifier").setLevel(logging.ERROR)
            return None

    async def _send(self, note: Note) -> None:
        log.info("notification: %s — %s", note.title, note.message)
        notifier = await self._ensure()
        if notifier is None:
            return
        from desktop_notifier import Button, Urgency

        kwargs: dict[str, Any] = {}
        if note.kind == SIGN_IN and note.server:
            sid = note.server
            kwargs["buttons"] = [Button(title="Cancel", on_pressed=lambda: self._cancel(sid))]
            kwargs["on_clicked"] = lambda: self._reopen(sid)
            kwargs["urgency"] = Urgency.Critical  # stays until the sign-in ends; closed by us then
        elif note.kind == FAILED:
            kwargs["urgency"] = Urgency.Normal
        try:
            # the desktop is an output like any other: no expanded `${VAR}` value in a notification
            identifier = await notifier.send(title=note.title, message=redact(note.message), **kwargs)
        except Exception as e:  # send() logs and swallows, but be sure
            log.warning("notification failed: %s", e)
            return
        self.sent.append(note)
        if note.kind == SIGN_IN and note.server:
            s = self._state.server(note.server)
            if s is not None and s.status is ServerStatus.AUTHORIZATION:
                self._prompts[note.server] = identifier
            else:  # the sign-in ended while we were sending
                await self._clear(identifier)

    async def _clear(self, identifier: str) -> None:
        try:
            if self._notifier is not None:
                await self._notifier.clear(identifier)
        except Exception:
            log.debug("could not close a notification", exc_info=True)

    # -- button and click callbacks (desktop-notifier runs them on this loop) --

    def _cancel(self, server_id: str) -> None:
        log.info("notification: Cancel pressed for %s", server_id)
        self._spawn(self._run_intent(self._app.cancel_authorization(server_id)))

    def _reopen(self, server_id: str) -> None:
        s = self._state.server(server_id)
        if s is not None and s.status is ServerStatus.AUTHORIZATION and s.auth_url:
            self._spawn(asyncio.to_thread(self._open_url, s.auth_url))

    async def _run_intent(self, coro: Awaitable[Any]) -> None:
        from ..app import IntentError

        try:
            await coro
        except IntentError as e:
            self.message(str(e))
        except Exception as e:
            log.exception("notification action failed")
            self.message(f"that did not work: {e}")

    async def capabilities(self) -> list[str]:
        notifier = await self._ensure()
        if notifier is None:
            return []
        caps = await notifier.get_capabilities()
        return sorted(c.name for c in caps)

    async def close(self) -> None:
        self._unsubscribe()
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=2)
        for identifier in list(self._prompts.values()):
            await self._clear(identifier)
        self._prompts.clear()
        if self._icon_dir is not None:
            self._icon_dir.cleanup()
