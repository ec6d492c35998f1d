"""`broxy-tray client-config`: the snippet to paste into an MCP client's configuration.

Every client launches `broxy-tray stdio` (with `--preset NAME`, and
`--config PATH` when the config is not the default one), using the
absolute path of this installation's `broxy-tray` so the client's own
PATH does not matter.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
from pathlib import Path

CLIENTS = ("claude-desktop", "claude-code", "cursor", "vscode")
DEFAULT_CLIENT = "claude-desktop"

WHERE = {
    "claude-desktop": (
        "Paste into claude_desktop_config.json (Settings → Developer → Edit Config; macOS: "
        "~/Library/Application Support/Claude/, Windows: %APPDATA%\\Claude\\), merging with any "
        "existing \"mcpServers\", then restart Claude Desktop."
    ),
    "claude-code": "Run this once in a terminal (drop --scope user to add it to the current project only).",
    "cursor": "Paste into ~/.cursor/mcp.json (or .cursor/mcp.json in a project), merging with any existing \"mcpServers\".",
    "vscode": "Paste into .vscode/mcp.json (or run \"MCP: Open User Configuration\"), merging with any existing \"servers\".",
}


def launch_command(config_path: Path | None = None, *, preset: str | None = None) -> list[str]:
    """argv that starts the stdio bridge: `/abs/broxy-tray stdio [--preset P] [--config C]`."""
    exe = _broxy_executable()
    argv = [*exe, "stdio"]
    if preset:
        argv += ["--preset", preset]
    if config_path is not None and not _is_default_config(config_path):
        argv += ["--config", str(Path(config_path).absolute())]
    return argv


def entry_name(preset: str | None) -> str:
    return f"broxy-{preset}" if preset else "broxy"


def client_config(client: str = DEFAULT_CLIENT, *, config_path: Path | None = None, preset: str | None = None) -> str:
    """The text to paste (a JSON object, or for Claude Code a command line), with a comment line on where."""
    if client not in CLIENTS:
        raise ValueError(f"unknown client {client!r}; choose one of {', '.join(CLIENTS)}")
    argv = launch_command(config_path, preset=preset)
    name = entry_name(preset)
    if client == "claude-code":
        body = shlex.join(["claude", "mcp", "add", "--scope", "user", name, "--", *argv])
    elif client == "vscode":
        body = json.dumps({"servers": {name: {"type": "stdio", "command": argv[0], "args": argv[1:]}}}, indent=2)
    else:
        body = json.dumps({"mcpServers": {name: {"command": argv[0], "args": argv[1:]}}}, indent=2)
    return body


def where(client: str) -> str:
    return WHERE[client]


def _broxy_executable() -> list[str]:
    """This installation's `broxy-tray` script (absolute), else `python -m broxy_tray`."""
    bindir = Path(sys.executable).parent
    for name in ("broxy-tray", "broxy-tray.exe"):
        candidate = bindir / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return [str(candidate)]
    found = shutil.which("broxy-tray")
    if found:
        return [str(Path(found).absolute())]
    return [sys.executable, "-m", "broxy_tray"]


def _is_default_config(path: Path) -> bool:
    try:
        from broxy_tray.config import default_config_path

        return os.path.realpath(default_config_path()) == os.path.realpath(path)
    except Exception:
        return False


def run(args: object) -> int:
    """The `client-config` command (argparse namespace with client, preset, config)."""
    from broxy_tray.config import resolve_config_path

    client = getattr(args, "client", None) or DEFAULT_CLIENT
    preset = getattr(args, "preset", None)
    path = resolve_config_path(getattr(args, "config", None))
    try:
        text = client_config(client, config_path=path, preset=preset)
    except ValueError as e:
        print(f"broxy-tray: {e}", file=sys.stderr)
        return 2
    print(f"# {where(client)}", file=sys.stderr)
    print(text)
    return 0
