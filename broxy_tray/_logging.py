"""Logging set-up: a rotating file in the platform's log dir, and redaction.

The code avoids logging secrets in the first place; the redacting filter is
the second line: every value the config marks as secret (header values,
env values, client secrets, later tokens) is replaced by `***` in any
record that would contain it.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
import threading
from pathlib import Path
from typing import Iterable

LOG_FILE_NAME = "broxy-tray.log"
_MIN_SECRET_LENGTH = 6  # shorter values ("1", "true") would redact ordinary words
_secrets: set[str] = set()
_secrets_lock = threading.Lock()

LEVELS = ("debug", "info", "warning", "error")


def register_secrets(values: Iterable[str]) -> None:
    """Mark values that must never appear in a log line."""
    with _secrets_lock:
        _secrets.update(v for v in values if v and len(v) >= _MIN_SECRET_LENGTH)


def redact(text: str) -> str:
    with _secrets_lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for s in secrets:
        if s in text:
            text = text.replace(s, "***")
    return text


class RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def default_log_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_log_dir("broxy", appauthor=False))


def setup_logging(level: str = "info", log_dir: Path | None = None, *, stderr_level: str | None = "warning") -> Path:
    """Log to `<log_dir>/broxy-tray.log` (1 MiB x 5) and, optionally, warnings to stderr."""
    directory = log_dir or default_log_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / LOG_FILE_NAME
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    numeric = getattr(logging, level.upper())
    root.setLevel(numeric)
    file_handler = logging.handlers.RotatingFileHandler(path, maxBytes=1 << 20, backupCount=5, encoding="utf-8")
    file_handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(file_handler)
    if stderr_level is not None:
        console = logging.StreamHandler(sys.stderr)
        console.setLevel(getattr(logging, stderr_level.upper()))
        console.setFormatter(RedactingFormatter("broxy-tray: %(levelname)s: %(message)s"))
        root.addHandler(console)
    # third-party chatter stays out of the user's log unless asked for
    for noisy in ("watchdog", "asyncio"):
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))
    return path
