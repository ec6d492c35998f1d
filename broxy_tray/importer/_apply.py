"""Scan the clients' files, plan, and add the new servers to `mcp.json` by a minimal text edit.

Secrets go to the secret sink passed in (the `${NAME}` store) before the
entries that name them are written, so the app's reload finds them. Without a
sink — or when storing one fails — the entry still gets `${NAME}` and the
caller is told which names to set by hand; the value itself is dropped.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Protocol

from ..config import ConfigWriteError, edit_file, ensure_config
from ..config._jsonedit import insert_member
from ..config._spans import SpanMap
from ._locations import CLIENTS, Source, sources
from ._map import Mapped, map_server
from ._plan import Plan, plan_import
from ._read import SourceError, read_source

log = logging.getLogger(__name__)


class SecretSink(Protocol):
    """Where literal credentials go instead of mcp.json (issue 15's `${NAME}` keyring store)."""

    def set(self, name: str, value: str) -> None: ...


def default_sink() -> SecretSink | None:
    """The `${NAME}` secret store in the OS keyring, as a blocking sink.

    `apply` runs on the CLI's main thread or a tray worker thread, never on
    the event loop, so each `set` runs the store's coroutine to completion.
    """
    import asyncio

    from ..secrets import SecretStore

    class KeyringSink:
        def __init__(self) -> None:
            self._store = SecretStore()

        def set(self, name: str, value: str) -> None:
            asyncio.run(self._store.set(name, value))

    return KeyringSink()


@dataclass
class Scan:
    mapped: list[Mapped] = field(default_factory=list)
    files: list[Source] = field(default_factory=list)  # files found and read
    errors: list[SourceError] = field(default_factory=list)


@dataclass
class Result:
    plan: Plan
    written: bool = False
    stored: list[str] = field(default_factory=list)  # secret names now in the store
    to_set: list[tuple[str, str]] = field(default_factory=list)  # (NAME, why) the user must set


def scan(clients: tuple[str, ...] = CLIENTS, *, environ: Mapping[str, str], platform: str = sys.platform,
         project: Path | None = None, keep_literals: bool = False) -> Scan:
    """Read every client file that exists and map its servers; unreadable files are collected as errors."""
    out = Scan()
    from .._logging import register_secrets

    for source in sources(clients, environ=environ, platform=platform, project=project):
        try:
            read = read_source(source)
        except SourceError as e:
            out.errors.append(e)
            continue
        if read is None:
            continue
        out.files.append(source)
        for raw in read.servers:
            mapped = map_server(raw, keep_literals=keep_literals, windows=platform == "win32")
            register_secrets(s.value for s in mapped.secrets)  # redacted should any log line ever carry one
            out.mapped.append(mapped)
    return out


def _servers_of(text: str, file: str) -> dict[str, Any]:
    body = text[1:] if text.startswith("\ufeff") else text
    try:
        data = json.loads(body) if body.strip() else {}
    except json.JSONDecodeError as e:
        raise ConfigWriteError(f"{file}:{e.lineno}:{e.colno}: fix this JSON error first ({e.msg}); nothing imported") from None
    if not isinstance(data, dict):
        raise ConfigWriteError(f"{file}: the top level is not a JSON object; nothing imported")
    servers = data.get("mcpServers", {})
    if not isinstance(servers, dict):
        raise ConfigWriteError(f"{file}: \"mcpServers\" is not an object; nothing imported")
    return servers


def add_servers(text: str, additions: dict[str, dict[str, Any]], *, file: str = "mcp.json") -> str:
    """`text` with each addition appended to `mcpServers` (created if missing); everything else untouched."""
    if not additions:
        return text
    _servers_of(text, file)
    bom = "\ufeff" if text.startswith("\ufeff") else ""
    body = text[len(bom):]
    if not body.strip():
        body = "{}\n"
    spans = SpanMap(body)
    if spans.get(("mcpServers",)) is None:
        return bom + insert_member(body, spans, (), "mcpServers", additions)
    for sid, entry in additions.items():
        body = insert_member(body, SpanMap(body), ("mcpServers",), sid, entry)
    return bom + body


def current_servers(config_path: Path) -> dict[str, Any]:
    """The `mcpServers` of the user's mcp.json as written (empty when it does not exist yet)."""
    try:
        text = config_path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigWriteError(f"cannot read {config_path}: {e}") from None
    return _servers_of(text, str(config_path))


def preview(found: Scan, config_path: Path) -> Plan:
    """The plan against the current mcp.json, writing nothing."""
    return plan_import(found.mapped, current_servers(config_path))


def apply(found: Scan, config_path: Path, *, sink: SecretSink | None) -> Result:
    """Store the secrets, then add the planned servers to mcp.json. Raises `ConfigWriteError`."""
    ensure_config(config_path)
    plan = preview(found, config_path)
    result = Result(plan=plan)
    if not plan.additions:
        return result
    _store(plan, sink, result)
    final: list[Plan] = []

    def edit(text: str) -> str:
        fresh = plan_import(found.mapped, _servers_of(text, str(config_path)))
        final[:] = [fresh]
        return add_servers(text, fresh.additions, file=str(config_path))

    result.written = edit_file(config_path, edit, what="the imported servers were not written")
    result.plan = final[0] if final else plan
    _store(result.plan, sink, result)  # names that changed because the file changed meanwhile
    for p in result.plan.prompts:
        if p[0] not in result.stored and p not in result.to_set:
            result.to_set.append(p)
    log.info("import: added %d servers to %s (%s)", len(result.plan.additions), config_path,
             ", ".join(result.plan.additions))
    return result


def _store(plan: Plan, sink: SecretSink | None, result: Result) -> None:
    for s in plan.secrets:
        if s.name in result.stored or any(n == s.name for n, _ in result.to_set):
            continue
        if sink is None:
            result.to_set.append((s.name, f"{s.where} held a literal credential"))
            continue
        try:
            sink.set(s.name, s.value)
        except Exception as e:  # the store's own error text never carries the value
            log.warning("import: could not store %s in the secret store: %s", s.name, type(e).__name__)
            result.to_set.append((s.name, f"{s.where}: the secret store refused it ({type(e).__name__})"))
            continue
        result.stored.append(s.name)
