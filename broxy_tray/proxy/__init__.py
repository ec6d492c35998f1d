"""One MCP endpoint for every client: the facade over all Available servers, presets, the stdio bridge.

- `Proxy` (`_facade`): the aggregating MCP server; `serve()` one client connection over an SDK stream pair.
- `relay` (`_relay`): the app's end of `broxy-tray stdio` (a control connection switched into MCP).
- `_stdio_bridge`: the `broxy-tray stdio` command (no MCP of its own: it copies bytes).
- `_client_config`: the `broxy-tray client-config` snippets (`--http`: the HTTP endpoint's).
- `EndpointManager` (`_http_endpoint`): the optional Streamable HTTP endpoint on 127.0.0.1 (bearer token).

The SDK is imported lazily (inside functions), so importing this package is cheap.
"""

from ._facade import PresetError, Proxy
from ._http_endpoint import EndpointManager, EndpointToken
from ._names import assign_names, namespaced

__all__ = ["EndpointManager", "EndpointToken", "PresetError", "Proxy", "assign_names", "namespaced"]
