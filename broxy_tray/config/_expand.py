"""`${VAR}` expansion in config strings.

Supported: `${VAR}`, `${VAR:-default}` (default used when VAR is unset or
empty, as in POSIX shells; the default may itself hold placeholders, as in
`${A:-${B}}`), and `$${` for a literal `${`. A lone `$` or `$NAME` without
braces is left as it is. Errors name the variable, never a value, because
expanded strings may be secrets.

One lookup order for `${NAME}`: the process environment, then broxy-tray's
secret store (`Sources.secrets`, values read from the OS keyring beforehand),
then `:-default`, else an error that ends with how to fix it. Every lookup
is traced (`Resolution`: where the value came from, never shown) so that
`config check` can tell the origin and the caller can register the values
for redaction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Mapping

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

ENVIRONMENT = "environment"
SECRET_STORE = "secret store"
DEFAULT = "default"
MISSING = "missing"


class ExpansionError(ValueError):
    """A placeholder that cannot be expanded; the message is safe to show."""

    def __init__(self, message: str, variable: str | None = None) -> None:
        super().__init__(message)
        self.variable = variable


@dataclass(frozen=True)
class Resolution:
    """Where one `${NAME}` got its value: `origin` is environment / secret store / default / missing."""

    name: str
    origin: str
    value: str | None = field(default=None, repr=False, compare=False)  # for redaction only, never shown


@dataclass
class Sources:
    """The environment, the secret store's values, and why the store could not be read (if so)."""

    environ: Mapping[str, str]
    secrets: Mapping[str, str] = field(default_factory=dict, repr=False)
    secrets_unavailable: str | None = None

    def lookup(self, name: str) -> tuple[str | None, str]:
        """(value, origin); an empty environment value gives way to a stored one."""
        current = self.environ.get(name)
        if current:
            return current, ENVIRONMENT
        stored = self.secrets.get(name)
        if stored:
            return stored, SECRET_STORE
        return current, ENVIRONMENT

    def missing_message(self, name: str) -> str:
        fix = f"`broxy-tray secret set {name}`"
        if self.secrets_unavailable:
            return f"{name} is not set (the secret store is unavailable: {self.secrets_unavailable}): {fix}"
        return f"environment variable {name} is not set: {fix}"


def expand(value: str, environ: Mapping[str, str] | Sources, trace: list[Resolution] | None = None) -> str:
    """Return `value` with every placeholder replaced; `trace` (if given) collects each lookup."""
    if "$" not in value:
        return value
    sources = environ if isinstance(environ, Sources) else Sources(environ)
    text, _ = _Scanner(value, sources, trace).scan(0, nested=False, evaluate=True)
    return text


class _Scanner:
    def __init__(self, value: str, sources: Sources, trace: list[Resolution] | None) -> None:
        self.value = value
        self.sources = sources
        self.trace = trace

    def scan(self, i: int, *, nested: bool, evaluate: bool) -> tuple[str, int]:
        """Text from `i` to the end (or, when `nested`, to the `}` closing a default; its index is returned)."""
        v = self.value
        out: list[str] = []
        n = len(v)
        while i < n:
            j = v.find("$", i)
            k = v.find("}", i) if nested else -1
            if k >= 0 and (j < 0 or k < j):
                out.append(v[i:k])
                return "".join(out), k
            if j < 0:
                out.append(v[i:])
                i = n
                break
            out.append(v[i:j])
            if v.startswith("$${", j):
                out.append("${")
                i = j + 3
            elif v.startswith("${", j):
                text, i = self.placeholder(j + 2, evaluate)
                out.append(text)
            else:
                out.append("$")
                i = j + 1
        if nested:
            raise ExpansionError("unterminated ${ placeholder (add a closing } or write $${ for a literal ${)")
        return "".join(out), i

    def placeholder(self, i: int, evaluate: bool) -> tuple[str, int]:
        """`NAME}` or `NAME:-default}` from `i`; returns the substitution and the index after the `}`."""
        v = self.value
        close = v.find("}", i)
        if close < 0:
            raise ExpansionError("unterminated ${ placeholder (add a closing } or write $${ for a literal ${)")
        sep = v.find(":-", i, close)
        name = v[i : sep if sep >= 0 else close]
        if not NAME.match(name):
            shown = name if len(name) <= 40 else name[:40] + "…"
            raise ExpansionError(f"invalid variable name {shown!r} in ${{…}} placeholder")
        if sep < 0:
            return (self.resolve(name) if evaluate else ""), close + 1
        current, origin = self.sources.lookup(name) if evaluate else (None, MISSING)
        use_default = evaluate and not current
        default, end = self.scan(sep + 2, nested=True, evaluate=use_default)
        if not evaluate:
            return "", end + 1
        if use_default:
            self.note(Resolution(name, DEFAULT))
            return default, end + 1
        self.note(Resolution(name, origin, current))
        return current or "", end + 1

    def resolve(self, name: str) -> str:
        current, origin = self.sources.lookup(name)
        if current is None:
            self.note(Resolution(name, MISSING))
            raise ExpansionError(self.sources.missing_message(name), variable=name)
        self.note(Resolution(name, origin, current))
        return current

    def note(self, r: Resolution) -> None:
        if self.trace is not None:
            self.trace.append(r)
