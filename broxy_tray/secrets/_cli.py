"""`broxy-tray secret set | list | rm | import`: manage the values `${NAME}` finds in the OS keyring.

They work whether or not the app runs; a running app is told at once (over
its control channel) and re-expands mcp.json, restarting only the servers
whose settings changed. A value is never printed, logged or taken from the
command line.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from pathlib import Path
from typing import Any, TextIO

from ._notify import notify_running_app
from ._store import InvalidSecretName, SecretStore, SecretStoreUnavailable, check_name

EXIT_OK = 0
EXIT_FAILURE = 1

HELP = {
    "set": "store a secret: the value is read from the terminal without echo, or from stdin when piped",
    "list": "list stored secret names, the servers using each, and whether the environment overrides it",
    "rm": "remove a stored secret",
    "import": "copy variables from this shell's environment into the secret store",
}


def add_parser(sub: Any, common: Any) -> None:
    """The `secret` command and its actions, on the main parser's subparsers."""
    secret = sub.add_parser(
        "secret", help="values for ${NAME} in mcp.json, kept in the OS keyring: set, list, rm, import",
        description="Values for ${NAME} placeholders in mcp.json, kept in the OS keyring (service "
                    "broxy-tray-secrets), so that broxy-tray started at login finds them. ${NAME} is looked up in "
                    "the environment first, then here, then its :-default. Changes apply to a running broxy-tray "
                    "at once. Values are never printed, logged or passed on a command line.",
    )
    actions = secret.add_subparsers(dest="secret_command", metavar="ACTION")
    for name in ("set", "list", "rm", "import"):
        p = actions.add_parser(name, help=HELP[name], description=HELP[name][0].upper() + HELP[name][1:] + ".")
        common(p, top=False)
        if name in ("set", "rm"):
            p.add_argument("name", metavar="NAME", help="the variable name, as in ${NAME}")
        elif name == "import":
            p.add_argument("names", metavar="NAME", nargs="+", help="variables set in this shell")


def run(args: argparse.Namespace, config_path: Path, *, store: SecretStore | None = None,
        stdin: TextIO | None = None) -> int:
    action = getattr(args, "secret_command", None)
    own = store is None
    store = store or SecretStore()
    try:
        if action == "set":
            return _set(store, args.name, config_path, stdin if stdin is not None else sys.stdin)
        if action == "list":
            return _list(store, config_path)
        if action == "rm":
            return _rm(store, args.name, config_path)
        if action == "import":
            return _import(store, args.names, config_path)
    finally:
        if own:
            store.close()
    _err("say what to do: broxy-tray secret set|list|rm|import (see broxy-tray secret --help)")
    return 2


def _err(text: str) -> None:
    print(f"broxy-tray: {text}", file=sys.stderr)


def _read_value(name: str, stdin: TextIO | None) -> str | None:
    """From the terminal without echo, or all of stdin (one trailing newline dropped); None if there is none."""
    if stdin is None or stdin.closed:
        _err(f"no value for {name}: standard input is closed (pipe the value in, or run this in a terminal)")
        return None
    try:
        if stdin.isatty():
            value = getpass.getpass(f"Value for {name} (not shown): ")
        else:
            value = stdin.read()
            if value.endswith("\n"):
                value = value[:-2] if value.endswith("\r\n") else value[:-1]
    except (EOFError, KeyboardInterrupt):
        print(file=sys.stderr)
        _err(f"cancelled; {name} is unchanged")
        return None
    except (OSError, ValueError) as e:
        _err(f"no value for {name}: cannot read standard input ({e})")
        return None
    if not value:
        _err(f"refusing to store an empty value for {name} (nothing was changed)")
        return None
    if "\0" in value:
        _err(f"refusing to store a value with a NUL character for {name} (nothing was changed)")
        return None
    return value


def _unused(config_path: Path, names: list[str]) -> list[str]:
    """Those of `names` that mcp.json does not use (none when it cannot be read: then nothing is claimed)."""
    from ..config import ConfigFileError, load_config
    from ..config._expand import Sources

    try:
        config, _ = load_config(config_path, Sources(os.environ))
    except (ConfigFileError, OSError):
        return []
    used = {use.name for use in config.variables}
    return [n for n in names if n not in used]


