"""Turn the text of `mcp.json` into a validated, expanded `Config`.

Two kinds of failure, on purpose:
- `ConfigFileError`: the file as a whole is unusable (bad JSON, wrong
  top-level shape). The caller keeps running its last good `Config`.
- `ConfigIssue`s inside the returned `Config`: one entry or one setting is
  wrong. That entry carries its problems (its server shows `Error`); every
  other entry loads normally.
Messages name the JSON path and never echo an expanded value.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Mapping
from urllib.parse import urlsplit

from .. import _redact
from ._expand import DEFAULT, ENVIRONMENT, MISSING, ExpansionError, Resolution, Sources, expand
from ._model import (
    DEFAULT_AUTHORIZATION_TIMEOUT,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_REQUEST_TIMEOUT,
    TOKEN_ENDPOINT_AUTH_METHODS,
    TRANSPORT_ALIASES,
    AuthConfig,
    Config,
    ConfigIssue,
    EndpointConfig,
    Preset,
    ServerConfig,
    Transport,
    VariableUse,
)
from ._spans import Path, SpanMap, check_limits

SERVER_KEYS = frozenset(
    {"name", "transport", "type", "command", "args", "env", "cwd", "url", "headers", "enabled", "auth"}
)
AUTH_KEYS = frozenset(
    {
        "type",
        "clientId",
        "clientSecret",
        "clientIdMetadataUrl",
        "redirectUri",
        "authorizationServer",
        "tokenEndpointAuthMethod",
        "scopes",
        "allowDynamicRegistration",
    }
)
_TIMEOUT_SETTINGS = {
    "authorizationTimeoutSeconds": DEFAULT_AUTHORIZATION_TIMEOUT,
    "requestTimeoutSeconds": DEFAULT_REQUEST_TIMEOUT,
    "connectTimeoutSeconds": DEFAULT_CONNECT_TIMEOUT,
}
TOP_LEVEL_KEYS = frozenset({"mcpServers", "$schema", "presets", "endpoint", *_TIMEOUT_SETTINGS})
ENDPOINT_KEYS = frozenset({"port", "enabled"})
PRESET_KEYS = frozenset({"servers", "tools", "description"})
_PRESET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
_MAX_TIMEOUT = 24 * 3600.0
# Standard variables that name the user's own folders and settings, not secrets: redacting
# `${HOME}` would turn every path in every message into `***/.config/…`.
PUBLIC_VARIABLES = frozenset({
    "HOME", "USER", "USERNAME", "LOGNAME", "PATH", "PWD", "SHELL", "LANG", "TMPDIR", "TEMP", "TMP",
    "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME", "XDG_RUNTIME_DIR",
    "APPDATA", "LOCALAPPDATA", "USERPROFILE",
})
TOOL_SEPARATOR = "__"
"""Between server id and tool name in the names clients see (`proxy._names.SEPARATOR` is this)."""
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")


class ConfigFileError(Exception):
    """The file cannot be used at all; `issue` says where and why."""

    def __init__(self, issue: ConfigIssue, *, transient: bool = False) -> None:
        super().__init__(str(issue))
        self.issue = issue
        self.transient = transient
        """The file may well be fine: reading it failed for lack of resources (EMFILE); try again later."""


def dotted(path: Path) -> str:
    """`("mcpServers", "a", "args", 0)` → `mcpServers.a.args[0]`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not part.isprintable():  # a key with a line break or control character stays on one line
            out += f"[{json.dumps(part)}]"
        else:
            out += ("." if out else "") + part
    return out


