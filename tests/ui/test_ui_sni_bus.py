"""The tray's D-Bus connection survives a full socket buffer (a slow panel, a loaded machine).

dbus-fast's writer drops the connection when a non-blocking send would block
(python-dbus-next#153, still in dbus-fast 5); `sni._bus.connect` wraps the
socket so the writer waits instead. Real dbus-daemon, real sockets.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import socket
import subprocess

import pytest
from dbus_fast import Message, MessageType

from broxy_tray.ui.sni._bus import _SendOrWait, connect, probe_watcher

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def daemon():
    if shutil.which("dbus-daemon") is None:
        pytest.skip("needs the Debian package dbus-daemon")
    p = subprocess.Popen(["dbus-daemon", "--session", "--nofork", "--print-address=1"], stdout=subprocess.PIPE,
                         text=True, start_new_session=True)
    p.address = p.stdout.readline().strip()  # type: ignore[attr-defined,union-attr]
    yield p
    p.send_signal(signal.SIGCONT)
    p.terminate()
    p.wait(10)


@pytest.fixture
def bus_address(daemon):
    return daemon.address


def test_send_reports_zero_instead_of_raising_when_the_buffer_is_full():
    a, b = socket.socketpair()
    try:
        a.setblocking(False)
        wrapped = _SendOrWait(a)
        chunk = b"x" * 65536
        sent = [wrapped.send(chunk) for _ in range(64)]  # nobody reads b: the buffer fills up
        assert sent[-1] == 0 and sum(sent) > 0
        assert wrapped.fileno() == a.fileno()  # everything else is the socket's own
        b.recv(1 << 20)
        assert wrapped.send(b"more") == 4
    finally:
        a.close()
        b.close()


async def test_back_to_back_large_messages_do_not_drop_the_connection(daemon):
    bus_address = daemon.address
    sender = await connect(bus_address)
    receiver = await connect(bus_address)
    try:
        sender._sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)  # noqa: SLF001 - force a full buffer
        got: list[int] = []
        receiver.add_message_handler(lambda m: got.append(len(m.body[0])) if m.member == "Big" else None)
        await receiver.call(Message(destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
                                    interface="org.freedesktop.DBus", member="AddMatch", signature="s",
                                    body=["type='signal',member='Big'"]))
        payload = "y" * 300_000
        daemon.send_signal(signal.SIGSTOP)  # a bus too busy to read: our socket buffer fills and stays full
        try:
            for _ in range(5):  # without yielding: the second send finds the first still in the buffer
                sender.send(Message.new_signal("/big", "org.example.Test", "Big", "s", [payload]))
            await asyncio.sleep(0.2)  # the writer's turn on the loop, still against a full buffer
        finally:
            daemon.send_signal(signal.SIGCONT)
        for _ in range(200):
            if len(got) == 5:
                break
            await asyncio.sleep(0.05)
        assert got == [300_000] * 5
        assert sender.connected
        reply = await sender.call(Message(destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
                                          interface="org.freedesktop.DBus", member="GetId"))
        assert reply.message_type == MessageType.METHOD_RETURN
    finally:
        sender.disconnect()
        receiver.disconnect()


def test_probe_without_a_watcher_and_with_a_bad_address(bus_address):
    assert probe_watcher({"DBUS_SESSION_BUS_ADDRESS": bus_address}, 0).owner is None
    assert probe_watcher({"DBUS_SESSION_BUS_ADDRESS": bus_address}, 0).error == ""
    bad = probe_watcher({"DBUS_SESSION_BUS_ADDRESS": "unix:path=/nonexistent/bus"}, 0)
    assert bad.owner is None and bad.error.startswith("cannot reach the session bus")
    assert probe_watcher({}, 0).error == "no session bus (DBUS_SESSION_BUS_ADDRESS is unset)"
