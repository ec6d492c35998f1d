"""A temporary home directory holding MCP client configurations, shaped after each client's public docs."""

from __future__ import annotations

import io
import json
from argparse import Namespace
from pathlib import Path
from typing import Any

from broxy_tray.importer._cli import run_import

# Claude Desktop (modelcontextprotocol.io quickstart): stdio servers with env; no variable expansion.
CLAUDE_DESKTOP = {
    "mcpServers": {
        "github": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-github"],
                   "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": "ghp_desktopSECRET0001"}},
        "filesystem": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "/Users/me/Desktop"]},
    },
    "globalShortcut": "Ctrl+Space",
}

# Claude Code: ~/.claude.json — user scope at the top, local scope under projects[<dir>]; other keys abound.
def claude_json(project: Path) -> dict[str, Any]:
    return {
        "numStartups": 12,
        "mcpServers": {
            "notion": {"type": "http", "url": "https://mcp.notion.com/mcp",
                       "headers": {"Authorization": "Bearer ntn_codeSECRET0002"}},
            "airtable": {"type": "stdio", "command": "npx", "args": ["-y", "airtable-mcp-server"],
                         "env": {"AIRTABLE_API_KEY": "pat_codeSECRET0003"}},
        },
        "projects": {str(project): {"mcpServers": {
            "local-db": {"type": "stdio", "command": "uvx", "args": ["mcp-server-sqlite", "--db", "dev.db"], "env": {}},
        }, "allowedTools": []}},
    }


# Claude Code project scope: .mcp.json, with ${VAR} and ${VAR:-default} expansion.
MCP_JSON = {"mcpServers": {"api": {"type": "sse", "url": "${API_BASE:-https://api.example.com}/sse",
                                   "headers": {"X-API-Key": "${API_KEY}"}}}}

# Cursor (cursor.com/docs/mcp): ${env:NAME} interpolation; JSON with comments accepted.
CURSOR = """{
  // global Cursor servers
  "mcpServers": {
    "userjot": {
      "url": "https://api.userjot.com/v1/mcp",
      "headers": {"Authorization": "Bearer ${env:USERJOT_API_TOKEN}"}
    },
    "github": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-github"],
               "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": "ghp_desktopSECRET0001"}},
    "lapras": {"command": "npx", "args": ["-y", "@lapras-inc/lapras-mcp-server"],
               "env": {"LAPRAS_API_KEY": "lapras_cursorSECRET0004"}, "envFile": ".env"},
  }
}
"""

# VS Code (code.visualstudio.com MCP configuration reference): top-level "servers", "inputs", ${input:…}.
VSCODE = {
    "inputs": [{"type": "promptString", "id": "perplexity-key", "description": "Perplexity API Key", "password": True}],
    "servers": {
        "perplexity": {"type": "stdio", "command": "npx", "args": ["-y", "server-perplexity-ask"],
                       "env": {"PERPLEXITY_API_KEY": "${input:perplexity-key}"}},
        "copilot": {"type": "http", "url": "https://api.githubcopilot.com/mcp/"},
        "fetch": {"type": "stdio", "command": "uvx", "args": ["mcp-server-fetch"], "dev": {"watch": "src/**"}},
    },
}

# Windsurf (docs.windsurf.com, cascade/mcp): serverUrl for remote servers, ${env:…}, "disabled".
WINDSURF = {
    "mcpServers": {
        "sevalla": {"serverUrl": "https://mcp.sevalla.com/mcp",
                    "headers": {"Authorization": "Bearer ${env:SEVALLA_API_KEY}"}},
        "slipstream": {"command": "node", "args": ["/abs/slipstream/dist/mcp/index.js"], "disabled": True},
    }
}

# Gemini CLI (geminicli.com/docs/tools/mcp-server): httpUrl = Streamable HTTP, url = SSE, $VAR, mcp.excluded.
GEMINI = {
    "theme": "Dracula",
    "mcp": {"excluded": ["events"]},
    "mcpServers": {
        "git": {"command": "uvx", "args": ["mcp-server-git"]},
        "copilot": {"httpUrl": "https://api.githubcopilot.com/mcp", "headers": {"Authorization": "ghp_geminiSECRET0005"},
                    "timeout": 5000},
        "events": {"url": "http://localhost:8080/sse"},
        "tools": {"command": "python", "args": ["-m", "my_tools"], "env": {"API_KEY": "$MY_API_TOKEN"},
                  "cwd": "./server", "trust": False, "includeTools": ["a"]},
    },
}

# Codex (developers.openai.com/codex/mcp): ~/.codex/config.toml, [mcp_servers.NAME].
CODEX = """model = "o4-mini"

[mcp_servers.filesystem]
command = "npx"
args = ["-y", "@modelcontextprotocol/server-filesystem", "/Users/me/Desktop"]

[mcp_servers.filesystem.env]
DEBUG = "mcp:*"

[mcp_servers.remote]
url = "https://codex.example.org/mcp"
bearer_token_env_var = "MCP_TOKEN"
enabled = false

[mcp_servers.docs]
url = "https://docs.example.com/mcp"
http_headers = { "X-Api-Key" = "docs_codexSECRET0006" }
env_http_headers = { "X-Team" = "TEAM_ID" }
startup_timeout_sec = 20
"""

SECRETS = ("ghp_desktopSECRET0001", "ntn_codeSECRET0002", "pat_codeSECRET0003", "lapras_cursorSECRET0004",
           "ghp_geminiSECRET0005", "docs_codexSECRET0006")


class Home:
    def __init__(self, tmp: Path) -> None:
        self.root = tmp / "home"
        self.root.mkdir()
        self.project = tmp / "proj"
        self.project.mkdir()
        self.config = tmp / "broxy" / "mcp.json"
        self.env = {"HOME": str(self.root), "XDG_CONFIG_HOME": str(self.root / ".config"),
                    "BROXY_CONFIG": str(self.config), "CODEX_HOME": str(self.root / ".codex")}

    def write(self, rel: str, content: Any, *, base: Path | None = None) -> Path:
        path = (base or self.root) / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content if isinstance(content, str) else json.dumps(content, indent=2))
        return path

    def all_clients(self) -> None:
        self.write(".config/Claude/claude_desktop_config.json", CLAUDE_DESKTOP)
        self.write(".claude.json", claude_json(self.project))
        self.write(".mcp.json", MCP_JSON, base=self.project)
        self.write(".cursor/mcp.json", CURSOR)
        self.write(".config/Code/User/mcp.json", VSCODE)
        self.write(".codeium/windsurf/mcp_config.json", WINDSURF)
        self.write(".gemini/settings.json", GEMINI)
        self.write(".codex/config.toml", CODEX)

    def run(self, *clients: str, project: bool = False, dry_run: bool = False, keep_literals: bool = False,
            sink: Any = None) -> tuple[int, str, str]:
        args = Namespace(clients=list(clients) or None, project=str(self.project) if project else None,
                         dry_run=dry_run, keep_literals=keep_literals, config=None)
        out, err = io.StringIO(), io.StringIO()
        rc = run_import(args, sink=sink, environ=self.env, out=out, err=err)
        return rc, out.getvalue(), err.getvalue()

    def servers(self) -> dict[str, Any]:
        return json.loads(self.config.read_text())["mcpServers"]


class MemorySink:
    """A secret sink holding values in a dict, for the mapping tests (the real keyring store is tested in tests/secretstore)."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def set(self, name: str, value: str) -> None:
        self.values[name] = value
