"""`broxy-tray import` and `broxy-tray client-config --install/--uninstall`: argument handling and output."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Mapping, TextIO

from ..config import ConfigWriteError, resolve_config_path
from ._apply import SecretSink, apply, preview, scan
from ._locations import CLIENTS
from ._plan import format_table


def run_import(args: Any, *, sink: SecretSink | None = None, environ: Mapping[str, str] | None = None,
               out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Exit 0 when done (or nothing to do), 1 when a client file or mcp.json stops the import (nothing written)."""
    out = out or sys.stdout
    err = err or sys.stderr
    env = os.environ if environ is None else environ
    clients = tuple(dict.fromkeys(getattr(args, "clients", None) or CLIENTS))
    project = Path(args.project).expanduser().absolute() if getattr(args, "project", None) else None
    if project is not None and not project.is_dir():  # else its files are all "missing" and the table is empty
        print(f"broxy-tray: --project: {'not a directory' if project.exists() else 'no such directory'}: {project}",
              file=err)
        return 1
    config_path = resolve_config_path(getattr(args, "config", None), env)
    try:
        found = scan(clients, environ=env, project=project, keep_literals=getattr(args, "keep_literals", False))
    except LookupError as e:
        print(f"broxy-tray: {e}", file=err)
        return 1
    if found.errors:
        for e in found.errors:
            print(f"broxy-tray: {e}", file=err)
        print("broxy-tray: nothing imported; fix the file(s) above or leave that client out with --from", file=err)
        return 1
    if not found.files:
        print(f"broxy-tray: no configuration found for {', '.join(clients)}; nothing to import", file=err)
        return 0
    try:
        if getattr(args, "dry_run", False):
            plan = preview(found, config_path)
            print(format_table(plan), file=out)
            print(f"dry run: {len(plan.additions)} server(s) would be added to {config_path}; nothing written", file=out)
            _print_secrets([(s.name, s.where) for s in plan.secrets] + plan.prompts, out, would=True)
            return 0
        result = apply(found, config_path, sink=sink)
    except ConfigWriteError as e:
        print(f"broxy-tray: {e}", file=err)
        return 1
    print(format_table(result.plan), file=out)
    added = len(result.plan.additions) if result.written else 0
    print(f"added {added} server(s) to {config_path}" if added else "nothing new to add", file=out)
    if result.stored:
        print(f"stored in the secret store: {', '.join(result.stored)}", file=out)
    _print_secrets(result.to_set, out)
    return 0


def _print_secrets(names: list[tuple[str, str]], out: TextIO, *, would: bool = False) -> None:
    if not names:
        return
    head = "these values would need setting" if would else "set these values (the imported entries name them)"
    print(f"{head}; each command asks for the value:", file=out)
    for name, why in dict.fromkeys(names):
        print(f"  broxy-tray secret set {name}    # {why}", file=out)


def run_handover(args: Any, *, environ: Mapping[str, str] | None = None, state_dir: Path | None = None,
                 out: TextIO | None = None, err: TextIO | None = None) -> int:
    """`client-config --install/--uninstall --client CLIENT`: exit 0 done, 1 refused (with the reason), 2 no --client."""
    from ..proxy._client_config import launch_command
    from ._handover import INSTALLABLE, HandoverError, install, uninstall

    out = out or sys.stdout
    err = err or sys.stderr
    client = getattr(args, "client", None)
    if not client:  # editing a client's file is never done to a client picked by default
        mode = "--uninstall" if getattr(args, "uninstall", False) else "--install"
        print(f"usage: broxy-tray client-config {mode} --client CLIENT\n"
              f"broxy-tray client-config: error: {mode} needs --client (one of {', '.join(INSTALLABLE)})", file=err)
        return 2
    try:
        if getattr(args, "uninstall", False):
            done = uninstall(client, state_dir=state_dir)
        else:
            config_path = resolve_config_path(getattr(args, "config", None), environ)
            preset = getattr(args, "preset", None)
            done = install(client, config_path=config_path, argv=launch_command(config_path, preset=preset),
                           preset=preset, environ=environ, state_dir=state_dir)
    except (HandoverError, ConfigWriteError, LookupError) as e:
        print(f"broxy-tray: refused: {e}", file=err)
        return 1
    print(done.message, file=out)
    return 0
