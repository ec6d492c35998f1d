"""The menu model, for every status, without a display."""

from __future__ import annotations

import pytest

from broxy_tray.state import AppState, ServerState, ServerStatus
from broxy_tray.ui import menu as m

S = ServerStatus


def labels(items):
    return [i.label for i in items if not i.separator]


def actions(item):
    return {i.label: (i.action.kind if i.action else None, i.enabled) for i in item.submenu if not i.separator}


def state(*servers, **kw):
    return AppState(servers=tuple(servers), config_path="/home/u/.config/broxy/mcp.json", **kw)


GITHUB = ServerState("gh", "GitHub", S.AVAILABLE, tools=42, remote=True)
SECURED = ServerState("sec", "Secured MCP", S.AUTHORIZATION, seconds_left=97, remote=True,
                      auth_url="https://auth.example.com/authorize?x=1")
JIRA = ServerState("jira", "Jira", S.ERROR, detail="token endpoint returned invalid_client", remote=True)
FILES = ServerState("files", "Local files", S.DISABLED)


def test_design_example_menu():
    items = m.build_menu(state(GITHUB, SECURED, JIRA, FILES, storage="Secret Service"), version="0.1.0")
    assert labels(items) == [
        "broxy-tray — 1 of 3 available",
        "● GitHub — Available · 42 tools",
        "◐ Secured MCP — Authorization: 97 s",
        "✕ Jira — Error: token endpoint returned invalid_client",
        "○ Local files — Disabled",
        "Open mcp.json",
        "Reload now",
        "Copy client config",
        "Open logs folder",
        "Secure storage: Secret Service",
        "About broxy-tray 0.1.0",
        "Quit",
    ]
    assert items[0].enabled is False and items[0].action is None
    assert [i.separator for i in items].count(True) == 3
    assert m.find(items, "Secure storage").enabled is False


@pytest.mark.parametrize("server,expected", [
    (GITHUB, {"Re-authorize": ("authorize", True), "Sign out": ("sign_out", True), "Disable": ("disable", True)}),
    (ServerState("loc", "Local", S.AVAILABLE, tools=1), {"Disable": ("disable", True)}),
    (SECURED, {"Cancel authorization": ("cancel_authorization", True),
               "Open sign-in page again": ("open_sign_in", True),
               "Copy sign-in link": ("copy_sign_in", True), "Disable": ("disable", True)}),
    (ServerState("s", "S", S.AUTHORIZATION, seconds_left=5, remote=True),
     {"Cancel authorization": ("cancel_authorization", True), "Open sign-in page again": ("open_sign_in", False),
      "Copy sign-in link": ("copy_sign_in", False), "Disable": ("disable", True)}),
    (JIRA, {"Retry now": ("retry", True), "Re-authorize": ("authorize", True), "Copy error": ("copy_error", True),
            "Disable": ("disable", True)}),
    (ServerState("l", "L", S.ERROR, detail="command not found: x"),
     {"Retry now": ("retry", True), "Copy error": ("copy_error", True), "Disable": ("disable", True)}),
    (ServerState("c", "C", S.CONNECTING), {"Retry now": ("retry", True), "Disable": ("disable", True)}),
    (ServerState("c", "C", S.CONNECTING, remote=True),
     {"Retry now": ("retry", True), "Sign out": ("sign_out", True), "Disable": ("disable", True)}),
    (FILES, {"Enable": ("enable", True)}),
])
def test_submenu_per_status(server, expected):
    item = m.find(m.build_menu(state(server)), f"{m.GLYPHS[server.status]} {server.name} —")
    assert actions(item) == expected
    for child in item.submenu:
        if child.action:
            assert child.action.server == server.id


def test_payloads_carry_what_to_copy_or_open():
    items = m.build_menu(state(SECURED, JIRA))
    assert m.find(items, "Copy sign-in link").action.payload == SECURED.auth_url
    assert m.find(items, "Open sign-in page again").action.payload == SECURED.auth_url
    assert m.find(items, "Copy error").action.payload == JIRA.detail
    assert m.find(items, "Open mcp.json").action.payload == "/home/u/.config/broxy/mcp.json"


def test_long_reasons_are_shortened_but_copied_whole():
    reason = "the authorization server said: " + "x" * 200
    s = ServerState("j", "Jira", S.ERROR, detail=reason)
    item = m.find(m.build_menu(state(s)), "✕ Jira")
    assert len(item.label) < 100 and item.label.endswith("…")
    assert m.find(item.submenu, "Copy error").action.payload == reason


def test_entry_error_and_file_error_are_shown():
    s = ServerState("a", "A", S.AVAILABLE, tools=2, config_error="mcp.json:4:9: url must be http(s)")
    items = m.build_menu(state(s, config_error="/home/u/.config/broxy/mcp.json:7:3: Expecting ',' delimiter; keeping"))
    assert labels(items)[1].startswith("⚠ mcp.json:7:3: Expecting ','")
    assert m.find(items, "Copy mcp.json error").action.kind == m.COPY_ERROR
    sub = m.find(items, "● A").submenu
    assert any(i.label.startswith("mcp.json: mcp.json:4:9") and not i.enabled for i in sub)
    assert m.find(sub, "Copy error").action.payload == s.config_error


