"""Minimal edits of a JSON text: add a member, remove a member, read a member's raw text.

Shared by the `enabled` writer, `broxy-tray import` (new servers in mcp.json)
and the client hand-over (other clients' config files). Each function takes
the text and returns new text in which only the edited member changed: the
file's indentation, line endings, key separator and neighbouring members are
copied, never re-serialised.

Editors such as VS Code keep JSON with comments and trailing commas (JSONC).
`blank_jsonc` turns those into spaces of the same length, so the scanner's
offsets stay valid for the original text and edits land in the original,
comments kept.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ._spans import _STRING_RE, Path, SpanMap

_COMMENT_RE = re.compile(r'"(?:[^"\\]|\\.)*"|//[^\n]*|/\*.*?\*/', re.DOTALL)
_TRAILING_COMMA_RE = re.compile(r'"(?:[^"\\]|\\.)*"|,(?=\s*[\]}])', re.DOTALL)


def blank_jsonc(text: str) -> str:
    """`text` with comments and trailing commas replaced by spaces (same length; newlines kept)."""

    def blank(m: re.Match[str]) -> str:
        s = m.group()
        if s.startswith('"'):
            return s
        return re.sub(r"[^\n]", " ", s)

    if "/" not in text and "," not in text:
        return text
    return _TRAILING_COMMA_RE.sub(blank, _COMMENT_RE.sub(blank, text))


def newline_of(text: str) -> str:
    return "\r\n" if "\r\n" in text else "\n"


def indent_unit(text: str) -> str:
    """The file's indentation step: the shortest leading whitespace of an indented line (default two spaces)."""
    best: str | None = None
    for m in re.finditer(r"\n([ \t]+)\S", text):
        ws = m.group(1)
        if best is None or len(ws) < len(best):
            best = ws
    if best is None:
        return "  "
    return "\t" if "\t" in best else best


def render(value: Any, *, indent: str | None, unit: str, newline: str) -> str:
    """JSON text for `value`: one line when `indent` is None, else objects one member a line (as people
    write them: arrays of plain values stay on one line), continuing at `indent`."""
    if indent is None or not _nested(value):
        return json.dumps(value, ensure_ascii=False)
    inner = indent + unit
    if isinstance(value, dict):
        parts = [f"{json.dumps(k, ensure_ascii=False)}: {render(v, indent=inner, unit=unit, newline=newline)}"
                 for k, v in value.items()]
        open_, close = "{", "}"
    else:
        parts = [render(v, indent=inner, unit=unit, newline=newline) for v in value]
        open_, close = "[", "]"
    body = f",{newline}{inner}".join(parts)
    return f"{open_}{newline}{inner}{body}{newline}{indent}{close}"


def _nested(value: Any) -> bool:
    """Worth spreading over lines: a non-empty object, or an array holding objects or arrays."""
    if isinstance(value, dict):
        return bool(value)
    if isinstance(value, list):
        return any(isinstance(v, (dict, list)) for v in value)
    return False


def _line_indent(text: str, offset: int) -> tuple[int, str]:
    line_start = text.rfind("\n", 0, offset) + 1
    m = re.match(r"[ \t]*", text[line_start:offset])
    return line_start, m.group() if m else ""


def insert_member(text: str, spans: SpanMap, base: Path, key: str, value: Any, *, raw: str | None = None) -> str:
    """Add `"key": value` as the last member of the object at `base` (which must exist).

    `raw`, when given, is inserted verbatim as the value's text (used to put back a member exactly as it was).
    """
    obj = spans.get(base)
    assert obj is not None and text[obj.start] == "{"
    newline = newline_of(text)
    unit = indent_unit(text)
    key_text = json.dumps(key, ensure_ascii=False)
    members = spans.members(base)
    if not members:
        _, outer = _line_indent(text, obj.start)
        multi_line = "\n" in text and raw is None and _nested(value)
        if raw is not None and "\n" in raw:
            multi_line = True
        if not multi_line:
            value_text = raw if raw is not None else render(value, indent=None, unit=unit, newline=newline)
            return text[: obj.start + 1] + f"{key_text}: {value_text}" + text[obj.end - 1:]
        inner = outer + unit
        value_text = raw if raw is not None else render(value, indent=inner, unit=unit, newline=newline)
        return (text[: obj.start + 1] + f"{newline}{inner}{key_text}: {value_text}{newline}{outer}}}"
                + text[obj.end:])
    last = spans.get(base + (members[-1],))
    assert last is not None and last.key_start is not None
    key_literal = _STRING_RE.match(text, last.key_start)
    assert key_literal is not None
    separator = text[key_literal.end(): last.start]  # e.g. ": " or ":" — copy the user's style
    line_start, indent = _line_indent(text, last.key_start)
    if line_start > obj.start:  # the last member starts its own line: keep that layout
        if text[line_start: last.key_start].strip():  # something else precedes it on its line; align anyway
            indent = " " * (last.key_start - line_start)
        value_text = raw if raw is not None else render(value, indent=indent, unit=unit, newline=newline)
        addition = f",{newline}{indent}{key_text}{separator}{value_text}"
    else:
        value_text = raw if raw is not None else render(value, indent=None, unit=unit, newline=newline)
        addition = f", {key_text}{separator}{value_text}"
    return text[: last.end] + addition + text[last.end:]


def remove_member(text: str, spans: SpanMap, base: Path, key: str) -> str:
    """Remove the member `key` of the object at `base`, with the comma that joined it to a neighbour."""
    members = spans.members(base)
    i = members.index(key)
    me = spans.get(base + (key,))
    assert me is not None and me.key_start is not None
    if i + 1 < len(members):
        nxt = spans.get(base + (members[i + 1],))
        assert nxt is not None and nxt.key_start is not None
        return text[: me.key_start] + text[nxt.key_start:]
    if i > 0:
        prev = spans.get(base + (members[i - 1],))
        assert prev is not None
        return text[: prev.end] + text[me.end:]
    obj = spans.get(base)
    assert obj is not None
    return text[: obj.start + 1] + text[obj.end - 1:]


def member_raw(text: str, spans: SpanMap, path: Path) -> str | None:
    """The value text of the member at `path`, exactly as written."""
    span = spans.get(path)
    return None if span is None else text[span.start: span.end]
