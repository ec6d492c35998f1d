"""Reconcile plans: what a save starts, stops, restarts, keeps, and does to sign-in data."""

from __future__ import annotations

import copy
import json

from broxy_tray.config import parse_config, reconcile

BASE = {
    "mcpServers": {
        "files": {"command": "uvx", "args": ["mcp-server-files"]},
        "gh": {"name": "GitHub", "url": "https://api.example.com/mcp", "auth": {"clientId": "c1", "scopes": ["repo"]}},
        "jira": {"url": "https://jira.example.com/mcp"},
        "off": {"command": "x", "enabled": False},
        "ws": {"url": "wss://ws.example.com/mcp"},
    }
}


def cfg(obj):
    return parse_config(json.dumps(obj, indent=2), "mcp.json", {"TOKEN": "t0k3n-value"})


def edit(fn):
    new = copy.deepcopy(BASE)
    fn(new["mcpServers"])
    return reconcile(cfg(BASE), cfg(new))


def kinds(plan):
    return sorted((a.kind, a.server, a.source) for a in plan.auth)


def test_initial_load_starts_enabled_valid_servers():
    plan = reconcile(None, cfg(BASE))
    assert plan.start == ("files", "gh", "jira", "ws")
    assert (plan.stop, plan.restart, plan.keep, plan.auth) == ((), (), (), ())


def test_identical_config_is_a_noop():
    plan = reconcile(cfg(BASE), cfg(BASE))
    assert plan.is_noop
    assert plan.unchanged == ("files", "gh", "jira", "off", "ws")


def test_cosmetic_name_change_keeps_connection():
    plan = edit(lambda s: s["gh"].update(name="GitHub (work)"))
    assert plan.keep == ("gh",)
    assert plan.restart == () and plan.start == () and plan.auth == ()
    assert plan.config.server("gh").name == "GitHub (work)"


def test_unknown_key_change_is_not_a_restart():
    plan = edit(lambda s: s["files"].update(comment="hello"))
    assert plan.restart == () and plan.keep == ()


def test_connection_field_change_restarts_only_that_server():
    for change in (
        lambda s: s["files"].update(args=["other"]),
        lambda s: s["files"].update(env={"A": "1"}),
        lambda s: s["files"].update(cwd="/tmp"),
        lambda s: s["files"].update(command="npx"),
    ):
        plan = edit(change)
        assert plan.restart == ("files",)
        assert set(plan.unchanged) == {"gh", "jira", "off", "ws"}


def test_header_change_restarts():
    plan = edit(lambda s: s["jira"].update(headers={"X-Team": "${TOKEN}"}))
    assert plan.restart == ("jira",) and plan.auth == ()


def test_add_and_remove():
    def change(s):
        del s["files"]
        s["new"] = {"command": "y"}
    plan = edit(change)
    assert plan.start == ("new",) and plan.stop == ("files",) and plan.removed == ("files",)
    assert plan.auth == (), "a stdio server has no sign-in data"


def test_removing_remote_server_clears_auth():
    plan = edit(lambda s: s.pop("jira"))
    assert plan.stop == ("jira",)
    assert kinds(plan) == [("clear", "jira", None)]


def test_removing_disabled_remote_server_still_clears_auth():
    def change(s):
        s["jira"]["enabled"] = False
    disabled = copy.deepcopy(BASE)
    change(disabled["mcpServers"])
    gone = copy.deepcopy(disabled)
    del gone["mcpServers"]["jira"]
    plan = reconcile(cfg(disabled), cfg(gone))
    assert plan.stop == () and plan.removed == ("jira",)
    assert kinds(plan) == [("clear", "jira", None)]


def test_disable_stops_and_keeps_tokens():
    plan = edit(lambda s: s["gh"].update(enabled=False))
    assert plan.stop == ("gh",) and plan.auth == ()


def test_enable_starts():
    plan = edit(lambda s: s["off"].update(enabled=True))
    assert plan.start == ("off",)


