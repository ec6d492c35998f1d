"""One MCP client session that outlives the app: the message-aware core of `broxy-tray stdio`.

The client (Claude Desktop, an IDE, …) keeps the bridge process for days;
the app behind it may quit, crash, be updated or restarted meanwhile. So the
bridge reads the JSON-RPC lines going both ways (it forwards them as they
are) and remembers just enough to stand in for the client when the app
comes back:

- the client's `initialize` request and `notifications/initialized`, the
  last `logging/setLevel` and the live `resources/subscribe`s, re-sent on
  every new connection with the bridge's own request ids (their answers
  are not forwarded);
- the requests forwarded and not yet answered: when the connection drops
  each gets a JSON-RPC error at once (it may or may not have run, so it is
  never sent twice);
- while there is no connection, requests wait up to `hold_timeout` (then
  get an error saying why), `ping` is answered here, and notifications
  keep their place in the queue.

After a reconnect the client hears `notifications/{tools,prompts,resources}/list_changed`
so it lists again. Only the client hanging up (stdin at its end) ends the session.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

HOLD_TIMEOUT = 8.0
"""Seconds a request made while the app is away waits for it before it gets an error."""
PRIVATE_TIMEOUT = 10.0
"""Seconds the app may take to answer the re-sent `initialize` (and each replayed setting)."""
DRAIN_TIMEOUT = 30.0
"""After the client hung up: seconds the app may take to answer what is still in flight."""
BACKOFF_FIRST = 0.05
BACKOFF_MAX = 0.5
"""Reconnect pacing: the app usually returns within seconds, and a Unix-socket connect costs nothing."""
CONFIRM_TIME = 0.75
"""Seconds "running but unreachable" must persist before requests fail at once (well within the 2 s promise)."""
MAX_HELD = 10_000
CHUNK = 256 * 1024
MAX_LINE = 32 * 1024 * 1024

APP_GONE = -32000
"""JSON-RPC error code for "broxy-tray is not there right now" (the SDK's CONNECTION_CLOSED)."""
LIST_CHANGED = (
    "notifications/tools/list_changed",
    "notifications/prompts/list_changed",
    "notifications/resources/list_changed",
)


class LinkError(Exception):
    """No connection to the app now. `final`: at the first attempt, give up (exit); `fail_fast`: answer waiting requests now."""

    def __init__(self, message: str, *, fail_fast: bool = False, final: bool = True) -> None:
        super().__init__(message)
        self.fail_fast = fail_fast
        self.final = final


Link = Callable[[bool, bool], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]
"""`link(first, wanted)`: a connection switched to MCP. `wanted`: requests are waiting (may start the app)."""


@dataclass
class _Held:
    line: bytes
    msg: dict[str, Any] | None
    deadline: float | None  # requests only


def _key(rid: Any) -> str:
    return json.dumps(rid, sort_keys=True)


class BridgeSession:
    def __init__(
        self,
        link: Link,
        to_client: Callable[[bytes], Awaitable[None]],
        *,
        log: Callable[[str], None] = lambda m: None,
        hold_timeout: float = HOLD_TIMEOUT,
        private_timeout: float = PRIVATE_TIMEOUT,
    ) -> None:
        self._link = link
        self._write_client = to_client
        self._log = log
        self.hold_timeout = hold_timeout
        self.private_timeout = private_timeout
        self._writer: asyncio.StreamWriter | None = None
        self._ready = False
        self._closing = False
        self._inflight: dict[str, str] = {}  # request id -> method, forwarded on the current connection
        self._held: list[_Held] = []
        self._private: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._init: dict[str, Any] | None = None  # the client's initialize request
        self._init_done = False  # the app answered it once: re-send it on every new connection
        self._initialized = False  # the client sent notifications/initialized
        self._log_level: dict[str, Any] | None = None
        self._subscriptions: dict[str, dict[str, Any]] = {}  # uri -> params
        self._fail_reason: str | None = None  # set while waiting requests should fail at once
        self._waiting_reason: str | None = None  # why there is no connection now
        self._wake = asyncio.Event()
        self._first_attempt = asyncio.Event()  # the first connection attempt is over (either way)
        self.fatal: str | None = None  # why the very first connection failed (the session then ends)
        self.connections = 0

    # -- the client side --

    async def run(self, client_lines: AsyncIterator[bytes]) -> int:
        """Serve until the client hangs up; returns the exit code (1 only when the first connection failed)."""
        keeper = asyncio.ensure_future(self._keep_connected())
        expiry = asyncio.ensure_future(self._expire_held())
        reader = asyncio.ensure_future(self._read_client(client_lines))
        try:
            await asyncio.wait({keeper, reader}, return_when=asyncio.FIRST_COMPLETED)
            if not keeper.done() and self.connections == 0:  # the client left at once: say how the start went
                attempt = asyncio.ensure_future(self._first_attempt.wait())
                await asyncio.wait({keeper, attempt}, return_when=asyncio.FIRST_COMPLETED)
                attempt.cancel()
            if self.fatal is not None:
                return 1
            await reader
            self._closing = True
            await self._drain()
            return 0
        finally:
            self._closing = True
            for t in (keeper, expiry, reader):
                t.cancel()
            await asyncio.gather(keeper, expiry, reader, return_exceptions=True)
            if self._writer is not None:
                self._writer.close()

    async def _read_client(self, client_lines: AsyncIterator[bytes]) -> None:
        async for line in client_lines:
            if line.strip():
                await self._from_client(line)

    async def _from_client(self, line: bytes) -> None:
        msg = _parse(line)
        method = msg.get("method") if msg is not None else None
        rid = msg.get("id") if msg is not None else None
        if isinstance(method, str) and rid is not None:
            self._remember(method, msg)  # type: ignore[arg-type]
            if self._ready:
                self._inflight[_key(rid)] = method
                await self._send_up(line)
            elif method == "ping":
                await self._reply(rid, result={})
            elif self._fail_reason is not None:
                await self._reply(rid, error=self._fail_reason)
            elif len(self._held) >= MAX_HELD:
                await self._reply(rid, error=f"{MAX_HELD} requests are already waiting for broxy-tray")
            else:
                self._hold(_Held(line, msg, asyncio.get_running_loop().time() + self.hold_timeout))
            return
        if method == "notifications/initialized":
            self._initialized = True
        if method == "notifications/cancelled" and not self._ready:
            params = msg.get("params") if msg is not None else None
            cancelled = params.get("requestId") if isinstance(params, dict) else None
            self._held = [h for h in self._held if h.msg is None or h.msg.get("id") != cancelled]
            return
        if self._ready:
            await self._send_up(line)
        elif method is not None or msg is None:
            self._hold(_Held(line, msg, None))  # keeps its place after the requests before it
        # else: the client's answer to a request of a connection that is gone: nobody waits for it

    def _remember(self, method: str, msg: dict[str, Any]) -> None:
        params = msg.get("params")
        if method == "initialize":
            self._init = msg
        elif method == "logging/setLevel" and isinstance(params, dict):
            self._log_level = params
        elif method == "resources/subscribe" and isinstance(params, dict) and "uri" in params:
            self._subscriptions[str(params["uri"])] = params
        elif method == "resources/unsubscribe" and isinstance(params, dict):
            self._subscriptions.pop(str(params.get("uri")), None)

    def _hold(self, held: _Held) -> None:
        if len(self._held) < MAX_HELD:  # (a request over the limit was answered; a notification is dropped)
            self._held.append(held)
            self._wake.set()

    async def _reply(self, rid: Any, *, result: Any = None, error: str | None = None) -> None:
        msg: dict[str, Any] = {"jsonrpc": "2.0", "id": rid}
        if error is not None:
            msg["error"] = {"code": APP_GONE, "message": error}
        else:
            msg["result"] = result
        await self._write_client(json.dumps(msg).encode() + b"\n")

    async def _expire_held(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            now = loop.time()
            deadlines = [h.deadline for h in self._held if h.deadline is not None]
            if not deadlines:
                self._wake.clear()
                await self._wake.wait()
                continue
            if min(deadlines) > now:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), min(deadlines) - now)
                except asyncio.TimeoutError:
                    pass
                continue
            expired = [h for h in self._held if h.deadline is not None and h.deadline <= now]
            self._held = [h for h in self._held if h not in expired]
            reason = self._fail_reason or self._waiting_reason or "broxy-tray is not reachable"
            for h in expired:
                await self._reply(h.msg["id"], error=f"{reason} (waited {self.hold_timeout:g} s); try again")  # type: ignore[index]

    async def _fail_held(self, reason: str) -> None:
        requests = [h for h in self._held if h.deadline is not None]
        self._held = [h for h in self._held if h.deadline is None]
        for h in requests:
            await self._reply(h.msg["id"], error=reason)  # type: ignore[index]

    # -- the app side --

    async def _try_link(self, first: bool, wanted: bool) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """`link`, with any other failure (an OSError starting the app: no descriptor, a read-only state
        folder…) turned into a `LinkError`, so the loop says why and keeps trying instead of ending."""
        try:
            return await self._link(first, wanted)
        except LinkError:
            raise
        except Exception as e:
            raise LinkError(f"cannot reach or start broxy-tray: {type(e).__name__}: {e}", final=first) from e

    async def _keep_connected(self) -> None:
        backoff = BACKOFF_FIRST
        first = True
        since: float | None = None  # when the current run of "running but unreachable" answers began
        while not self._closing:
            wanted = any(h.deadline is not None for h in self._held)
            try:
                reader, writer = await self._try_link(first, wanted)
            except LinkError as e:
                now = asyncio.get_running_loop().time()
                if e.fail_fast and since is None:
                    since = now
                if e.fail_fast and now - since < CONFIRM_TIME:
                    # An app being killed closes its listener, lock and connections one by one:
                    # "running but unreachable" must last a moment to be believed.
                    await asyncio.sleep(BACKOFF_FIRST)
                    continue
                if not e.fail_fast:
                    since = None
                self._first_attempt.set()
                if first and e.final:
                    self.fatal = str(e)
                    self._log(str(e))
                    return
                if str(e) != self._waiting_reason:
                    self._log(f"{e}; retrying")
                self._waiting_reason = str(e)
                self._fail_reason = str(e) if e.fail_fast else None
                if e.fail_fast:
                    await self._fail_held(str(e))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
                continue
            backoff = BACKOFF_FIRST
            since = None
            self._first_attempt.set()
            self._fail_reason = self._waiting_reason = None
            again = not first
            first = False
            self.connections += 1
            if not await self._serve_connection(reader, writer, again):
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
            elif not self._closing:
                self._log("lost the connection to broxy-tray; reconnecting")

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, again: bool) -> bool:
        """Serve one connection until it ends; False when it could not be made the client's session."""
        self._writer = writer
        pump = asyncio.ensure_future(self._read_app(reader))
        ok = True
        try:
            if again and not await self._reestablish():
                ok = False
                writer.close()
            else:
                self._ready = True
                held, self._held = self._held, []
                for h in held:
                    if h.msg is not None and h.deadline is not None:
                        self._inflight[_key(h.msg["id"])] = str(h.msg.get("method"))
                    await self._send_up(h.line)
                if again and self._init_done:
                    for method in LIST_CHANGED:
                        await self._write_client(json.dumps({"jsonrpc": "2.0", "method": method}).encode() + b"\n")
            await pump
        finally:
            pump.cancel()
            self._ready = False
            self._writer = None
            writer.close()
            await self._connection_lost()
        return ok

    async def _reestablish(self) -> bool:
        """Make the new connection the client's session again: initialize as the client did, replay its settings."""
        if not self._init_done or self._init is None:
            return True
        answer = await self._request("initialize", self._init.get("params"))
        if answer is None or "error" in answer:
            self._log(f"broxy-tray refused the re-sent initialize: {answer and answer.get('error')}")
            return False
        if self._initialized:
            await self._send_up(json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}).encode() + b"\n")
        if self._log_level is not None:
            await self._request("logging/setLevel", self._log_level)
        for params in list(self._subscriptions.values()):
            await self._request("resources/subscribe", params)
        return True

    async def _request(self, method: str, params: Any) -> dict[str, Any] | None:
        rid = f"broxy-stdio-{next(self._ids)}"
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._private[_key(rid)] = future
        msg: dict[str, Any] = {"jsonrpc": "2.0", "id": rid, "method": method}
        if params is not None:
            msg["params"] = params
        try:
            await self._send_up(json.dumps(msg).encode() + b"\n")
            return await asyncio.wait_for(future, self.private_timeout)
        except (asyncio.TimeoutError, ConnectionError, OSError):
            return None
        finally:
            self._private.pop(_key(rid), None)

    async def _read_app(self, reader: asyncio.StreamReader) -> None:
        buf = bytearray()
        while True:
            try:
                chunk = await reader.read(CHUNK)
            except (ConnectionError, OSError):
                break
            if not chunk:
                break
            buf += chunk
            start = 0
            while (nl := buf.find(b"\n", start)) >= 0:
                await self._from_app(bytes(buf[start:nl + 1]))
                start = nl + 1
            del buf[:start]
            if len(buf) > MAX_LINE:
                self._log("broxy-tray sent an over-long message; reconnecting")
                break

    async def _from_app(self, line: bytes) -> None:
        if self._inflight or self._private:
            msg = _response_head(line)
            if msg is not None and "method" not in msg and "id" in msg:
                key = _key(msg["id"])
                future = self._private.get(key)
                if future is not None:
                    if not future.done():
                        future.set_result(_parse(line) or msg)  # our own (small) answers: in full
                    return
                method = self._inflight.pop(key, None)
                if method == "initialize" and "result" in msg:
                    self._init_done = True
        await self._write_client(line)

    async def _connection_lost(self) -> None:
        for future in self._private.values():
            if not future.done():
                future.cancel()
        inflight, self._inflight = self._inflight, {}
        if self._closing and not inflight:
            return
        for key in inflight:
            await self._reply(json.loads(key), error="broxy-tray went away while this request was running "
                                                     "(it is restarting or was quit); it may or may not have run")

    async def _send_up(self, line: bytes) -> None:
        writer = self._writer
        if writer is None:
            return
        try:
            writer.write(line if line.endswith(b"\n") else line + b"\n")
            await writer.drain()
        except (ConnectionError, OSError):
            pass  # the reader sees the end and the session reconnects

    async def _drain(self) -> None:
        """The client hung up: let the app answer what is in flight (bounded), then close."""
        writer = self._writer
        if writer is None:
            return
        try:
            if writer.can_write_eof():
                writer.write_eof()
        except (ConnectionError, OSError):
            return
        loop = asyncio.get_running_loop()
        end = loop.time() + DRAIN_TIMEOUT
        while self._inflight and self._writer is not None and loop.time() < end:
            await asyncio.sleep(0.02)


_HEAD = re.compile(rb'\{"jsonrpc":"2\.0","id":(-?\d+|"(?:[^"\\]|\\.)*"),"(result|error)":')


def _response_head(line: bytes) -> dict[str, Any] | None:
    """Enough of an app message to route it: the SDK writes responses as `{"jsonrpc":"2.0","id":…,"result"…`,
    so a large result need not be parsed just to learn its id (anything else is parsed in full)."""
    m = _HEAD.match(line)
    if m is None:
        return _parse(line)
    try:
        return {"id": json.loads(m.group(1)), m.group(2).decode(): None}
    except ValueError:
        return _parse(line)


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        msg = json.loads(line)
    except (ValueError, RecursionError):
        return None
    return msg if isinstance(msg, dict) else None