def parse_config(text: str, file: str, environ: Mapping[str, str] | Sources | None = None) -> Config:
    """Parse and validate a whole file. Raises `ConfigFileError` only for file-level problems.

    `environ` is the environment, or `Sources` (environment + secret store) for `${VAR}`.
    Every value substituted for a placeholder is registered for redaction.
    """
    env = os.environ if environ is None else environ
    data = load_json(text, file)
    spans = SpanMap(text)
    ctx = _Context(file, spans, env)
    if not isinstance(data, dict):
        raise ConfigFileError(ctx.issue((), f"the top level must be a JSON object, not {_kind(data)}"))
    servers_raw = data.get("mcpServers", {})
    if not isinstance(servers_raw, dict):
        raise ConfigFileError(ctx.issue(("mcpServers",), f"mcpServers must be an object, not {_kind(servers_raw)}"))

    for dup in spans.duplicates:
        earlier_line = spans.line_col(dup.earlier_key_start)[0]
        ctx.warn(dup.path, f"duplicate key {dup.path[-1]!r}: the later entry wins "
                           f"(the one at line {earlier_line} is ignored)")
    for key in spans.members(()):
        if key not in TOP_LEVEL_KEYS:
            hint = " (broxy-tray reads mcpServers)" if key == "servers" and "mcpServers" not in data else ""
            ctx.warn((key,), f"unknown setting {key!r} is ignored{hint}")
    timeouts = {key: ctx.timeout(data, key, default) for key, default in _TIMEOUT_SETTINGS.items()}

    servers = [_parse_server(ctx, sid, servers_raw[sid]) for sid in spans.members(("mcpServers",))]
    presets = _parse_presets(ctx, data, tuple(s.id for s in servers))
    endpoint = _parse_endpoint(ctx, data)
    return Config(
        path=file,
        servers=tuple(servers),
        authorization_timeout=timeouts["authorizationTimeoutSeconds"],
        request_timeout=timeouts["requestTimeoutSeconds"],
        connect_timeout=timeouts["connectTimeoutSeconds"],
        issues=tuple(ctx.issues),
        presets=presets,
        endpoint=endpoint,
        variables=tuple(ctx.uses),
    )


def load_json(text: str, file: str) -> Any:
    """`json.loads`, with every failure a located `ConfigFileError` (never RecursionError or ValueError)."""
    over = check_limits(text)
    if over is not None:
        offset, reason = over
        line = text.count("\n", 0, offset) + 1
        column = offset - (text.rfind("\n", 0, offset) + 1) + 1
        raise ConfigFileError(ConfigIssue(file=file, message=f"invalid JSON: {reason}", line=line, column=column))
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigFileError(
            ConfigIssue(file=file, message=f"invalid JSON: {e.msg}", line=e.lineno, column=e.colno)
        ) from None
    except (RecursionError, ValueError) as e:  # past check_limits: should not happen; still located
        what = "nested too deeply" if isinstance(e, RecursionError) else "a value Python cannot read"
        raise ConfigFileError(ConfigIssue(file=file, message=f"invalid JSON: {what}", line=1, column=1)) from None


def _parse_endpoint(ctx: "_Context", data: dict[str, Any]) -> EndpointConfig | None:
    """The optional top-level `endpoint`: `{"port": 3335}` (`"enabled": false` turns it off).

    Any error leaves the endpoint off (and says so); unknown keys are warnings.
    """
    if "endpoint" not in data:
        return None
    raw = data["endpoint"]
    base: Path = ("endpoint",)
    if not isinstance(raw, dict):
        ctx.issues.append(ctx.issue(base, f"endpoint must be an object, not {_kind(raw)}; the HTTP endpoint is off"))
        return None
    for key in ctx.spans.members(base):
        if key not in ENDPOINT_KEYS:
            ctx.warn(base + (key,), f"unknown key {key!r} is ignored")
    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        ctx.issues.append(ctx.issue(base + ("enabled",), f"enabled must be true or false, not {_kind(enabled)}; "
                                                          "the HTTP endpoint is off"))
        return None
    if "port" not in raw:
        ctx.issues.append(ctx.issue(base, "endpoint needs \"port\" (an integer from 1 to 65535); the HTTP endpoint is off",
                                    key=True))
        return None
    port = raw["port"]
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        what = _kind(port) if not isinstance(port, int) or isinstance(port, bool) else str(port)
        ctx.issues.append(ctx.issue(base + ("port",), f"port must be an integer from 1 to 65535, not {what}; "
                                                        "the HTTP endpoint is off"))
        return None
    if not enabled:
        return None
    span = ctx.spans.get(base)
    line = ctx.spans.line_col(span.key_start)[0] if span and span.key_start is not None else None
    return EndpointConfig(port=port, line=line)


