"""`broxy-tray client-config`: snippets that launch this installation's `broxy-tray stdio`."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from broxy_tray.proxy._client_config import CLIENTS, client_config, launch_command


def test_claude_desktop_and_cursor_get_an_mcp_servers_entry(tmp_path):
    cfg = tmp_path / "mcp.json"
    for client in ("claude-desktop", "cursor"):
        data = json.loads(client_config(client, config_path=cfg, preset="coding"))
        entry = data["mcpServers"]["broxy-coding"]
        assert Path(entry["command"]).is_absolute()
        assert entry["args"][-5:] == ["stdio", "--preset", "coding", "--config", str(cfg)] or \
            entry["args"][:5] == ["-m", "broxy_tray", "stdio", "--preset", "coding"]


def test_vscode_gets_a_servers_entry_with_type():
    data = json.loads(client_config("vscode"))
    entry = data["servers"]["broxy"]
    assert entry["type"] == "stdio"
    assert "stdio" in entry["args"]


def test_claude_code_gets_a_command_line(tmp_path):
    line = client_config("claude-code", config_path=tmp_path / "mcp.json")
    argv = shlex.split(line)
    assert argv[:6] == ["claude", "mcp", "add", "--scope", "user", "broxy"]
    assert argv[6] == "--"
    assert argv[7:] == launch_command(tmp_path / "mcp.json")


def test_unknown_client_is_refused():
    with pytest.raises(ValueError, match="choose one of"):
        client_config("emacs")
    assert CLIENTS == ("claude-desktop", "claude-code", "cursor", "vscode", "windsurf", "gemini")
