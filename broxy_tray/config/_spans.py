"""Where each value sits in a JSON text.

The standard `json` module parses but forgets positions. We need them twice:
to point error messages at a line and column, and to rewrite one value of
the user's file without touching anything else. This is a small scanner over
text that `json.loads` has already accepted, so it does not validate; it
records, for every value, its key's offset and its value's [start, end).
Duplicate keys resolve like `json.loads` does: the last one wins; each one is
recorded in `SpanMap.duplicates` so the parser can warn about the lost entry.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

Path = tuple[str | int, ...]

_WS_RE = re.compile(r"[ \t\r\n]*")
_STRING_RE = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_SCALAR_RE = re.compile(r"[^,\]\}\s]*")

MAX_DEPTH = 100
"""Deeper nesting is refused before parsing: the parsers recurse, and no real config nests past ~6."""
MAX_NUMBER_LENGTH = 1000
"""Longer number literals are refused before parsing (`int()` refuses more than 4,300 digits)."""
_LIMIT_TOKEN_RE = re.compile(r'"(?:[^"\\]|\\.)*"?|[\[{]|[\]}]|[-+0-9.eE]{%d,}' % (MAX_NUMBER_LENGTH + 1), re.DOTALL)


def check_limits(text: str) -> tuple[int, str] | None:
    """(offset, reason) of the first bracket nested deeper than `MAX_DEPTH` or the first over-long
    number, outside strings; None when the text stays within both limits.

    Runs before `json.loads`, which would raise RecursionError or ValueError without a position.
    """
    depth = 0
    for m in _LIMIT_TOKEN_RE.finditer(text):
        ch = text[m.start()]
        if ch in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return m.start(), f"nested deeper than {MAX_DEPTH} levels"
        elif ch in "]}":
            depth = max(0, depth - 1)
        elif ch != '"':
            return m.start(), f"a number longer than {MAX_NUMBER_LENGTH} characters"
    return None


@dataclass(frozen=True)
class Span:
    """Offsets into the text: the member's key (objects only) and its value."""

    key_start: int | None
    start: int
    end: int


@dataclass(frozen=True)
class Duplicate:
    """A key given twice in one object: `json.loads` keeps the later value, the earlier is lost."""

    path: Path
    earlier_key_start: int
    later_key_start: int


class SpanMap:
    """Map from JSON paths to spans, plus offset → (line, column)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.spans: dict[Path, Span] = {}
        self.children: dict[Path, dict[str, None]] = {}  # object path -> its keys, ordered
        self.duplicates: list[Duplicate] = []  # in text order; none inside a value that was itself overridden
        self._line_starts = [0]
        nl = text.find("\n")
        while nl != -1:
            self._line_starts.append(nl + 1)
            nl = text.find("\n", nl + 1)
        _Scanner(text, self.spans, self.children, self.duplicates).scan()

    def get(self, path: Path) -> Span | None:
        return self.spans.get(path)

    def line_col(self, offset: int) -> tuple[int, int]:
        """1-based line and column of an offset."""
        lo, hi = 0, len(self._line_starts) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self._line_starts[mid] <= offset:
                lo = mid
            else:
                hi = mid - 1
        return lo + 1, offset - self._line_starts[lo] + 1

    def locate(self, path: Path, *, prefer_key: bool = False) -> tuple[int, int] | None:
        """Line/column of the value at `path` (or its key), else of the nearest parent."""
        p = path
        while True:
            span = self.spans.get(p)
            if span is not None:
                off = span.key_start if (prefer_key and span.key_start is not None) else span.start
                return self.line_col(off)
            if not p:
                return None
            p = p[:-1]

    def members(self, path: Path) -> list[str]:
        """Keys of the object at `path`, in text order (a duplicate counts at its last position)."""
        return list(self.children.get(path, ()))


class _Scanner:
    def __init__(
        self, text: str, out: dict[Path, Span], children: dict[Path, dict[str, None]], duplicates: list[Duplicate]
    ) -> None:
        self.t = text
        self.out = out
        self.children = children
        self.duplicates = duplicates
        self.i = 0

    def scan(self) -> None:
        self._ws()
        self._value((), None)

    def _ws(self) -> None:
        self.i = _WS_RE.match(self.t, self.i).end()  # type: ignore[union-attr]

    def _value(self, path: Path, key_start: int | None) -> None:
        start = self.i
        ch = self.t[self.i]
        if ch == "{":
            self._object(path)
        elif ch == "[":
            self._array(path)
        elif ch == '"':
            self._string()
        else:
            self._scalar()
        self.out[path] = Span(key_start, start, self.i)

    def _object(self, path: Path) -> None:
        keys: dict[str, None] = {}
        self.children[path] = keys
        self.i += 1
        self._ws()
        if self.t[self.i] == "}":
            self.i += 1
            return
        while True:
            self._ws()
            key_start = self.i
            key = self._string()
            self._ws()
            self.i += 1  # ':'
            self._ws()
            child = path + (key,)
            if key in keys:  # duplicate key: the last one wins, as in json.loads
                del keys[key]
                n = len(child)
                earlier = self.out[child].key_start
                self.duplicates[:] = [d for d in self.duplicates if d.path[:n] != child]
                self.duplicates.append(Duplicate(child, earlier if earlier is not None else 0, key_start))
                for stale in [p for p in self.out if p[:n] == child]:
                    del self.out[stale]
                for stale in [p for p in self.children if p[:n] == child]:
                    del self.children[stale]
            keys[key] = None
            self._value(child, key_start)
            self._ws()
            if self.t[self.i] == ",":
                self.i += 1
                continue
            self.i += 1  # '}'
            return

    def _array(self, path: Path) -> None:
        self.i += 1
        self._ws()
        if self.t[self.i] == "]":
            self.i += 1
            return
        idx = 0
        while True:
            self._ws()
            self._value(path + (idx,), None)
            idx += 1
            self._ws()
            if self.t[self.i] == ",":
                self.i += 1
                continue
            self.i += 1  # ']'
            return

    def _string(self) -> str:
        """Consume a string literal and return its decoded value."""
        m = _STRING_RE.match(self.t, self.i)
        assert m is not None, "scanner runs only on text json.loads accepted"
        self.i = m.end()
        raw = m.group()
        return raw[1:-1] if "\\" not in raw else json.loads(raw)

    def _scalar(self) -> None:
        self.i = _SCALAR_RE.match(self.t, self.i).end()  # type: ignore[union-attr]
