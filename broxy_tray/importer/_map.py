"""One client entry → one broxy-tray `mcpServers` entry, and what could not be carried over.

Variables are rewritten into broxy-tray's `${VAR}` syntax (`${env:VAR}` from
VS Code / Cursor / Windsurf, `$VAR` from Gemini CLI; a literal `${` from a
client that does not expand becomes `$${`). A literal credential in `env` or
`headers` — an `Authorization` header, a name containing TOKEN, KEY, SECRET or
PASSWORD — is replaced by a `${NAME}` placeholder and handed back separately
(`Mapped.secrets`), so only the secret store ever sees the value.
"""

from __future__ import annotations

import hashlib
import ntpath
import posixpath
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._locations import DIALECTS
from ._read import RawServer

_CREDENTIAL_WORDS = ("TOKEN", "KEY", "SECRET", "PASSWORD")
_VAR_RE = re.compile(r"\$\{([^}]*)\}")
_GEMINI_BARE_RE = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
_REF_RE = re.compile(r"(?<!\$)\$\{")  # a variable reference (not an escaped `$${`)

# keys each client may carry that broxy-tray has no use for: reported as skipped, never an error
_IGNORED = {
    "timeout": "no per-server timeout (requestTimeoutSeconds is global)",
    "startup_timeout_sec": "no per-server timeout (connectTimeoutSeconds is global)",
    "startup_timeout_ms": "no per-server timeout",
    "tool_timeout_sec": "no per-server timeout (requestTimeoutSeconds is global)",
    "trust": "no tool-confirmation setting",
    "includeTools": "tool filters live in presets",
    "excludeTools": "tool filters live in presets",
    "enabled_tools": "tool filters live in presets",
    "disabled_tools": "tool filters live in presets",
    "alwaysAllow": "no tool-confirmation setting",
    "autoApprove": "no tool-confirmation setting",
    "envFile": "env files are not read; copy the variables into env",
    "env_file": "env files are not read",
    "oauth": "broxy-tray discovers OAuth itself",
    "auth": "broxy-tray discovers OAuth itself",
    "description": "not used",
    "dev": "not used",
    "gallery": "not used",
    "version": "not used",
}


@dataclass(frozen=True)
class Secret:
    name: str
    value: str
    where: str  # "env.GITHUB_TOKEN" or "headers.Authorization" (never the value)


@dataclass
class Mapped:
    raw: RawServer
    entry: dict[str, Any] | None  # None: nothing usable (reason in `skipped`)
    transport: str = ""
    mapped: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    secrets: list[Secret] = field(default_factory=list)
    prompts: list[tuple[str, str]] = field(default_factory=list)  # (NAME, why) values the client prompted for
    fingerprint: str = ""  # same server in several clients ⇔ same fingerprint (values hashed, never kept)
    loose_key: tuple[Any, ...] = ()  # matches an entry already in mcp.json


def looks_like_credential(name: str, *, header: bool = False) -> bool:
    upper = name.upper()
    if header and upper == "AUTHORIZATION":
        return True
    return any(w in upper for w in _CREDENTIAL_WORDS)


def env_name(text: str) -> str:
    """`text` as an environment-variable name: upper case, A–Z 0–9 _."""
    name = re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_").upper() or "SECRET"
    return f"_{name}" if name[0].isdigit() else name


