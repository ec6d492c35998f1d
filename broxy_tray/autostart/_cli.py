"""`broxy-tray autostart enable|disable|status [--method xdg|systemd]`."""

from __future__ import annotations

import argparse
import sys

from ._entries import METHOD_NAMES, Autostart, AutostartError


def run(args: argparse.Namespace) -> int:
    from ..config import resolve_config_path

    action = getattr(args, "action", None) or "status"
    try:
        entry = Autostart(resolve_config_path(getattr(args, "config", None)), method=getattr(args, "method", None))
        if action == "enable":
            changed = entry.enable()
            verb = "enabled" if changed else "already enabled"
            print(f"Start at login {verb}: {METHOD_NAMES[entry.method]} {entry.path}")
            print("  starts: " + " ".join(entry.command()))
            return 0
        if action == "disable":
            where = entry.status().path
            changed = entry.disable()
            print(f"Start at login disabled (removed {where})" if changed else "Start at login was already disabled")
            return 0
        status = entry.status()
        print(status.describe())
        if status.enabled:
            print("  starts: " + " ".join(status.command))
        return 0
    except (AutostartError, OSError) as e:
        print(f"broxy-tray: autostart {action}: {e}", file=sys.stderr)
        return 1
