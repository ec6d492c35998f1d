"""The one redaction point: every value that must never be shown, and the filter all output passes.

Values expanded from `${VAR}` (environment or secret store), header values,
env values and client secrets are registered when a config is parsed; the
log formatter, the headless printer, the control channel's replies and the
CLI's stdout/stderr all pass their text through `redact`, so a value that
slipped into an error message (a crashed child's stderr line, a URL in a
connection error) is shown as `***` wherever it would surface.
"""

from __future__ import annotations

import threading
from typing import Any, Iterable, TextIO

MASK = "***"
MIN_LENGTH = 6  # shorter values ("1", "true") would redact ordinary words
_secrets: set[str] = set()
_ordered: tuple[str, ...] = ()
_lock = threading.Lock()


def register(values: Iterable[str], *, min_length: int = MIN_LENGTH) -> None:
    """Mark values that must never appear in any output."""
    global _ordered
    new = {v for v in values if isinstance(v, str) and len(v.strip()) >= min_length}
    with _lock:
        if new <= _secrets:
            return
        _secrets.update(new)
        _ordered = tuple(sorted(_secrets, key=len, reverse=True))


def redact(text: str) -> str:
    """`text` with every registered value replaced by `***` (longest first)."""
    for s in _ordered:
        if s in text:
            text = text.replace(s, MASK)
    return text


def redact_obj(obj: Any) -> Any:
    """A JSON-like structure with every string redacted (dict keys too)."""
    if not _ordered:
        return obj
    if isinstance(obj, str):
        return redact(obj)
    if isinstance(obj, dict):
        return {redact_obj(k): redact_obj(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [redact_obj(v) for v in obj]
    return obj


class RedactingStream:
    """A text stream that redacts what is written to it (the CLI's stdout and stderr)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(redact(text))
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)
