"""SecretStore logic, the app's live re-expansion, the menu's "Set NAME…" and the password prompt, in-process.

The store runs here on small keyring backends in a dict (and one that hangs or fails on purpose): keyring
picks its real backend once per process, so the real gnome-keyring is driven in subprocesses by
test_secrets_live.py and test_secret_cli.py.
"""

from __future__ import annotations

import asyncio
import os
import stat
import threading
import time
from pathlib import Path

import pytest

from broxy_tray.config import parse_config
from broxy_tray.config._expand import Sources
from broxy_tray.secrets import InvalidSecretName, SecretStore, SecretStoreUnavailable, check_name, is_valid_name
from broxy_tray.state import ServerState, ServerStatus
from broxy_tray.ui import menu as m
from broxy_tray.ui.secret_prompt import Cancelled, ask_secret, prompt_command


class DictKeyring:
    def __init__(self) -> None:
        self.items: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.items.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.items[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.items.pop((service, username), None)


class HangingKeyring(DictKeyring):
    """Blocks like a locked keyring waiting on an unlock prompt, until released."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def get_password(self, service: str, username: str) -> str | None:
        self.release.wait(30)
        return super().get_password(service, username)


class LeakyFailingKeyring(DictKeyring):
    def set_password(self, service: str, username: str, password: str) -> None:
        raise RuntimeError(f"backend exploded while storing {password}")


def test_names_are_checked() -> None:
    for good in ("A", "_x", "GITHUB_TOKEN", "a1_b2", "A" * 128):
        assert is_valid_name(good) and check_name(good) == good
    for bad in ("", "1A", "A-B", "A B", "${A}", "A#1", "#index", "Ä", "A" * 129, None, 3):
        assert not is_valid_name(bad)
        with pytest.raises(InvalidSecretName):
            check_name(bad)


async def test_set_get_names_delete_with_index_and_parts() -> None:
    backend = DictKeyring()
    store = SecretStore(backend=backend)
    try:
        big = "v" * 1300 + "😀" * 10
        await store.set("BIG", big)
        await store.set("SMALL", "small-value")
        await store.set("SMALL", "small-value-2")
        assert await store.get("BIG") == big and await store.get("SMALL") == "small-value-2"
        assert await store.names() == ["BIG", "SMALL"]
        users = sorted(u for (svc, u) in backend.items if svc == "broxy-tray-secrets")
        assert users == ["#index", "BIG", "BIG#1", "BIG#2", "BIG#3", "SMALL"]
        assert await store.get_many(["BIG", "NOPE", "bad-name"]) == {"BIG": big}
        assert await store.delete("BIG") is True
        assert await store.delete("BIG") is False
        assert await store.names() == ["SMALL"]
        assert sorted(u for (_, u) in backend.items) == ["#index", "SMALL"], "no part left behind"
        with pytest.raises(ValueError, match="empty value"):
            await store.set("SMALL", "")
        with pytest.raises(InvalidSecretName):
            await store.set("1BAD", "x")
        assert await store.get("SMALL") == "small-value-2", "refused input changes nothing"
    finally:
        store.close()


async def test_a_hung_keyring_times_out_then_fails_fast_then_recovers() -> None:
    backend = HangingKeyring()
    store = SecretStore(backend=backend, timeout=0.3)
    try:
        with pytest.raises(SecretStoreUnavailable, match="did not answer within 0.3 s"):
            await store.get("A")
        workers = [t for t in threading.enumerate() if t.name == "broxy-keyring-broxy-tray-secrets"]
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        with pytest.raises(SecretStoreUnavailable, match="still busy"):
            await store.get("A")  # does not queue behind the stuck call
        assert loop.time() - t0 < 0.2
        assert [t for t in threading.enumerate() if t.name == "broxy-keyring-broxy-tray-secrets"] == workers
        backend.release.set()
        for _ in range(100):
            if not store._worker.busy:
                break
            await asyncio.sleep(0.02)
        await store.set("A", "after-unlock")
        assert await store.get("A") == "after-unlock"
    finally:
        backend.release.set()
        store.close()


async def test_calls_at_the_same_time_wait_for_each_other_instead_of_being_refused() -> None:
    """A reload reading secrets while the tray stores one: a slow but answering keyring queues them."""

    class SlowKeyring(DictKeyring):
        def get_password(self, service: str, username: str) -> str | None:
            time.sleep(0.2)
            return super().get_password(service, username)

    store = SecretStore(backend=SlowKeyring(), timeout=5)
    try:
        await store.set("B", "first-value")
        got, _ = await asyncio.gather(store.get_many(["B"]), store.set("C", "second-value"))
        assert got == {"B": "first-value"}
        assert await store.get("C") == "second-value"
    finally:
        store.close()


async def test_a_failing_backend_never_shows_the_value(caplog: pytest.LogCaptureFixture) -> None:
    store = SecretStore(backend=LeakyFailingKeyring())
    try:
        with pytest.raises(SecretStoreUnavailable) as e:
            await store.set("NAME", "the-value-987")
        assert "the-value-987" not in e.value.reason and "RuntimeError" in e.value.reason
    finally:
        store.close()
    assert "the-value-987" not in caplog.text


def test_a_stored_value_that_would_break_a_header_is_that_servers_error() -> None:
    text = ('{"mcpServers": {"h": {"url": "https://x.example/mcp", "headers": {"X-Key": "${MULTI}"}},'
            ' "ok": {"url": "https://y.example/mcp", "headers": {"X-Key": "${FINE}"}}}}')
    config = parse_config(text, "mcp.json", Sources({}, {"MULTI": "line-one\r\nInjected: yes", "FINE": "fine-value"}))
    bad, ok = config.server("h"), config.server("ok")
    assert bad is not None and ok is not None
    assert not bad.valid and bad.problems[0].message == "header X-Key must not contain line breaks"
    assert ok.valid and ok.headers["X-Key"] == "fine-value"
    assert "line-one" not in str(bad.problems[0])


def test_config_variables_say_where_each_value_came_from() -> None:
    text = '{"mcpServers": {"a": {"command": "x", "args": ["${E}", "${S}", "${D:-d}", "${A:-${S}}"]}, "b": {"command": "${M}"}}}'
    config = parse_config(text, "mcp.json", Sources({"E": "env-val"}, {"S": "store-val"}))
    assert [(u.name, u.origin, u.server) for u in config.variables] == [
        ("E", "environment", "a"), ("S", "secret store", "a"), ("D", "default", "a"), ("S", "secret store", "a"),
        ("A", "default", "a"), ("M", "missing", "b")]
    assert config.missing_variables() == ("D", "A", "M")
    problem = config.server("b").problems[0]  # type: ignore[union-attr]
    assert problem.variable == "M" and problem.message.endswith("`broxy-tray secret set M`")


# -- the app: set → that server starts, nobody else restarts; rm → Error with the fix -----------------------


async def test_app_applies_a_set_secret_at_once_and_restarts_nobody_else(tmp_path: Path) -> None:
    import json

    from broxy_tray.app import App, IntentError

    runs: list[str] = []

    async def runner(server, config, store):  # type: ignore[no-untyped-def]
        runs.append(server.id)
        store.update_server(server.id, status=ServerStatus.AVAILABLE, tools=0)
        await asyncio.Event().wait()

    path = tmp_path / "mcp.json"
    path.write_text(json.dumps({"mcpServers": {"needs": {"command": "x", "env": {"T": "${APP_T}"}},
                                               "other": {"command": "y"}}}))
    secrets = SecretStore(backend=DictKeyring())
    app = App(path, runner=runner, environ={}, watch=False, secrets=secrets)
    await app.start()
    try:
        needs = app.store.state.server("needs")
        assert needs is not None and needs.status is ServerStatus.ERROR and needs.missing_variable == "APP_T"
        assert m.find(m.server_actions(needs), "Set APP_T…") is not None
        await app.set_secret("APP_T", "first-value")
        await asyncio.sleep(0)
        assert app.store.state.server("needs").status is ServerStatus.AVAILABLE  # type: ignore[union-attr]
        assert app.config.server("needs").env["T"] == "first-value"  # type: ignore[union-attr]
        await app.set_secret("APP_T", "second-value")
        assert app.config.server("needs").env["T"] == "second-value"  # type: ignore[union-attr]
        await secrets.delete("APP_T")
        await app.secrets_changed()
        gone = app.store.state.server("needs")
        assert gone is not None and gone.status is ServerStatus.ERROR, "a removed secret is not held on its old value"
        assert gone.detail.endswith("`broxy-tray secret set APP_T`")
        await asyncio.sleep(0)
        assert runs == ["other", "needs", "needs"], "only the server whose settings changed (re)started"
        with pytest.raises(IntentError, match="could not store APP_T"):
            await app.set_secret("APP_T", "")
    finally:
        await app.shutdown()


# -- the tray: "Set NAME…" and the platform's password prompt ------------------------------------------------


def test_menu_offers_set_name_only_for_a_missing_variable() -> None:
    missing = ServerState("gh", "GitHub", ServerStatus.ERROR, detail="GH_TOKEN is not set: …", missing_variable="GH_TOKEN")
    items = m.server_actions(missing)
    assert items[0] == m.MenuItem("Set GH_TOKEN…", m.Action(m.SET_SECRET, "gh", "GH_TOKEN"))
    other = ServerState("gh", "GitHub", ServerStatus.ERROR, detail="connection refused")
    assert m.find(m.server_actions(other), "Set ") is None


def _helper(tmp_path: Path, name: str, script: str) -> str:
    """A stand-in for zenity/kdialog (no person here to type into the real dialog): same interface —
    arguments in, the value on stdout, exit 1 on Cancel."""
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_password_prompt_returns_the_value_or_cancelled_or_none(tmp_path: Path) -> None:
    args_file = tmp_path / "args"
    zenity = _helper(tmp_path, "zenity", f'echo "$@" > {args_file}\nprintf "typed-value-1\\n"\n')
    got = ask_secret("GH_TOKEN", server="gh", platform="linux", which=lambda c: zenity if c == "zenity" else None)
    assert got == "typed-value-1"
    args = args_file.read_text()
    assert args.split()[:2] == ["--entry", "--hide-text"]  # `zenity --password` would only say "Type your password"
    assert "--text=Value for GH_TOKEN, used by server &#x27;gh&#x27; (stored in the OS keyring)" in args
    cancel = _helper(tmp_path, "kdialog", "exit 1\n")
    assert isinstance(ask_secret("GH_TOKEN", platform="linux", which=lambda c: cancel if c == "kdialog" else None),
                      Cancelled)
    assert ask_secret("GH_TOKEN", platform="linux", which=lambda c: None) is None
    empty = _helper(tmp_path, "empty", "printf '\\n'\n")
    assert isinstance(ask_secret("GH_TOKEN", platform="linux", which=lambda c: empty if c == "zenity" else None),
                      Cancelled)


def test_prompt_commands_per_platform_carry_no_value() -> None:
    mac = prompt_command("GH_TOKEN", platform="darwin")
    assert mac is not None and mac[0] == "osascript" and "with hidden answer" in mac[2]
    win = prompt_command("GH_TOKEN", platform="win32", which=lambda c: "powershell.exe" if c == "powershell" else None)
    assert win is not None and "Get-Credential" in win[-1]
    assert prompt_command("GH_TOKEN", platform="win32", which=lambda c: None) is None
    kde = prompt_command("GH_TOKEN", platform="linux", which=lambda c: "/usr/bin/kdialog" if c == "kdialog" else None)
    assert kde is not None and kde[0] == "/usr/bin/kdialog" and "--password" in kde
    kde = prompt_command("GH_TOKEN", server="gh", platform="linux",
                         which=lambda c: "/usr/bin/kdialog" if c == "kdialog" else None)
    assert kde is not None
    assert kde[kde.index("--password") + 1] == "Value for GH_TOKEN, used by server 'gh' (stored in the OS keyring)"
    quoted = prompt_command("GH_TOKEN", server='a"b', platform="darwin")
    assert quoted is not None and 'server ab (stored' in quoted[2]


def test_no_value_left_in_the_process_list_by_the_prompt(tmp_path: Path) -> None:
    seen = tmp_path / "seen"
    zenity = _helper(tmp_path, "zenity", f'cat /proc/$$/cmdline > {seen}\nprintf "value-not-on-cmdline\\n"\n')
    assert ask_secret("N", platform="linux", which=lambda c: zenity if c == "zenity" else None) == "value-not-on-cmdline"
    assert b"value-not-on-cmdline" not in seen.read_bytes()
    assert os.path.exists(seen)


async def test_a_keyring_locked_later_does_not_stop_what_runs_but_a_fresh_start_reports_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    import broxy_tray.app
    from broxy_tray.app import App

    monkeypatch.setattr(broxy_tray.app, "SECRET_RETRY", 0.3)

    class LockableKeyring(DictKeyring):
        locked = False

        def get_password(self, service: str, username: str) -> str | None:
            if self.locked:
                raise RuntimeError("Failed to unlock the collection: the keyring is locked")
            return super().get_password(service, username)

    async def runner(server, config, store):  # type: ignore[no-untyped-def]
        store.update_server(server.id, status=ServerStatus.AVAILABLE, tools=0)
        await asyncio.Event().wait()

    backend = LockableKeyring()
    path = tmp_path / "mcp.json"
    path.write_text(json.dumps({"mcpServers": {"s": {"command": "x", "env": {"T": "${LOCK_T}"}}}}))
    seed = SecretStore(backend=backend)
    await seed.set("LOCK_T", "stored-value")
    seed.close()
    app = App(path, runner=runner, environ={}, watch=False, secrets=SecretStore(backend=backend))
    await app.start()
    try:
        await asyncio.sleep(0.05)  # let the server task run
        assert app.store.state.server("s").status is ServerStatus.AVAILABLE  # type: ignore[union-attr]
        backend.locked = True
        path.write_text(json.dumps({"mcpServers": {"s": {"command": "x", "env": {"T": "${LOCK_T}"}}, "t": {"command": "y"}}}))
        await app.reload()
        await asyncio.sleep(0.05)
        assert app.store.state.server("s").status is ServerStatus.AVAILABLE  # type: ignore[union-attr]
        assert app.config.server("s").env["T"] == "stored-value"  # type: ignore[union-attr]
    finally:
        await app.shutdown()
    fresh = App(path, runner=runner, environ={}, watch=False, secrets=SecretStore(backend=backend))
    await fresh.start()
    try:
        await asyncio.sleep(0.05)
        s = fresh.store.state.server("s")
        assert s is not None and s.status is ServerStatus.ERROR and "the keyring is locked" in s.detail
        assert fresh.store.state.server("t").status is ServerStatus.AVAILABLE  # type: ignore[union-attr]
        backend.locked = False  # unlocked after login: no file event, no reload asked for, yet it connects
        for _ in range(100):
            await asyncio.sleep(0.05)
            if fresh.store.state.server("s").status is ServerStatus.AVAILABLE:  # type: ignore[union-attr]
                break
        assert fresh.store.state.server("s").status is ServerStatus.AVAILABLE  # type: ignore[union-attr]
        assert fresh.config.server("s").env["T"] == "stored-value"  # type: ignore[union-attr]
    finally:
        await fresh.shutdown()