def translate(value: str, dialect: str, *, project: Path | None, prompts: list[tuple[str, str]],
              problems: list[str], where: str, windows: bool = False) -> str:
    """A client's string in broxy-tray's `${VAR}` syntax."""
    if dialect == "literal":
        return value.replace("${", "$${")
    if dialect == "shell":
        return value
    if dialect == "gemini":
        value = _GEMINI_BARE_RE.sub(lambda m: "${" + m.group(1) + "}", value)
        return value

    def sub(m: re.Match[str]) -> str:
        inner = m.group(1)
        if inner.startswith("env:"):
            return "${" + inner[4:] + "}"
        if inner == "userHome":
            return "${USERPROFILE}" if windows else "${HOME}"
        if inner in ("workspaceFolder", "workspaceRoot"):
            if project is None:
                problems.append(f"{where}: ${{{inner}}} needs --project")
                return m.group(0).replace("${", "$${")
            return str(project)
        if inner == "workspaceFolderBasename" and project is not None:
            return project.name
        if inner == "pathSeparator" or inner == "/":
            return "\\" if windows else "/"
        if inner.startswith("input:"):
            name = env_name(inner[6:])
            prompts.append((name, f"{where} was prompted by the client (input {inner[6:]!r})"))
            return "${" + name + "}"
        problems.append(f"{where}: ${{{inner}}} has no equivalent")
        return m.group(0).replace("${", "$${")

    return _VAR_RE.sub(sub, value)


def map_server(raw: RawServer, *, keep_literals: bool, windows: bool = False) -> Mapped:
    """Map one entry; `secrets` get placeholder names relative to the entry (the planner may rename them)."""
    src = raw.raw
    client = raw.source.client
    dialect = DIALECTS[client]
    out = Mapped(raw=raw, entry=None)
    project = raw.source.project
    problems: list[str] = []

    def tr(value: str, where: str) -> str:
        return translate(value, dialect, project=project, prompts=out.prompts, problems=problems, where=where,
                         windows=windows)

    kind = (src.get("type") or src.get("transport") or "").strip().lower()
    url_key = next((k for k in ("url", "serverUrl", "httpUrl") if isinstance(src.get(k), str)), None)
    command = src.get("command")
    if command is not None and not command.strip():
        command = None
    if command is None and url_key is None:
        out.skipped.append("no command or url: nothing to run")
        return out
    if command is not None and url_key is not None:
        out.skipped.append(f"url ignored: the entry also has a command ({url_key})")
        url_key = None
    entry: dict[str, Any] = {}
    used = {"type", "transport", "command", "args", "env", "cwd", "url", "serverUrl", "httpUrl", "headers",
            "http_headers", "env_http_headers", "bearer_token_env_var", "env_vars", "disabled", "enabled", "name"}
    if command is not None:
        if kind and kind != "stdio":
            out.skipped.append(f"type {kind!r} ignored: the entry has a command")
        out.transport = "stdio"
        entry["transport"] = "stdio"
        entry["command"] = tr(command, "command")
        out.mapped.append("command")
        if src.get("args"):
            entry["args"] = [tr(a, f"args[{i}]") for i, a in enumerate(src["args"])]
            out.mapped.append("args")
        env: dict[str, str] = {}
        for k, v in (src.get("env") or {}).items():
            env[k] = _value(out, "env", k, v, tr, keep_literals=keep_literals, header=False)
        for k in src.get("env_vars") or []:  # Codex: forward these from the environment
            env.setdefault(k, "${" + k + "}")
        if env:
            entry["env"] = env
            out.mapped.append("env")
        if isinstance(src.get("cwd"), str) and src["cwd"]:
            cwd = tr(src["cwd"], "cwd")
            if project is not None and raw.source.scope == "project" and not _is_absolute(cwd):
                cwd = str(project / cwd)
            entry["cwd"] = cwd
            out.mapped.append("cwd")
        for k in ("headers", "http_headers", "env_http_headers", "bearer_token_env_var"):
            if k in src:
                out.skipped.append(f"{k}: only for remote servers")
    else:
        assert url_key is not None
        url = tr(src[url_key], url_key)
        if kind in ("sse",) or (client == "gemini" and url_key == "url" and not kind):
            transport = "sse"
        elif kind in ("ws", "websocket") or url.lower().startswith(("ws://", "wss://")):
            transport = "websocket"
        else:
            if kind and kind not in ("http", "streamable-http", "streamablehttp", "streamable_http"):
                out.skipped.append(f"type {kind!r} unknown; treated as http")
            transport = "http"
        out.transport = transport
        entry["transport"] = transport
        entry["url"] = url
        out.mapped.append("url")
        headers: dict[str, str] = {}
        for k in ("headers", "http_headers"):
            for h, v in (src.get(k) or {}).items():
                headers[h] = _value(out, "headers", h, v, tr, keep_literals=keep_literals, header=True)
        for h, var in (src.get("env_http_headers") or {}).items():
            headers[h] = "${" + var + "}"
        if src.get("bearer_token_env_var"):
            headers["Authorization"] = "Bearer ${" + src["bearer_token_env_var"] + "}"
        if headers:
            entry["headers"] = headers
            out.mapped.append("headers")
        for k in ("args", "env", "env_vars", "cwd"):
            if src.get(k):
                out.skipped.append(f"{k}: only for local (stdio) servers")
    if src.get("disabled") is True or src.get("enabled") is False or raw.disabled:
        entry["enabled"] = False
        out.mapped.append("disabled")
    for k in src:
        if k not in used:
            out.skipped.append(f"{k}: {_IGNORED.get(k, 'no equivalent')}")
    out.skipped.extend(problems)
    out.entry = entry
    out.fingerprint = _fingerprint(entry, out.secrets)
    out.loose_key = loose_key(entry)
    return out


