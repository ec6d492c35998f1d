"""Hand a client over to broxy-tray, and give it back exactly.

`install` edits the client's own user file: the `broxy` entry (launching
`broxy-tray stdio`) is added and the entries that mcp.json now serves (same
command, args and env names, or same URL) are removed — every other byte,
unknown keys and other entries included, stays. Before the edit a
timestamped copy is written next to the file, and a record of the edit (the
file's hash after it, the removed entries' exact text) is kept in
broxy-tray's state folder.

`uninstall` puts the file back: byte for byte from the backup when the file
is as we left it; otherwise (the client or the user saved since) by reversing
just our edit in the current text (our entry is recognised by its value, so a
client that re-indents the file on save does not stop the undo). Anything it
cannot account for — an invalid file, our entry's value edited by hand, a file
changed while we work — makes it refuse with the reason, touching nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ..config import ConfigWriteError, edit_file
from ..config._jsonedit import blank_jsonc, insert_member, member_raw, remove_member
from ..config._spans import SpanMap
from ._apply import current_servers
from ._locations import CLIENT_NAMES, Source, user_file
from ._map import loose_key, map_server
from ._read import SourceError, read_source

INSTALLABLE = ("claude-desktop", "claude-code", "cursor", "vscode", "windsurf", "gemini")


class HandoverError(Exception):
    """Refused; the message says why and what to do."""


@dataclass(frozen=True)
class Done:
    message: str
    file: Path
    backup: Path | None = None


def record_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_state_dir("broxy", appauthor=False)) / "handover"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _root(client: str) -> str:
    return "servers" if client == "vscode" else "mcpServers"


def broxy_entry(client: str, argv: list[str]) -> dict[str, Any]:
    if client in ("vscode", "claude-code"):
        return {"type": "stdio", "command": argv[0], "args": argv[1:]}
    return {"command": argv[0], "args": argv[1:]}


def served_keys(config_path: Path, preset: str | None) -> set[tuple[Any, ...]]:
    """Identities of the servers broxy-tray offers (those of the preset only, with one)."""
    servers = current_servers(config_path)
    if preset is not None:
        try:
            data = json.loads(config_path.read_text(encoding="utf-8-sig"))
            names = data["presets"][preset]["servers"]
        except (OSError, ValueError, KeyError, TypeError):
            raise HandoverError(f"no preset {preset!r} in {config_path}") from None
        servers = {k: v for k, v in servers.items() if k in names}
    # a disabled server is not offered through broxy-tray, so the client keeps its own entry for it
    return {loose_key(e) for e in servers.values() if isinstance(e, dict) and e.get("enabled") is not False}


def install(client: str, *, config_path: Path, argv: list[str], preset: str | None = None,
            environ: Mapping[str, str] | None = None, platform: str = sys.platform,
            state_dir: Path | None = None) -> Done:
    if client not in INSTALLABLE:
        raise HandoverError(f"--install does not support {client!r} yet; choose one of {', '.join(INSTALLABLE)}")
    env = os.environ if environ is None else environ
    path = user_file(client, env, platform)
    records = state_dir or record_dir()
    record_path = records / f"{client}.json"
    if record_path.exists():
        raise HandoverError(f"{CLIENT_NAMES[client]} is already handed over to broxy-tray ({record_path}); "
                            "run client-config --uninstall first")
    name = f"broxy-{preset}" if preset else "broxy"
    served = served_keys(config_path, preset)
    created = not path.exists() and not path.is_symlink()
    if created and not path.parent.is_dir():
        # creating ~/.config/Claude/… for a client that is not there would leave clutter and help nobody
        raise HandoverError(f"{CLIENT_NAMES[client]} does not seem to be installed: neither {path} nor its folder "
                            f"{path.parent} exists; nothing changed")
    if created:  # only the file, in the client's own folder: the undo removes it and leaves the folder as it was
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write("{}\n")
    source = Source(client, path, "user")
    try:
        read = read_source(source)
    except SourceError as e:
        raise HandoverError(f"{e}; the file was not changed") from None
    assert read is not None
    before_bytes = path.read_bytes()
    before = before_bytes.decode("utf-8")
    bom, body_before = _split_bom(before)
    if body_before != read.text:
        raise HandoverError(f"{path} changed while broxy-tray was reading it; try again")
    remove: list[str] = []
    for raw in read.servers:
        if raw.name == name:
            raise HandoverError(f"{path} already has an entry {name!r}; the file was not changed")
        mapped = map_server(raw, keep_literals=False)
        if mapped.entry is not None and mapped.loose_key in served:
            remove.append(raw.name)
    root = _root(client)
    spans = SpanMap(blank_jsonc(body_before))
    removed = [{"key": k, "raw": member_raw(body_before, spans, (root, k))} for k in remove]
    backup = None
    if not created:
        backup = _write_backup(path, before_bytes)
    entry = broxy_entry(client, argv)

    def edit(text: str) -> str:
        if text != before:
            raise ConfigWriteError(f"{path} changed while broxy-tray was editing it; try again")
        body = body_before
        for key in remove:
            body = remove_member(body, SpanMap(blank_jsonc(body)), (root,), key)
        s = SpanMap(blank_jsonc(body))
        if s.get((root,)) is None:
            return bom + insert_member(body, s, (), root, {name: entry})
        return bom + insert_member(body, s, (root,), name, entry)

    try:
        edit_file(path, edit, what="the hand-over was not written")
    except ConfigWriteError as e:
        if created:
            os.unlink(path)
        raise HandoverError(str(e)) from None
    after_bytes = path.read_bytes()
    after = _split_bom(after_bytes.decode("utf-8"))[1]
    entry_raw = member_raw(after, SpanMap(blank_jsonc(after)), (root, name))
    records.mkdir(parents=True, exist_ok=True)
    record = {
        "client": client, "file": str(path), "backup": str(backup) if backup else None, "created": created,
        "beforeSha256": _sha(before_bytes), "afterSha256": _sha(after_bytes), "root": root,
        "entry": {"key": name, "raw": entry_raw}, "removed": removed, "installed": time.time(),
    }
    tmp = record_path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(record, f, indent=2)
    os.replace(tmp, record_path)
    gone = f"; removed {', '.join(remove)} (now served by broxy-tray)" if remove else ""
    where = f"; backup: {backup}" if backup else f"; created {path}"
    return Done(f"{CLIENT_NAMES[client]}: added {name!r} to {path}{gone}{where}. Restart {CLIENT_NAMES[client]} "
                "to use it; client-config --uninstall puts the file back.", path, backup)


def _split_bom(text: str) -> tuple[str, str]:
    """(BOM or "", the rest): offsets are taken in the rest, the BOM is put back in front."""
    return ("\ufeff", text[1:]) if text.startswith("\ufeff") else ("", text)


def _write_backup(path: Path, data: bytes) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    backup = path.with_name(f"{path.name}.broxy-backup-{stamp}")
    n = 2
    while backup.exists():
        backup = path.with_name(f"{path.name}.broxy-backup-{stamp}-{n}")
        n += 1
    fd = os.open(backup, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # the file may hold credentials
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return backup


def uninstall(client: str, *, state_dir: Path | None = None) -> Done:
    records = state_dir or record_dir()
    record_path = records / f"{client}.json"
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise HandoverError(f"{CLIENT_NAMES.get(client, client)} was not handed over by broxy-tray "
                            f"(no record in {records})") from None
    except (OSError, ValueError) as e:
        raise HandoverError(f"cannot read {record_path}: {e}") from None
    path = Path(record["file"])
    try:
        current = path.read_bytes()
    except FileNotFoundError:
        if record.get("created"):
            record_path.unlink()
            return Done(f"{path} is gone already; nothing to undo", path)
        raise HandoverError(f"{path} no longer exists; its backup is {record.get('backup')}") from None
    if _sha(current) == record["afterSha256"]:
        message = _restore_exactly(path, current, record)
    else:
        message = _reverse(path, record)
    record_path.unlink()
    return Done(message, path)


def _restore_exactly(path: Path, current: bytes, record: dict[str, Any]) -> str:
    installed = current.decode("utf-8")
    if record.get("created"):
        os.unlink(path)
        return f"{path}: removed (broxy-tray had created it)"
    backup = Path(record["backup"])
    try:
        original = backup.read_bytes()
    except OSError:
        original = b""
    if _sha(original) != record["beforeSha256"]:
        return _reverse(path, record)
    restored = original.decode("utf-8")

    def restore(text: str) -> str:
        if text != installed:
            raise ConfigWriteError(f"{path} changed while broxy-tray was restoring it; try again")
        return restored

    try:
        edit_file(path, restore, what="the file was not restored")
    except ConfigWriteError as e:
        raise HandoverError(str(e)) from None
    return f"{path}: restored exactly as it was before the hand-over (from {backup})"


def _value(raw: str | None) -> Any:
    """A member's parsed value: clients re-indent their files on save, so our entry is compared by value, not text."""
    return json.loads(blank_jsonc(raw)) if raw is not None else None


