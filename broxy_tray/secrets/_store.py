"""`SecretStore`: values for `${NAME}` in the OS keyring, under a service of their own.

One entry per name (username = the name, split like the sign-in entries
when large), plus a names index under the username ``#index`` because
keyring cannot list entries. Names are `[A-Za-z_][A-Za-z0-9_]*`, so neither
the index nor a part (``NAME#1``) can collide with a name.

Unlike the sign-in store there is no fallback to memory: a secret that is
not persisted would be lost at the next login, which is exactly what this
store is for. Any failure — no usable backend, a locked keyring, a D-Bus
error, no answer within the timeout — raises `SecretStoreUnavailable` with a
reason a person can act on (never a value). After a timeout the worker
thread may still be stuck on an unlock prompt; further calls then fail at
once instead of queueing behind it, so nothing piles up and no caller waits.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from typing import Any

from .._keyring import ChunkedEntries, Corrupt, Worker, describe, detect

log = logging.getLogger(__name__)

SERVICE = "broxy-tray-secrets"
DEFAULT_TIMEOUT = 5.0
CHUNK_CHARS = 600  # a part stays under Windows' 2,560 bytes even in UTF-16 surrogate pairs (4 bytes a character)
INDEX = "#index"
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
MAX_NAME = 128


class InvalidSecretName(ValueError):
    """A name that `${NAME}` could not refer to."""


class SecretStoreUnavailable(Exception):
    """The keyring cannot be used right now; `reason` says why (safe to show)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def is_valid_name(name: object) -> bool:
    """True for names a `${NAME}` placeholder can use: `[A-Za-z_][A-Za-z0-9_]*`."""
    return isinstance(name, str) and len(name) <= MAX_NAME and bool(_NAME.match(name))


def check_name(name: object) -> str:
    """`name` if valid, else `InvalidSecretName` saying what is wrong."""
    if is_valid_name(name):
        return name  # type: ignore[return-value]
    shown = repr(name) if isinstance(name, str) and len(name) <= 40 else "that name"
    if isinstance(name, str) and len(name) > MAX_NAME:
        raise InvalidSecretName(f"a secret name has at most {MAX_NAME} characters")
    raise InvalidSecretName(f"{shown} is not a valid secret name: use letters, digits and _, "
                            "not starting with a digit (as in ${NAME})")


class SecretStore:
    """Secrets for `${NAME}` in the OS keyring. Every method runs off the event loop, under `timeout`."""

    def __init__(self, *, service: str = SERVICE, timeout: float = DEFAULT_TIMEOUT, backend: object | None = None,
                 chunk_chars: int = CHUNK_CHARS) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.service = service
        self.timeout = timeout
        self._given = backend
        self._backend: Any = None
        self._description = ""
        self._worker = Worker(f"broxy-keyring-{service}")
        self._stuck = False  # a call timed out and may still hold the worker
        self._entries = ChunkedEntries(service, lambda: self._backend, chunk_chars)

    @property
    def description(self) -> str:
        """The backend in use ("Secret Service", "Keychain", …), empty before the first success."""
        return self._description

    def close(self) -> None:
        self._worker.close()

    async def open(self) -> None:
        """Find the keyring backend; `SecretStoreUnavailable` when there is no usable one."""
        if self._backend is not None:
            return
        backend, name = await self._run(lambda: detect(self._given), "finding the keyring")
        if backend is None:
            raise SecretStoreUnavailable(f"no usable keyring ({name})")
        self._backend, self._description = backend, name

    # -- the public operations --

    async def get(self, name: str) -> str | None:
        check_name(name)
        return (await self.get_many([name])).get(name)

    async def get_many(self, names: Iterable[str]) -> dict[str, str]:
        """The stored values of those of `names` that are stored (invalid names are skipped)."""
        wanted = [n for n in dict.fromkeys(names) if is_valid_name(n)]
        if not wanted:
            return {}
        await self.open()

        def read() -> dict[str, str]:
            out: dict[str, str] = {}
            for n in wanted:
                try:
                    value = self._entries.read(n)
                except Corrupt as e:
                    log.warning("ignoring the unreadable stored secret %s (%s)", n, e)
                    continue
                if value:
                    out[n] = value
            return out

        return await self._run(read, "reading secrets")  # type: ignore[no-any-return]

    async def set(self, name: str, value: str) -> None:
        """Store (or replace) `name`; empty values are refused."""
        check_name(name)
        if not isinstance(value, str) or not value:
            raise ValueError(f"refusing to store an empty value for {name}")
        await self.open()

        def write() -> None:
            self._entries.write(name, value)
            names = self._read_index()
            if name not in names:
                self._entries.write(INDEX, _encode_index(names | {name}))

        await self._run(write, "saving a secret", secret=value)

    async def delete(self, name: str) -> bool:
        """Remove `name`; False when nothing was stored under it."""
        check_name(name)
        await self.open()

        def remove() -> bool:
            existed = self._entries.get(name) is not None
            self._entries.delete_all(name)
            names = self._read_index()
            if name in names:
                self._entries.write(INDEX, _encode_index(names - {name}))
                existed = True
            return existed

        return await self._run(remove, "deleting a secret")  # type: ignore[no-any-return]

    async def names(self) -> list[str]:
        """Every stored name, sorted (from the index)."""
        await self.open()
        return sorted(await self._run(self._read_index, "listing secrets"))

    # -- internals --

    def _read_index(self) -> set[str]:
        try:
            text = self._entries.read(INDEX)
        except Corrupt as e:
            log.warning("the secret names index is unreadable (%s); it will be rebuilt", e)
            return set()
        if not text:
            return set()
        try:
            data = json.loads(text)
        except ValueError:
            log.warning("the secret names index is not JSON; it will be rebuilt")
            return set()
        return {n for n in data if is_valid_name(n)} if isinstance(data, list) else set()

    async def _run(self, fn: Any, what: str, secret: str = "") -> Any:
        # Fail at once only behind a call that already timed out (stuck on an unlock prompt); a call
        # that is merely running (a reload reading while the tray stores) is simply waited for.
        if self._stuck and self._worker.busy:
            raise SecretStoreUnavailable("the keyring is still busy with an earlier request (locked, waiting for "
                                         "an unlock prompt?)")
        self._stuck = False
        try:
            return await self._worker.run(fn, self.timeout)
        except TimeoutError:
            self._stuck = True
            raise SecretStoreUnavailable(f"the keyring did not answer within {self.timeout:g} s while {what} "
                                         "(locked?)") from None
        except (SecretStoreUnavailable, InvalidSecretName, ValueError):
            raise
        except Exception as e:
            raise SecretStoreUnavailable(f"{what} failed ({_reason(e, secret)})") from None


def _encode_index(names: set[str]) -> str:
    return json.dumps(sorted(names), separators=(",", ":"))


def _reason(exc: BaseException, secret: str) -> str:
    text = describe(exc, [secret] if secret else [])
    if "locked" in text.lower():
        return "the keyring is locked"
    return text
