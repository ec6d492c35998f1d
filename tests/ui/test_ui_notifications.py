"""Which notifications a stream of state changes deserves (the policy), without a notification service."""

from __future__ import annotations

from dataclasses import replace

from broxy_tray.state import AppState, ConfigEvent, ServerState, ServerStatus
from broxy_tray.ui.notifications import NotificationPolicy, config_issue_text

S = ServerStatus


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


class Issue:  # the fields of a ConfigIssue the text uses
    def __init__(self, line, column, message, file="/home/u/.config/broxy/mcp.json"):
        self.file, self.line, self.column, self.message = file, line, column, message


def run(policy, *steps):
    """Feed (status, detail) steps for one server 'sec' named 'Secured MCP'; return the note texts per step."""
    out = []
    for status, detail in steps:
        s = ServerState("sec", "Secured MCP", status, detail=detail, remote=True)
        out.append([(n.kind, n.title, n.message) for n in policy.feed(AppState(servers=(s,)))])
    return out


def test_sign_in_prompt_then_available():
    got = run(NotificationPolicy(clock=Clock()), (S.CONNECTING, ""), (S.AUTHORIZATION, ""), (S.AUTHORIZATION, ""),
              (S.CONNECTING, ""), (S.AVAILABLE, ""))
    assert got == [[], [("sign_in", "Server Authorization", "Authorize Secured MCP")], [], [],
                   [("available", "broxy-tray", "Secured MCP is available")]]


def test_sign_in_failure_and_cancel_show_the_reason():
    p = NotificationPolicy(clock=Clock())
    got = run(p, (S.AUTHORIZATION, ""), (S.DISABLED, "sign-in cancelled"))
    assert got[1] == [("failed", "broxy-tray", "Secured MCP: sign-in cancelled")]


def test_fall_into_error_after_available_once_not_per_retry():
    clock = Clock()
    p = NotificationPolicy(clock=clock)
    got = run(p, (S.CONNECTING, ""), (S.AVAILABLE, ""), (S.CONNECTING, ""), (S.AVAILABLE, ""),
              (S.ERROR, "connection refused"), (S.CONNECTING, ""), (S.ERROR, "connection refused"))
    assert got == [[], [], [], [], [("failed", "broxy-tray", "Secured MCP: connection refused")], [], []]


def test_error_without_having_been_available_is_quiet():
    assert run(NotificationPolicy(clock=Clock()), (S.CONNECTING, ""), (S.ERROR, "nope")) == [[], []]


def test_rate_limit_one_per_server_per_30_s_except_sign_in_prompts():
    clock = Clock()
    p = NotificationPolicy(clock=clock)
    steps = [(S.AVAILABLE, ""), (S.ERROR, "down")]
    assert run(p, *steps)[1]
    clock.t += 10
    assert run(p, *steps)[1] == [], "second fall within 30 s is held back"
    assert run(p, (S.AUTHORIZATION, ""))[0][0][0] == "sign_in", "prompts are never held back"
    clock.t += 25
    assert run(p, (S.AVAILABLE, ""))[0] == [("available", "broxy-tray", "Secured MCP is available")]


def test_config_error_text_has_line_and_column():
    p = NotificationPolicy(clock=Clock())
    ev = ConfigEvent(action="error", errors=(Issue(3, 7, "Expecting ',' delimiter"),), message="whatever")
    notes = p.feed(AppState(), ev)
    assert [(n.kind, n.message) for n in notes] == [("config", "mcp.json: line 3, column 7: Expecting ',' delimiter")]
    assert config_issue_text(Issue(None, None, "file not found")) == "mcp.json: file not found"
    two = ConfigEvent(action="reloaded", errors=(Issue(4, 1, "a"), Issue(9, 2, "b")))
    assert p.feed(AppState(), two)[0].message == "mcp.json: line 4, column 1: a (and 1 more)"


def test_removed_servers_are_forgotten():
    p = NotificationPolicy(clock=Clock())
    run(p, (S.AVAILABLE, ""))
    p.feed(AppState())
    assert run(p, (S.ERROR, "x")) == [[]], "a new server of the same id starts fresh"
    assert replace  # keep import used
