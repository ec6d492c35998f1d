"""Secure storage: the system keyring behind the `CredentialStore` interface (DESIGN §3).

One logical entry per server id under the service name ``broxy-tray``; the
username is the server id and the value is the compact JSON of
`StoredAuth.to_json()`. Values longer than the chunk limit are split: the
entry under ``<id>`` then holds a small header ``{"v":1,"chunks":N,"sha256":…}``
and ``<id>#1`` … ``<id>#N`` hold the parts (Windows Credential Manager caps a
value at 2,560 bytes, and keyring hands it over as UTF-16, so a part stays at
or below 1,000 characters; the JSON is pure ASCII, so characters are units).
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
import hashlib
import json
import logging
import queue
import threading
from collections.abc import Callable, Iterable
from typing import Any

from ._store import StoredAuth

log = logging.getLogger(__name__)

SERVICE = "broxy-tray"
UNAVAILABLE = "unavailable — you may need to authorize again after restart"
DEFAULT_TIMEOUT = 5.0
CHUNK_CHARS = 1000  # ≤ 1,280: Windows stores UTF-16, 2 bytes a character, 2,560 bytes at most
_MAX_CHUNK_CHARS = 1280
_MAX_CHUNKS = 1024
_HEADER_VERSION = 1

_FRIENDLY_NAMES = {
    "keyring.backends.SecretService": "Secret Service",
    "keyring.backends.libsecret": "Secret Service",
    "keyring.backends.macOS": "Keychain",
    "keyring.backends.Windows": "Windows Credential Locker",
    "keyring.backends.kwallet": "KWallet",
}
_NOT_OPENED = "not opened yet"

OnChange = Callable[["KeyringStore"], object]


class _Corrupt(Exception):
    """A stored entry that cannot be read back (the reason never contains its content)."""


class _Abandoned(Exception):
    """The store gave up on the keyring while this operation was still running."""


class _Worker:
    """One daemon thread running keyring calls in order.

    A daemon thread, not a ThreadPoolExecutor: executor threads are joined at
    interpreter exit, so a call stuck on an unlock prompt would hang shutdown.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._queue: queue.SimpleQueue[tuple[concurrent.futures.Future[Any], Callable[[], Any]] | None] = (
            queue.SimpleQueue()
        )
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, fn: Callable[[], Any]) -> concurrent.futures.Future[Any]:
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self._queue.put((fut, fn))
        return fut

    def close(self) -> None:
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                self._queue.put(None)
            self._thread = None

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            fut, fn = item
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                result = fn()
            except BaseException as exc:  # delivered to the awaiting coroutine
                fut.set_exception(exc)
            else:
                fut.set_result(result)
            del fut, fn, item  # drop references to values (and secrets) promptly


def friendly_backend_name(backend: object) -> str:
    """A name for the user: "Secret Service", "Keychain", "Windows Credential Locker", …"""
    cls = type(backend)
    if cls.__module__ == "keyring.backends.chainer":
        chained = [b for b in getattr(backend, "backends", []) if not _is_unusable(b)]
        return " + ".join(dict.fromkeys(friendly_backend_name(b) for b in chained)) or cls.__name__
    for module, name in _FRIENDLY_NAMES.items():
        if cls.__module__ == module or cls.__module__.startswith(module + "."):
            return name
    name = getattr(cls, "name", None)
    return name if isinstance(name, str) and name else cls.__name__


def _is_unusable(backend: object) -> bool:
    """The fail backend (no keyring at all) and the null backend (stores nothing)."""
    from keyring.backends import fail, null

    if isinstance(backend, (fail.Keyring, null.Keyring)):
        return True
    if type(backend).__module__ == "keyring.backends.chainer":
        return all(_is_unusable(b) for b in getattr(backend, "backends", []))
    return False


def _username(server_id: str) -> str:
    return server_id.replace("%", "%25").replace("#", "%23")


def _chunk_username(server_id: str, index: int) -> str:
    return f"{_username(server_id)}#{index}"


def _encode(entry: StoredAuth) -> str:
    return json.dumps(entry.to_json(), separators=(",", ":"), ensure_ascii=True)


def _secrets_of(entry: StoredAuth) -> list[str]:
    values: list[str] = []
    if entry.tokens is not None:
        values += [entry.tokens.access_token, entry.tokens.refresh_token or ""]
    values += [r.client_secret or "" for r in entry.registrations]
    return [v for v in values if len(v) >= 4]


