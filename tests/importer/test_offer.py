"""The tray's import item, without a display: what it offers and the confirmation it returns."""

from __future__ import annotations

import json

from import_testlib import CLAUDE_DESKTOP, MemorySink

from broxy_tray.importer import ImportOffer


def test_offer_lists_clients_then_imports_and_confirms(home):
    home.write(".config/Claude/claude_desktop_config.json", CLAUDE_DESKTOP)
    home.write(".codeium/windsurf/mcp_config.json", {"mcpServers": {"w": {"serverUrl": "https://w.example/mcp"}}})
    offer = ImportOffer(home.config, environ=home.env)
    assert offer.refresh() == ("Claude Desktop", "Windsurf")
    text = offer.run()
    assert text.startswith("Imported 3 servers from Claude Desktop, Windsurf: github, filesystem, w.")
    assert "still to set" in text and "broxy-tray secret set GITHUB_PERSONAL_ACCESS_TOKEN" in text
    assert "ghp_desktopSECRET0001" not in text
    assert offer.clients == ()  # nothing left to offer
    assert offer.run() == "Nothing new to import: mcp.json already has these servers."


def test_offer_with_a_sink_and_with_a_broken_file(home):
    home.write(".config/Claude/claude_desktop_config.json", CLAUDE_DESKTOP)
    sink = MemorySink()
    offer = ImportOffer(home.config, environ=home.env, sink=sink)
    text = offer.run()
    assert "secret set" not in text and sink.values == {"GITHUB_PERSONAL_ACCESS_TOKEN": "ghp_desktopSECRET0001"}
    home.write(".cursor/mcp.json", '{"mcpServers": {')
    before = home.config.read_text()
    assert offer.refresh() == ()
    assert offer.run().startswith("Nothing imported: ") and "mcp.json:1:17: invalid JSON" in offer.run()
    assert home.config.read_text() == before
    assert json.loads(before)["mcpServers"]["github"]["env"] == {"GITHUB_PERSONAL_ACCESS_TOKEN": "${GITHUB_PERSONAL_ACCESS_TOKEN}"}
