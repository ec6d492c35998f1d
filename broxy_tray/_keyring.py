"""What every keyring-backed store shares: one worker thread, backend detection, split values.

Used by the sign-in store (`auth._keyring_store`) and the secret store
(`secrets`). Every keyring call runs on one daemon worker thread, awaited
under a timeout, because a locked Secret Service waits on an unlock prompt
forever and must never block the event loop.

Values longer than the chunk limit are split: the entry under ``<user>``
holds a small header ``{"v":1,"chunks":N,"sha256":…}`` and ``<user>#1`` …
``<user>#N`` hold the parts (Windows Credential Manager caps a value at 2,560
bytes, and keyring hands it over as UTF-16, so a part stays at or below 1,000
characters). Callers make sure no base username contains ``#``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import json
import queue
import threading
from collections.abc import Callable
from typing import Any

CHUNK_CHARS = 1000  # ≤ 1,280: Windows stores UTF-16, 2 bytes a character, 2,560 bytes at most
MAX_CHUNK_CHARS = 1280
MAX_CHUNKS = 1024
_HEADER_VERSION = 1

_FRIENDLY_NAMES = {
    "keyring.backends.SecretService": "Secret Service",
    "keyring.backends.libsecret": "Secret Service",
    "keyring.backends.macOS": "Keychain",
    "keyring.backends.Windows": "Windows Credential Locker",
    "keyring.backends.kwallet": "KWallet",
}


class Corrupt(Exception):
    """A stored entry that cannot be read back (the reason never contains its content)."""


class Worker:
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
        self._pending = 0

    @property
    def busy(self) -> bool:
        """A call is queued or still running (e.g. stuck on an unlock prompt)."""
        return self._pending > 0

    def submit(self, fn: Callable[[], Any]) -> concurrent.futures.Future[Any]:
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self._pending += 1
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
            error: BaseException | None = None
            result: Any = None
            running = fut.set_running_or_notify_cancel()
            if running:
                try:
                    result = fn()
                except BaseException as exc:  # delivered to the awaiting coroutine
                    error = exc
            with self._lock:  # before the result is delivered: the caller may submit again at once
                self._pending -= 1
            if running:
                if error is not None:
                    fut.set_exception(error)
                else:
                    fut.set_result(result)
            del fut, fn, item, result, error  # drop references to values (and secrets) promptly

    async def run(self, fn: Callable[[], Any], timeout: float) -> Any:
        """Run `fn` on the worker; `TimeoutError` after `timeout` seconds (the call itself keeps running)."""
        return await asyncio.wait_for(asyncio.wrap_future(self.submit(fn)), timeout)


def friendly_backend_name(backend: object) -> str:
    """A name for the user: "Secret Service", "Keychain", "Windows Credential Locker", …"""
    cls = type(backend)
    if cls.__module__ == "keyring.backends.chainer":
        chained = [b for b in getattr(backend, "backends", []) if not is_unusable(b)]
        return " + ".join(dict.fromkeys(friendly_backend_name(b) for b in chained)) or cls.__name__
    for module, name in _FRIENDLY_NAMES.items():
        if cls.__module__ == module or cls.__module__.startswith(module + "."):
            return name
    name = getattr(cls, "name", None)
    return name if isinstance(name, str) and name else cls.__name__


def is_unusable(backend: object) -> bool:
    """The fail backend (no keyring at all) and the null backend (stores nothing)."""
    from keyring.backends import fail, null

    if isinstance(backend, (fail.Keyring, null.Keyring)):
        return True
    if type(backend).__module__ == "keyring.backends.chainer":
        return all(is_unusable(b) for b in getattr(backend, "backends", []))
    return False


def detect(backend: object | None) -> tuple[Any, str]:
    """(backend, friendly name), or (None, the unusable backend's class) — call on the worker thread."""
    import keyring

    chosen = backend if backend is not None else keyring.get_keyring()
    if is_unusable(chosen):
        return None, f"{type(chosen).__module__}.{type(chosen).__name__}"
    return chosen, friendly_backend_name(chosen)


def describe(exc: BaseException, secrets: Any = ()) -> str:
    """Exception type and message, the message dropped if it could contain a secret."""
    name = type(exc).__name__
    try:
        text = " ".join(str(exc).split())
    except Exception:
        return name
    if not text or any(s in text for s in secrets):
        return name
    return f"{name}: {text[:200]}"


class ChunkedEntries:
    """Plain, blocking keyring operations on split values of one service (run them on the `Worker`).

    `backend` is called before every keyring call, so an owner can abandon
    work in progress by raising from it.
    """

    def __init__(self, service: str, backend: Callable[[], Any], chunk_chars: int = CHUNK_CHARS) -> None:
        if not 1 <= chunk_chars <= MAX_CHUNK_CHARS:
            raise ValueError(f"chunk_chars must be between 1 and {MAX_CHUNK_CHARS}")
        self.service = service
        self.chunk_chars = chunk_chars
        self._backend = backend

    def get(self, username: str) -> str | None:
        return self._backend().get_password(self.service, username)

    def set(self, username: str, value: str) -> None:
        self._backend().set_password(self.service, username, value)

    def delete(self, username: str) -> None:
        from keyring.errors import PasswordDeleteError

        try:
            self._backend().delete_password(self.service, username)
        except PasswordDeleteError:
            if self.get(username) is not None:
                raise

    @staticmethod
    def part(username: str, index: int) -> str:
        return f"{username}#{index}"

    def _header(self, head: str | None) -> tuple[int, str] | None:
        """(chunks, sha256) when `head` is a split-value header, None for a plain value; `Corrupt` if unusable."""
        if head is None or not head.startswith('{"v"'):
            return None
        try:
            data = json.loads(head)
        except ValueError:
            raise Corrupt("unreadable header") from None
        if not isinstance(data, dict) or data.get("v") != _HEADER_VERSION:
            raise Corrupt("unknown header version")
        chunks, digest = data.get("chunks"), data.get("sha256")
        if not isinstance(chunks, int) or not 1 <= chunks <= MAX_CHUNKS or not isinstance(digest, str):
            raise Corrupt("invalid header")
        return chunks, digest

    def _chunk_count(self, username: str) -> int:
        try:
            header = self._header(self.get(username))
        except Corrupt:
            return 0
        return header[0] if header else 0

    def read(self, username: str) -> str | None:
        head = self.get(username)
        header = self._header(head)
        if header is None:
            return head
        chunks, digest = header
        parts = []
        for i in range(1, chunks + 1):
            part = self.get(self.part(username, i))
            if part is None:
                raise Corrupt(f"part {i} of {chunks} missing")
            parts.append(part)
        text = "".join(parts)
        if hashlib.sha256(text.encode()).hexdigest() != digest:
            raise Corrupt("checksum mismatch")
        return text

    def write(self, username: str, text: str) -> None:
        old_chunks = self._chunk_count(username)
        size = self.chunk_chars
        if len(text) <= size and not text.startswith('{"v"'):
            self.set(username, text)
            chunks = 0
        else:
            parts = [text[i : i + size] for i in range(0, len(text), size)]
            if len(parts) > MAX_CHUNKS:
                raise ValueError("entry too large for secure storage")
            for i, part in enumerate(parts, 1):
                self.set(self.part(username, i), part)
            header = {"v": _HEADER_VERSION, "chunks": len(parts), "sha256": hashlib.sha256(text.encode()).hexdigest()}
            self.set(username, json.dumps(header, separators=(",", ":")))
            chunks = len(parts)
        self._delete_chunks(username, chunks + 1, old_chunks)

    def _delete_chunks(self, username: str, first: int, known_last: int) -> None:
        """Delete parts `first`…`known_last` and any further ones an interrupted save left behind.

        Highest first, so that an interrupted clean-up leaves a run the next one still finds.
        """
        last = max(first - 1, known_last)
        while last < MAX_CHUNKS and self.get(self.part(username, last + 1)) is not None:
            last += 1
        for i in range(last, first - 1, -1):
            self.delete(self.part(username, i))

    def delete_all(self, username: str) -> None:
        head = self.get(username)
        try:
            header = self._header(head)
        except Corrupt:
            header = None
        if head is not None:
            self.delete(username)
        self._delete_chunks(username, 1, header[0] if header else 0)

    def move(self, old: str, new: str) -> str | None:
        try:
            text = self.read(old)
        except Corrupt:
            text = None
        if text is not None:
            self.write(new, text)
        self.delete_all(old)
        return text
