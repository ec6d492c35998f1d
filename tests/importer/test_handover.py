"""`client-config --install/--uninstall`: a client's own file handed over to broxy-tray, and given back exactly."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import pytest

from broxy_tray.config import _writer
from broxy_tray.importer._cli import run_handover
from broxy_tray.importer._locations import user_file

sys.path.insert(0, str(Path(__file__).parent.parent / "mcp"))
from mcp_testlib import MINIMAL_SERVER  # noqa: E402

PYTHON = sys.executable
FILES = {"command": PYTHON, "args": [MINIMAL_SERVER, "--tools", "3"]}

# Claude Desktop's file as people keep it: our server, one broxy-tray does not serve, an unknown key, odd layout
DESKTOP_TEXT = (
    '{\n'
    '    "globalShortcut": "Ctrl+Space",\n'
    '    "mcpServers": {\n'
    f'        "files": {json.dumps(FILES)},\n'
    '        "weather": {"command": "uvx", "args": ["mcp-weather"], "env": {"UNITS": "metric"}}\n'
    '    },\n'
    '    "zUnknown": {"keep": [1, 2, 3]}\n'
    '}\n'
)


@pytest.fixture
def handover(home, tmp_path):
    home.config.parent.mkdir(parents=True)
    home.config.write_text(json.dumps({"mcpServers": {"files": FILES},
                                       "presets": {"none": {"servers": []}}}, indent=2))
    state = tmp_path / "state"

    def run(client: str, *, uninstall: bool = False, preset: str | None = None) -> tuple[int, str, str]:
        args = Namespace(client=client, install=not uninstall, uninstall=uninstall, preset=preset, config=None)
        out, err = io.StringIO(), io.StringIO()
        rc = run_handover(args, environ=home.env, state_dir=state, out=out, err=err)
        return rc, out.getvalue(), err.getvalue()

    run.state = state  # type: ignore[attr-defined]
    return run


def desktop_file(home) -> Path:
    path = user_file("claude-desktop", home.env)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(DESKTOP_TEXT)
    return path


async def test_round_trip_through_the_real_bridge_and_back_byte_for_byte(home, handover, short_dir):
    from mcp import Client, StdioServerParameters
    from proxy_testlib import running_app

    path = desktop_file(home)
    rc, out, err = handover("claude-desktop")
    assert rc == 0, err
    assert "removed files (now served by broxy-tray)" in out
    backups = list(path.parent.glob("claude_desktop_config.json.broxy-backup-*"))
    assert len(backups) == 1 and backups[0].read_text() == DESKTOP_TEXT
    assert oct(backups[0].stat().st_mode & 0o777) == "0o600"
    edited = json.loads(path.read_text())  # the client's file still validates
    assert edited["globalShortcut"] == "Ctrl+Space" and edited["zUnknown"] == {"keep": [1, 2, 3]}
    assert set(edited["mcpServers"]) == {"weather", "broxy"}
    assert edited["mcpServers"]["weather"] == {"command": "uvx", "args": ["mcp-weather"], "env": {"UNITS": "metric"}}
    entry = edited["mcpServers"]["broxy"]
    assert entry["args"][-3:] == ["stdio", "--config", str(home.config)]

    # what Claude Desktop would do: launch the command the file names, and list tools through broxy-tray
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BROXY_", "XDG_"))}
    env["XDG_RUNTIME_DIR"] = str(short_dir)
    async with running_app(home.config, short_dir) as r:
        await r.wait_available("files")
        params = StdioServerParameters(command=entry["command"], args=entry["args"], env=env)
        async with Client(params, mode="legacy", cache=None) as client:
            names = {t.name for t in (await client.list_tools()).tools}
    assert names == {"files__tool_0", "files__tool_1", "files__tool_2"}

    rc, out, err = handover("claude-desktop", uninstall=True)
    assert rc == 0, err
    assert "restored exactly" in out
    assert path.read_bytes() == DESKTOP_TEXT.encode()


def test_file_changed_since_install_is_undone_by_reversing_only_our_edit(home, handover):
    path = desktop_file(home)
    assert handover("claude-desktop")[0] == 0
    # the client (or the user) saved meanwhile: a new server and a changed setting
    text = path.read_text()
    text = text.replace('"Ctrl+Space"', '"Alt+Space"').replace('"mcpServers": {', '"mcpServers": {\n        "mine": {"command": "x"},', 1)
    path.write_text(text)
    rc, out, err = handover("claude-desktop", uninstall=True)
    assert rc == 0, err
    assert "only broxy-tray's edit was undone" in out
    data = json.loads(path.read_text())
    assert data["globalShortcut"] == "Alt+Space"
    assert data["mcpServers"] == {"mine": {"command": "x"}, "weather": {"command": "uvx", "args": ["mcp-weather"],
                                                                      "env": {"UNITS": "metric"}}, "files": FILES}
    assert f'"files": {json.dumps(FILES)}' in path.read_text(), "put back exactly as it was written"


def test_vscode_jsonc_keeps_comments_and_uses_servers(home, handover):
    path = user_file("vscode", home.env)
    path.parent.mkdir(parents=True)
    original = ('{\n\t// my servers\n\t"inputs": [],\n\t"servers": {\n'
                f'\t\t"files": {{"type": "stdio", "command": {json.dumps(PYTHON)}, "args": {json.dumps(FILES["args"])}}},\n'
                '\t\t"other": {"type": "http", "url": "https://x.example/mcp"}, // trailing comment\n\t}\n}\n')
    path.write_text(original)
    rc, _, err = handover("vscode")
    assert rc == 0, err
    text = path.read_text()
    assert "// my servers" in text and "// trailing comment" in text
    assert '\t\t"broxy": {\n\t\t\t"type": "stdio",' in text
    assert '"files"' not in text
    assert handover("vscode", uninstall=True)[0] == 0
    assert path.read_text() == original


def test_missing_client_file_in_the_clients_folder_is_created_and_removed_again(home, handover):
    path = user_file("windsurf", home.env)
    path.parent.mkdir(parents=True)  # Windsurf is installed, but has no MCP file yet
    rc, out, err = handover("windsurf")
    assert rc == 0 and f"created {path}" in out, err
    args = json.loads(path.read_text())["mcpServers"]["broxy"]["args"]
    assert "stdio" in args and args[args.index("--config") + 1] == str(home.config)
    assert handover("windsurf", uninstall=True)[0] == 0
    assert not path.exists() and path.parent.is_dir() and not list(path.parent.iterdir()), "the folder as it was"


@pytest.mark.parametrize("client", ["claude-desktop", "windsurf", "vscode", "gemini", "cursor"])
def test_install_for_a_client_that_is_not_installed_is_refused(home, handover, client):
    path = user_file(client, home.env)
    rc, out, err = handover(client)
    assert rc == 1 and out == ""
    assert "does not seem to be installed" in err and str(path.parent) in err
    assert not path.parent.exists(), "no file or folder created"
    assert not handover.state.exists() or not list(handover.state.iterdir())


def test_install_and_uninstall_without_client_are_usage_errors(home, tmp_path):
    home.config.parent.mkdir(parents=True)
    home.config.write_text(json.dumps({"mcpServers": {"files": FILES}}))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BROXY_", "XDG_"))}
    env.update(home.env, XDG_STATE_HOME=str(tmp_path / "st"))
    for mode in ("--install", "--uninstall"):
        p = subprocess.run([PYTHON, "-m", "broxy_tray", "client-config", mode], env=env, capture_output=True,
                           text=True, timeout=60)
        assert p.returncode == 2 and p.stdout == ""
        assert f"{mode} needs --client" in p.stderr and "usage:" in p.stderr
    assert not (home.root / ".config" / "Claude").exists(), "Claude Desktop is not picked silently"
    assert not (tmp_path / "st").exists() or not list((tmp_path / "st").rglob("*.json"))
    # printing a snippet still defaults to Claude Desktop
    p = subprocess.run([PYTHON, "-m", "broxy_tray", "client-config"], env=env, capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0 and '"mcpServers"' in p.stdout and "claude_desktop_config.json" in p.stderr


def test_client_reformatting_its_file_does_not_block_uninstall(home, handover):
    path = desktop_file(home)
    assert handover("claude-desktop")[0] == 0
    installed = json.loads(path.read_text())
    with open(path, "w") as f:  # Claude Desktop rewrites its file like this, values unchanged
        json.dump(installed, f, indent=2)
    rc, out, err = handover("claude-desktop", uninstall=True)
    assert rc == 0, err
    assert "only broxy-tray's edit was undone" in out
    assert json.loads(path.read_text()) == json.loads(DESKTOP_TEXT)
    text = path.read_text()
    assert f'"files": {json.dumps(FILES)}' in text, "the removed entry put back with its original text"
    assert '"zUnknown": {\n    "keep": [\n      1,' in text, "the client's layout kept"
    assert not (handover.state / "claude-desktop.json").exists()


def test_preset_only_hands_over_its_servers(home, handover):
    path = desktop_file(home)
    rc, out, _ = handover("claude-desktop", preset="none")
    assert rc == 0
    servers = json.loads(path.read_text())["mcpServers"]
    assert set(servers) == {"files", "weather", "broxy-none"}  # the preset serves nothing, so nothing is removed
    args = servers["broxy-none"]["args"]
    assert args[args.index("--preset") + 1] == "none"
    assert handover("claude-desktop", uninstall=True)[0] == 0
    assert path.read_text() == DESKTOP_TEXT
    rc, _, err = handover("windsurf", preset="missing")
    assert rc == 1 and "no preset 'missing'" in err
    assert not user_file("windsurf", home.env).exists(), "refused before creating anything"


def test_invalid_client_file_is_refused_with_its_location(home, handover):
    path = user_file("cursor", home.env)
    path.parent.mkdir(parents=True)
    path.write_text('{"mcpServers": {"a": {"command": "x"}\n  "b": 1}}')
    rc, _, err = handover("cursor")
    assert rc == 1 and "refused" in err and "mcp.json:2:3: invalid JSON" in err
    assert path.read_text() == '{"mcpServers": {"a": {"command": "x"}\n  "b": 1}}'
    assert list(path.parent.iterdir()) == [path], "no backup, nothing else written"
    assert not handover.state.exists() or not list(handover.state.iterdir())


def test_wrong_types_are_refused(home, handover):
    path = user_file("gemini", home.env)
    path.parent.mkdir(parents=True)
    path.write_text('{"mcpServers": {"a": {"command": ["x"]}}}')
    rc, _, err = handover("gemini")
    assert rc == 1 and "settings.json:1:34: command must be a string (mcpServers.a.command)" in err


def test_our_entry_edited_by_hand_makes_uninstall_refuse(home, handover):
    path = desktop_file(home)
    assert handover("claude-desktop")[0] == 0
    edited = path.read_text().replace('"stdio"', '"stdio", "--no-start"')
    path.write_text(edited)
    rc, _, err = handover("claude-desktop", uninstall=True)
    assert rc == 1 and "the 'broxy' entry was edited since the hand-over" in err
    assert path.read_text() == edited
    # the record is kept, so once the user puts the entry back the undo still works
    path.write_text(edited.replace('"stdio", "--no-start"', '"stdio"'))
    assert handover("claude-desktop", uninstall=True)[0] == 0
    assert path.read_text() == DESKTOP_TEXT


def test_invalid_file_at_uninstall_is_refused(home, handover):
    path = desktop_file(home)
    assert handover("claude-desktop")[0] == 0
    path.write_text(path.read_text()[:-5])
    rc, _, err = handover("claude-desktop", uninstall=True)
    assert rc == 1 and "invalid JSON" in err and "nothing changed" in err


def test_install_twice_and_uninstall_without_install_are_refused(home, handover):
    desktop_file(home)
    assert handover("claude-desktop")[0] == 0
    rc, _, err = handover("claude-desktop")
    assert rc == 1 and "already handed over" in err
    rc, _, err = handover("cursor", uninstall=True)
    assert rc == 1 and "was not handed over" in err
    rc, _, err = handover("codex")
    assert rc == 1 and "does not support 'codex'" in err


def test_client_saving_during_install_is_refused_and_kept(home, handover, monkeypatch):
    path = desktop_file(home)
    theirs = DESKTOP_TEXT.replace("Ctrl+Space", "Alt+Space")
    real = _writer._replace_if_unchanged
    calls = []

    def racing(target, original, new):
        if not calls:
            path.write_text(theirs)  # Claude Desktop saves right now
        calls.append(1)
        return real(target, original, new)

    monkeypatch.setattr(_writer, "_replace_if_unchanged", racing)
    rc, _, err = handover("claude-desktop")
    assert rc == 1 and "changed while broxy-tray was editing it" in err
    assert path.read_text() == theirs
    assert not (handover.state / "claude-desktop.json").exists()


def test_cli_install_and_uninstall(home, tmp_path):
    """Through the real command line: argparse, default record folder from XDG_STATE_HOME."""
    home.config.parent.mkdir(parents=True)
    home.config.write_text(json.dumps({"mcpServers": {"files": FILES}}))
    path = user_file("cursor", home.env)
    path.parent.mkdir(parents=True)
    original = json.dumps({"mcpServers": {"files": FILES}}, indent=2)
    path.write_text(original)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BROXY_", "XDG_"))}
    env.update(home.env, XDG_STATE_HOME=str(tmp_path / "st"))

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([PYTHON, "-m", "broxy_tray", "client-config", *args], env=env, capture_output=True,
                              text=True, timeout=60)

    p = cli("--install", "--client", "cursor")
    assert p.returncode == 0, p.stderr
    assert list(json.loads(path.read_text())["mcpServers"]) == ["broxy"]
    assert (tmp_path / "st" / "broxy" / "handover" / "cursor.json").exists()
    p = cli("--uninstall", "--client", "cursor")
    assert p.returncode == 0, p.stderr
    assert path.read_text() == original
    p = cli("--install", "--http", "--client", "cursor")
    assert p.returncode == 2 and "not allowed with argument" in p.stderr


def test_servers_disabled_in_mcp_json_stay_in_the_client(home, handover):
    home.config.write_text(json.dumps({"mcpServers": {"files": {**FILES, "enabled": False}}}))
    path = desktop_file(home)
    assert handover("claude-desktop")[0] == 0
    assert set(json.loads(path.read_text())["mcpServers"]) == {"files", "weather", "broxy"}


def test_bom_and_crlf_survive_install_reverse_and_restore(home, handover):
    path = user_file("cursor", home.env)
    path.parent.mkdir(parents=True)
    original = ("\ufeff{\r\n  \"mcpServers\": {\r\n    \"files\": " + json.dumps(FILES) + ",\r\n"
                "    \"keep\": {\"url\": \"https://k.example/mcp\"}\r\n  }\r\n}\r\n").encode()
    path.write_bytes(original)
    assert handover("cursor")[0] == 0
    text = path.read_bytes().decode()
    assert text.startswith("\ufeff{\r\n") and "\n" not in text.replace("\r\n", "")
    assert set(json.loads(text[1:])["mcpServers"]) == {"keep", "broxy"}
    assert handover("cursor", uninstall=True)[0] == 0
    assert path.read_bytes() == original
    # once more, with a save in between: the reversal keeps the BOM too
    assert handover("cursor")[0] == 0
    path.write_bytes(path.read_bytes().replace(b"k.example", b"k2.example"))
    assert handover("cursor", uninstall=True)[0] == 0
    text = path.read_bytes().decode()
    assert text.startswith("\ufeff") and json.loads(text[1:])["mcpServers"] == {
        "keep": {"url": "https://k2.example/mcp"}, "files": FILES}
