"""Secure storage: the system keyring behind the `CredentialStore` interface (DESIGN §3).

One logical entry per server id under the service name ``broxy-tray``; the
username is the server id and the value is the compact JSON of
`StoredAuth.to_json()`. Values longer than the chunk limit are split
(``<id>#1`` … ``<id>#N``, see `broxy_tray._keyring`, shared with the secret store).
A ``#`` or ``%`` inside a server id is percent-escaped in the username so that
no id can collide with another id's parts.

Every keyring operation runs on one daemon worker thread owned by the store,
under a timeout: a locked Secret Service waits on an unlock prompt forever,
and backend detection on a session bus without a secrets service can be slow.
Anything going wrong — no backend, the fail backend, a locked keyring, a
keyring or D-Bus error, a timeout — switches this store to memory for the rest
of the run (entries already loaded or saved stay available), logs why once,
sets `available` to False and `description` to `UNAVAILABLE`, and calls
`on_change`. Because nothing is sent to the worker after a timeout, a hung
call can never pile up threads. Values and exception texts that could carry a
secret are never logged.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from .._keyring import CHUNK_CHARS, MAX_CHUNK_CHARS, ChunkedEntries, Corrupt, Worker, describe, detect
from ._store import StoredAuth

log = logging.getLogger(__name__)

SERVICE = "broxy-tray"
UNAVAILABLE = "unavailable — you may need to authorize again after restart"
DEFAULT_TIMEOUT = 5.0
_NOT_OPENED = "not opened yet"
_Corrupt = Corrupt
_describe = describe

OnChange = Callable[["KeyringStore"], object]


class _Abandoned(Exception):
    """The store gave up on the keyring while this operation was still running."""


def _username(server_id: str) -> str:
    return server_id.replace("%", "%25").replace("#", "%23")


def _encode(entry: StoredAuth) -> str:
    return json.dumps(entry.to_json(), separators=(",", ":"), ensure_ascii=True)


def _secrets_of(entry: StoredAuth) -> list[str]:
    values: list[str] = []
    if entry.tokens is not None:
        values += [entry.tokens.access_token, entry.tokens.refresh_token or ""]
    values += [r.client_secret or "" for r in entry.registrations]
    return [v for v in values if len(v) >= 4]


class KeyringStore:
    """`CredentialStore` on the system keyring, falling back to memory for the run.

    Call ``await open()`` once at start-up (the first operation does it
    otherwise); read `available` / `description` for the state line and set
    `on_change` to hear when they change.
    """

    def __init__(
        self,
        *,
        service: str = SERVICE,
        timeout: float = DEFAULT_TIMEOUT,
        chunk_chars: int = CHUNK_CHARS,
        backend: object | None = None,
        on_change: OnChange | None = None,
    ) -> None:
        if not 1 <= chunk_chars <= MAX_CHUNK_CHARS:
            raise ValueError(f"chunk_chars must be between 1 and {MAX_CHUNK_CHARS}")
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.service = service
        self.timeout = timeout
        self.chunk_chars = chunk_chars
        self.on_change = on_change
        self._backend: Any = backend  # None: keyring.get_keyring(), in the worker, at open()
        self._worker = Worker(f"broxy-keyring-{service}")
        self._entries = ChunkedEntries(service, self._step, chunk_chars)
        self._memory: dict[str, StoredAuth] = {}
        self._mode = "new"  # new → keyring | memory
        self._opening: concurrent.futures.Future[Any] | None = None
        self._abandoned = threading.Event()
        self._corrupt_logged: set[str] = set()
        self._description = _NOT_OPENED
        self.fallback_reason: str | None = None

    # -- state ---------------------------------------------------------------

    @property
    def available(self) -> bool:
        """True while entries go to the system keyring (False before `open()` and after a fallback)."""
        return self._mode == "keyring"

    @property
    def description(self) -> str:
        """The active backend ("Secret Service", "Keychain", …) or exactly `UNAVAILABLE`."""
        return self._description

    @property
    def opened(self) -> bool:
        return self._mode != "new"

    async def open(self) -> None:
        """Detect the keyring backend off the event loop, within the timeout. Idempotent."""
        if self._mode != "new":
            return
        if self._opening is None or self._opening.cancelled():
            self._opening = self._worker.submit(self._detect)
        try:
            backend, name = await self._await(self._opening)
        except TimeoutError:
            self._fall_back(f"the keyring did not answer within {self.timeout:g} s while detecting its backend")
            return
        except Exception as exc:
            self._fall_back(f"detecting the keyring backend failed ({_describe(exc)})")
            return
        if self._mode != "new":  # a concurrent open() got here first
            return
        if backend is None:
            self._fall_back(f"no usable keyring backend ({name})")
            return
        self._backend = backend
        self._mode = "keyring"
        self._description = name
        log.info("Secure storage: %s", name)
        self._notify()

    def close(self) -> None:
        """Let the worker thread end (a call stuck in the keyring keeps its daemon thread until exit)."""
        self._worker.close()

    def _detect(self) -> tuple[Any, str]:
        return detect(self._backend)

    def _fall_back(self, reason: str) -> None:
        if self._mode == "memory":
            return
        self._mode = "memory"
        self._abandoned.set()
        self._description = UNAVAILABLE
        self.fallback_reason = reason
        log.warning("Secure storage unavailable, keeping sign-ins in memory for this run: %s", reason)
        self._notify()

    def _notify(self) -> None:
        if self.on_change is None:
            return
        try:
            self.on_change(self)
        except Exception:
            log.warning("secure storage on_change callback failed", exc_info=True)

    # -- CredentialStore -----------------------------------------------------

    async def load(self, server_id: str) -> StoredAuth | None:
        _check_id(server_id)
        await self.open()
        if self._mode == "keyring":
            try:
                text = await self._run(lambda: self._read(server_id))
            except _Corrupt as exc:
                self._log_corrupt(server_id, str(exc))
                self._memory.pop(server_id, None)
                return None
            except Exception as exc:
                self._handle_failure(exc, "reading an entry")
            else:
                entry = self._decode(server_id, text)
                if entry is None:
                    self._memory.pop(server_id, None)
                else:
                    self._memory[server_id] = entry
                return entry
        return self._memory.get(server_id)

    async def save(self, server_id: str, entry: StoredAuth) -> None:
        _check_id(server_id)
        await self.open()
        self._memory[server_id] = entry
        if self._mode != "keyring":
            return
        text = _encode(entry)
        try:
            await self._run(lambda: self._write(server_id, text))
        except Exception as exc:
            self._handle_failure(exc, "saving an entry", _secrets_of(entry))

    async def delete(self, server_id: str) -> None:
        _check_id(server_id)
        await self.open()
        self._memory.pop(server_id, None)
        if self._mode != "keyring":
            return
        try:
            await self._run(lambda: self._delete_all(server_id))
        except Exception as exc:
            self._handle_failure(exc, "deleting an entry")

    async def move(self, old_id: str, new_id: str) -> None:
        """Rename: the entry of `old_id` ends up under `new_id`, nothing stays under `old_id`.

        Nothing stored under `old_id` leaves `new_id` untouched.
        """
        _check_id(old_id)
        _check_id(new_id)
        if old_id == new_id:
            return
        await self.open()
        if old_id in self._memory:
            self._memory[new_id] = self._memory.pop(old_id)
        if self._mode != "keyring":
            return
        try:
            text = await self._run(lambda: self._move(old_id, new_id))
        except Exception as exc:
            self._handle_failure(exc, "moving an entry")
            return
        if text is not None:
            entry = self._decode(new_id, text)
            if entry is not None:
                self._memory[new_id] = entry

    # -- running keyring work ------------------------------------------------

    async def _await(self, fut: concurrent.futures.Future[Any]) -> Any:
        return await asyncio.wait_for(asyncio.wrap_future(fut), self.timeout)

    async def _run(self, fn: Callable[[], Any]) -> Any:
        return await self._await(self._worker.submit(fn))

    def _handle_failure(self, exc: Exception, what: str, secrets: Iterable[str] = ()) -> None:
        if isinstance(exc, TimeoutError):
            reason = f"the keyring did not answer within {self.timeout:g} s while {what}"
        elif isinstance(exc, _Abandoned):
            return
        else:
            reason = f"{what} failed ({_describe(exc, secrets)})"
        self._fall_back(reason)

    def _log_corrupt(self, server_id: str, why: str) -> None:
        if server_id in self._corrupt_logged:
            return
        self._corrupt_logged.add(server_id)
        log.warning("Ignoring the unreadable stored sign-in of %r (%s); it will be replaced", server_id, why)

    def _decode(self, server_id: str, text: str | None) -> StoredAuth | None:
        if text is None:
            return None
        try:
            data = json.loads(text)
            if not isinstance(data, dict):
                raise ValueError("not an object")
            return StoredAuth.from_json(data)
        except Exception as exc:
            self._log_corrupt(server_id, f"unexpected content: {type(exc).__name__}")
            return None

    # -- worker side: plain keyring calls, run in order on the worker thread --

    def _step(self) -> Any:
        if self._abandoned.is_set():
            raise _Abandoned()
        return self._backend

    def _read(self, server_id: str) -> str | None:
        return self._entries.read(_username(server_id))

    def _write(self, server_id: str, text: str) -> None:
        self._entries.write(_username(server_id), text)

    def _delete_all(self, server_id: str) -> None:
        self._entries.delete_all(_username(server_id))

    def _move(self, old_id: str, new_id: str) -> str | None:
        return self._entries.move(_username(old_id), _username(new_id))


def _check_id(server_id: str) -> None:
    if not isinstance(server_id, str) or not server_id:
        raise ValueError("server id must be a non-empty string")
