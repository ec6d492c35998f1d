"""`broxy-tray import`: every client's documented shapes, mapped, deduped, written by a minimal edit."""

from __future__ import annotations

import json
import os
import sys

import pytest
from import_testlib import CURSOR, SECRETS, MemorySink

from broxy_tray.config import _writer, parse_config
from broxy_tray.importer._locations import user_file


def test_every_client_is_read_mapped_and_deduped(home):
    home.all_clients()
    rc, out, err = home.run(project=True)
    assert rc == 0, err
    s = home.servers()
    # Claude Desktop + Cursor hold the same github server (same command, args, env): added once
    assert sum(1 for e in s.values() if e.get("args") == ["-y", "@modelcontextprotocol/server-github"]) == 1
    assert "same server as 'github' above" in out
    assert s["github"]["env"] == {"GITHUB_PERSONAL_ACCESS_TOKEN": "${GITHUB_PERSONAL_ACCESS_TOKEN}"}
    # Claude Code user scope (http with a literal bearer), local scope, project .mcp.json (${VAR:-default} kept)
    assert s["notion"] == {"transport": "http", "url": "https://mcp.notion.com/mcp",
                           "headers": {"Authorization": "Bearer ${NOTION_TOKEN}"}}
    assert s["local-db"]["args"] == ["mcp-server-sqlite", "--db", "dev.db"]
    assert s["api"] == {"transport": "sse", "url": "${API_BASE:-https://api.example.com}/sse",
                        "headers": {"X-API-Key": "${API_KEY}"}}
    # Cursor: ${env:X} becomes ${X}; envFile reported as skipped
    assert s["userjot"]["headers"] == {"Authorization": "Bearer ${USERJOT_API_TOKEN}"}
    assert "envFile: env files are not read" in out
    # VS Code: servers key, ${input:…} becomes a placeholder to set; "dev" skipped
    assert s["perplexity"]["env"] == {"PERPLEXITY_API_KEY": "${PERPLEXITY_KEY}"}
    assert "broxy-tray secret set PERPLEXITY_KEY" in out
    assert s["copilot"] == {"transport": "http", "url": "https://api.githubcopilot.com/mcp/"}
    # Windsurf: serverUrl, disabled
    assert s["sevalla"]["url"] == "https://mcp.sevalla.com/mcp"
    assert s["slipstream"]["enabled"] is False
    # Gemini: httpUrl = http (same URL as VS Code's copilot → deduped), url = sse, excluded → disabled, $VAR, cwd
    assert "copilot" not in {k for k in s if k != "copilot"}  # Gemini's copilot has VS Code's URL: added once
    assert out.count("same server as 'copilot' above") == 1
    assert s["events"] == {"transport": "sse", "url": "http://localhost:8080/sse", "enabled": False}
    assert s["tools"]["env"] == {"API_KEY": "${MY_API_TOKEN}"}
    assert s["tools"]["cwd"] == "./server"
    assert "trust: no tool-confirmation setting" in out
    # Codex TOML: env table, bearer_token_env_var, enabled = false, http_headers with a literal key
    assert "env" not in s["filesystem"]  # Claude Desktop's; Codex's differs by its env, so it gets its own id
    assert s["filesystem-codex"]["env"] == {"DEBUG": "mcp:*"}
    assert s["remote"] == {"transport": "http", "url": "https://codex.example.org/mcp",
                           "headers": {"Authorization": "Bearer ${MCP_TOKEN}"}, "enabled": False}
    assert s["docs"]["headers"] == {"X-Api-Key": "${DOCS_X_API_KEY}", "X-Team": "${TEAM_ID}"}
    assert "startup_timeout_sec" in out
    # the result is a valid broxy-tray config whose only errors are the unset variables
    config = parse_config(home.config.read_text(), str(home.config), {})
    assert all("is not set" in str(e) for e in config.errors), config.errors


def test_ids_never_clash_and_existing_text_is_untouched(home):
    home.config.parent.mkdir(parents=True)
    original = '{\n    "requestTimeoutSeconds": 30,\n    "mcpServers": {\n        "github": {"url": "https://other.example/mcp"}\n    },\n    "zKeep": [1, 2]\n}\n'
    home.config.write_text(original)
    home.write(".cursor/mcp.json", CURSOR)
    rc, out, _ = home.run("cursor")
    assert rc == 0
    text = home.config.read_text()
    assert text.startswith('{\n    "requestTimeoutSeconds": 30,\n    "mcpServers": {\n        "github": {"url": "https://other.example/mcp"},\n        "userjot": {\n            "transport": "http",')
    assert text.endswith('\n    },\n    "zKeep": [1, 2]\n}\n')
    s = home.servers()
    assert s["github"] == {"url": "https://other.example/mcp"}
    assert s["github-cursor"]["command"] == "npx"


