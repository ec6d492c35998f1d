"""The runner every tray shares, driven on a real loop with a real StateStore (no bus, no toolkit):
store changes coalesce into one refresh, countdown-only ticks wait for the throttle, a real change overtakes."""

from __future__ import annotations

import asyncio
from pathlib import Path

from broxy_tray.state import ServerState, ServerStatus, StateStore
from broxy_tray.ui import desktop
from broxy_tray.ui import menu as m
from broxy_tray.ui import tray
from broxy_tray.ui.sni._runner import SniTray


def make_runner(tmp_path: Path) -> tuple[SniTray, list]:
    runner = SniTray(tmp_path / "mcp.json", tray.TrayBackend("sni"))
    shown: list = []
    runner._show = lambda state, model, changed: shown.append((state, changed))  # type: ignore[method-assign]
    runner._initial_model()
    return runner, shown


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_burst_of_changes_is_one_refresh_with_the_latest_state(tmp_path):
    runner, shown = make_runner(tmp_path)
    runner._loop = asyncio.get_running_loop()
    store = StateStore(str(tmp_path / "mcp.json"))
    store.subscribe(runner._on_state)
    store.set_servers([ServerState(id="a", name="A", status=ServerStatus.CONNECTING)])
    for tools in range(1, 6):
        store.update_server("a", status=ServerStatus.AVAILABLE, tools=tools)
    await settle()
    assert len(shown) == 1
    assert shown[0][0] is store.state and shown[0][1] is True
    assert m.find(runner._model, "● A — Available · 5 tools") is not None


async def test_countdown_ticks_wait_for_the_throttle_and_a_real_change_overtakes(tmp_path, monkeypatch):
    monkeypatch.setattr(tray, "COUNTDOWN_REFRESH_SECONDS", 60.0)  # far longer than this test: no timing margin
    runner, shown = make_runner(tmp_path)
    runner._loop = asyncio.get_running_loop()
    store = StateStore(str(tmp_path / "mcp.json"))
    store.subscribe(runner._on_state)
    store.set_servers([ServerState(id="a", name="A", status=ServerStatus.AUTHORIZATION, seconds_left=90),
                       ServerState(id="b", name="B", status=ServerStatus.CONNECTING)])
    await settle()
    assert len(shown) == 1
    for left in (89, 88, 87):
        store.update_server("a", seconds_left=left)
    await settle()
    assert len(shown) == 1, "a countdown tick alone waits for the throttle"
    assert runner._delayed is not None
    store.update_server("b", status=ServerStatus.AVAILABLE, tools=2)
    await settle()
    assert len(shown) == 2, "a real change shows at once, with the latest countdown"
    assert shown[1][0].server("a").seconds_left == 87 and runner._delayed is None
    runner._loop = None


def test_a_failed_copy_says_what_to_install(tmp_path, monkeypatch):
    runner, _ = make_runner(tmp_path)
    said: list[str] = []
    monkeypatch.setattr(desktop, "copy_text", lambda text, gtk=False: False)
    monkeypatch.setattr(runner, "_message", said.append)
    runner._dispatch(m.Action(m.COPY_ERROR, "a", "the whole reason"))
    assert said == [f"could not copy to the clipboard: {desktop.CLIPBOARD_HINT}"]
