"""Logging set-up: a rotating file in the platform's log dir, and redaction.

The code avoids logging secrets in the first place; the redacting formatter
is the second line: every value registered with `broxy_tray._redact` (every
value expanded from `${VAR}`, header and env values, client secrets) is
replaced by `***` in any record that would contain it. The log file is 0600
in a 0700 directory: it names servers, paths and URLs of this user.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
from pathlib import Path
from typing import Iterable

from ._redact import redact as redact
from ._redact import register

LOG_FILE_NAME = "broxy-tray.log"

LEVELS = ("debug", "info", "warning", "error")


def register_secrets(values: Iterable[str]) -> None:
    """Mark values that must never appear in a log line (or any other output)."""
    register(values)


class RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class _PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A rotating log whose every file (the first and each one rotation creates) is 0600."""

    def _open(self):  # type: ignore[no-untyped-def]
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.fchmod(fd, 0o600)
        except (AttributeError, OSError):  # Windows has no fchmod; the profile folder is private there
            pass
        os.close(fd)
        return super()._open()


def _private_dir(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    if os.name != "nt":
        try:
            os.chmod(directory, 0o700)
        except OSError:
            pass


def default_log_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_log_dir("broxy", appauthor=False))


def setup_logging(level: str = "info", log_dir: Path | None = None, *, stderr_level: str | None = "warning") -> Path:
    """Log to `<log_dir>/broxy-tray.log` (1 MiB x 5) and, optionally, warnings to stderr."""
    directory = log_dir or default_log_dir()
    _private_dir(directory)
    path = directory / LOG_FILE_NAME
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    numeric = getattr(logging, level.upper())
    root.setLevel(numeric)
    file_handler = _PrivateRotatingFileHandler(path, maxBytes=1 << 20, backupCount=5, encoding="utf-8")
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
