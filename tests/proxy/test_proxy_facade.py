"""The facade in process: namespaced tools from stdio and HTTP servers, calls, errors, presets, changes."""

from __future__ import annotations

import pytest
from proxy_testlib import in_memory_client, running_app, until


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_lists_and_calls_tools_of_stdio_and_http_servers(config_path, mode):
    async with running_app(config_path) as r:
        await r.wait_available("files", "web", "sdk")
        async with in_memory_client(r.proxy, mode=mode) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            assert {"files__tool_0", "files__tool_2", "web__add_tool", "web__tool_4", "sdk__tool_1"} <= names
            result = await client.call_tool("files__tool_1", {})
            assert result.content[0].text == "called tool_1"
            result = await client.call_tool("web__tool_3", {})
            assert result.content[0].text == "called tool_3"


async def test_unknown_tool_is_a_clean_mcp_error(config_path):
    from mcp.shared.exceptions import MCPError

    async with running_app(config_path) as r:
        await r.wait_available("files")
        async with in_memory_client(r.proxy) as client:
            with pytest.raises(MCPError) as e:
                await client.call_tool("nope__nothing", {})
            assert e.value.code == -32602
            assert "Unknown tool: nope__nothing" in e.value.message
            # the connection is still fine
            assert (await client.call_tool("files__tool_0", {})).content[0].text == "called tool_0"


async def test_call_for_a_server_that_is_not_available_names_it_and_its_status(config_path):
    from mcp.shared.exceptions import MCPError

    async with running_app(config_path) as r:
        await r.wait_available("files", "sdk")
        async with in_memory_client(r.proxy) as client:
            await client.list_tools()
            await r.app.set_enabled("sdk", False)
            await until(lambda: "sdk" not in r.sessions, what="sdk gone")
            with pytest.raises(MCPError) as e:
                await client.call_tool("sdk__tool_1", {})
            assert "'sdk' is not available" in e.value.message
            assert "Disabled" in e.value.message


async def test_preset_hides_servers_and_refuses_their_tools(config_path):
    from mcp.shared.exceptions import MCPError

    async with running_app(config_path) as r:
        await r.wait_available("files", "web", "sdk")
        async with in_memory_client(r.proxy, preset="coding") as client:
            names = {t.name for t in (await client.list_tools()).tools}
            assert names == {"files__tool_0", "files__tool_1", "files__tool_2", "web__tool_1"}
            assert (await client.call_tool("web__tool_1", {})).content[0].text == "called tool_1"
            for hidden in ("web__tool_2", "sdk__tool_1"):
                with pytest.raises(MCPError) as e:
                    await client.call_tool(hidden, {})
                assert e.value.code == -32602  # as if it did not exist


async def test_unknown_preset_is_refused():
    from broxy_tray.proxy._facade import PresetError, Proxy
    from broxy_tray.servers._sessions import SessionRegistry

    proxy = Proxy(SessionRegistry(), config=lambda: None)
    proxy.check_preset(None)
    with pytest.raises(PresetError, match="no preset 'x'"):
        proxy.check_preset("x")


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_server_going_away_and_coming_back_notifies_clients(config_path, mode):
    import os
    import signal

    import anyio
    import mcp_types as types

    seen: list[str] = []
    changed = anyio.Event()

    def on_message(message):
        if isinstance(message, types.ToolListChangedNotification):
            seen.append("tools")
            changed.set()

    async with running_app(config_path) as r:
        await r.wait_available("files", "web", "sdk")
        async with in_memory_client(r.proxy, mode=mode, on_message=on_message) as client:
            if mode == "auto":
                listening = client.listen(tools_list_changed=True)
                subscription = await listening.__aenter__()

                async def drain():
                    async for _ in subscription:
                        seen.append("tools")
                        changed.set()

                import asyncio

                drainer = asyncio.ensure_future(drain())
            try:
                assert "files__tool_0" in {t.name for t in (await client.list_tools()).tools}
                pid = r.sessions.get("files").pid
                os.kill(pid, signal.SIGKILL)
                with anyio.fail_after(10):
                    await changed.wait()
                await until(lambda: "files" not in r.sessions, what="files gone")
                names = {t.name for t in (await client.list_tools()).tools}
                assert not any(n.startswith("files__") for n in names)
                changed = anyio.Event()
                await r.wait_available("files")
                with anyio.fail_after(10):
                    await changed.wait()
                assert "files__tool_0" in {t.name for t in (await client.list_tools()).tools}
            finally:
                if mode == "auto":
                    drainer.cancel()
                    await listening.__aexit__(None, None, None)


async def test_downstream_tool_list_change_reaches_the_client(config_path):
    import anyio
    import mcp_types as types

    changed = anyio.Event()

    def on_message(message):
        if isinstance(message, types.ToolListChangedNotification):
            changed.set()

    async with running_app(config_path) as r:
        await r.wait_available("web", "files", "sdk")
        async with in_memory_client(r.proxy, on_message=on_message) as client:
            before = {t.name for t in (await client.list_tools()).tools}
            changed = anyio.Event()
            count = int((await client.call_tool("web__add_tool", {})).content[0].text)
            with anyio.fail_after(10):
                await changed.wait()
            after = {t.name for t in (await client.list_tools()).tools}
            assert after - before == {f"web__extra_{count - 1}"}


