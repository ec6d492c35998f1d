"""Read a client's file into raw server entries, or fail with a located error.

A client file is someone else's format, read defensively: a size limit (an
import never loads a runaway file into memory), symlink loops and unreadable
files reported as such, JSON with comments and trailing commas accepted (VS
Code and Cursor write JSONC), and every type the mapper relies on checked
here, with the line and column (JSON) or the key path (TOML) of the problem.
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config._jsonedit import blank_jsonc
from ..config._spans import SpanMap
from ._locations import Source

MAX_BYTES = 64 * 1024 * 1024  # ~/.claude.json carries project history and grows large; MCP sections are tiny


class SourceError(Exception):
    """A client file that cannot be imported; `str()` is `file:line:column: what` (or `file: what`)."""

    def __init__(self, file: Path, message: str, line: int | None = None, column: int | None = None) -> None:
        self.file, self.message, self.line, self.column = file, message, line, column
        where = f"{file}:{line}:{column}" if line is not None else str(file)
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class RawServer:
    """One server entry as the client wrote it."""

    source: Source
    name: str
    raw: dict[str, Any]
    scope: str  # shown in the table: "Cursor", "Claude Code (project)", "Claude Code (local /dir)"
    disabled: bool = False  # disabled by a client-level list (Gemini's mcp.excluded)


@dataclass
class FileRead:
    source: Source
    servers: list[RawServer] = field(default_factory=list)
    text: str = ""


def read_source(source: Source) -> FileRead | None:
    """The servers in `source`, None when the file does not exist. Raises `SourceError`."""
    path = source.path
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise SourceError(path, "is a symbolic link to a file that does not exist") from None
        return None
    except OSError as e:
        raise SourceError(path, f"cannot read: {e.strerror or e}") from None
    if not os.path.isfile(path):
        raise SourceError(path, "is not a regular file")
    if st.st_size > MAX_BYTES:
        raise SourceError(path, f"is {st.st_size // (1024 * 1024)} MiB, larger than the {MAX_BYTES // (1024 * 1024)} MiB "
                                "an MCP configuration can reasonably be; not read")
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_BYTES + 1)
    except OSError as e:
        raise SourceError(path, f"cannot read: {e.strerror or e}") from None
    if len(data) > MAX_BYTES:
        raise SourceError(path, "grew past the size limit while being read; not read")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise SourceError(path, "not UTF-8 text", line, e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1) from None
    out = FileRead(source, text=text)
    if source.fmt == "toml":
        _read_toml(source, text, out)
    else:
        _read_json(source, text, out)
    return out


def _read_json(source: Source, text: str, out: FileRead) -> None:
    path = source.path
    blanked = blank_jsonc(text)
    if not blanked.strip():
        return
    try:
        data = json.loads(blanked)
    except json.JSONDecodeError as e:
        raise SourceError(path, f"invalid JSON: {e.msg}", e.lineno, e.colno) from None
    except RecursionError:
        raise SourceError(path, "invalid JSON: nested too deeply") from None
    spans = SpanMap(blanked)

    def fail(where: tuple[str | int, ...], message: str) -> SourceError:
        loc = spans.locate(where)
        return SourceError(path, f"{message} ({'.'.join(map(str, where))})", *(loc or (None, None)))

    if not isinstance(data, dict):
        raise fail((), "the top level must be a JSON object")
    label = source.label
    roots: list[tuple[tuple[str | int, ...], str]] = [((source.servers_key,), label)]
    if source.client == "claude-code" and source.scope == "user" and source.project is not None:
        projects = data.get("projects")
        if projects is not None and not isinstance(projects, dict):
            raise fail(("projects",), "must be an object")
        key = str(source.project)
        if isinstance(projects, dict) and key in projects:
            if not isinstance(projects[key], dict):
                raise fail(("projects", key), "must be an object")
            roots.append((("projects", key, "mcpServers"), "Claude Code (local)"))
    excluded: set[str] = set()
    if source.client == "gemini":
        mcp = data.get("mcp")
        if isinstance(mcp, dict) and "excluded" in mcp:
            if not isinstance(mcp["excluded"], list) or not all(isinstance(x, str) for x in mcp["excluded"]):
                raise fail(("mcp", "excluded"), "must be an array of server names")
            excluded = set(mcp["excluded"])
    for root, scope in roots:
        servers: Any = data
        for k in root:
            servers = servers.get(k) if isinstance(servers, dict) else None
        if servers is None:
            continue
        if not isinstance(servers, dict):
            raise fail(root, "must be an object of servers by name")
        for name, raw in servers.items():
            problem = check_entry(raw)
            if problem is not None:
                sub, message = problem
                raise fail(root + (name,) + sub, message)
            out.servers.append(RawServer(source, name, raw, scope, disabled=name in excluded))


def _read_toml(source: Source, text: str, out: FileRead) -> None:
    path = source.path
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SourceError(path, f"invalid TOML: {e}") from None
    except RecursionError:
        raise SourceError(path, "invalid TOML: nested too deeply") from None
    servers = data.get("mcp_servers")
    if servers is None:
        return
    if not isinstance(servers, dict):
        raise SourceError(path, "mcp_servers must be a table of servers by name")
    for name, raw in servers.items():
        problem = check_entry(raw)
        if problem is not None:
            sub, message = problem
            where = ".".join(["mcp_servers", name, *map(str, sub)])
            raise SourceError(path, f"{message} (key {where})")
        out.servers.append(RawServer(source, name, raw, source.label))


_STRING_KEYS = ("command", "url", "serverUrl", "httpUrl", "cwd", "type", "transport", "bearer_token_env_var")
_STRING_MAPS = ("env", "headers", "http_headers", "env_http_headers")
_BOOL_KEYS = ("disabled", "enabled")


def check_entry(raw: Any) -> tuple[tuple[str | int, ...], str] | None:
    """The first type problem in a server entry, as (path below the entry, message); None when usable."""
    if not isinstance(raw, dict):
        return (), "a server entry must be an object"
    for k in _STRING_KEYS:
        if k in raw and not isinstance(raw[k], str):
            return (k,), f"{k} must be a string"
    for k in ("args", "env_vars"):
        if k in raw:
            v = raw[k]
            if not isinstance(v, list):
                return (k,), f"{k} must be an array of strings"
            for i, item in enumerate(v):
                if not isinstance(item, str):
                    return (k, i), f"{k} must be an array of strings"
    for k in _STRING_MAPS:
        if k in raw:
            v = raw[k]
            if not isinstance(v, dict):
                return (k,), f"{k} must be an object of strings"
            for name, item in v.items():
                if not isinstance(item, str):
                    return (k, name), f"{k}.{name} must be a string"
    for k in _BOOL_KEYS:
        if k in raw and not isinstance(raw[k], bool):
            return (k,), f"{k} must be true or false"
    return None
