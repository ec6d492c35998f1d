"""An OAuth-protected server through `broxy-tray stdio`: signed in once by the app, used by a client that never
sees a token; a call that needs more scope triggers the step-up sign-in and succeeds within the request."""

from __future__ import annotations

import json
import shlex
import stat
import sys
from contextlib import asynccontextmanager
from pathlib import Path

REDIRECT_BROWSER = Path(__file__).resolve().parent / "redirect_browser.py"


def browser(tmp_path: Path) -> str:
    wrapper = tmp_path / "browser"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{REDIRECT_BROWSER}" "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return str(wrapper)


@asynccontextmanager
async def stdio_client(config: Path, env: dict[str, str], wire: Path):
    """A real SDK client launching `broxy-tray stdio`; every byte it receives is also written to `wire`."""
    from mcp import Client, StdioServerParameters

    bridge = shlex.join([sys.executable, "-m", "broxy_tray", "stdio", "--config", str(config), "--no-start"])
    params = StdioServerParameters(command="/bin/sh", args=["-c", f"{bridge} | tee {shlex.quote(str(wire))}"],
                                   env=env)
    async with Client(params, mode="legacy", cache=None, read_timeout_seconds=60) as client:
        yield client


def secrets_of(auth) -> list[str]:
    with auth._lock:  # noqa: SLF001
        return [*auth._access, *auth._refresh]  # noqa: SLF001


async def test_oauth_server_through_the_proxy_with_step_up(auth_server, mcp_server, headless, user_env, tmp_path):
    p = tmp_path / "mcp.json"
    p.write_text(json.dumps({"mcpServers": {"sec": {"name": "Secured", "url": mcp_server.url}}}, indent=2))
    env = dict(user_env, BROWSER=browser(tmp_path))
    h = headless("--config", str(p), env=env)
    h.wait_for(lambda e: e["event"] == "auth" and e["action"] == "succeeded", timeout=30)
    h.wait_for(lambda e: e["event"] == "status" and e["server"] == "sec" and e["status"] == "Available", timeout=30)
    assert auth_server.count("authorize") == 1
    first = auth_server.requests("authorize")[0].query["scope"].split()
    assert "mcp:admin" not in first

    wire = tmp_path / "wire.jsonl"
    received: list[str] = []
    async with stdio_client(p, env, wire) as client:
        tools = (await client.list_tools()).tools
        names = {t.name for t in tools}
        assert {"sec__echo", "sec__whoami", "sec__admin_echo"} <= names, names
        received.append(json.dumps([t.model_dump(mode="json") for t in tools]))

        result = await client.call_tool("sec__echo", {"text": "hello"})
        assert not result.is_error and result.content[0].text == "hello"
        received.append(result.model_dump_json())
        assert auth_server.count("authorize") == 1, "a plain call needs no new sign-in"

        # admin_echo needs mcp:admin: 403 insufficient_scope downstream -> step-up sign-in in the browser -> retried
        result = await client.call_tool("sec__admin_echo", {"text": "root"}, read_timeout_seconds=60)
        assert not result.is_error, result
        assert result.content[0].text == "admin:root"
        received.append(result.model_dump_json())

        authorizations = auth_server.requests("authorize")
        assert len(authorizations) == 2, "the step-up opened the browser a second time"
        second = set(authorizations[1].query["scope"].split())
        assert {"mcp:read", "mcp:admin"} <= second and set(first) <= second, "the union of held and needed scopes"

        who = json.loads((await client.call_tool("sec__whoami", {})).content[0].text)
        assert {"mcp:read", "mcp:admin"} <= set(who["scopes"])
        received.append(json.dumps(who))

    h.wait_for(lambda e: e["event"] == "auth" and e["action"] == "succeeded", timeout=5)  # the step-up's
    assert h.stop() == 0

    issued = secrets_of(auth_server)
    assert len(issued) >= 2
    raw = wire.read_text()
    assert "admin:root" in raw and "sec__whoami" in raw, "the wire capture recorded what the client received"
    seen = raw + "\n".join(received)
    for token in issued:
        assert token not in seen, "a downstream token reached the client"
