"""The terminal UI: one line per status change and per config event.

Human-readable by default; with `json=True`, one JSON object per line — a
stable contract for scripts and tests (documented in the README):

  {"event":"status","server":ID,"name":…,"status":…,"detail":…,"secondsLeft":…,"tools":…,"configError":…,"ts":…}
  {"event":"auth","server":ID,"action":"started"|"succeeded"|"failed"|"cancelled","url":…,"secondsLeft":…,"reason":…,"ts":…}
  {"event":"config","action":"loaded"|"reloaded"|"error","started":[…],"stopped":[…],"restarted":[…],
   "updated":[…],"unchanged":[…],"removed":[…],"authCleared":[…],"authMoved":[{"from":…,"to":…}],
   "authDropped":[…],"errors":[{"file":…,"line":…,"column":…,"path":…,"server":…,"message":…}],
   "message":…,"ts":…}
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime
from typing import Any, TextIO

from .._redact import redact, redact_obj
from ..state import AppState, AuthNotice, ConfigEvent, ServerState, StateStore


def status_json(s: ServerState) -> dict[str, Any]:
    """One server's fields in the JSON-lines contract (also what `broxy-tray status --json` prints)."""
    return {
        "server": s.id,
        "name": s.name,
        "status": s.status.value,
        "detail": s.detail,
        "secondsLeft": s.seconds_left,
        "tools": s.tools,
        "configError": s.config_error,
    }


class HeadlessPrinter:
    """Subscribes to a store and prints what changed."""

    def __init__(self, store: StateStore, *, json_lines: bool = False, out: TextIO | None = None) -> None:
        self._json = json_lines
        self._out = out or sys.stdout
        self._shown: dict[str, tuple[Any, ...]] = {}
        self._unsubscribe = store.subscribe(self._on_change)

    def close(self) -> None:
        self._unsubscribe()

    def _on_change(self, state: AppState, event: Any) -> None:
        if isinstance(event, ConfigEvent):
            self._config(event)
        elif isinstance(event, AuthNotice):
            self._auth(state, event)
        present = set()
        for s in state.servers:
            present.add(s.id)
            key = (s.name, s.status, s.detail, s.seconds_left, s.tools, s.config_error)
            previous = self._shown.get(s.id)
            if previous != key:
                self._shown[s.id] = key
                countdown_only = previous is not None and previous[:3] == key[:3] and previous[4:] == key[4:]
                if self._json or not countdown_only or (s.seconds_left or 0) % 10 == 0:
                    self._status(s)  # the terminal shows the countdown every 10 s; JSON every second
        for gone in set(self._shown) - present:
            del self._shown[gone]

    def _status(self, s: ServerState) -> None:
        if self._json:
            self._emit({"event": "status", **status_json(s), "ts": round(time.time(), 3)})
        else:
            note = f"  (mcp.json: {s.config_error})" if s.config_error else ""
            self._line(f"{s.name} [{s.id}]: {s.label()}{note}")

    def _auth(self, state: AppState, n: AuthNotice) -> None:
        if self._json:
            self._emit({"event": "auth", "server": n.server, "action": n.action, "url": n.url,
                        "secondsLeft": n.seconds_left, "reason": n.reason, "ts": round(n.ts, 3)})
            return
        server = state.server(n.server)
        name = server.name if server else n.server
        if n.action == "started":
            self._line(f"Authorize {name}: open {n.url}")
        elif n.action == "succeeded":
            self._line(f"{name}: signed in")
        elif n.action == "cancelled":
            self._line(f"{name}: sign-in cancelled")
        else:
            self._line(f"{name}: sign-in failed: {n.reason}")

    def _config(self, e: ConfigEvent) -> None:
        if self._json:
            self._emit(
                {
                    "event": "config",
                    "action": e.action,
                    "started": list(e.started),
                    "stopped": list(e.stopped),
                    "restarted": list(e.restarted),
                    "updated": list(e.updated),
                    "unchanged": list(e.unchanged),
                    "removed": list(e.removed),
                    "authCleared": list(e.auth_cleared),
                    "authMoved": [{"from": a, "to": b} for a, b in e.auth_moved],
                    "authDropped": list(e.auth_dropped),
                    "errors": [i.to_json() for i in e.errors],
                    "message": e.message,
                    "ts": round(e.ts, 3),
                }
            )
            return
        if e.action == "error":
            self._line(f"config error: {e.message}")
            return
        parts = [
            f"{label} {', '.join(ids)}"
            for label, ids in (
                ("started", e.started),
                ("stopped", e.stopped),
                ("restarted", e.restarted),
                ("updated", e.updated),
                ("removed", e.removed),
                ("sign-in data cleared for", e.auth_cleared),
                ("sign-in data dropped for", e.auth_dropped),
            )
            if ids
        ]
        parts += [f"sign-in moved {a} → {b}" for a, b in e.auth_moved]
        if not parts:
            parts = ["nothing to start" if e.action == "loaded" else "nothing to change"]
        self._line(f"config {e.action}: " + "; ".join(parts))
        for issue in e.errors:
            self._line(f"  {issue}")

    def _line(self, text: str) -> None:
        stamp = datetime.now().strftime("%H:%M:%S")
        self._write(f"{stamp} {text}")

    def _emit(self, obj: dict[str, Any]) -> None:
        self._write(json.dumps(redact_obj(obj), ensure_ascii=False))

    def _write(self, line: str) -> None:
        try:
            self._out.write(redact(line) + "\n")  # no expanded `${VAR}` value, even inside an error text
            self._out.flush()
        except (BrokenPipeError, ValueError):
            pass  # the reader went away; keep running