def _describe(exc: BaseException, secrets: Iterable[str] = ()) -> str:
    """Exception type and message, the message dropped if it could contain a secret."""
    name = type(exc).__name__
    try:
        text = " ".join(str(exc).split())
    except Exception:
        return name
    if not text or any(s in text for s in secrets):
        return name
    return f"{name}: {text[:200]}"


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
        if not 1 <= chunk_chars <= _MAX_CHUNK_CHARS:
            raise ValueError(f"chunk_chars must be between 1 and {_MAX_CHUNK_CHARS}")
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.service = service
        self.timeout = timeout
        self.chunk_chars = chunk_chars
        self.on_change = on_change
        self._backend: Any = backend  # None: keyring.get_keyring(), in the worker, at open()
        self._worker = _Worker(f"broxy-keyring-{service}")
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
        import keyring

        backend = self._backend if self._backend is not None else keyring.get_keyring()
        if _is_unusable(backend):
            return None, f"{type(backend).__module__}.{type(backend).__name__}"
        return backend, friendly_backend_name(backend)

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

    def _get(self, username: str) -> str | None:
        return self._step().get_password(self.service, username)

    def _set(self, username: str, value: str) -> None:
        self._step().set_password(self.service, username, value)

    def _del(self, username: str) -> None:
        from keyring.errors import PasswordDeleteError

        try:
            self._step().delete_password(self.service, username)
        except PasswordDeleteError:
            if self._get(username) is not None:
                raise

    def _header(self, head: str | None) -> tuple[int, str] | None:
        """(chunks, sha256) when `head` is a split-value header, None for a plain value.

        Raises `_Corrupt` for a header that cannot be used.
        """
        if head is None or not head.startswith('{"v"'):
            return None
        try:
            data = json.loads(head)
        except ValueError:
            raise _Corrupt("unreadable header") from None
        if not isinstance(data, dict) or data.get("v") != _HEADER_VERSION:
            raise _Corrupt("unknown header version")
        chunks, digest = data.get("chunks"), data.get("sha256")
        if not isinstance(chunks, int) or not 1 <= chunks <= _MAX_CHUNKS or not isinstance(digest, str):
            raise _Corrupt("invalid header")
        return chunks, digest

    def _chunk_count(self, server_id: str) -> int:
        try:
            header = self._header(self._get(_username(server_id)))
        except _Corrupt:
            return 0
        return header[0] if header else 0

    def _read(self, server_id: str) -> str | None:
        head = self._get(_username(server_id))
        header = self._header(head)
        if header is None:
            return head
        chunks, digest = header
        parts = []
        for i in range(1, chunks + 1):
            part = self._get(_chunk_username(server_id, i))
            if part is None:
                raise _Corrupt(f"part {i} of {chunks} missing")
            parts.append(part)
        text = "".join(parts)
        if hashlib.sha256(text.encode()).hexdigest() != digest:
            raise _Corrupt("checksum mismatch")
        return text

    def _write(self, server_id: str, text: str) -> None:
        old_chunks = self._chunk_count(server_id)
        size = self.chunk_chars
        if len(text) <= size:
            self._set(_username(server_id), text)
            chunks = 0
        else:
            parts = [text[i : i + size] for i in range(0, len(text), size)]
            if len(parts) > _MAX_CHUNKS:
                raise ValueError("entry too large for secure storage")
            for i, part in enumerate(parts, 1):
                self._set(_chunk_username(server_id, i), part)
            header = {"v": _HEADER_VERSION, "chunks": len(parts), "sha256": hashlib.sha256(text.encode()).hexdigest()}
            self._set(_username(server_id), json.dumps(header, separators=(",", ":")))
            chunks = len(parts)
        self._delete_chunks(server_id, chunks + 1, old_chunks)

    def _delete_chunks(self, server_id: str, first: int, known_last: int) -> None:
        """Delete parts `first`…`known_last` and any further ones an interrupted save left behind.

        Highest first, so that an interrupted clean-up leaves a run the next one still finds.
        """
        last = max(first - 1, known_last)
        while last < _MAX_CHUNKS and self._get(_chunk_username(server_id, last + 1)) is not None:
            last += 1
        for i in range(last, first - 1, -1):
            self._del(_chunk_username(server_id, i))

    def _delete_all(self, server_id: str) -> None:
        head = self._get(_username(server_id))
        try:
            header = self._header(head)
        except _Corrupt:
            header = None
        if head is not None:
            self._del(_username(server_id))
        self._delete_chunks(server_id, 1, header[0] if header else 0)

    def _move(self, old_id: str, new_id: str) -> str | None:
        try:
            text = self._read(old_id)
        except _Corrupt:
            text = None
        if text is not None:
            self._write(new_id, text)
        self._delete_all(old_id)
        return text


def _check_id(server_id: str) -> None:
    if not isinstance(server_id, str) or not server_id:
        raise ValueError("server id must be a non-empty string")
