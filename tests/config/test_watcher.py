"""The real watchdog observer against real saves in the styles editors use."""

from __future__ import annotations

import asyncio
import os

import pytest

from broxy_tray.config import ConfigWatcher

SETTLE = 0.6  # generous: debounce is 80 ms


class Counter:
    def __init__(self) -> None:
        self.count = 0
        self.event = asyncio.Event()

    def __call__(self) -> None:
        self.count += 1
        self.event.set()

    async def wait(self, timeout: float = 5.0) -> None:
        await asyncio.wait_for(self.event.wait(), timeout)
        await asyncio.sleep(SETTLE)  # anything that would fire twice has fired by now
        self.event.clear()


@pytest.fixture
async def watched(tmp_path):
    path = tmp_path / "mcp.json"
    path.write_text("{}")
    counter = Counter()
    watcher = ConfigWatcher(path, counter, asyncio.get_running_loop())
    watcher.start()
    await asyncio.sleep(0.1)
    yield path, counter
    watcher.stop()


def atomic_save(path, text):
    tmp = path.with_name(".mcp.json.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def vim_save(path, text):
    backup = path.with_name(path.name + "~")
    os.rename(path, backup)
    with open(path, "w") as f:
        f.write(text)
    os.unlink(backup)


def in_place_save(path, text):
    with open(path, "r+") as f:
        f.seek(0)
        f.truncate()
        f.write(text)


@pytest.mark.parametrize("save", [atomic_save, vim_save, in_place_save], ids=["atomic-rename", "vim", "in-place"])
async def test_each_save_style_fires_once(watched, save):
    path, counter = watched
    save(path, '{"mcpServers": {}}')
    await counter.wait()
    assert counter.count == 1


async def test_delete_then_recreate_fires(watched):
    path, counter = watched
    path.unlink()
    await counter.wait()
    assert counter.count == 1
    path.write_text("{}")
    await counter.wait()
    assert counter.count == 2


async def test_burst_is_debounced(watched):
    path, counter = watched
    for i in range(30):
        atomic_save(path, f'{{"n": {i}}}')
        await asyncio.sleep(0.005)
    await counter.wait()
    assert counter.count == 1


async def test_other_files_in_directory_ignored(watched):
    path, counter = watched
    (path.parent / "other.json").write_text("{}")
    (path.parent / "mcp.json.bak").write_text("{}")
    await asyncio.sleep(SETTLE)
    assert counter.count == 0


async def test_endless_burst_still_fires(tmp_path):
    path = tmp_path / "mcp.json"
    path.write_text("{}")
    counter = Counter()
    watcher = ConfigWatcher(path, counter, asyncio.get_running_loop(), debounce=0.2, max_delay=0.5)
    watcher.start()
    try:
        loop = asyncio.get_running_loop()
        end = loop.time() + 1.4
        while loop.time() < end:  # a write every 50 ms never leaves 200 ms of quiet
            path.write_text(f"{loop.time()}")
            await asyncio.sleep(0.05)
        assert counter.count >= 2, "max_delay forces a reload during a never-ending burst"
    finally:
        watcher.stop()


async def test_symlinked_config_target_edits_fire(tmp_path):
    dotfiles = tmp_path / "dotfiles"
    dotfiles.mkdir()
    real = dotfiles / "mcp.json"
    real.write_text("{}")
    link = tmp_path / "conf" / "mcp.json"
    link.parent.mkdir()
    link.symlink_to(real)
    counter = Counter()
    watcher = ConfigWatcher(link, counter, asyncio.get_running_loop())
    watcher.start()
    try:
        await asyncio.sleep(0.1)
        atomic_save(real, '{"x": 1}')
        await counter.wait()
        assert counter.count == 1
    finally:
        watcher.stop()


async def test_stop_is_clean_and_idempotent(tmp_path):
    path = tmp_path / "mcp.json"
    path.write_text("{}")
    counter = Counter()
    watcher = ConfigWatcher(path, counter, asyncio.get_running_loop())
    watcher.start()
    watcher.stop()
    watcher.stop()
    path.write_text('{"a": 1}')
    await asyncio.sleep(SETTLE)
    assert counter.count == 0
