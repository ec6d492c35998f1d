"""Where each MCP client keeps its server list, per OS, as the clients document it.

Paths come from the environment passed in (HOME / USERPROFILE, APPDATA,
XDG_CONFIG_HOME, CODEX_HOME, CLAUDE_CONFIG_DIR), never from the process's own
home lookup, so tests and the tray can point them anywhere.

| client | user file | project file (`--project DIR`) |
|---|---|---|
| Claude Desktop | macOS `~/Library/Application Support/Claude/claude_desktop_config.json`, Windows `%APPDATA%\\Claude\\…`, Linux `$XDG_CONFIG_HOME/Claude/…` | — |
| Claude Code | `~/.claude.json` (`$CLAUDE_CONFIG_DIR/.claude.json`): `mcpServers` (user scope) and `projects[DIR].mcpServers` (local scope) | `DIR/.mcp.json` |
| Cursor | `~/.cursor/mcp.json` | `DIR/.cursor/mcp.json` |
| VS Code | `<user dir>/Code/User/mcp.json` (key `servers`) | `DIR/.vscode/mcp.json` |
| Windsurf | `~/.codeium/windsurf/mcp_config.json` | — |
| Gemini CLI | `~/.gemini/settings.json` | `DIR/.gemini/settings.json` |
| Codex | `$CODEX_HOME/config.toml` (default `~/.codex`), tables `[mcp_servers.NAME]` | `DIR/.codex/config.toml` |
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Mapping

CLIENT_NAMES = {
    "claude-desktop": "Claude Desktop",
    "claude-code": "Claude Code",
    "cursor": "Cursor",
    "vscode": "VS Code",
    "windsurf": "Windsurf",
    "gemini": "Gemini CLI",
    "codex": "Codex",
}
CLIENTS = tuple(CLIENT_NAMES)

# How each client writes variables in its values (translated to broxy-tray's `${VAR}` by the mapper).
DIALECTS = {
    "claude-desktop": "literal",  # no expansion: a `${` is literal text
    "claude-code": "shell",  # ${VAR} and ${VAR:-default}, like broxy-tray
    "cursor": "vscode",  # ${env:VAR}, ${userHome}, ${workspaceFolder}
    "vscode": "vscode",  # the same, plus ${input:ID} prompts
    "windsurf": "vscode",  # ${env:VAR}
    "gemini": "gemini",  # $VAR and ${VAR}
    "codex": "literal",  # values are literal; variables are named in dedicated keys
}


@dataclass(frozen=True)
class Source:
    """One client configuration file, and where in it the servers are."""

    client: str
    path: Path
    scope: str  # "user" or "project"
    project: Path | None = None  # the project folder, for project files and ${workspaceFolder}

    @property
    def fmt(self) -> str:
        return "toml" if self.client == "codex" else "json"

    @property
    def servers_key(self) -> str:
        return "servers" if self.client == "vscode" else ("mcp_servers" if self.client == "codex" else "mcpServers")

    @property
    def label(self) -> str:
        name = CLIENT_NAMES[self.client]
        return f"{name} (project)" if self.scope == "project" else name


def home_dir(environ: Mapping[str, str], platform: str = sys.platform) -> Path:
    home = environ.get("USERPROFILE") if platform == "win32" else None
    home = home or environ.get("HOME")
    if not home:
        raise LookupError("HOME is not set, so the clients' files cannot be found")
    return Path(home)


def _appdata(environ: Mapping[str, str], home: Path) -> Path:
    return Path(environ.get("APPDATA") or home / "AppData" / "Roaming")


def _xdg_config(environ: Mapping[str, str], home: Path) -> Path:
    raw = environ.get("XDG_CONFIG_HOME")
    return Path(raw) if raw and PurePath(raw).is_absolute() else home / ".config"


def user_file(client: str, environ: Mapping[str, str], platform: str = sys.platform) -> Path:
    """The client's user-level configuration file (it may not exist)."""
    home = home_dir(environ, platform)
    if client == "claude-desktop":
        if platform == "darwin":
            base = home / "Library" / "Application Support"
        elif platform == "win32":
            base = _appdata(environ, home)
        else:  # Linux builds are unofficial; they follow XDG like the other Electron apps
            base = _xdg_config(environ, home)
        return base / "Claude" / "claude_desktop_config.json"
    if client == "claude-code":
        config_dir = environ.get("CLAUDE_CONFIG_DIR")
        return (Path(config_dir) if config_dir else home) / ".claude.json"
    if client == "cursor":
        return home / ".cursor" / "mcp.json"
    if client == "vscode":
        if platform == "darwin":
            base = home / "Library" / "Application Support"
        elif platform == "win32":
            base = _appdata(environ, home)
        else:
            base = _xdg_config(environ, home)
        return base / "Code" / "User" / "mcp.json"
    if client == "windsurf":
        return home / ".codeium" / "windsurf" / "mcp_config.json"
    if client == "gemini":
        return home / ".gemini" / "settings.json"
    if client == "codex":
        codex_home = environ.get("CODEX_HOME")
        return (Path(codex_home) if codex_home else home / ".codex") / "config.toml"
    raise ValueError(f"unknown client {client!r}; choose one of {', '.join(CLIENTS)}")


_PROJECT_FILES = {
    "claude-code": (".mcp.json",),
    "cursor": (".cursor", "mcp.json"),
    "vscode": (".vscode", "mcp.json"),
    "gemini": (".gemini", "settings.json"),
    "codex": (".codex", "config.toml"),
}


def sources(clients: tuple[str, ...] = CLIENTS, *, environ: Mapping[str, str], platform: str = sys.platform,
            project: Path | None = None) -> list[Source]:
    """Every file to look at for these clients (existing or not), user files first."""
    out: list[Source] = []
    for client in clients:
        out.append(Source(client, user_file(client, environ, platform), "user", project))
    if project is not None:
        for client in clients:
            parts = _PROJECT_FILES.get(client)
            if parts:
                out.append(Source(client, project.joinpath(*parts), "project", project))
    return out
