"""A downstream server with tools, resources, a resource template, prompts and a slow tool with progress."""

from __future__ import annotations

import anyio
from mcp.server.mcpserver import Context, MCPServer

cancelled = anyio.Event()


def build() -> MCPServer:
    global cancelled
    cancelled = anyio.Event()
    mcp = MCPServer("rich")

    @mcp.tool(description="Echo the text back, untouched")
    def echo(text: str) -> str:
        return text

    @mcp.tool(name="weird name!", description="A name that needs sanitizing")
    def weird() -> str:
        return "weird"

    @mcp.tool()
    async def slow(steps: int, ctx: Context) -> str:
        try:
            for i in range(steps):
                await ctx.report_progress(i + 1, steps, f"step {i + 1}")
                await anyio.sleep(0.05)
        except anyio.get_cancelled_exc_class():
            cancelled.set()
            raise
        return "done"

    @mcp.tool()
    async def forever() -> str:
        try:
            await anyio.sleep(60)
        except anyio.get_cancelled_exc_class():
            cancelled.set()
            raise
        return "never"

    @mcp.resource("memo://greeting", description="A greeting")
    def greeting() -> str:
        return "hello from rich"

    @mcp.resource("memo://items/{item}")
    def item(item: str) -> str:
        return f"item {item}"

    @mcp.prompt(description="Review some code")
    def review(code: str) -> str:
        return f"Please review: {code}"

    return mcp
