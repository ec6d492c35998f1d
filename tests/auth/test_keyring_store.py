"""KeyringStore: secure storage on a real gnome-keyring, split values, fallback to memory.

The Secret Service tests bring up their own private D-Bus session bus and
gnome-keyring (the `secret_service` fixture, secret_service.py).
Keyring picks its backend once per process, so the store runs in a fresh
subprocess per step (keyring_helpers/run_store.py) that gets its program, and
any secret, on stdin. Tests of the splitting logic and of the timeout also
run in-process against fake backends, so they need no keyring at all.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from broxy_tray.auth._client import ClientRegistration
from broxy_tray.auth._keyring_store import CHUNK_CHARS, SERVICE, UNAVAILABLE, KeyringStore
from broxy_tray.auth._store import StoredAuth
from broxy_tray.auth._tokens import TokenSet

HELPERS = Path(__file__).resolve().parent / "keyring_helpers"
RUN_STORE = HELPERS / "run_store.py"
SILENT_PROMPTER = HELPERS / "silent_prompter.py"

# Secret values: unique, recognisable, and checked to be absent from every log.
ACCESS = "at-SECRET-9f1c2e7a-access"
REFRESH = "rt-SECRET-4b8d0c13-refresh"
CLIENT_SECRET = "cs-SECRET-77e2a9d4-client"
SECRETS = (ACCESS, REFRESH, CLIENT_SECRET)


def make_entry(access: str = ACCESS, refresh: str | None = REFRESH) -> StoredAuth:
    tokens = TokenSet(
        access_token=access,
        expires_at=1_900_000_000.0,
        refresh_token=refresh,
        scopes=("read", "write"),
        issuer="https://as.example.com",
        resource="https://mcp.example.com/mcp",
        issued_at=1_800_000_000.0,
    )
    regs = (
        ClientRegistration(
            client_id="client-dyn-1",
            kind="dynamic",
            issuer="https://as.example.com",
            redirect_uri="http://127.0.0.1:33418/callback",
            auth_method="client_secret_post",
            client_secret=CLIENT_SECRET,
            client_secret_expires_at=0,
        ),
        ClientRegistration(
            client_id="https://broxy.example/client.json",
            kind="cimd",
            issuer="https://other-as.example.com",
            redirect_uri="http://127.0.0.1:33418/callback",
        ),
    )
    return StoredAuth(
        tokens=tokens,
        registrations=regs,
        token_endpoint="https://as.example.com/token",
        revocation_endpoint="https://as.example.com/revoke",
    )


def big_entry(chars: int) -> StoredAuth:
    """An entry whose JSON is longer than `chars`, through a long (JWT-like) access token."""
    body = "".join(f"{i:04x}" for i in range(chars // 4 + 1))
    return make_entry(access=f"{ACCESS}.{body}")


def compact(entry: StoredAuth) -> str:
    return json.dumps(entry.to_json(), separators=(",", ":"))


from secret_service import SecretService, _clean_env, _wait_for  # the fixture comes from conftest

@dataclass
class Run:
    ops: list[dict[str, Any]]
    changes: list[dict[str, Any]]
    log: str
    seconds: float

    def result(self, index: int) -> Any:
        return self.ops[index]["result"]

    @property
    def state(self) -> dict[str, Any]:
        return self.ops[-1]["state"]


def run_store(env: dict[str, str], ops: list[list[Any]], *, process_timeout: float = 30, **options: Any) -> Run:
    """Run `ops` against a fresh KeyringStore in a new process; the log must not contain a secret."""
    program = json.dumps({"options": options, "ops": ops})
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, str(RUN_STORE)], input=program, env=env, capture_output=True,
                          text=True, timeout=process_timeout)
    seconds = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr[-3000:]
    for secret in SECRETS:
        assert secret not in proc.stderr, "a secret reached the log"
    data = json.loads(proc.stdout)
    return Run(data["ops"], data["changes"], proc.stderr, seconds)


def fallback_warnings(log: str) -> list[str]:
    return [line for line in log.splitlines() if "Secure storage unavailable" in line]


# --- Secret Service --------------------------------------------------------------------------


def test_roundtrip_tokens_and_registrations(secret_service: SecretService) -> None:
    entry = make_entry()
    first = run_store(secret_service.env, [["open"], ["save", "github", entry.to_json()]])
    assert first.ops[0]["state"] == {"available": True, "description": "Secret Service", "reason": None}
    assert first.changes == [{"available": True, "description": "Secret Service", "reason": None}]

    # a new process (the app restarted) reads it back
    second = run_store(secret_service.env, [["load", "github"], ["load", "unknown"]])
    assert StoredAuth.from_json(second.result(0)) == entry
    assert second.result(1) is None
    assert secret_service.usernames() == ["github"]
    assert secret_service.lookup("github") == compact(entry)  # one compact JSON value, not split
    assert "Secure storage: Secret Service" in second.log


def test_large_value_is_split_and_shrinking_removes_stale_parts(secret_service: SecretService) -> None:
    large = big_entry(4 * CHUNK_CHARS)
    text = compact(large)
    parts = math.ceil(len(text) / CHUNK_CHARS)
    assert parts >= 5
    run_store(secret_service.env, [["save", "big", large.to_json()]])
    assert secret_service.usernames() == sorted(["big", *(f"big#{i}" for i in range(1, parts + 1))])
    header = json.loads(secret_service.lookup("big"))
    assert header["v"] == 1 and header["chunks"] == parts and len(header["sha256"]) == 64
    stored = [secret_service.lookup(f"big#{i}") for i in range(1, parts + 1)]
    assert all(len(p) <= CHUNK_CHARS for p in stored) and "".join(stored) == text

    medium = big_entry(int(1.5 * CHUNK_CHARS))
    medium_parts = math.ceil(len(compact(medium)) / CHUNK_CHARS)
    assert 1 < medium_parts < parts
    run = run_store(secret_service.env, [["load", "big"], ["save", "big", medium.to_json()], ["load", "big"]])
    assert StoredAuth.from_json(run.result(0)) == large
    assert StoredAuth.from_json(run.result(2)) == medium
    assert secret_service.usernames() == sorted(["big", *(f"big#{i}" for i in range(1, medium_parts + 1))])

    small = make_entry()
    run = run_store(secret_service.env, [["save", "big", small.to_json()], ["load", "big"]])
    assert StoredAuth.from_json(run.result(1)) == small
    assert secret_service.usernames() == ["big"]
    assert secret_service.lookup("big") == compact(small)


def test_delete_removes_every_part(secret_service: SecretService) -> None:
    run_store(secret_service.env, [["save", "big", big_entry(3 * CHUNK_CHARS).to_json()],
                                   ["save", "other", make_entry().to_json()]])
    assert len(secret_service.usernames()) > 3
    run = run_store(secret_service.env, [["delete", "big"], ["load", "big"], ["delete", "never-stored"],
                                         ["load", "other"]])
    assert run.result(1) is None
    assert StoredAuth.from_json(run.result(3)) == make_entry()
    assert secret_service.usernames() == ["other"]
    assert run.state["available"] is True


def test_move_keeps_the_value_under_the_new_id_only(secret_service: SecretService) -> None:
    large = big_entry(3 * CHUNK_CHARS)
    small = make_entry(access=ACCESS + "-small")
    run_store(secret_service.env, [["save", "old-big", large.to_json()], ["save", "old", small.to_json()]])
    run = run_store(secret_service.env, [["move", "old-big", "new-big"], ["move", "old", "new"],
                                         ["move", "absent", "new"]])
    assert run.state["available"] is True
    names = secret_service.usernames()
    assert not [n for n in names if n.startswith("old")], names
    assert "new-big#1" in names and "new" in names
    run = run_store(secret_service.env, [["load", "new-big"], ["load", "new"], ["load", "old-big"], ["load", "old"]])
    assert StoredAuth.from_json(run.result(0)) == large
    assert StoredAuth.from_json(run.result(1)) == small
    assert run.result(2) is None and run.result(3) is None


def test_ids_containing_the_part_separator_do_not_collide(secret_service: SecretService) -> None:
    large, other = big_entry(2 * CHUNK_CHARS), make_entry(access=ACCESS + "-x")
    run = run_store(secret_service.env, [["save", "a", large.to_json()], ["save", "a#1", other.to_json()],
                                         ["load", "a"], ["load", "a#1"]])
    assert StoredAuth.from_json(run.result(2)) == large
    assert StoredAuth.from_json(run.result(3)) == other
    assert "a%231" in secret_service.usernames()


def test_damaged_entry_loads_as_none_and_is_logged_once(secret_service: SecretService) -> None:
    large = big_entry(3 * CHUNK_CHARS)
    run = run_store(secret_service.env, [
        ["save", "big", large.to_json()],
        ["raw_set", "big#2", "tampered"],
        ["load", "big"], ["load", "big"],
        ["raw_set", "plain", "{not json"],
        ["load", "plain"],
        ["save", "big", large.to_json()], ["load", "big"],
    ])
    assert run.result(2) is None and run.result(3) is None and run.result(5) is None
    assert StoredAuth.from_json(run.result(7)) == large  # a new save repairs it
    warnings = [line for line in run.log.splitlines() if "unreadable stored sign-in" in line]
    assert len(warnings) == 2, warnings  # once for 'big', once for 'plain'
    assert "checksum mismatch" in warnings[0]
    assert "tampered" not in run.log and "{not json" not in run.log
    assert run.state["available"] is True  # damage is not a reason to give up on the keyring


def test_locked_keyring_falls_back_to_memory(secret_service: SecretService) -> None:
    entry = make_entry()
    run_store(secret_service.env, [["save", "github", entry.to_json()]])
    secret_service.lock()
    timeout = 3.0
    run = run_store(secret_service.env, [["open"], ["save", "gitlab", entry.to_json()], ["load", "gitlab"],
                                         ["load", "github"], ["delete", "gitlab"], ["load", "gitlab"]],
                    timeout=timeout)
    assert run.ops[0]["state"]["available"] is True  # detection alone does not touch the collection
    save = run.ops[1]
    assert save["elapsed"] < timeout + 1.5, save
    assert save["state"]["available"] is False
    assert save["state"]["description"] == UNAVAILABLE
    assert StoredAuth.from_json(run.result(2)) == entry  # still works, in memory
    assert run.result(3) is None  # never loaded before the fallback: not available this run
    assert run.result(5) is None
    assert [c["description"] for c in run.changes] == ["Secret Service", UNAVAILABLE]
    assert len(fallback_warnings(run.log)) == 1, run.log
    assert secret_service.usernames() == ["github"]  # nothing written while locked


def test_locked_keyring_with_an_unanswered_unlock_prompt_times_out(secret_service: SecretService) -> None:
    """The unlock prompt nobody answers (README: set_password blocks forever): the timeout covers it."""
    entry = make_entry()
    run_store(secret_service.env, [["save", "github", entry.to_json()]])
    prompter = secret_service.start([sys.executable, str(SILENT_PROMPTER)], stdout=subprocess.PIPE, text=True)
    assert prompter.stdout.readline().strip() == "READY"  # type: ignore[union-attr]
    timeout = 1.5
    # one process: an entry loaded before the keyring gets locked stays available after the fallback
    run = run_store(secret_service.env, [["load", "github"], ["lock"], ["save", "other", entry.to_json()],
                                         ["load", "github"], ["load", "other"], ["delete", "other"],
                                         ["load", "other"]],
                    timeout=timeout)
    assert StoredAuth.from_json(run.result(0)) == entry and run.ops[0]["state"]["available"] is True
    save = run.ops[2]
    assert timeout - 0.2 <= save["elapsed"] < timeout + 1.5, save
    assert "did not answer within 1.5 s" in (save["state"]["reason"] or "")
    assert save["state"] == {"available": False, "description": UNAVAILABLE, "reason": save["state"]["reason"]}
    assert StoredAuth.from_json(run.result(3)) == entry
    assert StoredAuth.from_json(run.result(4)) == entry
    assert run.result(6) is None
    assert all(op["elapsed"] < 0.1 for op in run.ops[3:]), run.ops  # memory now: no more waiting
    assert len(fallback_warnings(run.log)) == 1
    assert run.seconds < 10  # the process exits although its worker is still stuck on the prompt


def test_roundtrip_time_on_secret_service(secret_service: SecretService) -> None:
    entry = make_entry()
    run = run_store(secret_service.env, [["open"], ["bench", 20, "bench", entry.to_json()]])
    stats = run.result(1)
    print(f"\nSecret Service save+load round trip: median {stats['median'] * 1000:.1f} ms "
          f"(min {stats['min'] * 1000:.1f}, max {stats['max'] * 1000:.1f})")
    assert run.state["available"] is True
    assert stats["median"] < 1.0


# --- no usable keyring -----------------------------------------------------------------------


def _no_keyring_env(tmp_path: Path) -> dict[str, str]:
    home, runtime = tmp_path / "home", tmp_path / "run"
    home.mkdir()
    runtime.mkdir(mode=0o700)
    return _clean_env(home, runtime)


def test_fail_backend_falls_back_to_memory(tmp_path: Path) -> None:
    env = _no_keyring_env(tmp_path)
    env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"
    entry = make_entry()
    run = run_store(env, [["open"], ["save", "a", entry.to_json()], ["load", "a"], ["move", "a", "b"],
                          ["load", "a"], ["load", "b"], ["delete", "b"], ["load", "b"], ["state"]])
    opened = run.ops[0]["state"]
    assert opened["available"] is False
    assert opened["description"] == UNAVAILABLE == "unavailable — you may need to authorize again after restart"
    assert "keyring.backends.fail.Keyring" in opened["reason"]
    assert StoredAuth.from_json(run.result(2)) == entry
    assert run.result(4) is None
    assert StoredAuth.from_json(run.result(5)) == entry
    assert run.result(7) is None
    assert run.changes == [opened]
    assert len(fallback_warnings(run.log)) == 1


def test_no_session_bus_falls_back_to_memory(tmp_path: Path) -> None:
    run = run_store(_no_keyring_env(tmp_path), [["save", "a", make_entry().to_json()], ["load", "a"]])
    assert run.state["available"] is False and run.state["description"] == UNAVAILABLE
    assert StoredAuth.from_json(run.result(1)) == make_entry()
    assert len(fallback_warnings(run.log)) == 1


# --- in-process, fake backends: splitting and the timeout -------------------------------------


class DictKeyring:
    """A keyring backend in a dict that refuses values over Windows' 2,560-byte (UTF-16) limit."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, str], str] = {}
        self.calls = 0

    def get_password(self, service: str, username: str) -> str | None:
        self.calls += 1
        return self.items.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.calls += 1
        if len(password.encode("utf-16-le")) > 2560:
            raise OSError(1783, "CredWrite", "The stub received bad data.")
        self.items[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        from keyring.errors import PasswordDeleteError

        self.calls += 1
        if self.items.pop((service, username), None) is None:
            raise PasswordDeleteError("Password not found")


async def test_split_values_fit_the_windows_limit_and_clean_up() -> None:
    backend = DictKeyring()
    store = KeyringStore(backend=backend)
    await store.open()
    assert store.available and store.description == "DictKeyring"
    for size in (6000, 200, 2500, 12000, 900):
        entry = big_entry(size) if size > 300 else make_entry()
        await store.save("s", entry)
        assert await store.load("s") == entry
        parts = math.ceil(len(compact(entry)) / CHUNK_CHARS)
        expected = {"s"} | ({f"s#{i}" for i in range(1, parts + 1)} if parts > 1 else set())
        assert {u for (_s, u) in backend.items} == expected
    # an interrupted save or delete left parts behind: the next save removes them
    parts = math.ceil(len(compact(big_entry(900))) / CHUNK_CHARS)
    backend.items[(SERVICE, f"s#{parts + 1}")] = backend.items[(SERVICE, f"s#{parts + 2}")] = "orphan"
    await store.save("s", make_entry())
    assert {u for (_s, u) in backend.items} == {"s"}
    await store.delete("s")
    assert backend.items == {}
    assert store.available
    store.close()


async def test_missing_part_loads_none(caplog: pytest.LogCaptureFixture) -> None:
    backend = DictKeyring()
    store = KeyringStore(backend=backend)
    entry = big_entry(5000)
    await store.save("s", entry)
    parts = math.ceil(len(compact(entry)) / CHUNK_CHARS)
    del backend.items[(SERVICE, "s#3")]
    with caplog.at_level(logging.DEBUG):
        assert await store.load("s") is None
        assert await store.load("s") is None
    assert [r.getMessage() for r in caplog.records if "unreadable" in r.getMessage()] == [
        f"Ignoring the unreadable stored sign-in of 's' (part 3 of {parts} missing); it will be replaced"]
    assert not any(s in caplog.text for s in SECRETS)
    store.close()


class HangingKeyring(DictKeyring):
    """set_password blocks like a locked Secret Service waiting on its unlock prompt."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.hang = False

    def set_password(self, service: str, username: str, password: str) -> None:
        if self.hang:
            self.release.wait(30)
        super().set_password(service, username, password)


async def test_a_hung_call_times_out_without_piling_up_threads(caplog: pytest.LogCaptureFixture) -> None:
    backend = HangingKeyring()
    changes: list[tuple[bool, str]] = []
    store = KeyringStore(backend=backend, timeout=0.5, on_change=lambda s: changes.append((s.available, s.description)))
    entry = make_entry()
    try:
        await store.save("a", make_entry(access=ACCESS + "-a"))
        backend.hang = True
        t0 = time.monotonic()
        with caplog.at_level(logging.DEBUG):
            await store.save("b", entry)
        assert time.monotonic() - t0 < 1.5
        assert not store.available and store.description == UNAVAILABLE
        assert "did not answer within 0.5 s" in (store.fallback_reason or "")
        assert changes == [(True, "HangingKeyring"), (False, UNAVAILABLE)]
        # in memory from now on: no waiting, no new threads, earlier entries kept
        t0 = time.monotonic()
        for i in range(20):
            await store.save(f"x{i}", entry)
            assert await store.load(f"x{i}") == entry
        assert await store.load("a") == make_entry(access=ACCESS + "-a")
        assert time.monotonic() - t0 < 0.5
        workers = [t for t in threading.enumerate() if t.name.startswith("broxy-keyring")]
        assert len(workers) == 1
        # the stuck call, once released, gives up instead of writing behind the memory store's back
        calls = backend.calls
        backend.release.set()
        await asyncio.sleep(0.2)
        assert backend.calls == calls + 1  # only the stuck call itself completed
        assert not [u for (_s, u) in backend.items if u.startswith("x")]
        assert len([r for r in caplog.records if "Secure storage unavailable" in r.getMessage()]) == 1
        assert not any(s in caplog.text for s in SECRETS)
    finally:
        backend.release.set()
        store.close()


async def test_backend_errors_fall_back_without_leaking_the_value(caplog: pytest.LogCaptureFixture) -> None:
    class Failing(DictKeyring):
        def set_password(self, service: str, username: str, password: str) -> None:
            raise RuntimeError(f"refused {password}")  # a backend that echoes the value

    store = KeyringStore(backend=Failing())
    with caplog.at_level(logging.DEBUG):
        await store.save("a", make_entry())
    assert not store.available and store.description == UNAVAILABLE
    assert store.fallback_reason == "saving an entry failed (RuntimeError)"
    assert await store.load("a") == make_entry()
    assert not any(s in caplog.text for s in SECRETS)
    store.close()


async def test_slow_backend_detection_does_not_block_open() -> None:
    class SlowDetect(KeyringStore):
        def _detect(self) -> tuple[Any, str]:
            time.sleep(3)
            return super()._detect()

    store = SlowDetect(backend=DictKeyring(), timeout=0.3)
    t0 = time.monotonic()
    await store.open()
    assert time.monotonic() - t0 < 1.0
    assert not store.available and "detecting its backend" in (store.fallback_reason or "")
    store.close()


# --------------------------------------------------------------------------- the whole app on the real keyring


def _headless(env: dict[str, str], config: Path) -> Any:
    import queue
    import threading

    proc = subprocess.Popen([sys.executable, "-m", "broxy_tray", "run", "--headless", "--json", "--config", str(config)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    lines: queue.Queue[Any] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(json.loads(x)) for x in proc.stdout] and None, daemon=True).start()  # type: ignore[union-attr]

    def wait_for(pred: Any, timeout: float = 30) -> Any:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                item = lines.get(timeout=0.2)
            except queue.Empty:
                continue
            if pred(item):
                return item
        raise AssertionError(f"no matching line; stderr: {proc.stderr.read() if proc.poll() is not None else ''}")

    proc.wait_for = wait_for  # type: ignore[attr-defined]
    return proc


def _stop(proc: Any) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(15)


def test_app_restart_reuses_keyring_entry_and_removal_clears_it(secret_service: SecretService, auth_server: Any,
                                                                 mcp_server: Any, tmp_path: Path) -> None:
    browser = tmp_path / "browser"
    browser.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{Path(__file__).parent / "redirect_browser.py"}" "$@"\n')
    browser.chmod(0o755)
    env = dict(secret_service.env, BROWSER=str(browser))
    config = tmp_path / "mcp.json"
    config.write_text(json.dumps({"mcpServers": {"sec": {"url": mcp_server.url}}}, indent=2))

    first = _headless(env, config)
    try:
        first.wait_for(lambda e: e["event"] == "status" and e["status"] == "Available")
    finally:
        assert _stop(first) == 0
    assert secret_service.usernames() == ["sec"]
    stored = json.loads(secret_service.lookup("sec"))
    assert stored["tokens"]["resource"] == mcp_server.url
    assert (auth_server.count("authorize"), auth_server.count("register")) == (1, 1)

    second = _headless(env, config)
    try:
        second.wait_for(lambda e: e["event"] == "status" and e["status"] == "Available")
        assert (auth_server.count("authorize"), auth_server.count("register")) == (1, 1), \
            "a warm restart signs in with the stored token: no authorization request, no registration"
        config.write_text(json.dumps({"mcpServers": {"renamed": {"url": mcp_server.url}}}, indent=2))
        moved = second.wait_for(lambda e: e["event"] == "config")
        assert moved["authMoved"] == [{"from": "sec", "to": "renamed"}]
        second.wait_for(lambda e: e["event"] == "status" and e["server"] == "renamed" and e["status"] == "Available")
        assert secret_service.usernames() == ["renamed"]
        assert auth_server.count("authorize") == 1, "a rename keeps the sign-in"
        config.write_text(json.dumps({"mcpServers": {}}, indent=2))
        removed = second.wait_for(lambda e: e["event"] == "config")
        assert removed["authCleared"] == ["renamed"]
        _wait_for(lambda: secret_service.usernames() == [], 5, "the entry deleted")
    finally:
        assert _stop(second) == 0