def test_import_twice_adds_nothing_the_second_time(home):
    home.all_clients()
    assert home.run(project=True)[0] == 0
    first = home.config.read_bytes()
    rc, out, _ = home.run(project=True)
    assert rc == 0
    assert home.config.read_bytes() == first
    assert "nothing new to add" in out
    assert "already in mcp.json as 'notion'" in out


def test_dry_run_writes_nothing(home):
    home.all_clients()
    rc, out, _ = home.run(dry_run=True)
    assert rc == 0 and "nothing written" in out and "notion" in out
    assert not home.config.exists()
    home.run("cursor")
    before = home.config.read_bytes()
    home.run(dry_run=True)
    assert home.config.read_bytes() == before


def test_secrets_go_to_the_sink_never_to_mcp_json_or_the_table(home):
    home.all_clients()
    sink = MemorySink()
    rc, out, err = home.run(project=True, sink=sink)
    assert rc == 0
    text = home.config.read_text()
    for secret in SECRETS:
        assert secret not in text and secret not in out and secret not in err
    assert sink.values["GITHUB_PERSONAL_ACCESS_TOKEN"] == "ghp_desktopSECRET0001"
    assert sink.values["NOTION_TOKEN"] == "ntn_codeSECRET0002"  # the scheme stays in the header
    assert sink.values["AIRTABLE_API_KEY"] == "pat_codeSECRET0003"
    assert sink.values["DOCS_X_API_KEY"] == "docs_codexSECRET0006"
    assert "stored in the secret store: GITHUB_PERSONAL_ACCESS_TOKEN" in out
    assert "secret set GITHUB_PERSONAL_ACCESS_TOKEN" not in out  # stored, so no command to run
    assert "secret set PERPLEXITY_KEY" in out  # VS Code prompted for it: no file has the value


def test_without_a_sink_the_set_commands_are_printed_without_values(home):
    home.write(".config/Claude/claude_desktop_config.json", {"mcpServers": {"gh": {
        "command": "npx", "args": ["x"], "env": {"GITHUB_TOKEN": "ghp_nosinkSECRET", "LOG_LEVEL": "debug"}}}})
    rc, out, _ = home.run()
    assert rc == 0
    assert "broxy-tray secret set GITHUB_TOKEN" in out and "ghp_nosinkSECRET" not in out
    assert home.servers()["gh"]["env"] == {"GITHUB_TOKEN": "${GITHUB_TOKEN}", "LOG_LEVEL": "debug"}
    assert "ghp_nosinkSECRET" not in home.config.read_text()


def test_keep_literals_copies_values_as_they_are(home):
    home.write(".config/Claude/claude_desktop_config.json", {"mcpServers": {"gh": {
        "command": "npx", "args": ["x"], "env": {"GITHUB_TOKEN": "ghp_kept", "ODD": "a ${b}"}}}})
    rc, out, _ = home.run(keep_literals=True)
    assert rc == 0 and "secret set" not in out
    assert home.servers()["gh"]["env"] == {"GITHUB_TOKEN": "ghp_kept", "ODD": "a $${b}"}  # Claude Desktop's ${ is literal


def test_same_secret_name_with_different_values_gets_server_specific_names(home):
    home.write(".config/Claude/claude_desktop_config.json", {"mcpServers": {
        "a": {"command": "srv-a", "env": {"API_KEY": "value-one"}},
        "b": {"command": "srv-b", "env": {"API_KEY": "value-two"}}}})
    sink = MemorySink()
    home.run(sink=sink)
    s = home.servers()
    assert s["a"]["env"]["API_KEY"] == "${API_KEY}" and s["b"]["env"]["API_KEY"] == "${B_API_KEY}"
    assert sink.values == {"API_KEY": "value-one", "B_API_KEY": "value-two"}


