"""Run a `KeyringStore` in a fresh process (keyring picks its backend once per process).

Reads a program from stdin (so no secret is ever on a command line):

    {"options": {"timeout": 5}, "ops": [["save", "id", {...StoredAuth JSON...}], ["load", "id"], ...]}

Operations: open, state, save, load, delete, move, raw_set (keyring.set_password
under the store's service, to plant damaged entries), lock (lock the default
Secret Service collection over D-Bus), bench (n save+load round trips). Prints one JSON object on stdout: per-operation results with elapsed
seconds and the store's state after each, plus every on_change notification.
Logging (everything, DEBUG) goes to stderr for the tests to inspect.
"""

from __future__ import annotations

import asyncio
import json
import logging
import statistics
import sys
import time

from broxy_tray.auth._keyring_store import KeyringStore
from broxy_tray.auth._store import StoredAuth


def _state(store: KeyringStore) -> dict[str, object]:
    return {"available": store.available, "description": store.description, "reason": store.fallback_reason}


def _lock_default_collection() -> None:
    """Lock the login keyring over D-Bus, as a screen lock would (DBUS_SESSION_BUS_ADDRESS is the test bus)."""
    from jeepney import DBusAddress, new_method_call
    from jeepney.io.blocking import open_dbus_connection

    service = DBusAddress("/org/freedesktop/secrets", bus_name="org.freedesktop.secrets",
                          interface="org.freedesktop.Secret.Service")
    with open_dbus_connection(bus="SESSION") as conn:
        (path,) = conn.send_and_get_reply(new_method_call(service, "ReadAlias", "s", ("default",)), timeout=5).body
        conn.send_and_get_reply(new_method_call(service, "Lock", "ao", ([path],)), timeout=5)


async def main() -> None:
    program = json.loads(sys.stdin.read())
    changes: list[dict[str, object]] = []
    store = KeyringStore(**program.get("options", {}), on_change=lambda s: changes.append(_state(s)))
    out: list[dict[str, object]] = []
    for op, *args in program["ops"]:
        t0 = time.monotonic()
        result: object = None
        if op == "open":
            await store.open()
        elif op == "state":
            pass
        elif op == "save":
            await store.save(args[0], StoredAuth.from_json(args[1]))
        elif op == "load":
            entry = await store.load(args[0])
            result = entry.to_json() if entry is not None else None
        elif op == "delete":
            await store.delete(args[0])
        elif op == "move":
            await store.move(args[0], args[1])
        elif op == "raw_set":
            import keyring

            keyring.set_password(store.service, args[0], args[1])
        elif op == "lock":
            _lock_default_collection()
        elif op == "bench":
            n, server_id, data = args
            entry = StoredAuth.from_json(data)
            times = []
            for _ in range(n):
                t = time.perf_counter()
                await store.save(server_id, entry)
                loaded = await store.load(server_id)
                times.append(time.perf_counter() - t)
                assert loaded == entry
            result = {"median": statistics.median(times), "min": min(times), "max": max(times)}
        else:
            raise SystemExit(f"unknown op {op}")
        out.append({"op": op, "elapsed": time.monotonic() - t0, "result": result, "state": _state(store)})
    print(json.dumps({"ops": out, "changes": changes}), flush=True)


if __name__ == "__main__":
    logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    asyncio.run(main())
