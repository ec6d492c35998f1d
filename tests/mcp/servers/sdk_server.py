"""A small MCP server built with the official SDK, for the connection tests.

Run as a script: ``python sdk_server.py stdio|http|sse|ws [--port N] ...``.

It serves ``--tools`` tools, ``--page-size`` per ``tools/list`` page, on both
protocol eras (the SDK server picks the era the client opens with). The tool
``add_tool`` adds one more tool and announces the change: on a 2026-07-28
connection through ``subscriptions/listen`` (the bus), on an older one with
``notifications/tools/list_changed``. ``--stderr-lines N`` writes N lines to
stderr at start; ``--crash`` exits with code 1 after writing to stderr.
"""

from __future__ import annotations

import argparse
import sys

import anyio
import mcp_types as types
from mcp.server import NotificationOptions, Server
from mcp.server.subscriptions import InMemorySubscriptionBus, ListenHandler
from mcp.shared.subscriptions import ToolsListChanged
from mcp_types.version import MODERN_PROTOCOL_VERSIONS


def build_server(n_tools: int, page_size: int, *, legacy_only: bool = False) -> Server:
    bus = InMemorySubscriptionBus()
    tools = [
        types.Tool(name="add_tool", description="Add one tool", input_schema={"type": "object"}),
        *(
            types.Tool(name=f"tool_{i}", description=f"Tool number {i}", input_schema={"type": "object"})
            for i in range(1, n_tools)
        ),
    ]

    async def list_tools(ctx, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        start = int(params.cursor) if params is not None and params.cursor else 0
        end = start + page_size
        return types.ListToolsResult(
            tools=tools[start:end], next_cursor=str(end) if end < len(tools) else None
        )

    async def call_tool(ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
        if params.name == "add_tool":
            tools.append(types.Tool(name=f"extra_{len(tools)}", input_schema={"type": "object"}))
            if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
                await bus.publish(ToolsListChanged())
            else:
                await ctx.session.send_tool_list_changed()
            return types.CallToolResult(content=[types.TextContent(type="text", text=str(len(tools)))])
        return types.CallToolResult(content=[types.TextContent(type="text", text=f"called {params.name}")])

    server = Server(
        "sdk-test-server",
        version="1.2.3",
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_subscriptions_listen=ListenHandler(bus),
    )
    if legacy_only:
        server._request_handlers.pop("server/discover", None)  # noqa: SLF001 - test-only restriction
    return server


def websocket_app(server: Server, *, junk_frames: int = 0):
    """A Starlette app serving `server` over WebSocket at `/ws` (subprotocol `mcp`, one message per text frame).

    `junk_frames`: text frames that are not JSON-RPC sent first, on every connection (a misbehaving server)."""
    import mcp_types as types
    from mcp.shared.message import SessionMessage
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket, WebSocketDisconnect

    async def endpoint(ws: WebSocket) -> None:
        if "mcp" not in ws.scope.get("subprotocols", []):
            await ws.close(code=1002)
            return
        await ws.accept(subprotocol="mcp")
        for i in range(junk_frames):
            await ws.send_text(f"not json-rpc {i}")
        read_writer, read_stream = anyio.create_memory_object_stream(0)
        write_stream, write_reader = anyio.create_memory_object_stream(0)

        async def from_socket() -> None:
            async with read_writer:
                try:
                    while True:
                        text = await ws.receive_text()
                        await read_writer.send(SessionMessage(types.jsonrpc_message_adapter.validate_json(text)))
                except WebSocketDisconnect:
                    pass

        async def to_socket() -> None:
            async with write_reader:
                async for message in write_reader:
                    await ws.send_text(message.message.model_dump_json(by_alias=True, exclude_unset=True))

        async with anyio.create_task_group() as tg:
            tg.start_soon(from_socket)
            tg.start_soon(to_socket)
            await server.run(read_stream, write_stream, server.create_initialization_options(NotificationOptions(tools_changed=True)))
            tg.cancel_scope.cancel()

    return Starlette(routes=[WebSocketRoute("/ws", endpoint)])


def sse_app(server: Server):
    """A Starlette app serving `server` over the HTTP+SSE transport at `/sse`."""
    from mcp.server.sse import SseServerTransport
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Mount, Route

    sse = SseServerTransport("/messages/")

    async def handle_sse(request):
        async with sse.connect_sse(request.scope, request.receive, request._send) as (read, write):
            await server.run(read, write, server.create_initialization_options(NotificationOptions(tools_changed=True)))
        return Response()

    return Starlette(routes=[Route("/sse", handle_sse, methods=["GET"]), Mount("/messages/", app=sse.handle_post_message)])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("transport", choices=["stdio", "http", "sse", "ws"])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--tools", type=int, default=5)
    parser.add_argument("--page-size", type=int, default=1000)
    parser.add_argument("--stderr-lines", type=int, default=0)
    parser.add_argument("--crash", action="store_true")
    parser.add_argument("--legacy-only", action="store_true")
    args = parser.parse_args()

    for i in range(args.stderr_lines):
        print(f"server stderr line {i}", file=sys.stderr, flush=True)
    if args.crash:
        print("fatal: cannot open database", file=sys.stderr, flush=True)
        sys.exit(1)

    server = build_server(args.tools, args.page_size, legacy_only=args.legacy_only)

    if args.transport == "stdio":
        from mcp.server.stdio import stdio_server

        async def run_stdio() -> None:
            async with stdio_server() as (read, write):
                await server.run(read, write, server.create_initialization_options(NotificationOptions(tools_changed=True)))

        anyio.run(run_stdio)
        return

    import uvicorn

    if args.transport == "http":
        app = server.streamable_http_app()
    elif args.transport == "sse":
        app = sse_app(server)
    else:
        app = websocket_app(server)

    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", ws="wsproto")


if __name__ == "__main__":
    main()