def _value(out: Mapped, section: str, key: str, value: str, tr: Any, *, keep_literals: bool, header: bool) -> str:
    where = f"{section}.{key}"
    translated = tr(value, where)
    if keep_literals or not looks_like_credential(key, header=header) or _REF_RE.search(translated) or not value.strip():
        return translated
    prefix = ""
    secret = value
    if header and key.upper() == "AUTHORIZATION":
        scheme, _, rest = value.partition(" ")
        if rest.strip() and scheme.isalpha():
            prefix, secret = scheme + " ", rest.strip()
    name = env_name(key)  # provisional: the planner makes it unique (and server-specific for headers)
    out.secrets.append(Secret(name, secret, where))
    return prefix + "${" + name + "}"


def _is_absolute(p: str) -> bool:
    return posixpath.isabs(p) or ntpath.isabs(p) or p.startswith("${")


def _fingerprint(entry: dict[str, Any], secrets: list[Secret]) -> str:
    """Same command, args and env (values included, as translated) — or the same URL — means the same server."""
    h = hashlib.sha256()
    if "url" in entry:
        h.update(b"url\0" + _norm_url(entry["url"]).encode())
        return h.hexdigest()
    literal = {s.where: s.value for s in secrets}  # a credential counts by its value, not its placeholder
    h.update(b"cmd\0" + repr((entry.get("command"), entry.get("args", []))).encode())
    for k, v in sorted((entry.get("env") or {}).items()):
        h.update(f"\0{k}=".encode() + literal.get(f"env.{k}", v).encode())
    return h.hexdigest()


def _norm_url(url: str) -> str:
    url = url.strip()
    scheme, sep, rest = url.partition("://")
    host, slash, path = rest.partition("/")
    return f"{scheme.lower()}{sep}{host.lower()}{slash}{path}".rstrip("/")


def loose_key(entry: dict[str, Any]) -> tuple[Any, ...]:
    """What identifies a server in a written mcp.json (placeholders' values unknown): command, args, env names."""
    if isinstance(entry.get("url"), str):
        return ("url", _norm_url(entry["url"]))
    env = entry.get("env") if isinstance(entry.get("env"), dict) else {}
    plain = tuple(sorted((k, v) for k, v in env.items() if isinstance(v, str) and "${" not in v))
    return ("cmd", entry.get("command"), tuple(entry.get("args") or ()), tuple(sorted(env)), plain)


def is_broxy_itself(entry: dict[str, Any]) -> bool:
    """An entry that runs `broxy-tray stdio` (a client already handed over)."""
    command = str(entry.get("command") or "")
    args = [str(a) for a in entry.get("args") or []]
    base = posixpath.basename(command.replace("\\", "/")).lower()
    if base.startswith("broxy-tray") and "stdio" in args:
        return True
    return "broxy_tray" in args and "stdio" in args
