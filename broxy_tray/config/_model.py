"""Immutable configuration values, as the rest of the app sees them.

Everything here is already validated and `${VAR}`-expanded. Expanded values
live only in these in-memory objects: nothing in this module writes them
anywhere, and `repr()` hides the fields that may carry secrets.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

DEFAULT_AUTHORIZATION_TIMEOUT = 120.0
DEFAULT_REQUEST_TIMEOUT = 60.0
DEFAULT_CONNECT_TIMEOUT = 30.0

TOKEN_ENDPOINT_AUTH_METHODS = ("none", "client_secret_basic", "client_secret_post")


class Transport(str, enum.Enum):
    """The wire a server is reached over (aliases are folded in by the parser)."""

    STDIO = "stdio"
    HTTP = "http"  # Streamable HTTP
    SSE = "sse"
    WEBSOCKET = "websocket"

    @property
    def is_remote(self) -> bool:
        return self is not Transport.STDIO


TRANSPORT_ALIASES: Mapping[str, Transport] = MappingProxyType(
    {
        "stdio": Transport.STDIO,
        "http": Transport.HTTP,
        "streamable-http": Transport.HTTP,
        "streamable_http": Transport.HTTP,
        "streamablehttp": Transport.HTTP,
        "sse": Transport.SSE,
        "websocket": Transport.WEBSOCKET,
        "ws": Transport.WEBSOCKET,
    }
)

EMPTY_MAP: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True)
class ConfigIssue:
    """One problem found in `mcp.json`, located as precisely as the text allows.

    `path` is the dotted JSON path (`mcpServers.secured.auth.redirectUri`);
    `line`/`column` are 1-based and point at the offending key or value.
    Messages never contain expanded values.
    """

    file: str
    message: str
    path: str = ""
    line: int | None = field(default=None, compare=False)
    column: int | None = None
    server: str | None = None
    severity: str = "error"  # "error" | "warning"
    variable: str | None = field(default=None, compare=False)  # the unset `${VAR}` this error is about

    def location(self) -> str:
        """`file:line:column` (or as much of it as is known)."""
        loc = self.file
        if self.line is not None:
            loc += f":{self.line}"
            if self.column is not None:
                loc += f":{self.column}"
        return loc

    def __str__(self) -> str:
        where = f" ({self.path})" if self.path else ""
        return f"{self.location()}: {self.message}{where}"

    def to_json(self) -> dict[str, object]:
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "path": self.path or None,
            "server": self.server,
            "message": self.message,
        }


@dataclass(frozen=True)
class AuthConfig:
    """The `auth` block of a remote server (`type` is always "oauth")."""

    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    client_id_metadata_url: str | None = None
    redirect_uri: str | None = None
    authorization_server: str | None = None
    token_endpoint_auth_method: str | None = None
    scopes: tuple[str, ...] | None = None
    allow_dynamic_registration: bool = True

    def client_identity(self) -> tuple[object, ...]:
        """The fields that identify the OAuth client; a change invalidates registrations."""
        return (
            self.client_id,
            self.client_secret,
            self.client_id_metadata_url,
            self.authorization_server,
            self.redirect_uri,
            self.token_endpoint_auth_method,
        )


@dataclass(frozen=True)
class ServerConfig:
    """One entry of `mcpServers`.

    An entry that failed validation is still represented (so the UI can show
    it in `Error`), with `problems` set and the connection fields left empty.
    """

    id: str
    name: str
    transport: Transport | None
    enabled: bool = True
    command: str | None = None
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=lambda: EMPTY_MAP, repr=False)
    cwd: str | None = None
    url: str | None = field(default=None, repr=False)
    headers: Mapping[str, str] = field(default_factory=lambda: EMPTY_MAP, repr=False)
    auth: AuthConfig | None = None
    problems: tuple[ConfigIssue, ...] = ()
    line: int | None = field(default=None, compare=False)

    @property
    def valid(self) -> bool:
        return not self.problems

    @property
    def has_authorization_header(self) -> bool:
        """The user manages credentials: OAuth is skipped for this server."""
        return any(k.lower() == "authorization" for k in self.headers)

    def connection_key(self) -> tuple[object, ...]:
        """Everything that, when changed, needs a reconnect (`name` is cosmetic)."""
        return (
            self.transport,
            self.command,
            self.args,
            tuple(sorted(self.env.items())),
            self.cwd,
            self.url,
            tuple(sorted(self.headers.items())),
            self.auth,
        )


@dataclass(frozen=True)
class Preset:
    """One entry of the top-level `presets`: what a client using it may see.

    `servers` are offered whole (tools, resources, prompts); `tools` names
    single tools by their namespaced name (`github__create_issue`). A preset
    with `problems` offers nothing (a client asking for it is refused).
    """

    name: str
    servers: tuple[str, ...] = ()
    tools: tuple[str, ...] = ()
    problems: tuple[ConfigIssue, ...] = ()
    line: int | None = field(default=None, compare=False)

    @property
    def valid(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class EndpointConfig:
    """The top-level `endpoint`: the optional Streamable HTTP endpoint on 127.0.0.1 (`Config.endpoint`
    is None when it is absent, invalid or `"enabled": false`)."""

    port: int
    line: int | None = field(default=None, compare=False)


@dataclass(frozen=True)
class VariableUse:
    """One `${NAME}` lookup: which server used it and where the value came from (never the value).

    `origin` is "environment", "secret store", "default" or "missing".
    """

    name: str
    origin: str
    server: str | None = None


@dataclass(frozen=True)
class Config:
    """A whole `mcp.json`: settings plus servers in file order."""

    path: str
    servers: tuple[ServerConfig, ...] = ()
    authorization_timeout: float = DEFAULT_AUTHORIZATION_TIMEOUT
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    issues: tuple[ConfigIssue, ...] = ()  # every error and warning, servers' included
    presets: tuple[Preset, ...] = ()
    endpoint: EndpointConfig | None = None
    variables: tuple[VariableUse, ...] = field(default=(), compare=False)  # every `${NAME}` lookup, in order

    def missing_variables(self) -> tuple[str, ...]:
        """Names no source could supply (or that resolved to their default): the secret store may have them."""
        return tuple(dict.fromkeys(u.name for u in self.variables if u.origin in ("missing", "default")))

    def server(self, server_id: str) -> ServerConfig | None:
        for s in self.servers:
            if s.id == server_id:
                return s
        return None

    def preset(self, name: str) -> Preset | None:
        for p in self.presets:
            if p.name == name:
                return p
        return None

    @property
    def server_ids(self) -> tuple[str, ...]:
        return tuple(s.id for s in self.servers)

    @property
    def errors(self) -> tuple[ConfigIssue, ...]:
        return tuple(i for i in self.issues if i.severity == "error")

    @property
    def warnings(self) -> tuple[ConfigIssue, ...]:
        return tuple(i for i in self.issues if i.severity == "warning")
