"""Which mapped servers become new `mcp.json` entries, under which ids, and the table that says so.

Pure: the plan is computed from the mapped entries and the servers already in
`mcp.json`, so the writer can recompute it on the newest text if the user
saves while we write (ids then never clash with what they just added).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from ._locations import CLIENT_NAMES
from ._map import Mapped, Secret, env_name, is_broxy_itself, loose_key

ADD, SKIP = "add", "skip"
_PLACEHOLDER_RE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)")


@dataclass(frozen=True)
class Row:
    source: str
    name: str
    id: str  # "" when not added
    transport: str
    mapped: str
    skipped: str
    action: str  # ADD or SKIP


@dataclass
class Plan:
    rows: list[Row] = field(default_factory=list)
    additions: dict[str, dict[str, Any]] = field(default_factory=dict)
    secrets: list[Secret] = field(default_factory=list)  # final names; values only for the secret store
    prompts: list[tuple[str, str]] = field(default_factory=list)  # (NAME, why): values no file holds

    @property
    def clients(self) -> list[str]:
        """Display names of the clients contributing new servers, in first-seen order."""
        names: list[str] = []
        for r in self.rows:
            if r.action == ADD:
                client = r.source.split(" (")[0]
                if client not in names:
                    names.append(client)
        return names


def server_id(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "server"


def plan_import(mapped: list[Mapped], existing: dict[str, Any]) -> Plan:
    """`existing`: the `mcpServers` object of the current mcp.json (raw, placeholders unexpanded)."""
    plan = Plan()
    known = {loose_key(e): sid for sid, e in existing.items() if isinstance(e, dict)}
    used_ids = set(existing)
    by_fingerprint: dict[str, str] = {}
    # NAME -> digest of its value; names mcp.json already uses belong to someone else's value
    secret_owner: dict[str, str] = {m.group(1): "in use" for m in _PLACEHOLDER_RE.finditer(json.dumps(existing))}
    for m in mapped:
        source = m.raw.scope
        name = m.raw.name
        skipped = "; ".join(m.skipped)

        def skip(reason: str) -> None:
            plan.rows.append(Row(source, name, "", m.transport, "", "; ".join(filter(None, [reason, skipped])), SKIP))

        if m.entry is None:
            skip("")
            continue
        if is_broxy_itself(m.entry):
            skip("this is broxy-tray itself")
            continue
        if m.fingerprint in by_fingerprint:
            skip(f"same server as {by_fingerprint[m.fingerprint]!r} above")
            continue
        if m.loose_key in known:
            skip(f"already in mcp.json as {known[m.loose_key]!r}")
            by_fingerprint[m.fingerprint] = known[m.loose_key]
            continue
        sid = _unique_id(server_id(name), m.raw.source.client, used_ids)
        used_ids.add(sid)
        by_fingerprint[m.fingerprint] = sid
        known[m.loose_key] = sid
        entry = _deep_copy(m.entry)
        notes = list(m.mapped)
        for s in m.secrets:
            final = _secret_name(sid, s, secret_owner)
            section, key = s.where.split(".", 1)
            entry[section][key] = entry[section][key].replace("${" + s.name + "}", "${" + final + "}")
            plan.secrets.append(Secret(final, s.value, s.where))
            notes.append(f"{s.where} → ${{{final}}} (secret)")
        for p in m.prompts:
            if p not in plan.prompts:
                plan.prompts.append(p)
        plan.additions[sid] = entry
        plan.rows.append(Row(source, name, sid, m.transport, ", ".join(notes), skipped, ADD))
    return plan


def _unique_id(base: str, client: str, used: set[str]) -> str:
    if base not in used:
        return base
    candidate = f"{base}-{client}"
    n = 2
    while candidate in used:
        candidate = f"{base}-{client}-{n}"
        n += 1
    return candidate


def _secret_name(sid: str, s: Secret, owner: dict[str, str]) -> str:
    section, key = s.where.split(".", 1)
    digest = hashlib.sha256(s.value.encode()).hexdigest()
    if section == "headers":
        wanted = f"{env_name(sid)}_{'TOKEN' if key.upper() == 'AUTHORIZATION' else env_name(key)}"
    else:
        wanted = env_name(key)
    candidates = [wanted, f"{env_name(sid)}_{env_name(key)}"]
    n = 2
    while True:
        for c in candidates:
            if owner.get(c, digest) == digest:
                owner[c] = digest
                return c
        candidates = [f"{env_name(sid)}_{env_name(key)}_{n}"]
        n += 1


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


def format_table(plan: Plan) -> str:
    """SOURCE | NAME | ID | TRANSPORT | MAPPED | SKIPPED — plain text; no value of any variable appears."""
    header = ("SOURCE", "NAME", "ID", "TRANSPORT", "MAPPED", "SKIPPED")
    rows = [header] + [(r.source, r.name, r.id or "—", r.transport or "—", r.mapped or "—", r.skipped or "—")
                       for r in plan.rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    lines = []
    for row in rows:
        cells = [row[i].ljust(widths[i]) for i in range(len(header) - 1)] + [row[-1]]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def client_display(client: str) -> str:
    return CLIENT_NAMES.get(client, client)