def _applied(config_path: Path, names: list[str]) -> str:
    """What became of the change: applied by the running app, waiting for it to start, or used nowhere yet."""
    unused = _unused(config_path, names)
    if unused and len(unused) == len(names):
        them = ", ".join(f"${{{n}}}" for n in unused)
        return f"mcp.json does not use {them} yet; add it where a server needs it."
    note = f" ({', '.join(unused)}: not used by mcp.json yet.)" if unused else ""
    return _notified(config_path) + note


def _notified(config_path: Path) -> str:
    said = notify_running_app(config_path)
    if said is None:
        return "broxy-tray is not running; it uses the change when it starts."
    if said == "applied":
        return "The running broxy-tray applied it."
    return f"The running broxy-tray: {said}."


def _check(name: str) -> bool:
    try:
        check_name(name)
    except InvalidSecretName as e:
        _err(str(e))
        return False
    return True


def _set(store: SecretStore, name: str, config_path: Path, stdin: TextIO | None) -> int:
    if not _check(name):
        return EXIT_FAILURE
    value = _read_value(name, stdin)
    if value is None:
        return EXIT_FAILURE
    try:
        asyncio.run(store.set(name, value))
    except SecretStoreUnavailable as e:
        _err(f"could not store {name}: {e.reason}")
        return EXIT_FAILURE
    except ValueError as e:
        _err(f"could not store {name}: {e}")
        return EXIT_FAILURE
    del value
    print(f"Stored {name} in {store.description or 'the keyring'}. {_applied(config_path, [name])}")
    if os.environ.get(name):
        print(f"note: {name} is also set in this shell's environment, which takes precedence where it is seen.")
    return EXIT_OK


def _rm(store: SecretStore, name: str, config_path: Path) -> int:
    if not _check(name):
        return EXIT_FAILURE
    try:
        existed = asyncio.run(store.delete(name))
    except SecretStoreUnavailable as e:
        _err(f"could not remove {name}: {e.reason}")
        return EXIT_FAILURE
    if not existed:
        _err(f"no secret named {name} is stored (see broxy-tray secret list)")
        return EXIT_FAILURE
    print(f"Removed {name}. {_notified(config_path)}")
    return EXIT_OK


def _import(store: SecretStore, names: list[str], config_path: Path) -> int:
    if not all(_check(n) for n in names):  # all names first: a typo stores nothing
        return EXIT_FAILURE
    failed = 0
    stored: list[str] = []
    for name in dict.fromkeys(names):
        value = os.environ.get(name)
        if not value:
            _err(f"{name} is {'empty' if value == '' else 'not set'} in this shell's environment; not imported")
            failed += 1
            continue
        try:
            asyncio.run(store.set(name, value))
        except (SecretStoreUnavailable, ValueError) as e:
            _err(f"could not store {name}: {getattr(e, 'reason', e)}")
            return EXIT_FAILURE
        print(f"Imported {name}.")
        stored.append(name)
    if stored:
        print(_applied(config_path, stored))
    return EXIT_FAILURE if failed else EXIT_OK


def _list(store: SecretStore, config_path: Path) -> int:
    from ..config import ConfigFileError
    from ._resolve import load_with_secrets

    try:
        names = asyncio.run(store.names())
    except SecretStoreUnavailable as e:
        _err(f"cannot read the secret store: {e.reason}")
        return EXIT_FAILURE
    users: dict[str, list[str]] = {}
    missing: dict[str, list[str]] = {}
    try:
        config, _ = load_with_secrets(config_path, store=store)
    except ConfigFileError as e:
        _err(f"{e.issue} (the servers using each secret are not shown)")
    else:
        for use in config.variables:
            bucket = missing if use.origin == "missing" else users
            servers = bucket.setdefault(use.name, [])
            if use.server and use.server not in servers:
                servers.append(use.server)
    if not names:
        print("No secrets stored. Add one with: broxy-tray secret set NAME")
    for name in names:
        used = f"used by {', '.join(users[name])}" if users.get(name) else "not used in mcp.json"
        override = "; the environment overrides it (set in this shell)" if os.environ.get(name) else ""
        print(f"{name}: {used}{override}")
    for name, servers in missing.items():
        print(f"{name}: not set — needed by {', '.join(servers) or 'mcp.json'}; broxy-tray secret set {name}")
    return EXIT_OK