def _reverse(path: Path, record: dict[str, Any]) -> str:
    root = record["root"]
    key = record["entry"]["key"]
    notes: list[str] = []

    def reverse(full: str) -> str:
        notes.clear()
        bom, text = _split_bom(full)
        blanked = blank_jsonc(text)
        try:
            data = json.loads(blanked) if blanked.strip() else None
        except json.JSONDecodeError as e:
            raise HandoverError(f"{path}:{e.lineno}:{e.colno}: invalid JSON ({e.msg}); fix it, or restore "
                                f"{record.get('backup')} by hand; nothing changed") from None
        if not isinstance(data, dict) or not isinstance(data.get(root, {}), dict):
            raise HandoverError(f"{path}: \"{root}\" is no longer an object; nothing changed")
        body = text
        spans = SpanMap(blanked)
        if key in data.get(root, {}):
            if _value(member_raw(text, spans, (root, key))) != _value(record["entry"]["raw"]):
                raise HandoverError(f"{path}: the {key!r} entry was edited since the hand-over; remove it or restore "
                                    f"{record.get('backup')} by hand; nothing changed")
            body = remove_member(body, spans, (root,), key)
        else:
            notes.append(f"{key!r} was already removed")
        for item in record["removed"]:
            s = SpanMap(blank_jsonc(body))
            if s.get((root,)) is None:
                body = insert_member(body, s, (), root, {})
                s = SpanMap(blank_jsonc(body))
            if item["key"] in s.members((root,)):
                notes.append(f"kept your current {item['key']!r}")
                continue
            body = insert_member(body, s, (root,), item["key"], None, raw=item["raw"])
        return bom + body

    try:
        edit_file(path, reverse, what="the hand-over was not undone")
    except ConfigWriteError as e:
        raise HandoverError(str(e)) from None
    back = ", ".join(i["key"] for i in record["removed"])
    extra = f" ({'; '.join(notes)})" if notes else ""
    return (f"{path}: changed since the hand-over, so only broxy-tray's edit was undone: removed {key!r}"
            + (f", put back {back}" if back else "") + extra)
