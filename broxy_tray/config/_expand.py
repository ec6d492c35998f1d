"""`${VAR}` expansion in config strings.

Supported: `${VAR}`, `${VAR:-default}` (default used when VAR is unset or
empty, as in POSIX shells), and `$${` for a literal `${`. A lone `$` or
`$NAME` without braces is left as it is. Errors name the variable, never a
value, because expanded strings may be secrets.
"""

from __future__ import annotations

import re
from typing import Mapping

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class ExpansionError(ValueError):
    """A placeholder that cannot be expanded; the message is safe to show."""

    def __init__(self, message: str, variable: str | None = None) -> None:
        super().__init__(message)
        self.variable = variable


def expand(value: str, environ: Mapping[str, str]) -> str:
    """Return `value` with every placeholder replaced from `environ`."""
    if "$" not in value:
        return value
    out: list[str] = []
    i, n = 0, len(value)
    while i < n:
        j = value.find("$", i)
        if j < 0:
            out.append(value[i:])
            break
        out.append(value[i:j])
        if value.startswith("$${", j):
            out.append("${")
            i = j + 3
        elif value.startswith("${", j):
            close = value.find("}", j + 2)
            if close < 0:
                raise ExpansionError("unterminated ${ placeholder (add a closing } or write $${ for a literal ${)")
            out.append(_substitute(value[j + 2 : close], environ))
            i = close + 1
        else:
            out.append("$")
            i = j + 1
    return "".join(out)


def _substitute(body: str, environ: Mapping[str, str]) -> str:
    name, sep, default = body.partition(":-")
    if not _NAME.match(name):
        shown = name if len(name) <= 40 else name[:40] + "…"
        raise ExpansionError(f"invalid variable name {shown!r} in ${{…}} placeholder")
    current = environ.get(name)
    if sep:
        return current if current else default
    if current is None:
        raise ExpansionError(f"environment variable {name} is not set", variable=name)
    return current
