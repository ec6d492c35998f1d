"""The control channel's wire format: one JSON object per line, both ways.

A request is a JSON object on one line (UTF-8, at most `MAX_REQUEST` bytes
including the newline):

    {"v": 1, "cmd": "enable", "server": "files", "id": 7}

`v` (the protocol version) and `cmd` are required; `server` names the server
for the commands that take one; `id` is optional and echoed back, so a
client may pipeline several requests on one connection. Every request gets
exactly one response line, in order:

    {"v": 1, "id": 7, "ok": true, "result": {...}}
    {"v": 1, "id": 7, "ok": false, "error": {"code": "unknown-command", "message": "..."}}

The framing helpers here are shared by the server, the client and (later)
the stdio bridge.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

PROTOCOL_VERSION = 1
MAX_REQUEST = 64 * 1024  # bytes, newline included
MAX_RESPONSE = 8 * 1024 * 1024

# Commands and whether they take a server name.
COMMANDS: dict[str, bool] = {
    "ping": False,
    "status": False,
    "auth": True,
    "cancel": True,
    "logout": True,
    "enable": True,
    "disable": True,
    "retry": True,
    "reload": False,
    "quit": False,
    "secrets": False,  # stored secrets changed (`broxy-tray secret …`): re-read them and re-expand mcp.json
    "mcp": False,  # {"cmd": "mcp", "preset": NAME?}: answered, then the connection carries MCP (see proxy._relay)
}

# Error codes a response may carry.
E_BAD_JSON = "bad-json"
E_BAD_REQUEST = "bad-request"
E_VERSION = "unsupported-version"
E_UNKNOWN_COMMAND = "unknown-command"
E_TOO_LARGE = "too-large"
E_FORBIDDEN = "forbidden"
E_INTENT = "refused"  # the app said no (unknown server, nothing to cancel, …): the message says why
E_TIMEOUT = "timeout"
E_BUSY = "busy"
E_INTERNAL = "internal"
E_UNAVAILABLE = "unavailable"  # this instance does not offer what was asked (e.g. no MCP endpoint)


class ControlError(Exception):
    """The control channel cannot be set up or used; the message says why."""


class ProtocolError(ControlError):
    """A peer sent something that is not a valid message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def encode(message: dict[str, Any]) -> bytes:
    """One message as a line: compact JSON (non-ASCII escaped, so no raw newline can appear) + `\\n`."""
    return json.dumps(message, separators=(",", ":"), ensure_ascii=True).encode("ascii") + b"\n"


def decode(line: bytes) -> dict[str, Any]:
    """Parse one line into a JSON object, or raise `ProtocolError`."""
    try:
        obj = json.loads(line.decode("utf-8"))
    except UnicodeDecodeError:
        raise ProtocolError(E_BAD_JSON, "request is not UTF-8 text") from None
    except ValueError as e:
        raise ProtocolError(E_BAD_JSON, f"request is not valid JSON: {e}") from None
    except RecursionError:  # `[[[[…` a few thousand deep: the parser's own limit, not ours to crash on
        raise ProtocolError(E_BAD_JSON, "request is not valid JSON: nested too deeply") from None
    if not isinstance(obj, dict):
        raise ProtocolError(E_BAD_REQUEST, "request must be a JSON object")
    return obj


async def read_line(reader: asyncio.StreamReader, limit: int) -> bytes | None:
    """The next line without its newline; None at a clean end of stream.

    A final line without a newline (the peer half-closed) still counts.
    Raises `ProtocolError(E_TOO_LARGE)` when a line exceeds `limit` bytes;
    the stream is then out of step and should be closed.
    """
    try:
        line = await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError as e:
        if not e.partial.strip():
            return None
        line = e.partial
    except asyncio.LimitOverrunError:
        raise ProtocolError(E_TOO_LARGE, f"request larger than {limit} bytes") from None
    if len(line) > limit:
        raise ProtocolError(E_TOO_LARGE, f"request larger than {limit} bytes")
    return line.rstrip(b"\r\n")


def validate_request(obj: dict[str, Any]) -> tuple[str, str | None]:
    """Check version, command and arguments; returns (cmd, server name or None)."""
    v = obj.get("v")
    if v is None:
        raise ProtocolError(E_BAD_REQUEST, f'request needs a protocol version ("v": {PROTOCOL_VERSION})')
    if type(v) is not int or v != PROTOCOL_VERSION:
        raise ProtocolError(E_VERSION, f"protocol version {v!r} is not supported (this instance speaks {PROTOCOL_VERSION})")
    cmd = obj.get("cmd")
    if not isinstance(cmd, str) or not cmd:
        raise ProtocolError(E_BAD_REQUEST, 'request needs a command ("cmd")')
    if cmd not in COMMANDS:
        known = ", ".join(sorted(COMMANDS))
        raise ProtocolError(E_UNKNOWN_COMMAND, f"unknown command {cmd[:64]!r} (known: {known})")
    server = obj.get("server")
    if COMMANDS[cmd]:
        if not isinstance(server, str) or not server:
            raise ProtocolError(E_BAD_REQUEST, f'{cmd} needs a server name ("server")')
        return cmd, server
    return cmd, None


def ok(request_id: Any, result: dict[str, Any]) -> dict[str, Any]:
    return {"v": PROTOCOL_VERSION, "id": request_id, "ok": True, "result": result}


def error(request_id: Any, code: str, message: str) -> dict[str, Any]:
    return {"v": PROTOCOL_VERSION, "id": request_id, "ok": False, "error": {"code": code, "message": message}}


def request_id_of(obj: Any) -> Any:
    """The `id` to echo: a string, number or null (anything else is dropped)."""
    if isinstance(obj, dict):
        rid = obj.get("id")
        if rid is None or isinstance(rid, (str, int, float)) and not isinstance(rid, bool):
            return rid
    return None


def server_json(s: Any) -> dict[str, Any]:
    """One server, with the field names of the headless `status` JSON lines (plus a few extras)."""
    from ..ui.headless import status_json

    return {
        **status_json(s),
        "remote": s.remote,
        "authUrl": s.auth_url,
    }
