"""Start at login on Linux (XDG autostart or a systemd user unit), macOS (LaunchAgent) and Windows (Startup folder).

The tray's "Start at login" toggle uses `Autostart(config_path)`:
`is_enabled()`, `enable()`, `disable()`.
"""

from ._entries import (
    LABEL,
    METHODS,
    Autostart,
    AutostartError,
    AutostartStatus,
    desktop_exec,
    launch_command,
    systemd_exec,
    templates_dir,
    windows_command,
)

__all__ = [
    "LABEL",
    "METHODS",
    "Autostart",
    "AutostartError",
    "AutostartStatus",
    "desktop_exec",
    "launch_command",
    "systemd_exec",
    "templates_dir",
    "windows_command",
]
