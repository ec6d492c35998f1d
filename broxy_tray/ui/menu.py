"""The tray menu as data: a pure function from an `AppState` snapshot to a menu model.

Nothing here touches a toolkit, so every label, submenu and enabled flag is
testable without a display; `tray.py` turns the model into pystray items and
maps each `Action` to an App intent or an OS action. Models are frozen and
compare by value, so the tray rebuilds only when something visible changed.

    broxy-tray — 3 of 4 available
    ──────────
    ● GitHub — Available · 42 tools              ▸ Re-authorize / Sign out / Disable
    ◐ Secured MCP — Authorization: 97 s          ▸ Cancel authorization / Open sign-in page again / Copy sign-in link / Disable
    ✕ Jira — Error: token endpoint returned …    ▸ Retry now / Re-authorize / Copy error / Disable
    ✕ GitHub — Error: … GITHUB_TOKEN is not set … ▸ Set GITHUB_TOKEN… / Retry now / Copy error / Disable
    ○ Local files — Disabled                     ▸ Enable
    ──────────
    [Import from Claude Desktop, Cursor…] / Open mcp.json / Reload now / Copy client config / Open logs folder / [Start at login] / Secure storage: …
    [MCP clients: 2 stdio · 1 HTTP (coding: 1)] / About / Quit
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .._redact import redact
from ..state import AppState, ServerState, ServerStatus

APP_NAME = "broxy-tray"
MAX_LABEL = 72  # characters of a reason shown in a menu line; the full text is one "Copy error" away

GLYPHS = {
    ServerStatus.AVAILABLE: "●",
    ServerStatus.AUTHORIZATION: "◐",
    ServerStatus.CONNECTING: "◌",
    ServerStatus.ERROR: "✕",
    ServerStatus.DISABLED: "○",
}

# Action kinds. Server intents go to the App on its loop; the rest are OS actions.
ENABLE = "enable"
DISABLE = "disable"
RETRY = "retry"
AUTHORIZE = "authorize"  # also Re-authorize
SIGN_OUT = "sign_out"
CANCEL_AUTHORIZATION = "cancel_authorization"
OPEN_SIGN_IN = "open_sign_in"  # payload: the sign-in URL
COPY_SIGN_IN = "copy_sign_in"  # payload: the sign-in URL
COPY_ERROR = "copy_error"  # payload: the full reason
SET_SECRET = "set_secret"  # payload: the unset variable's name; the tray asks for its value
OPEN_CONFIG = "open_config"  # payload: mcp.json path
RELOAD = "reload"
IMPORT_SERVERS = "import_servers"  # copy other clients' servers into mcp.json (broxy-tray import)
COPY_CLIENT_CONFIG = "copy_client_config"  # payload: mcp.json path; the tray renders the Claude Desktop snippet
OPEN_LOGS = "open_logs"
TOGGLE_AUTOSTART = "toggle_autostart"
ABOUT = "about"
QUIT = "quit"


@dataclass(frozen=True)
class Action:
    kind: str
    server: str | None = None
    payload: str | None = None


@dataclass(frozen=True)
class MenuItem:
    label: str = ""
    action: Action | None = None
    enabled: bool = True
    submenu: tuple[MenuItem, ...] = ()
    checked: bool | None = None  # None: not a check item
    separator: bool = False

    def find(self, label: str) -> MenuItem | None:
        """This item or the first descendant whose label is `label` (or starts with it)."""
        if self.label == label or (label and self.label.startswith(label)):
            return self
        for child in self.submenu:
            hit = child.find(label)
            if hit:
                return hit
        return None


SEPARATOR = MenuItem(separator=True)


def title(state: AppState) -> str:
    """The tooltip / indicator title: `broxy-tray — 3 of 4 available`."""
    if not state.servers:
        return f"{APP_NAME} — no servers configured"
    return f"{APP_NAME} — {state.summary}"


def shorten(text: str, limit: int = MAX_LABEL) -> str:
    text = " ".join(redact(text).split())  # a menu line is an output: no expanded `${VAR}` value
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def server_label(s: ServerState) -> str:
    """`● GitHub — Available · 42 tools`."""
    return f"{GLYPHS[s.status]} {s.name} — {shorten(s.label())}"


def server_actions(s: ServerState) -> tuple[MenuItem, ...]:
    """The actions that make sense for a server in its current status."""
    sid = s.id
    items: list[MenuItem] = []
    add = items.append
    st = s.status
    if st is ServerStatus.DISABLED:
        add(MenuItem("Enable", Action(ENABLE, sid)))
    elif st is ServerStatus.AUTHORIZATION:
        add(MenuItem("Cancel authorization", Action(CANCEL_AUTHORIZATION, sid)))
        add(MenuItem("Open sign-in page again", Action(OPEN_SIGN_IN, sid, s.auth_url), enabled=bool(s.auth_url)))
        add(MenuItem("Copy sign-in link", Action(COPY_SIGN_IN, sid, s.auth_url), enabled=bool(s.auth_url)))
    elif st is ServerStatus.CONNECTING:
        add(MenuItem("Retry now", Action(RETRY, sid)))
        if s.remote:
            add(MenuItem("Sign out", Action(SIGN_OUT, sid)))
    elif st is ServerStatus.AVAILABLE:
        if s.remote:
            add(MenuItem("Re-authorize", Action(AUTHORIZE, sid)))
            add(MenuItem("Sign out", Action(SIGN_OUT, sid)))
    elif st is ServerStatus.ERROR:
        if s.missing_variable:
            add(MenuItem(f"Set {s.missing_variable}…", Action(SET_SECRET, sid, s.missing_variable)))
        add(MenuItem("Retry now", Action(RETRY, sid)))
        if s.remote:
            add(MenuItem("Re-authorize", Action(AUTHORIZE, sid)))
    reason = s.config_error or (s.detail if st is ServerStatus.ERROR else "")
    if s.config_error:
        add(MenuItem(shorten(f"mcp.json: {s.config_error}"), enabled=False))
    if reason:
        add(MenuItem("Copy error", Action(COPY_ERROR, sid, redact(reason))))
    if st is not ServerStatus.DISABLED:
        if items:
            add(SEPARATOR)
        add(MenuItem("Disable", Action(DISABLE, sid)))
    return tuple(items)


def import_label(clients: tuple[str, ...]) -> str:
    """`Import from Claude Desktop, Cursor…` (at most three names; the notification lists everything)."""
    return f"Import from {', '.join(clients[:3])}…"


def build_menu(state: AppState, *, version: str = "", autostart: bool | None = None,
               log_dir: str = "", importable: tuple[str, ...] = ()) -> tuple[MenuItem, ...]:
    """The whole menu for one snapshot. `autostart` None: no "Start at login" item (no helper passed in).
    `importable`: clients whose servers mcp.json lacks; an "Import from …" item when there are any."""
    items: list[MenuItem] = [MenuItem(title(state), enabled=False)]
    if state.config_error:
        items.append(MenuItem(shorten(f"⚠ {_short_path(state.config_error, state.config_path)}"), enabled=False))
        items.append(MenuItem("Copy mcp.json error", Action(COPY_ERROR, None, state.config_error)))
    items.append(SEPARATOR)
    if state.servers:
        for s in state.servers:
            items.append(MenuItem(server_label(s), submenu=server_actions(s)))
    else:
        items.append(MenuItem("No servers in mcp.json yet", enabled=False))
    items.append(SEPARATOR)
    if importable:
        items.append(MenuItem(import_label(importable), Action(IMPORT_SERVERS)))
    items.append(MenuItem("Open mcp.json", Action(OPEN_CONFIG, payload=state.config_path)))
    items.append(MenuItem("Reload now", Action(RELOAD)))
    # what to paste into an MCP client (Claude Desktop's snippet) so it uses `broxy-tray stdio`
    items.append(MenuItem("Copy client config", Action(COPY_CLIENT_CONFIG, payload=state.config_path or None)))
    items.append(MenuItem("Open logs folder", Action(OPEN_LOGS, payload=log_dir or None)))
    # Hook for "Start at login" (issue 7): built only when the runner was given an autostart object.
    if autostart is not None:
        items.append(MenuItem("Start at login", Action(TOGGLE_AUTOSTART), checked=autostart))
    items.append(MenuItem(f"Secure storage: {state.storage or 'not in use yet'}", enabled=False))
    if state.clients.total:  # who uses the servers through broxy-tray now (stdio bridges, HTTP sessions)
        items.append(MenuItem(f"MCP clients: {state.clients.label()}", enabled=False))
    items.append(SEPARATOR)
    items.append(MenuItem(f"About {APP_NAME} {version}".rstrip(), Action(ABOUT)))
    items.append(MenuItem("Quit", Action(QUIT)))
    return tuple(items)


def _short_path(message: str, config_path: str) -> str:
    """`/home/u/.config/broxy/mcp.json:3:7: …` → `mcp.json:3:7: …` (the full text is one "Copy" away)."""
    if config_path and config_path in message:
        return message.replace(config_path, config_path.replace("\\", "/").rsplit("/", 1)[-1])
    return message


def without_countdown(state: AppState) -> AppState:
    """The same snapshot with every sign-in countdown blanked: equal results mean only a countdown ticked."""
    servers = tuple(replace(s, seconds_left=None) if s.seconds_left is not None else s for s in state.servers)
    return replace(state, servers=servers, revision=0)


def find(items: tuple[MenuItem, ...], label: str) -> MenuItem | None:
    """The first item in `items` (depth first) whose label is or starts with `label`."""
    for item in items:
        hit = item.find(label)
        if hit:
            return hit
    return None