def test_no_servers_and_title():
    items = m.build_menu(state())
    assert "No servers in mcp.json yet" in labels(items)
    assert m.title(state()) == "broxy-tray — no servers configured"
    assert m.title(state(GITHUB, FILES)) == "broxy-tray — 1 of 1 available"


def test_start_at_login_only_with_an_autostart_hook():
    assert m.find(m.build_menu(state()), "Start at login") is None
    on = m.find(m.build_menu(state(), autostart=True), "Start at login")
    off = m.find(m.build_menu(state(), autostart=False), "Start at login")
    assert on.checked is True and off.checked is False and on.action.kind == m.TOGGLE_AUTOSTART


def test_storage_unavailable_warning_is_shown_verbatim():
    text = "unavailable — you may need to authorize again after restart"
    assert m.find(m.build_menu(state(storage=text)), "Secure storage").label == f"Secure storage: {text}"


def test_models_compare_by_value_and_countdown_only_changes_are_detectable():
    a = state(SECURED, GITHUB)
    b = state(SECURED.__class__(**{**SECURED.__dict__, "seconds_left": 96}), GITHUB)
    assert m.build_menu(a) == m.build_menu(a)
    assert m.build_menu(a) != m.build_menu(b)
    assert m.without_countdown(a) == m.without_countdown(b)
    c = state(GITHUB.__class__(**{**GITHUB.__dict__, "status": S.ERROR, "detail": "x"}), SECURED)
    assert m.without_countdown(a) != m.without_countdown(c)


def test_copy_client_config_is_a_global_item_carrying_the_config_path():
    items = m.build_menu(state(GITHUB, FILES))
    item = m.find(items, "Copy client config")
    assert item.enabled and item.action == m.Action(m.COPY_CLIENT_CONFIG, None, "/home/u/.config/broxy/mcp.json")
    separators = [i for i, it in enumerate(items) if it.separator]
    assert items.index(item) > separators[1], "in the global section, below the servers"
    assert all(m.find(s.submenu, "Copy client config") is None for s in items if s.submenu)
    assert m.find(m.build_menu(state()), "Copy client config") is not None, "offered with no servers too"


def test_copy_client_config_click_copies_the_claude_desktop_snippet(monkeypatch, tmp_path):
    import json
    from types import SimpleNamespace

    from broxy_tray.proxy._client_config import client_config
    from broxy_tray.ui import desktop
    from broxy_tray.ui.tray import TrayRunner

    config = tmp_path / "mcp.json"
    copied, said = [], []
    monkeypatch.setattr(desktop, "copy_text", lambda text, gtk=False: copied.append(text) or True)
    runner = TrayRunner(config, SimpleNamespace(pystray=None, glib=False))
    monkeypatch.setattr(runner, "_message", said.append)
    runner._dispatch(m.find(m.build_menu(state()), "Copy client config").action)  # noqa: SLF001
    runner._dispatch(m.Action(m.COPY_CLIENT_CONFIG))  # noqa: SLF001 - no payload: the runner's own config
    assert copied[0] == client_config("claude-desktop", config_path="/home/u/.config/broxy/mcp.json")
    assert copied[1] == client_config("claude-desktop", config_path=config)
    entry = json.loads(copied[1])["mcpServers"]["broxy"]
    assert entry["args"][-3:] == ["stdio", "--config", str(config)]
    assert said and said[0].startswith("Client config copied")

    monkeypatch.setattr(desktop, "copy_text", lambda text, gtk=False: False)
    runner._dispatch(m.Action(m.COPY_CLIENT_CONFIG))  # noqa: SLF001
    assert "broxy-tray client-config" in said[-1]


def test_import_item_only_when_other_clients_have_new_servers():
    plain = labels(m.build_menu(state(GITHUB)))
    assert not any(lb.startswith("Import from") for lb in plain)
    items = m.build_menu(state(GITHUB), importable=("Claude Desktop", "Cursor"))
    lbs = labels(items)
    assert lbs[lbs.index("Open mcp.json") - 1] == "Import from Claude Desktop, Cursor…"
    item = m.find(items, "Import from")
    assert item.action == m.Action(m.IMPORT_SERVERS) and item.enabled
    four = m.build_menu(state(), importable=("Claude Desktop", "Cursor", "VS Code", "Codex"))
    assert m.find(four, "Import from").label == "Import from Claude Desktop, Cursor, VS Code…"


def test_connected_mcp_clients_are_counted_by_kind_and_preset():
    from broxy_tray.state import ClientCounts

    assert m.find(m.build_menu(state(GITHUB)), "MCP clients") is None  # nobody connected: no line
    counts = ClientCounts(stdio=2, http=1, presets=(("coding", 1),))
    items = m.build_menu(state(GITHUB, clients=counts))
    line = m.find(items, "MCP clients")
    assert line.label == "MCP clients: 2 stdio · 1 HTTP (coding: 1)" and line.enabled is False
    assert labels(items).index(line.label) == labels(items).index("Secure storage: not in use yet") + 1
    assert m.find(m.build_menu(state(clients=ClientCounts(http=3))), "MCP clients").label == "MCP clients: 3 HTTP"
