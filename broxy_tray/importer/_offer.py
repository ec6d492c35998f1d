"""The tray's "Import from Claude Desktop, Cursor…" item: what it offers and what clicking it does.

Blocking (it reads files): the tray calls it from a worker thread. It never
raises; a problem becomes the notification's text, so the menu keeps working.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Mapping

from ..config import ConfigWriteError
from ._apply import SecretSink, apply, preview, scan

log = logging.getLogger(__name__)


class ImportOffer:
    def __init__(self, config_path: Path, *, sink: SecretSink | None = None,
                 environ: Mapping[str, str] | None = None, platform: str = sys.platform) -> None:
        self.config_path = config_path
        self.sink = sink
        self.environ = os.environ if environ is None else environ
        self.platform = platform
        self.clients: tuple[str, ...] = ()  # display names of clients with servers mcp.json lacks

    def refresh(self) -> tuple[str, ...]:
        """Look again; unreadable client files simply offer nothing (the command line names the problem)."""
        try:
            found = scan(environ=self.environ, platform=self.platform)
            # a broken client file blocks the import (nothing written), so there is nothing to offer either
            self.clients = () if found.errors else tuple(preview(found, self.config_path).clients)
        except (ConfigWriteError, LookupError) as e:
            log.info("import offer: %s", e)
            self.clients = ()
        return self.clients

    def run(self) -> str:
        """Import now; returns the confirmation to show (server ids and secret names, never a value)."""
        try:
            found = scan(environ=self.environ, platform=self.platform)
            if found.errors:
                return f"Nothing imported: {found.errors[0]}"
            result = apply(found, self.config_path, sink=self.sink)
        except (ConfigWriteError, LookupError) as e:
            return f"Nothing imported: {e}"
        finally:
            self.refresh()
        added = list(result.plan.additions) if result.written else []
        if not added:
            return "Nothing new to import: mcp.json already has these servers."
        text = (f"Imported {len(added)} server{'s' if len(added) != 1 else ''} from "
                f"{', '.join(result.plan.clients)}: {', '.join(added)}.")
        if result.to_set:
            names = list(dict.fromkeys(n for n, _ in result.to_set))
            text += (" Not stored in the keyring, so still to set (\"Set NAME…\" in the server's menu, or in a "
                     "terminal): " + "; ".join(f"broxy-tray secret set {n}" for n in names) + ".")
        return text