def test_a_name_mcp_json_already_uses_is_not_reused_for_an_imported_secret(home):
    home.config.parent.mkdir(parents=True)
    home.config.write_text(json.dumps({"mcpServers": {"mine": {"command": "m", "env": {"API_KEY": "${API_KEY}"}}}}))
    home.write(".config/Claude/claude_desktop_config.json", {"mcpServers": {
        "theirs": {"command": "t", "env": {"API_KEY": "imported-value"}}}})
    sink = MemorySink()
    home.run(sink=sink)
    assert home.servers()["theirs"]["env"] == {"API_KEY": "${THEIRS_API_KEY}"}
    assert sink.values == {"THEIRS_API_KEY": "imported-value"}


def test_same_server_written_in_two_variable_syntaxes_is_added_once(home):
    home.write(".cursor/mcp.json", {"mcpServers": {"db": {"command": "db-mcp", "env": {"DB_URL": "${env:DB_URL}"}}}})
    home.write(".mcp.json", {"mcpServers": {"database": {"command": "db-mcp", "env": {"DB_URL": "${DB_URL}"}}}},
               base=home.project)
    rc, out, _ = home.run("cursor", "claude-code", project=True)
    assert rc == 0 and "same server as 'db' above" in out
    assert [k for k, e in home.servers().items() if e.get("command") == "db-mcp"] == ["db"]


def test_broxy_tray_itself_is_not_imported(home):
    home.write(".cursor/mcp.json", {"mcpServers": {"broxy": {"command": "/opt/bin/broxy-tray", "args": ["stdio"]}}})
    rc, out, _ = home.run("cursor")
    assert rc == 0 and "this is broxy-tray itself" in out
    assert "broxy" not in home.servers()


def test_user_save_during_import_is_not_lost(home, monkeypatch):
    """The user adds a server between our read and our rename: both their entry and ours land, ids distinct."""
    home.config.parent.mkdir(parents=True)
    home.config.write_text('{"mcpServers": {}}')
    home.write(".cursor/mcp.json", {"mcpServers": {"userjot": {"url": "https://api.userjot.com/v1/mcp"}}})
    real = _writer._replace_if_unchanged
    calls = []

    def racing(target, original, new):
        if not calls:  # the user's save lands right now, taking the id we planned
            home.config.write_text('{"mcpServers": {"userjot": {"command": "mine"}}}')
        calls.append(1)
        return real(target, original, new)

    monkeypatch.setattr(_writer, "_replace_if_unchanged", racing)
    rc, out, err = home.run("cursor")
    assert rc == 0, err
    assert len(calls) == 2
    s = home.servers()
    assert s["userjot"] == {"command": "mine"}
    assert s["userjot-cursor"]["url"] == "https://api.userjot.com/v1/mcp"
    assert "userjot-cursor" in out  # the printed table is the plan that was written


@pytest.mark.parametrize("client,rel,content,expect", [
    ("claude-desktop", ".config/Claude/claude_desktop_config.json", '{"mcpServers": {"a": {"command": "x",}', r"claude_desktop_config.json:1:\d+: invalid JSON"),
    ("cursor", ".cursor/mcp.json", '{"mcpServers": ["not", "an", "object"]}', r"mcp.json:1:16: must be an object of servers by name \(mcpServers\)"),
    ("vscode", ".config/Code/User/mcp.json", '{"servers": {"a": {"command": "x",\n "args": "-y pkg"}}}', r"mcp.json:2:10: args must be an array of strings \(servers.a.args\)"),
    ("gemini", ".gemini/settings.json", '{"mcpServers": {"a": {"command": "x", "env": {"PORT": 8080}}}}', r"settings.json:1:\d+: env.PORT must be a string \(mcpServers.a.env.PORT\)"),
    ("windsurf", ".codeium/windsurf/mcp_config.json", '{"mcpServers": {"a": {"serverUrl": "u", "disabled": "yes"}}}', r"disabled must be true or false"),
    ("codex", ".codex/config.toml", "[mcp_servers.a]\ncommand = \n", r"config.toml: invalid TOML: .*line 2"),
    ("codex", ".codex/config.toml", "[mcp_servers.a]\nargs = [1]\n", r"config.toml: args must be an array of strings \(key mcp_servers.a.args.0\)"),
    ("claude-code", ".claude.json", "[1, 2]", r".claude.json:1:1: the top level must be a JSON object"),
])
def test_malformed_client_files_give_a_located_error_and_write_nothing(home, client, rel, content, expect):
    home.write(rel, content)
    home.write(".codeium/windsurf/mcp_config.json" if client != "windsurf" else ".gemini/settings.json",
               {"mcpServers": {"fine": {"command": "ok"}}})  # a good file elsewhere is not imported either
    rc, out, err = home.run()
    assert rc == 1
    assert __import__("re").search(expect, err), err
    assert "nothing imported" in err
    assert not home.config.exists()


