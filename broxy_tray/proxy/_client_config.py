"""`broxy-tray client-config`: the snippet to paste into an MCP client's configuration.

Every client launches `broxy-tray stdio` (with `--preset NAME`, and
`--config PATH` when the config is not the default one), using the
absolute path of this installation's `broxy-tray` so the client's own
PATH does not matter.

With `--http` the snippet points at the Streamable HTTP endpoint instead
(`"endpoint": {"port": …}` in mcp.json): its URL plus the
`Authorization: Bearer <token>` header. This is the only place the
endpoint's token is ever printed, deliberately, to stdout.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
from pathlib import Path

CLIENTS = ("claude-desktop", "claude-code", "cursor", "vscode", "windsurf", "gemini")
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
    "windsurf": "Paste into ~/.codeium/windsurf/mcp_config.json, merging with any existing \"mcpServers\".",
    "gemini": "Paste into ~/.gemini/settings.json (or .gemini/settings.json in a project), merging with any existing \"mcpServers\".",
}
# or let broxy-tray edit the client's file: client-config --install (undo: --uninstall)


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


HTTP_WHERE = {
    "claude-desktop": (
        "Claude Desktop launches commands; prefer the stdio snippet (without --http). Clients that take a URL "
        "accept this entry; merge it with any existing \"mcpServers\"."
    ),
    "claude-code": "Run this once in a terminal (drop --scope user to add it to the current project only).",
    "cursor": "Paste into ~/.cursor/mcp.json (or .cursor/mcp.json in a project), merging with any existing \"mcpServers\".",
    "vscode": "Paste into .vscode/mcp.json (or run \"MCP: Open User Configuration\"), merging with any existing \"servers\".",
    "windsurf": "Paste into ~/.codeium/windsurf/mcp_config.json, merging with any existing \"mcpServers\".",
    "gemini": "Paste into ~/.gemini/settings.json, merging with any existing \"mcpServers\".",
}
HTTP_NOTE = "It contains the endpoint's bearer token: keep it private."


def endpoint_url(port: int, preset: str | None = None) -> str:
    from urllib.parse import quote

    return f"http://127.0.0.1:{port}/presets/{quote(preset, safe='')}/mcp" if preset else f"http://127.0.0.1:{port}/mcp"


def http_client_config(client: str = DEFAULT_CLIENT, *, port: int, token: str, preset: str | None = None) -> str:
    """The snippet for the Streamable HTTP endpoint: its URL and the bearer header."""
    if client not in CLIENTS:
        raise ValueError(f"unknown client {client!r}; choose one of {', '.join(CLIENTS)}")
    url = endpoint_url(port, preset)
    name = entry_name(preset)
    header = f"Bearer {token}"
    if client == "claude-code":
        return shlex.join(["claude", "mcp", "add", "--transport", "http", "--scope", "user", name, url,
                           "--header", f"Authorization: {header}"])
    if client == "vscode":
        return json.dumps({"servers": {name: {"type": "http", "url": url, "headers": {"Authorization": header}}}},
                          indent=2)
    if client == "cursor":
        return json.dumps({"mcpServers": {name: {"url": url, "headers": {"Authorization": header}}}}, indent=2)
    if client in ("windsurf", "gemini"):  # their documented keys for a Streamable HTTP URL
        key = "serverUrl" if client == "windsurf" else "httpUrl"
        return json.dumps({"mcpServers": {name: {key: url, "headers": {"Authorization": header}}}}, indent=2)
    return json.dumps({"mcpServers": {name: {"type": "http", "url": url, "headers": {"Authorization": header}}}},
                      indent=2)


def _endpoint_token(token_store: object | None = None) -> tuple[str, bool]:
    """The endpoint's token from secure storage (created if it does not exist yet), and whether it persists."""
    import asyncio

    from ._http_endpoint import EndpointToken, default_token_store

    store = token_store if token_store is not None else default_token_store()
    token = EndpointToken(store)
    try:
        return asyncio.run(token.get()), token.persistent
    finally:
        if token_store is None:
            closer = getattr(store, "close", None)
            if closer is not None:
                closer()


def run_http(args: object, *, token_store: object | None = None) -> int:
    """`client-config --http`: the endpoint's snippet, when mcp.json turns the endpoint on."""
    from broxy_tray.config import ConfigFileError, load_config, resolve_config_path

    client = getattr(args, "client", None) or DEFAULT_CLIENT
    preset = getattr(args, "preset", None)
    path = resolve_config_path(getattr(args, "config", None))
    try:
        config, _ = load_config(path)
    except ConfigFileError as e:
        print(f"broxy-tray: {e}", file=sys.stderr)
        return 1
    if config.endpoint is None:
        problems = [str(i) for i in config.errors if i.path.startswith("endpoint")]
        why = f" ({problems[0]})" if problems else ""
        print(f"broxy-tray: the HTTP endpoint is off in {path}{why}; add \"endpoint\": {{\"port\": 3335}} "
              "to turn it on, or use the stdio snippet (without --http)", file=sys.stderr)
        return 1
    if preset is not None and (config.preset(preset) is None or not config.preset(preset).valid):  # type: ignore[union-attr]
        print(f"broxy-tray: no valid preset {preset!r} in {path}", file=sys.stderr)
        return 2
    if client not in CLIENTS:
        print(f"broxy-tray: unknown client {client!r}; choose one of {', '.join(CLIENTS)}", file=sys.stderr)
        return 2
    token, persistent = _endpoint_token(token_store)
    if not persistent:
        print("broxy-tray: secure storage is unavailable, so the endpoint's token changes with every run; "
              "use the stdio snippet (without --http) instead", file=sys.stderr)
        return 1
    print(f"# {HTTP_WHERE[client]} {HTTP_NOTE}", file=sys.stderr)
    print(http_client_config(client, port=config.endpoint.port, token=token, preset=preset))
    return 0


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
    """The `client-config` command (argparse namespace with client, preset, config, http)."""
    from broxy_tray.config import resolve_config_path

    if getattr(args, "http", False):
        return run_http(args)

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
