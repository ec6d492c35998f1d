"""Audit item 7: a preset tool entry `x__a__b` names exactly one tool.

Before the fix, servers `x` (tool `a__b`) and `x__a` (tool `b`) both answered to `x__a__b`: a preset
meant for `x__a`'s `b` handed out `x`'s `a__b`. Now a server id may not contain `__`, so the entry
splits at its first `__` into one server id; the other server is a located error.
"""

from __future__ import annotations

from proxy_testlib import MINIMAL_SERVER, PYTHON, in_memory_client, running_app, save, until

from broxy_tray.config import parse_config
from broxy_tray.state import ServerStatus


def ambiguous_config() -> dict:
    return {
        "mcpServers": {
            "x": {"command": PYTHON, "args": [MINIMAL_SERVER, "--tools", "1", "--tool-name", "a__b"]},
            "x__a": {"command": PYTHON, "args": [MINIMAL_SERVER, "--tools", "1", "--tool-name", "b"]},
        },
        "presets": {"only-b": {"tools": ["x__a__b"]}},
    }


def test_server_id_with_separator_is_a_located_error():
    import json

    text = json.dumps(ambiguous_config(), indent=2)
    config = parse_config(text, "mcp.json")
    [error] = config.errors
    assert error.server == "x__a" and error.path == "mcpServers.x__a"
    key_line = next(i for i, line in enumerate(text.splitlines(), 1) if line.startswith('    "x__a": {'))
    assert (error.line, error.column) == (key_line, 5), "points at the id's key"
    assert "must not contain '__'" in error.message
    assert config.server("x").valid and not config.server("x__a").valid


async def test_preset_entry_resolves_to_one_server(tmp_path):
    from mcp.shared.exceptions import MCPError

    path = tmp_path / "mcp.json"
    save(path, ambiguous_config())
    async with running_app(path) as r:
        await r.wait_available("x")
        await until(lambda: r.status_of("x__a") is ServerStatus.ERROR, what="x__a refused")
        assert "must not contain '__'" in r.app.store.state.server("x__a").detail
        assert "x__a" not in r.sessions, "the ambiguous server is never started"
        async with in_memory_client(r.proxy, preset="only-b") as client:
            assert [t.name for t in (await client.list_tools()).tools] == ["x__a__b"]
            result = await client.call_tool("x__a__b", {})
            assert result.content[0].text == "called a__b", "the entry is server x, tool a__b"
            try:
                await client.call_tool("x__tool_0", {})
            except MCPError as e:
                assert e.code == -32602
            else:
                raise AssertionError("a tool outside the preset was callable")
