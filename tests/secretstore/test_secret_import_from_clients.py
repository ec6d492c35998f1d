"""`broxy-tray import` on a real gnome-keyring: a credential found in another client's config lands in the
secret store, mcp.json names it as ${NAME}, and `config check` resolves it from the store."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest

from secrets_testlib import run_cli
from test_secret_cli import read_back_digest, stored_usernames

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="gnome-keyring: Linux")

TOKEN = "ghp_importedSECRET0042"


def test_import_stores_the_credential_in_the_keyring_and_config_check_resolves_it(
        keyring_env: dict[str, str], tmp_path: Path) -> None:
    home = tmp_path / "home"
    desktop = home / ".config" / "Claude" / "claude_desktop_config.json"
    desktop.parent.mkdir(parents=True)
    desktop.write_text(json.dumps({"mcpServers": {"github": {
        "command": "npx", "args": ["-y", "@modelcontextprotocol/server-github"],
        "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": TOKEN}}}}))
    config = tmp_path / "broxy" / "mcp.json"
    env = {**keyring_env, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
           "BROXY_CONFIG": str(config)}

    r = run_cli(env, "import", "--from", "claude-desktop")
    assert r.returncode == 0, r
    assert "stored in the secret store: GITHUB_PERSONAL_ACCESS_TOKEN" in r.stdout, r.stdout
    assert "secret set" not in r.stdout, "nothing is left for the user to set by hand"
    assert TOKEN not in r.stdout + r.stderr + config.read_text()
    entry = json.loads(config.read_text())["mcpServers"]["github"]
    assert entry["env"] == {"GITHUB_PERSONAL_ACCESS_TOKEN": "${GITHUB_PERSONAL_ACCESS_TOKEN}"}
    assert "GITHUB_PERSONAL_ACCESS_TOKEN" in stored_usernames(env)
    assert read_back_digest(env, "GITHUB_PERSONAL_ACCESS_TOKEN") == hashlib.sha256(TOKEN.encode()).hexdigest()

    check = run_cli(env, "config", "check")
    assert "GITHUB_PERSONAL_ACCESS_TOKEN" in check.stdout + check.stderr
    assert "secret store" in check.stdout + check.stderr, check
    assert TOKEN not in check.stdout + check.stderr
