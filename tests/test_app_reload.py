"""The core app against real files and the real watcher: live reload touches only what changed."""

from __future__ import annotations

import asyncio
import itertools
import json
import os

import pytest

from broxy_tray.app import App
from broxy_tray.state import ConfigEvent, ServerStatus

FIVE = {
    "mcpServers": {
        "a": {"command": "a"},
        "b": {"command": "b"},
        "c": {"command": "c"},
        "remote": {"url": "https://r.example.com/mcp"},
        "off": {"command": "o", "enabled": False},
    }
}


class RecordingRunner:
    """Stands in for live connections: marks a server Available and records its lifetime."""

    def __init__(self) -> None:
        self.serial = itertools.count(1)
        self.live: dict[str, int] = {}
        self.started: list[str] = []
        self.cancelled: list[str] = []

    async def __call__(self, server, config, store):
        token = next(self.serial)
        self.live[server.id] = token
        self.started.append(server.id)
        store.update_server(server.id, status=ServerStatus.AVAILABLE, tools=token)
        try:
            await asyncio.Event().wait()
        finally:
            self.cancelled.append(server.id)
            if self.live.get(server.id) == token:
                del self.live[server.id]


class Events:
    def __init__(self, store) -> None:
        self.config: list[ConfigEvent] = []
        self.arrived = asyncio.Event()
        store.subscribe(self._on)

    def _on(self, state, event):
        if isinstance(event, ConfigEvent):
            self.config.append(event)
            self.arrived.set()

    async def next(self, timeout: float = 5.0) -> ConfigEvent:
        await asyncio.wait_for(self.arrived.wait(), timeout)
        self.arrived.clear()
        await asyncio.sleep(0.05)  # let the supervisor finish applying
        return self.config[-1]


def write(path, obj_or_text):
    text = obj_or_text if isinstance(obj_or_text, str) else json.dumps(obj_or_text, indent=2)
    tmp = path.with_name(".tmp-save")
    tmp.write_text(text)
    os.replace(tmp, path)


@pytest.fixture
async def running(tmp_path):
    path = tmp_path / "mcp.json"
    write(path, FIVE)
    runner = RecordingRunner()
    app = App(path, runner=runner, environ={})
    events = Events(app.store)
    await app.start()
    first = await events.next()
    yield app, path, runner, events, first
    await app.shutdown()


async def test_initial_load(running):
    app, path, runner, events, first = running
    assert first.action == "loaded"
    assert first.started == ("a", "b", "c", "remote")
    state = app.store.state
    assert [s.id for s in state.servers] == ["a", "b", "c", "remote", "off"]
    assert state.server("off").status is ServerStatus.DISABLED
    assert all(state.server(s).status is ServerStatus.AVAILABLE for s in "abc")


async def test_editing_one_of_five_restarts_only_that_one(running):
    app, path, runner, events, _ = running
    before = dict(runner.live)
    new = json.loads(json.dumps(FIVE))
    new["mcpServers"]["b"]["args"] = ["--verbose"]
    write(path, new)
    ev = await events.next()
    assert ev.action == "reloaded" and ev.restarted == ("b",)
    assert set(ev.unchanged) == {"a", "c", "remote", "off"}
    after = dict(runner.live)
    assert after["b"] != before["b"]
    assert {k: v for k, v in after.items() if k != "b"} == {k: v for k, v in before.items() if k != "b"}
    assert runner.cancelled == ["b"]


async def test_rename_display_name_does_not_reconnect(running):
    app, path, runner, events, _ = running
    new = json.loads(json.dumps(FIVE))
    new["mcpServers"]["a"]["name"] = "Alpha"
    write(path, new)
    ev = await events.next()
    assert ev.updated == ("a",) and ev.restarted == ()
    assert runner.cancelled == []
    assert app.store.state.server("a").name == "Alpha"
    assert app.store.state.server("a").status is ServerStatus.AVAILABLE


async def test_syntax_error_keeps_last_good_then_fix_applies(running):
    app, path, runner, events, _ = running
    before = dict(runner.live)
    write(path, '{\n  "mcpServers": {\n    "a": {"command": "a",}\n  }\n}')
    ev = await events.next()
    assert ev.action == "error"
    (issue,) = ev.errors
    assert (issue.line, issue.column) == (3, 26) and issue.message.startswith("invalid JSON")
    assert "keeping the last good configuration running" in ev.message
    assert app.store.state.config_error == ev.message
    assert runner.live == before and runner.cancelled == [], "nothing running was touched"
    fixed = json.loads(json.dumps(FIVE))
    del fixed["mcpServers"]["c"]
    write(path, fixed)
    ev = await events.next()
    assert ev.action == "reloaded" and ev.stopped == ("c",) and ev.removed == ("c",)
    assert app.store.state.config_error is None
    assert runner.cancelled == ["c"]


