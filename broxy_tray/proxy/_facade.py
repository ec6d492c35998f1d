"""One MCP server over every `Available` server: the proxy's facade.

`Proxy` reads the live sessions from the `SessionRegistry` and serves MCP
clients with the SDK's server implementation (`mcp.server.lowlevel.Server`,
both protocol generations). Each client connection gets its own `Server`
object (cheap: a table of handlers), bound to the preset it asked for:

- tools and prompts are offered as `<serverId>__<name>` (see `_names`), with
  descriptions and schemas untouched; resources and resource templates keep
  their URIs and are routed by an index of which server listed them;
- `tools/call`, `prompts/get`, `resources/read` and completions go to the
  owning server's live session; progress notifications are relayed back and
  a cancelled request cancels the downstream call (the SDK sends the
  courtesy `notifications/cancelled`);
- a call for a server that is not `Available` fails at once with an MCP
  error naming the server and its status;
- when servers come or go, their tools change, or the presets are edited,
  every client hears `notifications/*/list_changed` (handshake era) or a
  `subscriptions/listen` event (2026-07-28).

A client bound to a preset can neither see nor call anything outside it;
the preset is looked up on every request, so edits to `mcp.json` apply
live, and a preset that disappears hides everything.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ._names import SEPARATOR, assign_names

if TYPE_CHECKING:
    from broxy_tray.config import Config
    from broxy_tray.config._model import Preset
    from broxy_tray.servers._sessions import SessionChange, SessionRegistry
    from broxy_tray.state import StateStore

log = logging.getLogger(__name__)

SETTLE_TIMEOUT = 5.0
"""A client's first tools/list waits up to this long for servers still `Connecting` (e.g. right after
`broxy-tray stdio` started the app), so it does not begin with an empty list."""
LIST_TIMEOUT = 10.0
"""Seconds one server may take to list its resources or prompts before the aggregate list goes on without it."""
MAX_PAGES = 100

# MCP error codes (JSON-RPC)
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
SERVER_UNAVAILABLE = -32603


class PresetError(Exception):
    """A client asked for a preset that does not exist or is not valid; the message says why."""


class Proxy:
    """The aggregating facade; create one per app and call `serve()` per client connection."""

    def __init__(
        self,
        sessions: SessionRegistry,
        *,
        store: StateStore | None = None,
        config: Callable[[], Config | None] | None = None,
        name: str = "broxy-tray",
        list_timeout: float = LIST_TIMEOUT,
        settle_timeout: float = SETTLE_TIMEOUT,
    ) -> None:
        import broxy_tray

        self.sessions = sessions
        self._store = store
        self._config = config or (lambda: None)
        self.name = name
        self.version = broxy_tray.__version__
        self.list_timeout = list_timeout
        self.settle_timeout = settle_timeout
        self._clients: set[_Client] = set()
        self._tools_rev = -1
        self._tools: dict[str, tuple[str, Any]] = {}  # exposed name -> (server id, Tool)
        self._owners: dict[str, str] = {}  # every exposed tool name ever offered -> server id
        self._uri_owner: dict[str, str] = {}  # resource URI -> server id (from the last listings)
        self._templates: list[tuple[str, str]] = []  # (uri template prefix, server id)
        self._unsubscribe = [sessions.subscribe(self._on_sessions)]
        if store is not None:
            self._unsubscribe.append(store.subscribe(self._on_state))

    def close(self) -> None:
        for u in self._unsubscribe:
            u()
        self._unsubscribe = []

    @property
    def clients(self) -> int:
        return len(self._clients)

    # -- presets --

    def check_preset(self, name: str | None) -> None:
        """Raise `PresetError` unless `name` is None or a valid preset of the running config."""
        if name is None:
            return
        config = self._config()
        preset = config.preset(name) if config is not None else None
        if preset is None:
            known = ", ".join(p.name for p in config.presets) if config is not None and config.presets else "none"
            raise PresetError(f"no preset {name!r} in mcp.json (presets: {known})")
        if not preset.valid:
            raise PresetError(f"preset {name!r} is not valid: {preset.problems[0].message}")

    def _preset(self, name: str | None) -> Preset | None | bool:
        """The preset, None for "everything", or False when the named preset is gone or invalid (nothing)."""
        if name is None:
            return None
        config = self._config()
        preset = config.preset(name) if config is not None else None
        if preset is None or not preset.valid:
            return False
        return preset

    # -- serving --

    def client_counts(self) -> Any:
        """Connected clients by kind and preset (one-request HTTP clients of 2026-07-28 are not sessions: not counted)."""
        from broxy_tray.state import ClientCounts

        kinds = [c for c in self._clients if c.kind is not None]
        presets: dict[str, int] = {}
        for c in kinds:
            if c.preset_name is not None:
                presets[c.preset_name] = presets.get(c.preset_name, 0) + 1
        return ClientCounts(
            stdio=sum(1 for c in kinds if c.kind == "stdio"), http=sum(1 for c in kinds if c.kind == "http"),
            presets=tuple(sorted(presets.items())),
        )

    def _publish_clients(self) -> None:
        if self._store is not None:
            self._store.set_clients(self.client_counts())

    async def serve(self, read_stream: Any, write_stream: Any, *, preset: str | None = None,
                    kind: str | None = None) -> None:
        """Serve one client over an SDK stream pair until it goes away. `kind` ("stdio", "http") counts it."""
        from ._preload import preload_proxy

        await preload_proxy()
        from mcp.server import NotificationOptions

        client = _Client(self, preset)
        client.kind = kind
        self._clients.add(client)
        if kind is not None:
            self._publish_clients()
        try:
            options = client.server.create_initialization_options(
                NotificationOptions(prompts_changed=True, resources_changed=True, tools_changed=True)
            )
            await client.server.run(read_stream, write_stream, options)
        finally:
            self._clients.discard(client)
            client.close()
            if kind is not None:
                self._publish_clients()

    def _notify(self, kinds: frozenset[str]) -> None:
        for client in list(self._clients):
            client.changed(kinds)

    def _on_sessions(self, change: SessionChange) -> None:
        if change.kind == "tools":
            self._notify(frozenset({"tools"}))
        else:
            if change.kind == "removed":
                self._forget_routes(change.server)
            self._notify(frozenset({"tools", "resources", "prompts"}))

    def _on_state(self, state: Any, event: Any) -> None:
        from broxy_tray.state import ConfigEvent

        if isinstance(event, ConfigEvent) and event.action in ("loaded", "reloaded"):
            self._notify(frozenset({"tools", "resources", "prompts"}))  # presets may have changed

    async def settle(self, preset: Any) -> None:
        """Wait (bounded) while a server this client may see is still `Connecting`."""
        if self._store is None:
            return
        from broxy_tray.state import ServerStatus

        deadline = asyncio.get_running_loop().time() + self.settle_timeout
        while asyncio.get_running_loop().time() < deadline:
            connecting = [
                s.id for s in self._store.state.servers
                if s.status is ServerStatus.CONNECTING and s.id not in self.sessions
                and (self._server_allowed(preset, s.id) or _names_server(preset, s.id))
            ]
            if not connecting:
                return
            await asyncio.sleep(0.05)

    async def settle_server(self, sid: str) -> None:
        """Wait (bounded) while one server is still `Connecting`: a call held by a bridge while the app
        restarted arrives before the app's servers are back, and should not fail for that."""
        if self._store is None:
            return
        from broxy_tray.state import ServerStatus

        deadline = asyncio.get_running_loop().time() + self.settle_timeout
        while asyncio.get_running_loop().time() < deadline and sid not in self.sessions:
            state = self._store.state.server(sid)
            if state is None or state.status is not ServerStatus.CONNECTING:
                return
            await asyncio.sleep(0.05)

    def _forget_routes(self, sid: str) -> None:
        self._uri_owner = {u: s for u, s in self._uri_owner.items() if s != sid}
        self._templates = [(p, s) for p, s in self._templates if s != sid]

    # -- views --

    def _tool_index(self) -> dict[str, tuple[str, Any]]:
        rev = self.sessions.revision
        if rev != self._tools_rev:
            tools_of: dict[tuple[str, str], Any] = {}
            for sid, conn in self.sessions.items():
                for tool in conn.tools:
                    tools_of.setdefault((sid, tool.name), tool)
            names = assign_names(tools_of, kind="tool")
            self._tools = {exposed: (sid, tools_of[(sid, name)]) for exposed, (sid, name) in names.items()}
            self._owners.update({exposed: sid for exposed, (sid, _) in self._tools.items()})
            self._tools_rev = rev
        return self._tools

    @staticmethod
    def _server_allowed(preset: Preset | None | bool, sid: str) -> bool:
        if preset is None:
            return True
        if preset is False:
            return False
        assert not isinstance(preset, bool)
        return sid in preset.servers

    @staticmethod
    def _tool_allowed(preset: Preset | None | bool, sid: str, name: str, exposed: str) -> bool:
        if preset is None:
            return True
        if preset is False:
            return False
        assert not isinstance(preset, bool)
        return sid in preset.servers or exposed in preset.tools or f"{sid}{SEPARATOR}{name}" in preset.tools

    def _status_of(self, sid: str) -> str:
        state = self._store.state.server(sid) if self._store is not None else None
        if state is None:
            return "not configured"
        from broxy_tray.state import ServerStatus

        if state.status is ServerStatus.AVAILABLE:
            return "Connecting (the connection was just lost)"
        return state.label()

    def _unavailable(self, sid: str) -> Exception:
        from mcp.shared.exceptions import MCPError

        status = self._status_of(sid)
        return MCPError(
            SERVER_UNAVAILABLE, f"server {sid!r} is not available: {status}",
            data={"server": sid, "status": status},
        )

    def _owner_of_name(self, exposed: str) -> str | None:
        """The server a name belongs to, for a name not offered right now (its server is down)."""
        if exposed in self._owners:
            return self._owners[exposed]
        config = self._config()
        ids = [s.id for s in config.servers] if config is not None else []
        ids += [s.id for s in self._store.state.servers] if self._store is not None else []
        matches = [sid for sid in set(ids) if exposed.startswith(f"{sid}{SEPARATOR}") and len(exposed) > len(sid) + 2]
        return max(matches, key=len) if matches else None

    def _live(self, sid: str) -> Any:
        conn = self.sessions.get(sid)
        if conn is None:
            raise self._unavailable(sid)
        return conn

    async def _gather_lists(
        self, preset: Any, fetch: Callable[[Any], Awaitable[list[Any]]], capability: str
    ) -> list[tuple[str, list[Any]]]:
        """Run `fetch(conn)` on every visible server that offers `capability`, concurrently, bounded."""
        targets = [
            (sid, conn) for sid, conn in self.sessions.items()
            if self._server_allowed(preset, sid) and _offers(conn, capability)
        ]

        async def one(sid: str, conn: Any) -> tuple[str, list[Any]]:
            try:
                return sid, await asyncio.wait_for(fetch(conn), self.list_timeout)
            except asyncio.TimeoutError:
                log.warning("%s: listing %s timed out after %g s; left out", sid, capability, self.list_timeout)
            except Exception as e:
                log.warning("%s: listing %s failed: %s", sid, capability, _one_line(e))
            return sid, []

        return list(await asyncio.gather(*(one(sid, conn) for sid, conn in targets)))


