"""Protocol generations: the SDK negotiates per server; a plain-Python server restricts the era."""

from __future__ import annotations

import pytest
from mcp_testlib import MINIMAL_SERVER, stdio_config

from broxy_tray.mcp import open_connection

TIMEOUTS = {"connect_timeout": 10, "request_timeout": 10}


@pytest.mark.parametrize(
    "args, version",
    [
        ((), "2026-07-28"),  # both eras: the stateless revision wins
        (("--era", "modern"), "2026-07-28"),  # server/discover only; initialize is refused
        (("--era", "legacy"), "2025-11-25"),  # initialize only; server/discover is unknown
        (("--era", "legacy", "--legacy-version", "2025-06-18"), "2025-06-18"),
        (("--era", "legacy", "--legacy-version", "2025-03-26"), "2025-03-26"),
    ],
)
async def test_era_is_negotiated(args, version):
    async with open_connection(stdio_config(MINIMAL_SERVER, *args), **TIMEOUTS) as conn:
        assert conn.protocol_version == version
        assert conn.server_name == "minimal-stdio"
        assert [t.name for t in conn.tools] == ["tool_0", "tool_1", "tool_2"]
        result = await conn.session.call_tool("tool_2", {})
        assert result.content[0].text == "called tool_2"


@pytest.mark.parametrize("era", ["legacy", "modern"])
async def test_all_pages_are_listed(era):
    server = stdio_config(MINIMAL_SERVER, "--era", era, "--tools", "250", "--page-size", "7")
    async with open_connection(server, **TIMEOUTS) as conn:
        assert [t.name for t in conn.tools] == [f"tool_{i}" for i in range(250)]
        assert len(await conn.refresh_tools()) == 250