async def test_invalid_entry_keeps_its_last_good_settings_running(running):
    app, path, runner, events, _ = running
    before = dict(runner.live)
    bad = json.loads(json.dumps(FIVE))
    bad["mcpServers"]["a"]["args"] = "oops"
    bad["mcpServers"]["new"] = {"url": "ftp://nope"}
    write(path, bad)
    ev = await events.next()
    assert ev.action == "reloaded"
    assert {(e.server, e.path) for e in ev.errors} == {("a", "mcpServers.a.args"), ("new", "mcpServers.new.url")}
    assert runner.live == before
    a = app.store.state.server("a")
    assert a.status is ServerStatus.AVAILABLE
    assert a.config_error.startswith("args must be an array of strings") and "still running the last good" in a.config_error
    new = app.store.state.server("new")
    assert new.status is ServerStatus.ERROR and "url scheme 'ftp'" in new.detail


async def test_delete_keeps_running_and_recreate_reloads(running):
    app, path, runner, events, _ = running
    before = dict(runner.live)
    path.unlink()
    ev = await events.next()
    assert ev.action == "error" and "was deleted; keeping the last good configuration running" in ev.message
    assert runner.live == before
    write(path, {"mcpServers": {"a": {"command": "a"}}})
    ev = await events.next()
    assert ev.action == "reloaded"
    assert set(ev.stopped) == {"b", "c", "remote"}
    assert ev.auth_cleared == ("remote",)
    assert set(runner.live) == {"a"} and runner.live["a"] == before["a"]


async def test_set_enabled_writes_file_and_applies(running):
    app, path, runner, events, _ = running
    original = path.read_text()
    assert await app.set_enabled("b", False) is True
    ev = await events.next()
    assert ev.stopped == ("b",)
    assert app.store.state.server("b").status is ServerStatus.DISABLED
    text = path.read_text()
    assert text.replace('"command": "b",\n      "enabled": false', '"command": "b"') == original
    assert await app.set_enabled("off", True) is True
    ev = await events.next()
    assert ev.started == ("off",)
    await asyncio.sleep(0.4)  # the watcher's echo of our own write changes nothing
    assert events.config[-1] is ev


async def test_touch_without_change_is_silent(running):
    app, path, runner, events, _ = running
    os.utime(path)
    write(path, path.read_text())
    await asyncio.sleep(0.5)
    assert len(events.config) == 1


async def test_broken_file_at_start_then_fixed(tmp_path):
    path = tmp_path / "mcp.json"
    path.write_text('{"mcpServers": ')
    runner = RecordingRunner()
    app = App(path, runner=runner, environ={})
    events = Events(app.store)
    await app.start()
    try:
        ev = await events.next()
        assert ev.action == "error" and "keeping" not in ev.message
        assert app.store.state.servers == ()
        write(path, {"mcpServers": {"a": {"command": "a"}}})
        ev = await events.next()
        assert ev.action == "loaded" and ev.started == ("a",)
    finally:
        await app.shutdown()
    assert runner.live == {} and runner.cancelled == ["a"], "shutdown cancels every server task"


class _DictKeyring:
    """A keyring backend in a dict: the real SecretStore on it, without a session bus (the
    gnome-keyring tests in tests/secretstore drive the real one)."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, str], str] = {}

    def get_password(self, service, username):
        return self.items.get((service, username))

    def set_password(self, service, username, password):
        self.items[(service, username)] = password

    def delete_password(self, service, username):
        self.items.pop((service, username), None)


async def test_unset_variable_shows_error_for_that_server_only(tmp_path):
    from broxy_tray.secrets import SecretStore

    path = tmp_path / "mcp.json"
    write(path, {"mcpServers": {"s": {"url": "https://h/mcp", "headers": {"X-Key": "${MISSING_KEY}"}}, "ok": {"command": "x"}}})
    app = App(path, runner=RecordingRunner(), environ={}, watch=False, secrets=SecretStore(backend=_DictKeyring()))
    await app.start()
    try:
        await asyncio.sleep(0.05)  # let the server task run
        s = app.store.state.server("s")
        assert s.status is ServerStatus.ERROR and s.detail == "environment variable MISSING_KEY is not set: `broxy-tray secret set MISSING_KEY`"
        assert app.store.state.server("ok").status is ServerStatus.AVAILABLE
    finally:
        await app.shutdown()
