from __future__ import annotations

import contextlib
import io

import pytest


def cli_patched() -> bool:
    """Has the lead applied the cli.py patch from issue 7 (the `autostart` command)?"""
    from broxy_tray.cli import build_parser

    try:
        with contextlib.redirect_stderr(io.StringIO()):
            build_parser().parse_args(["autostart", "status"])
    except SystemExit:
        return False
    return True


needs_cli_patch = pytest.mark.skipif(not cli_patched(), reason="needs the cli.py patch from issue 7 (autostart command)")
