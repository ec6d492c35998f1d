"""The bridge session's bookkeeping across reconnects: what it re-sends, what it answers itself, what it drops.

The app's facade offers neither `logging/setLevel` nor `resources/subscribe`, so a real app cannot show
that they are replayed: here the "app" is a recording peer on a socketpair that answers every request
(a stand-in for the app's end of the relay, nothing else). End-to-end behaviour with the real app and
real clients is in test_bridge_restart.py.
"""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

from broxy_tray.proxy._bridge_session import APP_GONE, BridgeSession, LinkError


class RecordingApp:
    """Hands out connections; each records the lines it got and answers requests with {"echo": method}."""

    def __init__(self) -> None:
        self.connections: list[list[dict[str, Any]]] = []
        self.available = True
        self._ends: list[asyncio.StreamWriter] = []
        self._tasks: list[asyncio.Task[None]] = []

    async def link(self, first: bool, wanted: bool):
        if not self.available:
            raise LinkError("broxy-tray is not running (test)", final=False)
        ours, theirs = socket.socketpair()
        seen: list[dict[str, Any]] = []
        self.connections.append(seen)
        self._tasks.append(asyncio.ensure_future(self._serve(ours, seen)))
        return await asyncio.open_unix_connection(sock=theirs)

    async def _serve(self, sock: socket.socket, seen: list[dict[str, Any]]) -> None:
        reader, writer = await asyncio.open_unix_connection(sock=sock)
        self._ends.append(writer)
        while line := await reader.readline():
            msg = json.loads(line)
            seen.append(msg)
            if "id" in msg and "method" in msg and not str(msg["method"]).startswith("hang/"):
                writer.write(json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": {"echo": msg["method"]}}).encode() + b"\n")
                await writer.drain()
        writer.close()

    def kill(self) -> None:
        self.available = False
        for w in self._ends:  # through the transport, so the loop forgets the socket too
            w.close()
        self._ends.clear()
        for t in self._tasks:
            t.cancel()


class Client:
    def __init__(self) -> None:
        self.lines: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.out: list[dict[str, Any]] = []
        self.got = asyncio.Event()

    async def write(self, data: bytes) -> None:
        self.out.append(json.loads(data))
        self.got.set()

    async def stream(self):
        while (line := await self.lines.get()) is not None:
            yield line

    def send(self, msg: dict[str, Any]) -> None:
        self.lines.put_nowait(json.dumps(msg).encode() + b"\n")

    async def answer(self, rid: Any, timeout: float = 10.0) -> dict[str, Any]:
        async def find() -> dict[str, Any]:
            while True:
                for m in self.out:
                    if m.get("id") == rid and "method" not in m:
                        return m
                self.got.clear()
                await self.got.wait()

        return await asyncio.wait_for(find(), timeout)


def request(rid: Any, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    msg: dict[str, Any] = {"jsonrpc": "2.0", "id": rid, "method": method}
    if params is not None:
        msg["params"] = params
    return msg


INIT_PARAMS = {"protocolVersion": "2025-11-25", "capabilities": {"roots": {}}, "clientInfo": {"name": "ide", "version": "7"}}


async def test_reconnect_replays_initialize_log_level_and_subscriptions_and_announces_list_changes():
    app, client = RecordingApp(), Client()
    session = BridgeSession(app.link, client.write, hold_timeout=5)
    run = asyncio.ensure_future(session.run(client.stream()))
    client.send(request(1, "initialize", INIT_PARAMS))
    await client.answer(1)
    client.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    client.send(request(2, "logging/setLevel", {"level": "debug"}))
    client.send(request(3, "resources/subscribe", {"uri": "file:///a"}))
    client.send(request(4, "resources/subscribe", {"uri": "file:///b"}))
    client.send(request(5, "resources/unsubscribe", {"uri": "file:///a"}))
    client.send(request(6, "hang/forever"))  # in flight when the app goes away
    await client.answer(5)
    while not any(m.get("method") == "hang/forever" for m in app.connections[0]):
        await asyncio.sleep(0.01)

    app.kill()
    lost = await client.answer(6)
    assert lost["error"]["code"] == APP_GONE and "went away" in lost["error"]["message"]
    client.send(request(7, "ping"))
    assert (await client.answer(7))["result"] == {}  # answered by the bridge while the app is away
    client.send(request(8, "tools/list"))  # held until the app is back
    client.send({"jsonrpc": "2.0", "id": 99, "result": {}})  # an answer for the dead connection: dropped
    app.available = True

    a8 = await client.answer(8)
    assert a8.get("result") == {"echo": "tools/list"}, (a8, app.connections)
    replay = app.connections[1]
    assert [m.get("method") for m in replay] == [
        "initialize", "notifications/initialized", "logging/setLevel", "resources/subscribe", "tools/list"]
    assert replay[0]["params"] == INIT_PARAMS and replay[2]["params"] == {"level": "debug"}
    assert replay[3]["params"] == {"uri": "file:///b"}
    assert all(str(m["id"]).startswith("broxy-stdio-") for m in replay[:4] if "id" in m)
    assert not any(m.get("id") == 99 for m in replay)
    methods = [m.get("method") for m in client.out]
    for kind in ("tools", "prompts", "resources"):
        assert f"notifications/{kind}/list_changed" in methods
    ids = [m.get("id") for m in client.out if "method" not in m]
    assert not any(str(i).startswith("broxy-stdio-") for i in ids)  # the replays' answers stay in the bridge
    assert ids.count(1) == 1  # the client saw one initialize answer: its own

    client.lines.put_nowait(None)  # the client hangs up
    assert await asyncio.wait_for(run, 10) == 0


async def test_a_request_while_the_app_stays_away_errors_within_the_hold_time():
    app, client = RecordingApp(), Client()
    session = BridgeSession(app.link, client.write, hold_timeout=0.3)
    run = asyncio.ensure_future(session.run(client.stream()))
    client.send(request(1, "initialize", INIT_PARAMS))
    await client.answer(1)
    app.kill()
    await asyncio.sleep(0.1)
    client.send(request(2, "tools/call", {"name": "x"}))
    client.send(request(3, "tools/call", {"name": "y"}))
    client.send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 3}})
    answer = await client.answer(2, timeout=5)
    assert answer["error"]["code"] == APP_GONE and "not running" in answer["error"]["message"]
    await asyncio.sleep(0.5)
    assert not any(m.get("id") == 3 for m in client.out)  # cancelled while held: no answer is due
    client.lines.put_nowait(None)
    assert await asyncio.wait_for(run, 10) == 0