def _offers(conn: Any, capability: str) -> bool:
    try:
        caps = conn.client.server_capabilities
    except Exception:
        return False
    return getattr(caps, capability, None) is not None


def _one_line(e: BaseException) -> str:
    text = f"{type(e).__name__}: {e}".replace("\n", " ")
    return text[:200]


async def _all_pages(fetch: Callable[[str | None], Awaitable[Any]], attr: str) -> list[Any]:
    out: list[Any] = []
    cursor: str | None = None
    seen: set[str] = set()
    for _ in range(MAX_PAGES):
        page = await fetch(cursor)
        out.extend(getattr(page, attr))
        cursor = page.next_cursor
        if cursor is None or cursor in seen:
            break
        seen.add(cursor)
    return out


def _forward_meta(meta: Any) -> dict[str, Any] | None:
    """The caller's `_meta`, minus what the downstream session sets itself (progress token, protocol keys)."""
    if meta is None:
        return None
    data = meta.model_dump(by_alias=True, exclude_none=True) if hasattr(meta, "model_dump") else dict(meta)
    out = {
        k: v for k, v in data.items()
        if k not in ("progressToken", "progress_token") and not k.startswith("io.modelcontextprotocol/")
    }
    return out or None


def _wants_progress(meta: Any) -> bool:
    if meta is None:
        return False
    if isinstance(meta, dict):
        return meta.get("progress_token", meta.get("progressToken")) is not None
    return getattr(meta, "progress_token", None) is not None


