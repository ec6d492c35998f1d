"""A keyring unlock prompter that never answers: owns the prompter's bus names and ignores every call.

gnome-keyring asks `org.gnome.keyring.SystemPrompter` to show its unlock dialog; on a
desktop nobody is looking at, that dialog waits forever, and so does the keyring call
that needed it. This stands in for that dialog on a private test bus. Prints READY once
the names are owned; stop it by PID.
"""

from __future__ import annotations

import sys

from jeepney import HeaderFields, MessageType
from jeepney.bus_messages import message_bus
from jeepney.io.blocking import open_dbus_connection

NAMES = ("org.gnome.keyring.SystemPrompter", "org.gnome.keyring.PrivatePrompter")


def main() -> None:
    conn = open_dbus_connection(bus="SESSION")
    for name in NAMES:
        reply = conn.send_and_get_reply(message_bus.RequestName(name, 4))  # DO_NOT_QUEUE
        if reply.body[0] != 1:  # PRIMARY_OWNER
            print(f"could not own {name}", flush=True)
            sys.exit(1)
    print("READY", flush=True)
    while True:
        msg = conn.receive()  # method calls are read and never answered
        if msg.header.message_type == MessageType.method_call:
            sys.stderr.write(f"ignored {msg.header.fields.get(HeaderFields.member)}\n")
            sys.stderr.flush()


if __name__ == "__main__":
    main()