def test_huge_file_is_refused_without_reading_it(home):
    path = user_file("cursor", home.env)
    path.parent.mkdir(parents=True)
    with open(path, "wb") as f:
        f.truncate(65 * 1024 * 1024)  # sparse: nothing actually written
    rc, _, err = home.run("cursor")
    assert rc == 1 and "is 65 MiB, larger than the 64 MiB" in err
    assert not home.config.exists()


def test_symlink_loop_is_reported(home):
    path = user_file("windsurf", home.env)
    path.parent.mkdir(parents=True)
    loop = path.with_name("other.json")
    os.symlink(loop, path)
    os.symlink(path, loop)
    rc, _, err = home.run("windsurf")
    assert rc == 1 and "mcp_config.json: cannot read: Too many levels of symbolic links" in err
    assert not home.config.exists()


def test_invalid_mcp_json_stops_the_import_with_its_location(home):
    home.config.parent.mkdir(parents=True)
    home.config.write_text('{"mcpServers": {\n  "a": }')
    home.write(".cursor/mcp.json", CURSOR)
    rc, _, err = home.run("cursor")
    assert rc == 1 and "mcp.json:2:8: fix this JSON error first" in err
    assert home.config.read_text() == '{"mcpServers": {\n  "a": }'


def test_no_client_files_is_not_an_error(home):
    rc, _, err = home.run()
    assert rc == 0 and "no configuration found" in err
    assert not home.config.exists()


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_project_that_is_not_a_directory_is_refused(home, kind):
    home.all_clients()
    target = home.root / "nowhere" if kind == "missing" else home.write("a-file", "x")
    home.project = target
    rc, out, err = home.run(project=True, dry_run=True)
    expect = "no such directory" if kind == "missing" else "not a directory"
    assert rc == 1 and f"--project: {expect}: {target}" in err
    assert out == "" and not home.config.exists()
    rc, _, err = home.run(project=True)
    assert rc == 1 and expect in err and not home.config.exists(), "nothing written without --dry-run either"


def test_documented_locations_per_os(tmp_path):
    env = {"HOME": "/h", "USERPROFILE": "C:\\Users\\me", "APPDATA": "/appdata"}
    assert user_file("claude-desktop", env, "darwin").as_posix() == "/h/Library/Application Support/Claude/claude_desktop_config.json"
    assert user_file("claude-desktop", env, "win32").as_posix() == "/appdata/Claude/claude_desktop_config.json"
    assert user_file("claude-desktop", {"HOME": "/h"}, "linux").as_posix() == "/h/.config/Claude/claude_desktop_config.json"
    assert user_file("vscode", env, "darwin").as_posix() == "/h/Library/Application Support/Code/User/mcp.json"
    assert user_file("vscode", env, "win32").as_posix() == "/appdata/Code/User/mcp.json"
    assert user_file("claude-code", env, "linux").as_posix() == "/h/.claude.json"
    assert user_file("claude-code", {**env, "CLAUDE_CONFIG_DIR": "/c"}, "linux").as_posix() == "/c/.claude.json"
    assert user_file("windsurf", env, "linux").as_posix() == "/h/.codeium/windsurf/mcp_config.json"
    assert user_file("gemini", env, "linux").as_posix() == "/h/.gemini/settings.json"
    assert user_file("codex", env, "linux").as_posix() == "/h/.codex/config.toml"
    assert user_file("cursor", env, "linux").as_posix() == "/h/.cursor/mcp.json"


def test_cli_subprocess_keeps_secrets_out_of_the_log(home, tmp_path):
    """The real command, its log file included: no credential value anywhere."""
    import subprocess

    home.all_clients()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BROXY_", "XDG_"))}
    env.update(home.env, XDG_STATE_HOME=str(tmp_path / "state"))
    proc = subprocess.run([sys.executable, "-m", "broxy_tray", "import", "--project", str(home.project),
                           "--log-level", "debug"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    logs = list((tmp_path / "state").rglob("broxy-tray.log"))
    assert logs, "the import logs what it did"
    log_text = logs[0].read_text()
    assert "import: added" in log_text
    for secret in SECRETS:
        assert secret not in proc.stdout and secret not in proc.stderr and secret not in log_text
        assert secret not in home.config.read_text()
    assert json.loads(home.config.read_text())["mcpServers"]["notion"]["url"] == "https://mcp.notion.com/mcp"