def _template_prefix(template: str) -> str:
    i = template.find("{")
    return template if i < 0 else template[:i]


class _Client:
    """One client connection: its `Server`, preset, and how to tell it about changes."""

    def __init__(self, proxy: Proxy, preset: str | None) -> None:
        from mcp.server.subscriptions import InMemorySubscriptionBus

        self.proxy = proxy
        self.preset_name = preset
        self.kind: str | None = None  # "stdio" | "http" for a counted session
        self.bus = InMemorySubscriptionBus()
        self.legacy_session: Any = None
        self._settled = False
        self._pending: set[str] = set()
        self._flusher: asyncio.Task[None] | None = None
        self._closed = False
        self.server = self._build()

    def close(self) -> None:
        self._closed = True
        if self._flusher is not None:
            self._flusher.cancel()

    def preset(self) -> Any:
        return self.proxy._preset(self.preset_name)

    # -- change notifications --

    def changed(self, kinds: frozenset[str]) -> None:
        if self._closed:
            return
        self._pending |= kinds
        if self._flusher is None or self._flusher.done():
            try:
                self._flusher = asyncio.get_running_loop().create_task(self._flush(), name="proxy-list-changed")
            except RuntimeError:  # no loop (a test poking the registry synchronously)
                pass

    async def _flush(self) -> None:
        from mcp.shared.subscriptions import PromptsListChanged, ResourcesListChanged, ToolsListChanged

        await asyncio.sleep(0.01)  # a burst (reload, several servers at once) becomes one notification per kind
        while self._pending and not self._closed:
            kinds, self._pending = self._pending, set()
            for kind in ("tools", "resources", "prompts"):
                if kind not in kinds:
                    continue
                session = self.legacy_session
                try:
                    if session is not None:
                        if kind == "tools":
                            await session.send_tool_list_changed()
                        elif kind == "resources":
                            await session.send_resource_list_changed()
                        else:
                            await session.send_prompt_list_changed()
                    event = {"tools": ToolsListChanged, "resources": ResourcesListChanged,
                             "prompts": PromptsListChanged}[kind]()
                    await self.bus.publish(event)
                except Exception as e:  # the client went away
                    log.debug("could not tell a client that %s changed: %s", kind, _one_line(e))

    # -- the server --

    def _build(self) -> Any:
        from mcp.server import Server
        from mcp.server.subscriptions import ListenHandler

        proxy = self.proxy
        server = Server(
            proxy.name,
            version=proxy.version,
            instructions=None,
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
            on_list_resources=self._list_resources,
            on_list_resource_templates=self._list_resource_templates,
            on_read_resource=self._read_resource,
            on_list_prompts=self._list_prompts,
            on_get_prompt=self._get_prompt,
            on_completion=self._complete,
            on_subscriptions_listen=ListenHandler(self.bus),
        )
        server.middleware.append(self._capture_session)
        return server

    async def _capture_session(self, ctx: Any, call_next: Any) -> Any:
        """Remember a handshake-era client's session, to send it list_changed notifications later."""
        from mcp_types.version import MODERN_PROTOCOL_VERSIONS

        if (
            self.legacy_session is None
            and ctx.method != "initialize"
            and ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS
            and (ctx.request_id is not None or ctx.method == "notifications/initialized")
        ):
            self.legacy_session = ctx.session
        return await call_next(ctx)

    # tools

    async def _list_tools(self, ctx: Any, params: Any) -> Any:
        import mcp_types as types

        preset = self.preset()
        if not self._settled:
            self._settled = True
            await self.proxy.settle(preset)
        tools = [
            tool.model_copy(update={"name": exposed})
            for exposed, (sid, tool) in self.proxy._tool_index().items()
            if self.proxy._tool_allowed(preset, sid, tool.name, exposed)
        ]
        return types.ListToolsResult(tools=tools)

    async def _call_tool(self, ctx: Any, params: Any) -> Any:
        from mcp.shared.exceptions import MCPError

        proxy = self.proxy
        exposed = params.name
        preset = self.preset()
        entry = proxy._tool_index().get(exposed)
        if entry is None and (owner := proxy._owner_of_name(exposed)) is not None and owner not in proxy.sessions:
            await proxy.settle_server(owner)
            entry = proxy._tool_index().get(exposed)
        if entry is None or not proxy._tool_allowed(preset, entry[0], entry[1].name, exposed):
            owner = proxy._owner_of_name(exposed)
            if entry is None and owner is not None and owner not in proxy.sessions and (
                proxy._server_allowed(preset, owner) or _named_in(preset, exposed)
            ):
                raise proxy._unavailable(owner)
            raise MCPError(INVALID_PARAMS, f"Unknown tool: {exposed}")
        sid, tool = entry
        conn = proxy._live(sid)

        async def progress(value: float, total: float | None, message: str | None) -> None:
            try:
                await ctx.session.report_progress(value, total, message)
            except Exception:
                pass

        with_progress = _wants_progress(ctx.meta)
        try:
            return await conn.client.call_tool(
                tool.name,
                params.arguments,
                progress_callback=progress if with_progress else None,
                meta=_forward_meta(ctx.meta),
            )
        except MCPError as e:
            raise _downstream_error(sid, e) from None
        except Exception as e:
            if conn.closed:
                raise proxy._unavailable(sid) from None
            raise MCPError(INTERNAL_ERROR, f"{sid}: tools/call failed: {_one_line(e)}") from None

    # resources

    async def _list_resources(self, ctx: Any, params: Any) -> Any:
        import mcp_types as types

        proxy = self.proxy
        lists = await proxy._gather_lists(
            self.preset(),
            lambda conn: _all_pages(lambda c: conn.client.list_resources(cursor=c), "resources"),
            "resources",
        )
        out = []
        seen: set[str] = set()
        for sid, resources in lists:
            for r in resources:
                uri = str(r.uri)
                owner = proxy._uri_owner.get(uri)
                if owner is None or owner == sid or owner not in proxy.sessions:
                    proxy._uri_owner[uri] = sid
                elif owner != sid:
                    continue  # another server lists the same URI: the first one owns it
                if uri in seen:
                    continue
                seen.add(uri)
                out.append(r)
        return types.ListResourcesResult(resources=out)

    async def _list_resource_templates(self, ctx: Any, params: Any) -> Any:
        import mcp_types as types

        proxy = self.proxy
        lists = await proxy._gather_lists(
            self.preset(),
            lambda conn: _all_pages(lambda c: conn.client.list_resource_templates(cursor=c), "resource_templates"),
            "resources",
        )
        out = []
        for sid, templates in lists:
            for t in templates:
                entry = (_template_prefix(t.uri_template), sid)
                if entry not in proxy._templates:
                    proxy._templates.append(entry)
                out.append(t)
        return types.ListResourceTemplatesResult(resource_templates=out)

    async def _resource_owner(self, uri: str) -> str | None:
        proxy = self.proxy
        preset = self.preset()
        owner = proxy._uri_owner.get(uri)
        if owner is None:
            await self._list_resources(None, None)  # the client may read without listing first
            owner = proxy._uri_owner.get(uri)
        if owner is None:
            if not proxy._templates:
                await self._list_resource_templates(None, None)
            matches = [(p, s) for p, s in proxy._templates if p and uri.startswith(p) and proxy._server_allowed(preset, s)]
            if matches:
                owner = max(matches, key=lambda m: len(m[0]))[1]
        if owner is not None and not proxy._server_allowed(preset, owner):
            return None
        return owner

    async def _read_resource(self, ctx: Any, params: Any) -> Any:
        from mcp.shared.exceptions import MCPError

        uri = str(params.uri)
        sid = await self._resource_owner(uri)
        if sid is None:
            raise MCPError(INVALID_PARAMS, f"Unknown resource: {uri}", data={"uri": uri})
        conn = self.proxy._live(sid)
        try:
            return await conn.client.read_resource(uri, meta=_forward_meta(ctx.meta))
        except MCPError as e:
            raise _downstream_error(sid, e) from None

    # prompts

    async def _prompt_index(self) -> dict[str, tuple[str, Any]]:
        lists = await self.proxy._gather_lists(
            self.preset(),
            lambda conn: _all_pages(lambda c: conn.client.list_prompts(cursor=c), "prompts"),
            "prompts",
        )
        prompts_of = {(sid, p.name): p for sid, prompts in lists for p in prompts}
        names = assign_names(prompts_of, kind="prompt")
        return {exposed: (sid, prompts_of[(sid, name)]) for exposed, (sid, name) in names.items()}

    async def _list_prompts(self, ctx: Any, params: Any) -> Any:
        import mcp_types as types

        index = await self._prompt_index()
        return types.ListPromptsResult(prompts=[p.model_copy(update={"name": n}) for n, (_, p) in index.items()])

    async def _get_prompt(self, ctx: Any, params: Any) -> Any:
        from mcp.shared.exceptions import MCPError

        entry = (await self._prompt_index()).get(params.name)
        if entry is None:
            owner = self.proxy._owner_of_name(params.name)
            if owner is not None and owner not in self.proxy.sessions and self.proxy._server_allowed(self.preset(), owner):
                raise self.proxy._unavailable(owner)
            raise MCPError(INVALID_PARAMS, f"Unknown prompt: {params.name}")
        sid, prompt = entry
        conn = self.proxy._live(sid)
        try:
            return await conn.client.get_prompt(prompt.name, params.arguments, meta=_forward_meta(ctx.meta))
        except MCPError as e:
            raise _downstream_error(sid, e) from None

    # completion

    async def _complete(self, ctx: Any, params: Any) -> Any:
        import mcp_types as types
        from mcp.shared.exceptions import MCPError

        ref = params.ref
        if isinstance(ref, types.PromptReference):
            entry = (await self._prompt_index()).get(ref.name)
            if entry is None:
                raise MCPError(INVALID_PARAMS, f"Unknown prompt: {ref.name}")
            sid = entry[0]
            ref = ref.model_copy(update={"name": entry[1].name})
        else:
            sid = await self._resource_owner(ref.uri)
            if sid is None:
                raise MCPError(INVALID_PARAMS, f"Unknown resource: {ref.uri}")
        conn = self.proxy._live(sid)
        if not _offers(conn, "completions"):
            return types.CompleteResult(completion=types.Completion(values=[]))
        context = params.context.arguments if params.context is not None else None
        argument = {"name": params.argument.name, "value": params.argument.value}
        try:
            return await conn.client.complete(ref, argument, context)
        except MCPError as e:
            raise _downstream_error(sid, e) from None


def _names_server(preset: Any, sid: str) -> bool:
    return preset is not None and preset is not False and any(t.startswith(f"{sid}{SEPARATOR}") for t in preset.tools)


def _named_in(preset: Any, exposed: str) -> bool:
    return preset is not None and preset is not False and exposed in preset.tools


def _downstream_error(sid: str, e: Any) -> Exception:
    """The downstream server's error, passed on; a lost connection or a timeout names the server."""
    import mcp_types as types
    from mcp.shared.exceptions import MCPError

    code = e.error.code
    if code in (types.CONNECTION_CLOSED, types.REQUEST_TIMEOUT):
        return MCPError(code, f"{sid}: {e.error.message}", data={"server": sid})
    return MCPError(code, e.error.message, data=e.error.data)