def test_rename_moves_auth_entry():
    def change(s):
        s["github"] = s.pop("gh")
    plan = edit(change)
    assert kinds(plan) == [("move", "github", "gh")]
    assert plan.stop == ("gh",) and plan.start == ("github",)


def test_rename_with_changed_auth_is_not_a_move():
    def change(s):
        s["github"] = s.pop("gh")
        s["github"]["auth"]["clientId"] = "c2"
    assert kinds(edit(change)) == [("clear", "gh", None)]


def test_ambiguous_rename_moves_nothing():
    def change(s):
        entry = s.pop("jira")
        s["jira-a"] = dict(entry)
        s["jira-b"] = dict(entry)
    assert kinds(edit(change)) == [("clear", "jira", None)]


def test_url_change_drops_tokens():
    plan = edit(lambda s: s["jira"].update(url="https://jira2.example.com/mcp"))
    assert plan.restart == ("jira",)
    assert kinds(plan) == [("drop-tokens", "jira", None)]


def test_identifying_auth_field_change_drops_client():
    for field, value in (
        ("clientId", "c2"),
        ("clientSecret", "shh-secret"),
        ("clientIdMetadataUrl", "https://a.example.com/meta.json"),
        ("authorizationServer", "https://auth2.example.com"),
        ("redirectUri", "http://127.0.0.1:9999/cb"),
        ("tokenEndpointAuthMethod", "client_secret_basic"),
    ):
        plan = edit(lambda s: s["gh"]["auth"].update({field: value}))
        assert kinds(plan) == [("drop-client", "gh", None)], field
        assert plan.restart == ("gh",)


def test_auth_block_added_drops_discovered_client():
    plan = edit(lambda s: s["jira"].update(auth={"clientId": "pre-registered"}))
    assert kinds(plan) == [("drop-client", "jira", None)]


def test_scopes_widened_is_step_up_narrowed_is_not():
    plan = edit(lambda s: s["gh"]["auth"].update(scopes=["repo", "issues"]))
    assert kinds(plan) == [("step-up", "gh", None)]
    plan = edit(lambda s: s["gh"]["auth"].update(scopes=[]))
    assert plan.auth == ()


def test_transport_switch_to_stdio_clears():
    plan = edit(lambda s: s.update(jira={"command": "x"}))
    assert kinds(plan) == [("clear", "jira", None)]


def test_invalid_edit_holds_last_good_entry():
    plan = edit(lambda s: s["files"].update(args="not-a-list"))
    assert plan.held == ("files",)
    assert plan.unchanged.count("files") == 1 and plan.stop == () and plan.restart == ()
    assert plan.config.server("files").args == ("mcp-server-files",)


def test_invalid_new_entry_is_not_started():
    plan = edit(lambda s: s.update(bad={"url": "ftp://x"}))
    assert plan.start == () and plan.held == ()
    assert not plan.config.server("bad").valid


def test_fixing_an_invalid_entry_starts_it():
    broken = copy.deepcopy(BASE)
    broken["mcpServers"]["new"] = {"url": "ftp://x"}
    fixed = copy.deepcopy(BASE)
    fixed["mcpServers"]["new"] = {"url": "https://x/mcp"}
    plan = reconcile(cfg(broken), cfg(fixed))
    assert plan.start == ("new",)


def test_many_changes_at_once():
    def change(s):
        s["files"]["args"] = ["x"]
        s["gh"]["name"] = "GH"
        s["off"]["enabled"] = True
        del s["ws"]
        s["added"] = {"url": "https://added.example.com/mcp", "enabled": False}
    plan = edit(change)
    assert plan.restart == ("files",) and plan.keep == ("gh",) and plan.start == ("off",)
    assert plan.stop == ("ws",) and plan.unchanged == ("jira",)
    assert kinds(plan) == [("clear", "ws", None)]