async def test_the_first_connection_failing_ends_the_session_with_1():
    async def link(first, wanted):
        raise LinkError("broxy-tray is not running for /x/mcp.json")

    client = Client()
    logged: list[str] = []
    session = BridgeSession(link, client.write, log=logged.append)
    assert await asyncio.wait_for(session.run(client.stream()), 10) == 1
    assert logged == ["broxy-tray is not running for /x/mcp.json"]


async def test_an_unexpected_failure_to_reach_the_app_is_said_and_retried_not_fatal_to_the_session():
    """Starting the app can fail with a plain OSError (no descriptor left, a read-only state folder): the
    bridge says so once and keeps trying, and reconnects once the app can be reached again."""
    app, client = RecordingApp(), Client()
    broken = True
    logged: list[str] = []

    async def link(first: bool, wanted: bool):
        if broken and not first:
            raise PermissionError(13, "Permission denied", "/home/u/.local/state/broxy/instances")
        return await app.link(first, wanted)

    session = BridgeSession(link, client.write, log=logged.append, hold_timeout=0.3)
    run = asyncio.ensure_future(session.run(client.stream()))
    client.send(request(1, "initialize", INIT_PARAMS))
    await client.answer(1)
    app.kill()
    await asyncio.sleep(0.2)
    client.send(request(2, "tools/call", {"name": "x"}))
    answer = await client.answer(2, timeout=5)
    assert answer["error"]["code"] == APP_GONE, answer
    assert any("PermissionError" in line for line in logged), logged
    broken, app.available = False, True
    client.send(request(3, "tools/list"))
    assert (await client.answer(3, timeout=10))["result"] == {"echo": "tools/list"}, "it reconnected"
    client.lines.put_nowait(None)
    assert await asyncio.wait_for(run, 10) == 0