@pytest.fixture(scope="module")
def rich_url():
    import rich_server
    from mcp_testlib import serve

    running = serve(rich_server.build().streamable_http_app())
    yield f"{running.base}/mcp"
    running.stop()


@pytest.fixture
def rich_config(tmp_path, rich_url):
    from proxy_testlib import PYTHON, save
    from mcp_testlib import MINIMAL_SERVER

    path = tmp_path / "mcp.json"
    save(path, {"mcpServers": {"rich": {"url": rich_url}, "files": {"command": PYTHON, "args": [MINIMAL_SERVER]}}})
    return path


async def test_resources_templates_and_prompts_are_aggregated_and_routed(rich_config):
    async with running_app(rich_config) as r:
        await r.wait_available("rich", "files")
        async with in_memory_client(r.proxy) as client:
            resources = (await client.list_resources()).resources
            assert [str(x.uri) for x in resources] == ["memo://greeting"]
            read = await client.read_resource("memo://greeting")
            assert read.contents[0].text == "hello from rich"
            templates = (await client.list_resource_templates()).resource_templates
            assert [t.uri_template for t in templates] == ["memo://items/{item}"]
            assert (await client.read_resource("memo://items/42")).contents[0].text == "item 42"
            prompts = (await client.list_prompts()).prompts
            assert [(p.name, p.description) for p in prompts] == [("rich__review", "Review some code")]
            got = await client.get_prompt("rich__review", {"code": "x = 1"})
            assert "Please review: x = 1" in got.messages[0].content.text


async def test_descriptions_and_schemas_pass_through_and_odd_names_are_sanitized(rich_config):
    async with running_app(rich_config) as r:
        await r.wait_available("rich")
        direct = {t.name: t for t in r.sessions.get("rich").tools}
        async with in_memory_client(r.proxy) as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            echo = tools["rich__echo"]
            assert echo.description == direct["echo"].description
            assert echo.input_schema == direct["echo"].input_schema
            weird = [n for n in tools if n.startswith("rich__weird_name_")]
            assert len(weird) == 1 and len(weird[0]) <= 64
            assert (await client.call_tool(weird[0], {})).content[0].text == "weird"
            assert (await client.call_tool("rich__echo", {"text": "hi"})).content[0].text == "hi"


async def test_progress_passes_through_and_cancellation_reaches_the_server(rich_config):
    import anyio
    import rich_server

    async with running_app(rich_config) as r:
        await r.wait_available("rich")
        async with in_memory_client(r.proxy) as client:
            seen = []

            async def progress(value, total, message):
                seen.append((value, total, message))

            result = await client.call_tool("rich__slow", {"steps": 3}, progress_callback=progress)
            assert result.content[0].text == "done"
            assert [s[0] for s in seen] == [1, 2, 3] and seen[-1][2] == "step 3"

            with anyio.move_on_after(0.5):
                await client.call_tool("rich__forever", {})
            with anyio.fail_after(5):
                await rich_server.cancelled.wait()


async def test_preset_edit_applies_live_and_notifies(config_path):
    import json

    import anyio
    import mcp_types as types
    from proxy_testlib import save

    changed = anyio.Event()

    def on_message(message):
        if isinstance(message, types.ToolListChangedNotification):
            changed.set()

    async with running_app(config_path) as r:
        await r.wait_available("files", "web", "sdk")
        async with in_memory_client(r.proxy, preset="coding", on_message=on_message) as client:
            assert "sdk__tool_1" not in {t.name for t in (await client.list_tools()).tools}
            data = json.loads(config_path.read_text())
            data["presets"]["coding"]["servers"] = ["sdk"]
            save(config_path, data)
            await r.app.reload()
            with anyio.fail_after(10):
                await changed.wait()
            names = {t.name for t in (await client.list_tools()).tools}
            assert {"sdk__tool_1", "web__tool_1"} <= names
            assert not any(n.startswith("files__") for n in names)
            del data["presets"]["coding"]
            save(config_path, data)
            await r.app.reload()
            await until(lambda: True)
            assert (await client.list_tools()).tools == []  # a preset that is gone hides everything


def test_names_are_sanitized_bounded_and_collisions_resolved_deterministically(caplog):
    from broxy_tray.proxy._names import assign_names, namespaced

    assert namespaced("github", "create_issue") == "github__create_issue"
    odd = namespaced("my.server", "do thing")
    assert odd.startswith("my_server__do_thing_") and len(odd) <= 64
    long = namespaced("s", "x" * 100)
    assert len(long) == 64 and long == namespaced("s", "x" * 100)
    entries = [("a__b", "c"), ("a", "b__c")]
    one = assign_names(entries)
    two = assign_names(list(reversed(entries)))
    assert one == two
    assert one["a__b__c"] == ("a", "b__c")
    assert len(one) == 2
    assert "would be named 'a__b__c'" in caplog.text
