"""Write into the user's own `mcp.json` (and other hand-edited JSON files): `"enabled"`, or any `edit_file` edit.

The file is hand-edited, so the edit is minimal: one value is replaced (or
one member inserted) in the file's current text, and every other byte —
placeholders, key order, unknown keys, indentation, line endings, a BOM —
stays. The write is atomic (temp file in the same directory, fsync, rename,
original mode kept) and goes to the symlink's target when the config is a
link. If the user saves between our read and our rename, we start again on
their newer text instead of overwriting it.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import threading
from pathlib import Path
from typing import Callable

from ._jsonedit import insert_member
from ._spans import SpanMap

log = logging.getLogger(__name__)

_BOM = "\ufeff"
_ATTEMPTS = 5
_in_process = threading.Lock()  # our own writers go one at a time; the re-read check covers other processes


class ConfigWriteError(Exception):
    """The edit could not be made; the message says why in the user's terms."""


def set_enabled(path: str | os.PathLike[str], server_id: str, enabled: bool) -> bool:
    """Set `mcpServers.<server_id>.enabled`. Returns False when it already had that value."""
    target = Path(os.path.realpath(path))
    with _in_process:
        return _set_enabled(target, server_id, enabled)


def _set_enabled(target: Path, server_id: str, enabled: bool) -> bool:
    return _edit_file(target, lambda text: edit_enabled(text, server_id, enabled, file=str(target)),
                      f"\"enabled\" for {server_id!r} was not written")


def edit_file(path: str | os.PathLike[str], edit: Callable[[str], str], *, what: str = "the edit was not written") -> bool:
    """Apply `edit` (old text -> new text) to the file, atomically, redoing it on a newer text saved meanwhile.

    `edit` is called again on every attempt, so whatever it derives from the text (ids, positions) is
    derived from the text it replaces. Returns False when `edit` changed nothing. Raises `ConfigWriteError`.
    """
    target = Path(os.path.realpath(path))
    with _in_process:
        return _edit_file(target, edit, what)


def _edit_file(target: Path, edit: Callable[[str], str], what: str) -> bool:
    for _ in range(_ATTEMPTS):
        try:
            original = target.read_bytes()
        except OSError as e:
            raise ConfigWriteError(f"cannot read {target}: {e.strerror or e}") from None
        try:
            text = original.decode("utf-8")
        except UnicodeDecodeError:
            raise ConfigWriteError(f"{target} is not UTF-8 text; not editing it") from None
        edited = edit(text)
        if edited == text:
            return False
        try:
            if _replace_if_unchanged(target, original, edited.encode("utf-8")):
                return True
        except OSError as e:
            raise ConfigWriteError(f"cannot write {target}: {e.strerror or e}") from None
    raise ConfigWriteError(f"{target} kept changing while saving; {what}")


def edit_enabled(text: str, server_id: str, enabled: bool, *, file: str = "mcp.json") -> str:
    """Return `text` with the server's `enabled` member set; pure, for tests and dry runs."""
    bom = _BOM if text.startswith(_BOM) else ""
    body = text[len(bom):]
    from ._parse import ConfigFileError, load_json

    try:
        data = load_json(body, file)
    except ConfigFileError as e:
        raise ConfigWriteError(
            f"{e.issue.location()}: fix this JSON error first ({e.issue.message.removeprefix('invalid JSON: ')}); "
            f"\"enabled\" for {server_id!r} was not written"
        ) from None
    entry = data.get("mcpServers", {}).get(server_id) if isinstance(data, dict) else None
    if not isinstance(entry, dict) or not isinstance(data.get("mcpServers"), dict):
        raise ConfigWriteError(f"{file} has no server {server_id!r} any more; nothing written")
    literal = "true" if enabled else "false"
    spans = SpanMap(body)
    base = ("mcpServers", server_id)
    current = spans.get(base + ("enabled",))
    if current is not None:
        if body[current.start:current.end] == literal:
            return text
        return bom + body[: current.start] + literal + body[current.end:]
    return bom + insert_member(body, spans, base, "enabled", enabled)


def _temp_prefix(target: Path) -> str:
    return f".{target.name}."


_TEMP_SUFFIX = ".tmp"
_MKSTEMP_NAME = re.compile(r"[a-z0-9_]{8}\Z")  # the random part `tempfile.mkstemp` puts between prefix and suffix


def remove_stale_temp_copies(path: str | os.PathLike[str]) -> list[str]:
    """Delete the temp copies (`.mcp.json.XXXXXXXX.tmp`) a kill in the middle of a write left behind.

    Called at start, under the instance lock, so no writer of ours is running; only names exactly
    like ours (and regular files of this user) go. Returns the names removed.
    """
    target = Path(os.path.realpath(path))
    prefix = _temp_prefix(target)
    removed = []
    try:
        names = os.listdir(target.parent)
    except OSError:
        return []
    for name in names:
        if not (name.startswith(prefix) and name.endswith(_TEMP_SUFFIX)):
            continue
        if not _MKSTEMP_NAME.match(name[len(prefix):-len(_TEMP_SUFFIX)]):
            continue
        candidate = target.parent / name
        try:
            st = candidate.lstat()
            if not os.path.isfile(candidate) or candidate.is_symlink() or (hasattr(os, "getuid") and st.st_uid != os.getuid()):
                continue
            candidate.unlink()
        except OSError:
            continue
        removed.append(name)
    if removed:
        log.info("removed %d temp cop%s of %s left by an interrupted save: %s", len(removed),
                 "y" if len(removed) == 1 else "ies", target.name, ", ".join(sorted(removed)))
    return removed


def _replace_if_unchanged(target: Path, original: bytes, new: bytes) -> bool:
    """Atomically replace `target` with `new`, unless its content is no longer `original`."""
    st = target.stat()
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=_temp_prefix(target), suffix=_TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(new)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, st.st_mode & 0o7777)
        if hasattr(os, "chown"):
            try:
                os.chown(tmp, st.st_uid, st.st_gid)
            except OSError:
                pass  # not ours to change (e.g. a file owned by another group); mode is kept
        if target.read_bytes() != original:  # the user saved meanwhile: redo on their text
            os.unlink(tmp)
            return False
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(target.parent)
    return True


def _fsync_dir(directory: Path) -> None:
    if os.name != "posix":
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