def _parse_presets(ctx: "_Context", data: dict[str, Any], server_ids: tuple[str, ...]) -> tuple[Preset, ...]:
    """The optional top-level `presets`: `{"name": {"servers": [...], "tools": ["server__tool", ...]}}`.

    A wrong shape is an error of that preset (it then offers nothing); a name
    that matches no server is a warning (the server may be added later).
    """
    if "presets" not in data:
        return ()
    raw = data["presets"]
    if not isinstance(raw, dict):
        ctx.issues.append(ctx.issue(("presets",), f"presets must be an object, not {_kind(raw)}; presets are ignored"))
        return ()
    out: list[Preset] = []
    for name in ctx.spans.members(("presets",)):
        base: Path = ("presets", name)
        span = ctx.spans.get(base)
        line = ctx.spans.line_col(span.key_start)[0] if span and span.key_start is not None else None
        try:
            out.append(_build_preset(ctx, name, raw[name], base, server_ids, line))
        except _EntryError as e:
            issue = ctx.issue(e.path, e.message, key=e.key)
            ctx.issues.append(issue)
            out.append(Preset(name=name, problems=(issue,), line=line))
    return tuple(out)


def _build_preset(
    ctx: "_Context", name: str, raw: Any, base: Path, server_ids: tuple[str, ...], line: int | None
) -> Preset:
    if not _PRESET_NAME.match(name):
        raise _EntryError(
            base, f"preset name {name!r} must start with a letter or digit and use only letters, digits, '-', '_' "
                  "and '.' (at most 64 characters)", key=True,
        )
    if not isinstance(raw, dict):
        raise _EntryError(base, f"preset must be an object, not {_kind(raw)}")
    for key in ctx.spans.members(base):
        if key not in PRESET_KEYS:
            ctx.warn(base + (key,), f"unknown key {key!r} is ignored")
    r = _Reader(ctx, raw, base)
    r.string("description", expand_vars=False)
    servers = r.string_list("servers", expand_vars=False)
    tools = r.string_list("tools", expand_vars=False)
    for i, sid in enumerate(servers):
        if sid not in server_ids:
            ctx.warn(base + ("servers", i), f"preset {name!r} names server {sid!r}, which is not in mcpServers")
    for i, tool in enumerate(tools):
        if not tool:
            raise _EntryError(base + ("tools", i), "a tool name must not be empty")
        if not any(tool.startswith(f"{sid}{TOOL_SEPARATOR}") and len(tool) > len(sid) + 2 for sid in server_ids):
            ctx.warn(
                base + ("tools", i),
                f"preset {name!r} names tool {tool!r}, which is not <serverId>__<toolName> of a server in mcpServers",
            )
    if not servers and not tools:
        ctx.warn(base, f"preset {name!r} offers no servers and no tools")
    return Preset(name=name, servers=tuple(dict.fromkeys(servers)), tools=tuple(dict.fromkeys(tools)), line=line)


@dataclass
class _Context:
    file: str
    spans: SpanMap
    environ: Mapping[str, str] | Sources

    def __post_init__(self) -> None:
        self.issues: list[ConfigIssue] = []
        self.sources = self.environ if isinstance(self.environ, Sources) else Sources(self.environ)
        self.uses: list[VariableUse] = []

    def expand(self, value: str, path: Path) -> str:
        """Expand one string, noting which server used which variable from where (values: redaction only)."""
        trace: list[Resolution] = []
        try:
            return expand(value, self.sources, trace)
        finally:
            server = path[1] if len(path) >= 2 and path[0] == "mcpServers" and isinstance(path[1], str) else None
            self.uses.extend(VariableUse(r.name, r.origin, server) for r in trace)
            _redact.register(r.value for r in trace if r.value and r.origin not in (DEFAULT, MISSING)
                             and not (r.origin == ENVIRONMENT and r.name in PUBLIC_VARIABLES))

    def issue(self, path: Path, message: str, *, severity: str = "error", key: bool = False,
              variable: str | None = None) -> ConfigIssue:
        pos = self.spans.locate(path, prefer_key=key)
        server = path[1] if len(path) >= 2 and path[0] == "mcpServers" else None
        return ConfigIssue(
            file=self.file,
            message=message,
            path=dotted(path),
            line=pos[0] if pos else None,
            column=pos[1] if pos else None,
            server=server if isinstance(server, str) else None,
            severity=severity,
            variable=variable,
        )

    def warn(self, path: Path, message: str) -> None:
        self.issues.append(self.issue(path, message, severity="warning", key=True))

    def timeout(self, data: dict[str, Any], key: str, default: float) -> float:
        if key not in data:
            return default
        value = data[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= _MAX_TIMEOUT:
            self.issues.append(
                self.issue((key,), f"{key} must be a number of seconds between 0 and {int(_MAX_TIMEOUT)}; using {default:g}")
            )
            return default
        return float(value)


class _EntryError(Exception):
    """Raised inside one entry's validation; collected as that entry's problem."""

    def __init__(self, path: Path, message: str, key: bool = False, variable: str | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.message = message
        self.key = key
        self.variable = variable  # the missing `${VAR}` this error is about, if any


def _parse_server(ctx: _Context, sid: str, raw: Any) -> ServerConfig:
    base: Path = ("mcpServers", sid)
    span = ctx.spans.get(base)
    line = ctx.spans.line_col(span.key_start)[0] if span and span.key_start is not None else None
    name = sid
    enabled = True
    problems: list[ConfigIssue] = []

    def fail(path: Path, message: str, key: bool = False, variable: str | None = None) -> ServerConfig:
        issue = ctx.issue(path, message, key=key, variable=variable)
        ctx.issues.append(issue)
        problems.append(issue)
        return ServerConfig(id=sid, name=name, transport=_declared_transport(raw), enabled=enabled,
                            problems=tuple(problems), line=line)

    if not sid.strip():
        return fail(base, "server id must not be empty", key=True)
    if TOOL_SEPARATOR in sid:
        # tools are offered as <serverId>__<tool>: with "__" in ids, "x__a__b" could be server "x"'s
        # tool "a__b" or server "x__a"'s tool "b" (in presets and in clients alike)
        return fail(base, f"server id {sid!r} must not contain {TOOL_SEPARATOR!r}: tools are offered as "
                          f"<serverId>{TOOL_SEPARATOR}<toolName>, so the name would be ambiguous", key=True)
    if not isinstance(raw, dict):
        return fail(base, f"server entry must be an object, not {_kind(raw)}")
    # name and enabled first, so even a broken entry shows its name and state
    if isinstance(raw.get("name"), str) and raw["name"].strip():
        try:
            name = ctx.expand(raw["name"], base + ("name",))
        except ExpansionError:
            name = raw["name"]
    if isinstance(raw.get("enabled"), bool):
        enabled = raw["enabled"]
    try:
        return _build_server(ctx, sid, raw, base, line)
    except _EntryError as e:
        return fail(e.path, e.message, e.key, e.variable)


def _build_server(ctx: _Context, sid: str, raw: dict[str, Any], base: Path, line: int | None) -> ServerConfig:
    r = _Reader(ctx, raw, base)
    for key in ctx.spans.members(base):
        if key not in SERVER_KEYS:
            ctx.warn(base + (key,), f"unknown key {key!r} is ignored")
    name = r.string("name") or sid
    enabled = r.boolean("enabled", True)
    transport = _transport(r, raw, base)
    command = r.string("command")
    args = r.string_list("args")
    env = r.string_map("env")
    cwd = r.string("cwd")
    url = r.string("url")
    headers = r.string_map("headers")
    auth: AuthConfig | None = None

    for var in env:
        if not var or "=" in var or "\0" in var:
            raise _EntryError(base + ("env", var), f"{var!r} is not a valid environment variable name", key=True)
    if transport is Transport.STDIO:
        if not command:
            raise _EntryError(base, "a stdio server needs \"command\"", key=True)
        if "auth" in raw:
            raise _EntryError(base + ("auth",), "auth applies only to remote servers (http, sse, websocket), not stdio", key=True)
        for key in ("url", "headers"):
            if key in raw:
                ctx.warn(base + (key,), f"{key!r} is ignored for a stdio server")
    else:
        if not url:
            raise _EntryError(base, f"a {transport.value} server needs \"url\"", key=True)
        _check_server_url(url, transport, base + ("url",), expanded="$" in str(raw.get("url", "")))
        for hname, hvalue in headers.items():
            if not _HEADER_NAME.match(hname):
                raise _EntryError(base + ("headers", hname), f"header name {hname!r} is not a valid HTTP header name", key=True)
            if "\r" in hvalue or "\n" in hvalue:
                raise _EntryError(base + ("headers", hname), f"header {hname} must not contain line breaks")
        for key in ("command", "args", "env", "cwd"):
            if key in raw:
                ctx.warn(base + (key,), f"{key!r} is ignored for a {transport.value} server")
        if "auth" in raw:
            auth = _parse_auth(_Reader(ctx, _object(raw["auth"], base + ("auth",)), base + ("auth",)))
    return ServerConfig(
        id=sid,
        name=name,
        transport=transport,
        enabled=enabled,
        command=command,
        args=args,
        env=env,
        cwd=cwd,
        url=url,
        headers=headers,
        auth=auth,
        line=line,
    )


def _transport(r: "_Reader", raw: dict[str, Any], base: Path) -> Transport:
    given: dict[str, Transport] = {}
    for key in ("transport", "type"):
        value = r.string(key, expand_vars=False)
        if value is None:
            continue
        t = TRANSPORT_ALIASES.get(value.strip().lower())
        if t is None:
            choices = "stdio, http, streamable-http, sse, websocket, ws"
            raise _EntryError(base + (key,), f"unknown transport {value!r}; expected one of {choices}")
        given[key] = t
    if len(set(given.values())) > 1:
        raise _EntryError(base + ("type",), "\"transport\" and \"type\" disagree; keep one of them", key=True)
    if given:
        return next(iter(given.values()))
    if "command" in raw:
        return Transport.STDIO
    if "url" in raw:
        url = r.string("url") or ""
        return Transport.WEBSOCKET if urlsplit(url).scheme.lower() in ("ws", "wss") else Transport.HTTP
    raise _EntryError(base, "cannot tell how to reach this server: add \"command\" (stdio) or \"url\" (remote)", key=True)


def _declared_transport(raw: Any) -> Transport | None:
    """The transport a broken entry plainly asks for (None when it does not say): an unset `${VAR}`
    elsewhere in the entry should not hide that it is a stdio or remote server."""
    if not isinstance(raw, dict):
        return None
    given = {TRANSPORT_ALIASES.get(v.strip().lower()) for k in ("transport", "type") if isinstance(v := raw.get(k), str)}
    if given:
        return given.pop() if len(given) == 1 else None
    if "command" in raw:
        return Transport.STDIO
    if isinstance(raw.get("url"), str):
        return Transport.WEBSOCKET if urlsplit(raw["url"]).scheme.lower() in ("ws", "wss") else Transport.HTTP
    return None


def _check_server_url(url: str, transport: Transport, path: Path, expanded: bool = False) -> None:
    """`expanded`: the url came through `${VAR}`, so its parts are never echoed in a message."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise _EntryError(path, "url is not a valid URL") from None
    scheme = parts.scheme.lower()
    allowed = ("ws", "wss") if transport is Transport.WEBSOCKET else ("http", "https")
    if not scheme or not parts.hostname:
        raise _EntryError(path, f"url must be an absolute {allowed[0]}:// or {allowed[1]}:// URL")
    if scheme not in allowed:
        hint = ""
        if scheme in ("ws", "wss"):
            hint = "; use \"transport\": \"websocket\" for ws:// URLs"
        elif scheme in ("http", "https"):
            hint = "; use \"transport\": \"http\" or \"sse\" for http(s):// URLs"
        shown = "of the expanded url" if expanded else repr(scheme)
        raise _EntryError(path, f"url scheme {shown} does not fit transport {transport.value}{hint}")


def _parse_auth(r: "_Reader") -> AuthConfig:
    base = r.base
    for key in r.ctx.spans.members(base):
        if key not in AUTH_KEYS:
            r.ctx.warn(base + (key,), f"unknown key {key!r} is ignored")
    auth_type = r.string("type", expand_vars=False)
    if auth_type is not None and auth_type.strip().lower() != "oauth":
        raise _EntryError(base + ("type",), f"auth.type must be \"oauth\" (got {auth_type!r})")
    client_id = r.string("clientId")
    client_secret = r.string("clientSecret")
    if client_secret and not client_id:
        raise _EntryError(base + ("clientSecret",), "clientSecret needs clientId", key=True)
    metadata_url = r.string("clientIdMetadataUrl")
    if metadata_url is not None:
        p = _split(metadata_url, base + ("clientIdMetadataUrl",))
        if p.scheme.lower() != "https" or not p.hostname or p.path in ("", "/"):
            raise _EntryError(base + ("clientIdMetadataUrl",), "clientIdMetadataUrl must be an https:// URL with a path")
    redirect = r.string("redirectUri")
    if redirect is not None:
        _check_redirect_uri(redirect, base + ("redirectUri",))
    issuer = r.string("authorizationServer")
    if issuer is not None:
        p = _split(issuer, base + ("authorizationServer",))
        scheme = p.scheme.lower()
        if not p.hostname or not (scheme == "https" or (scheme == "http" and is_loopback_host(p.hostname))):
            raise _EntryError(
                base + ("authorizationServer",),
                "authorizationServer must be an https:// URL (http:// only for 127.0.0.1, ::1 or localhost)",
            )
    method = r.string("tokenEndpointAuthMethod")
    if method is not None and method not in TOKEN_ENDPOINT_AUTH_METHODS:
        raise _EntryError(
            base + ("tokenEndpointAuthMethod",),
            f"tokenEndpointAuthMethod must be one of {', '.join(TOKEN_ENDPOINT_AUTH_METHODS)} "
            f"(got {_unexpanded(r.raw['tokenEndpointAuthMethod'], method)})",
        )
    scopes: tuple[str, ...] | None = None
    if "scopes" in r.raw:
        scopes = r.string_list("scopes")
        for i, s in enumerate(scopes):
            if not s or any(c.isspace() for c in s):
                raise _EntryError(base + ("scopes", i), "each scope must be one non-empty word without spaces")
    return AuthConfig(
        client_id=client_id,
        client_secret=client_secret,
        client_id_metadata_url=metadata_url,
        redirect_uri=redirect,
        authorization_server=issuer,
        token_endpoint_auth_method=method,
        scopes=scopes,
        allow_dynamic_registration=r.boolean("allowDynamicRegistration", True),
    )


def _check_redirect_uri(uri: str, path: Path) -> None:
    p = _split(uri, path)
    scheme = p.scheme.lower()
    if scheme == "https" and p.hostname:
        return
    if scheme == "http" and p.hostname in ("127.0.0.1", "localhost", "::1"):
        if p.port is None:
            raise _EntryError(path, "redirectUri needs an explicit port, e.g. http://127.0.0.1:8080/callback")
        return
    raise _EntryError(
        path, "redirectUri must be http://127.0.0.1:PORT/…, http://localhost:PORT/… or an https:// URL"
    )


def is_loopback_host(host: str) -> bool:
    """True for localhost and loopback IP literals (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _split(url: str, path: Path):  # type: ignore[no-untyped-def]
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018
        return parts
    except ValueError:
        raise _EntryError(path, f"{path[-1]} is not a valid URL") from None


def _unexpanded(raw: str, value: str) -> str:
    """What a message may echo: the value, or the placeholder text when it came through `${VAR}`."""
    return repr(raw) if "$" in raw else repr(value)


def _object(value: Any, path: Path) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _EntryError(path, f"{path[-1]} must be an object, not {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


class _Reader:
    """Typed, expanded access to one JSON object's members, raising `_EntryError`."""

    def __init__(self, ctx: _Context, raw: dict[str, Any], base: Path) -> None:
        self.ctx = ctx
        self.raw = raw
        self.base = base

    def _expand(self, value: str, path: Path) -> str:
        try:
            return self.ctx.expand(value, path)
        except ExpansionError as e:
            raise _EntryError(path, str(e), variable=e.variable) from None

    def string(self, key: str, *, expand_vars: bool = True) -> str | None:
        if key not in self.raw:
            return None
        value = self.raw[key]
        path = self.base + (key,)
        if not isinstance(value, str):
            raise _EntryError(path, f"{key} must be a string, not {_kind(value)}")
        return self._expand(value, path) if expand_vars else value

    def boolean(self, key: str, default: bool) -> bool:
        if key not in self.raw:
            return default
        value = self.raw[key]
        if not isinstance(value, bool):
            raise _EntryError(self.base + (key,), f"{key} must be true or false, not {_kind(value)}")
        return value

    def string_list(self, key: str, *, expand_vars: bool = True) -> tuple[str, ...]:
        if key not in self.raw:
            return ()
        value = self.raw[key]
        path = self.base + (key,)
        if not isinstance(value, list):
            raise _EntryError(path, f"{key} must be an array of strings, not {_kind(value)}")
        out = []
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise _EntryError(path + (i,), f"{key}[{i}] must be a string, not {_kind(item)}")
            out.append(self._expand(item, path + (i,)) if expand_vars else item)
        return tuple(out)

    def string_map(self, key: str) -> Mapping[str, str]:
        if key not in self.raw:
            return MappingProxyType({})
        value = self.raw[key]
        path = self.base + (key,)
        if not isinstance(value, dict):
            raise _EntryError(path, f"{key} must be an object of strings, not {_kind(value)}")
        out = {}
        for k, item in value.items():
            if not isinstance(item, str):
                raise _EntryError(path + (k,), f"{key}.{k} must be a string, not {_kind(item)}")
            out[k] = self._expand(item, path + (k,))
        return MappingProxyType(out)
