"""The `broxy-tray` command."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Sequence

from . import __version__

DESCRIPTION = """\
broxy-tray keeps every MCP server in your mcp.json connected, shows their
status, and signs in to OAuth-protected servers for you. Edits to mcp.json
take effect as soon as you save.

Without a command, broxy-tray runs: in the system tray when there is one,
otherwise headless in this terminal."""

EPILOG = """\
config file: --config PATH, else $BROXY_CONFIG, else the platform's user
config folder for "broxy" (see: broxy-tray config path). A missing file is
created with a small starter config.

examples:
  broxy-tray                          run (tray, or headless without a display)
  broxy-tray probe https://mcp.example.com/mcp --call-first
  broxy-tray run --headless --json    machine-readable status lines
  broxy-tray config check             validate mcp.json without running
  broxy-tray status                   what the running instance is doing (exit 3 if not running)
  broxy-tray disable files            disable a server in the running instance (saved in mcp.json)
  broxy-tray autostart enable         start broxy-tray at login
  broxy-tray secret set GITHUB_TOKEN  keep ${GITHUB_TOKEN} in the OS keyring (asks for the value)
  broxy-tray client-config --client cursor   what to paste into Cursor's mcp.json
  broxy-tray import --dry-run         what importing other clients' servers would add
"""

IMPORT_CLIENTS = ("claude-desktop", "claude-code", "cursor", "vscode", "windsurf", "gemini", "codex")
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


def _common(parser: argparse.ArgumentParser, *, top: bool) -> None:
    default = None if top else argparse.SUPPRESS
    parser.add_argument("--config", metavar="PATH", default=default,
                        help="mcp.json to use (default: $BROXY_CONFIG or the user config folder)")
    parser.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default=default,
                        help="detail of the log file (default: info)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="broxy-tray", description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"broxy-tray {__version__}")
    _common(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="run the app (the default command)",
                         description="Run broxy-tray: the tray when available, else headless in the terminal. "
                                     "On Linux the tray is the panel's StatusNotifierItem (D-Bus); broxy-tray waits "
                                     "up to $BROXY_SNI_WAIT seconds (default 5) for the panel's watcher, then falls "
                                     "back to an XEmbed tray (the xembed extra), or prints status lines until a "
                                     "watcher appears, saying why.")
    _common(run, top=False)
    run.add_argument("--headless", action="store_true",
                     help="no tray: print one line per status change and config event")
    run.add_argument("--json", action="store_true",
                     help="with --headless: print JSON lines (see README, 'Headless output')")

    probe = sub.add_parser(
        "probe", help="connect to one remote MCP server, signing in if needed, and report each step",
        description="Connect to a remote MCP server as broxy-tray would: discover its authorization server, "
                    "register or use a client, sign in through the browser (PKCE), list its tools, optionally "
                    "call one. Prints each step on stderr, never a token. Exit 0 on success, 1 on failure.",
        epilog="The client secret is better passed in the environment variable BROXY_PROBE_CLIENT_SECRET than "
               "with --client-secret, which other users can see in the process list. The browser is opened "
               "through Python's webbrowser module (set BROWSER to choose it); without one, open the printed URL.",
    )
    probe.add_argument("url", help="the server's URL (http(s):// or ws(s)://)")
    probe.add_argument("--transport", default=None, help="http (default for http URLs), sse, or websocket")
    probe.add_argument("--header", action="append", default=[], metavar="'K: V'", help="extra request header (repeatable)")
    probe.add_argument("--client-id", help="a pre-registered OAuth client id")
    probe.add_argument("--client-secret", help="its secret (prefer $BROXY_PROBE_CLIENT_SECRET)")
    probe.add_argument("--client-metadata-url", help="https URL of a Client ID Metadata Document to use as client_id")
    probe.add_argument("--authorization-server", metavar="URL", help="issuer to use when the server names none")
    probe.add_argument("--scope", action="append", default=None,
                       help="scope to request when the server does not say (repeatable, or space separated)")
    probe.add_argument("--redirect-uri", help="loopback redirect URI to listen on, e.g. http://127.0.0.1:8080/callback")
    call = probe.add_mutually_exclusive_group()
    call.add_argument("--call", metavar="TOOL", help="call this tool after listing")
    call.add_argument("--call-first", action="store_true", help="call the first listed tool")
    probe.add_argument("--args", dest="call_args", metavar="JSON", help="arguments for the call (a JSON object)")
    probe.add_argument("--timeout", type=float, default=120.0, help="seconds for sign-in and each step (default 120)")
    probe.add_argument("--no-browser", action="store_true", help="only print the sign-in URL")

    config = sub.add_parser("config", help="inspect mcp.json", description="Inspect the configuration file.")
    config_sub = config.add_subparsers(dest="config_command", metavar="ACTION")
    check = config_sub.add_parser("check", help="validate mcp.json without running (exit 0 if valid, 1 if not)",
                                  description="Validate mcp.json; prints file:line:column: message per problem.")
    _common(check, top=False)
    path = config_sub.add_parser("path", help="print the path of the mcp.json in use")
    _common(path, top=False)

    status = sub.add_parser(
        "status", help="show the running instance's servers (exit 3 if it is not running)",
        description="Show each server of the broxy-tray running for this config: status, detail, seconds left, "
                    "tools. Without a running instance, say so and show what the config would run (exit 3).",
    )
    _common(status, top=False)
    status.add_argument("--json", action="store_true",
                        help='JSON lines: one "app" line, then one "status" line per server (the fields of '
                             "run --headless --json)")
    for name, text in (
        ("auth", "start (or restart) the browser sign-in for a server"),
        ("logout", "sign out of a server: revoke and forget its tokens (it is saved as disabled)"),
        ("enable", "enable a server (saved in mcp.json) and connect it"),
        ("disable", "disable a server (saved in mcp.json) and disconnect it"),
    ):
        cmd = sub.add_parser(name, help=text, description=f"In the running instance: {text}. "
                                                           "Exit 0 on success, 1 if refused, 3 if not running.")
        _common(cmd, top=False)
        cmd.add_argument("server", metavar="NAME", help="the server's id in mcp.json (or its display name)")
    for name, text in (("reload", "re-read mcp.json now"), ("quit", "stop the running instance")):
        cmd = sub.add_parser(name, help=text, description=f"In the running instance: {text}. "
                                                           "Exit 0 on success, 1 on failure, 3 if not running.")
        _common(cmd, top=False)

    stdio = sub.add_parser(
        "stdio", help="serve MCP on stdin/stdout: the running instance's servers, for clients that launch a command",
        description="A stdio MCP server for clients that launch a command (Claude Desktop, Cursor, ...). It relays "
                    "to the running broxy-tray over its control channel (found from any environment through the "
                    "app's instance lock), starting it headless if none runs. When the app quits, crashes or "
                    "restarts, the client's session is kept: requests meanwhile get an error within 8 s, and once "
                    "the app is back the client is told to list tools, prompts and resources again. Exits 0 when "
                    "the client hangs up. Tools and prompts are named <serverId>__<name>. Nothing but MCP is "
                    "written to stdout.",
    )
    _common(stdio, top=False)
    stdio.add_argument("--preset", metavar="NAME", help="offer only what this preset in mcp.json allows")
    stdio.add_argument("--no-start", action="store_true",
                       help="never start broxy-tray: exit 1 if it is not running at first, and later wait for it "
                            "to come back instead of starting it")

    client_config = sub.add_parser(
        "client-config", help="print the snippet that adds broxy-tray to an MCP client's configuration",
        description="Print what to paste into an MCP client's configuration so that it uses broxy-tray stdio "
                    "(a JSON snippet; for Claude Code a command line). Where to paste it goes to stderr. With "
                    "--install, broxy-tray makes the edit in the client's file itself (--uninstall undoes it).",
    )
    _common(client_config, top=False)
    client_config.add_argument("--client", choices=("claude-desktop", "claude-code", "cursor", "vscode", "windsurf",
                                                    "gemini"),
                               help="the client (default for the snippet: claude-desktop; required with "
                                    "--install/--uninstall)")
    client_config.add_argument("--preset", metavar="NAME", help="offer only what this preset in mcp.json allows")
    mode = client_config.add_mutually_exclusive_group()
    mode.add_argument("--http", action="store_true",
                      help="point the client at the Streamable HTTP endpoint (\"endpoint\" in mcp.json) "
                           "instead of broxy-tray stdio; the snippet contains the endpoint's bearer token")
    mode.add_argument("--install", action="store_true",
                      help="edit the client's own user config instead of printing: add the broxy-tray entry and "
                           "remove the entries mcp.json now serves, after a timestamped backup next to the file")
    mode.add_argument("--uninstall", action="store_true",
                      help="undo --install: restore the client's file exactly (from the backup, or by reversing "
                           "the edit if the file changed since); refuses, with the reason, when it cannot")

    imp = sub.add_parser(
        "import", help="copy the MCP servers configured in other clients (Claude Desktop, Cursor, ...) into mcp.json",
        description="Read the MCP servers configured in Claude Desktop, Claude Code, Cursor, VS Code, Windsurf, "
                    "Gemini CLI and Codex (their user files; with --project also that project's files), add the "
                    "ones mcp.json does not have yet, and print a table: source, id, transport, what was mapped, "
                    "what was skipped and why. A server seen in several clients is added once. Literal credentials "
                    "(an Authorization header, env/header names containing TOKEN, KEY, SECRET or PASSWORD) are "
                    "written as ${NAME} and kept out of mcp.json. Only new entries are added to mcp.json; nothing "
                    "else in it changes. Exit 0 when done, 1 when a file is unreadable (then nothing is written).",
    )
    _common(imp, top=False)
    imp.add_argument("--from", dest="clients", nargs="+", action="extend", metavar="CLIENT",
                     choices=IMPORT_CLIENTS, help=f"only these clients ({', '.join(IMPORT_CLIENTS)}); default: all found")
    imp.add_argument("--project", metavar="DIR",
                     help="also read this project's files (.mcp.json, .cursor/, .vscode/, .gemini/, .codex/) and its "
                          "Claude Code local scope")
    imp.add_argument("--dry-run", action="store_true", help="print the table, write nothing")
    imp.add_argument("--keep-literals", action="store_true",
                     help="copy credential values into mcp.json as they are instead of ${NAME} placeholders")

    doctor = sub.add_parser("doctor", help="print what a bug report needs (no secrets)",
                            description="Version, platform, display and tray backend, notification service, "
                                        "keyring backend, config validity and paths. Contains no secrets.")
    _common(doctor, top=False)

    from .secrets._cli import add_parser as add_secret_parser

    add_secret_parser(sub, _common)

    autostart = sub.add_parser(
        "autostart", help="start broxy-tray at login: enable, disable, status",
        description="Start broxy-tray at login, for this user: an XDG autostart entry (Linux), a LaunchAgent "
                    "(macOS) or a Startup-folder script (Windows). The entry runs this installation's Python and "
                    "passes --config only for a non-default config. enable and disable are idempotent.",
    )
    _common(autostart, top=False)
    autostart.add_argument("action", choices=("enable", "disable", "status"), help="what to do")
    autostart.add_argument("--method", choices=("xdg", "systemd"), default=None,
                           help="Linux: an XDG autostart entry (default) or a systemd user unit")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command; output cut short by the reader (`broxy-tray status | head -1`) ends it quietly."""
    try:
        try:
            code = _main(argv)
        except SystemExit:  # argparse's --help / --version: flush here, where a broken pipe is caught
            sys.stdout.flush()
            raise
        sys.stdout.flush()
    except BrokenPipeError:
        # Python's documented recipe: point stdout at devnull so the flush at exit cannot fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILURE
    return code


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    command = args.command or "run"
    if command not in ("stdio", "client-config"):  # those two print protocol / a token on purpose
        _redact_output()
    if command == "probe":
        return _probe(parser, args)
    if command == "config":
        if args.config_command == "check":
            return _config_check(args)
        if args.config_command == "path":
            return _config_path(args)
        print("broxy-tray: say what to do: broxy-tray config check|path (see broxy-tray config --help)",
              file=sys.stderr)
        return EXIT_USAGE
    if command in ("status", "auth", "logout", "enable", "disable", "reload", "quit"):
        from .control._cli import run as run_control

        return run_control(args)
    if command == "stdio":
        from .proxy._stdio_bridge import run as run_stdio

        return run_stdio(_config_path_of(args), preset=args.preset, autostart=not args.no_start)
    if command == "client-config" and (args.install or args.uninstall):
        from .importer._cli import run_handover

        return run_handover(args)
    if command == "client-config":
        from .proxy._client_config import run as run_client_config

        return run_client_config(args)
    if command == "import":
        from ._logging import setup_logging
        from .importer import default_sink
        from .importer._cli import run_import

        setup_logging(getattr(args, "log_level", None) or "info", stderr_level=None)
        return run_import(args, sink=default_sink())
    if command == "doctor":
        from .ui.doctor import doctor_report

        sys.stdout.write(doctor_report(_config_path_of(args)))
        return EXIT_OK
    if command == "secret":
        from .secrets._cli import run as run_secret

        return run_secret(args, _config_path_of(args))
    if command == "autostart":
        from .autostart._cli import run as run_autostart

        return run_autostart(args)
    return _run(args)


def _redact_output() -> None:
    """Everything this process prints passes the one redaction point (no expanded `${VAR}` value)."""
    from ._redact import RedactingStream

    if not isinstance(sys.stdout, RedactingStream) and sys.stdout is not None:
        sys.stdout = RedactingStream(sys.stdout)  # type: ignore[assignment]
    if not isinstance(sys.stderr, RedactingStream) and sys.stderr is not None:
        sys.stderr = RedactingStream(sys.stderr)  # type: ignore[assignment]


def _config_path_of(args: argparse.Namespace) -> Path:
    from .config import resolve_config_path

    return resolve_config_path(getattr(args, "config", None))


def _config_path(args: argparse.Namespace) -> int:
    print(_config_path_of(args))
    return EXIT_OK


def _config_check(args: argparse.Namespace) -> int:
    from .config import ConfigFileError
    from .secrets._resolve import load_with_secrets

    path = _config_path_of(args)
    try:
        config, store_error = load_with_secrets(path)
    except ConfigFileError as e:
        hint = " (run broxy-tray once to create a starter config)" if e.issue.message == "file not found" else ""
        print(f"{e.issue}{hint}", file=sys.stderr)
        return EXIT_FAILURE
    for w in config.warnings:
        print(f"{w.location()}: warning: {w.message}" + (f" ({w.path})" if w.path else ""), file=sys.stderr)
    for e in config.errors:
        print(e, file=sys.stderr)
    if not config.errors:
        enabled = sum(1 for s in config.servers if s.enabled)
        print(f"{path}: OK ({len(config.servers)} servers, {enabled} enabled)")
    _print_variables(config, store_error)
    return EXIT_FAILURE if config.errors else EXIT_OK


def _print_variables(config, store_error: str | None) -> None:  # type: ignore[no-untyped-def]
    """Per `${NAME}`: where its value came from (environment / secret store / default / missing), never the value."""
    from .secrets._resolve import origins

    rows = origins(config)
    if not rows:
        return
    print("variables:")
    for name, origin, servers in rows:
        used = f" ({', '.join(servers)})" if servers else ""
        fix = ""
        if origin == "missing":
            fix = f" — broxy-tray secret set {name}"
            if store_error:
                fix += f" (secret store unavailable: {store_error})"
        print(f"  {name}: {origin}{used}{fix}")


def _probe(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    import json

    from ._logging import setup_logging
    from ._probe import ProbeOptions, run_probe

    headers = []
    for h in args.header:
        name, sep, value = h.partition(":")
        if not sep or not name.strip():
            parser.error(f"--header {h!r}: expected 'Name: value'")
        headers.append((name.strip(), value.strip()))
    call_args = None
    if args.call_args is not None:
        try:
            call_args = json.loads(args.call_args)
        except ValueError as e:
            parser.error(f"--args is not JSON: {e}")
        if not isinstance(call_args, dict):
            parser.error("--args must be a JSON object")
    transport = args.transport
    if transport is None:
        transport = "websocket" if args.url.lower().startswith(("ws://", "wss://")) else "http"
    scopes = None
    if args.scope is not None:
        scopes = tuple(s for item in args.scope for s in item.split())
    setup_logging(getattr(args, "log_level", None) or "info", stderr_level=None)
    options = ProbeOptions(
        url=args.url, transport=transport, headers=tuple(headers), client_id=args.client_id,
        client_secret=args.client_secret or os.environ.get("BROXY_PROBE_CLIENT_SECRET") or None,
        client_metadata_url=args.client_metadata_url, authorization_server=args.authorization_server,
        scopes=scopes, redirect_uri=args.redirect_uri, call=args.call, call_first=args.call_first,
        call_args=call_args, timeout=args.timeout, open_browser=not args.no_browser,
    )
    try:
        return asyncio.run(run_probe(options))
    except KeyboardInterrupt:
        print("probe: cancelled", file=sys.stderr)
        return EXIT_FAILURE


def _run(args: argparse.Namespace) -> int:
    from ._instance import AlreadyRunning, InstanceLock
    from ._logging import setup_logging
    from .config import ensure_config

    path = _config_path_of(args)
    headless = getattr(args, "headless", False)
    json_lines = getattr(args, "json", False)
    backend = None
    if not headless:
        from .ui.tray import TrayUnavailable, load_backend

        try:
            backend = load_backend()
        except TrayUnavailable as e:
            print(f"broxy-tray: {e}; running headless in the terminal.", file=sys.stderr)
        else:
            if backend.waiting:
                print(f"broxy-tray: {backend.note}; running headless in the terminal until a panel's "
                      "StatusNotifierWatcher appears, then the tray icon shows.", file=sys.stderr)
    log_file = setup_logging(getattr(args, "log_level", None) or "info")
    from ._fdlimit import raise_open_file_limit

    raise_open_file_limit()  # room for clients and servers; the HTTP endpoint caps its own share
    try:
        created = ensure_config(path)
    except OSError as e:
        print(f"broxy-tray: cannot create {path}: {e.strerror or e}", file=sys.stderr)
        return EXIT_FAILURE
    if created:
        print(f"broxy-tray: created a starter config at {path}", file=sys.stderr)
    lock = InstanceLock(path)
    try:
        lock.acquire()
    except AlreadyRunning as e:
        print(e, file=sys.stderr)  # the message already starts with "broxy-tray is …"
        return EXIT_FAILURE
    from .mcp._orphans import guard_children, release_children

    guard_children(lock.path.with_suffix(""))  # servers left by a crashed run go; this run's die with it
    try:
        if backend is not None:
            from .autostart import Autostart
            from .ui.tray import run_tray

            return run_tray(path, backend, log_dir=log_file.parent, autostart=Autostart(path))
        if not json_lines:
            print(f"broxy-tray {__version__}: config {path}; log {log_file}; Ctrl-C quits.", file=sys.stderr)
        return asyncio.run(_run_headless(path, json_lines))
    finally:
        release_children()
        lock.release()


async def _run_headless(path: Path, json_lines: bool) -> int:
    from .app import App
    from .control import serve_app
    from .ui.headless import HeadlessPrinter

    app = App(path)
    printer = HeadlessPrinter(app.store, json_lines=json_lines)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # Windows: Ctrl-C arrives as KeyboardInterrupt
            pass
    control = None
    try:
        await app.start()
        control = await serve_app(app, path)  # after the instance lock (held by _run), so a stale socket may go
        waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(app.quit_requested.wait())]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()
    finally:
        if control is not None:
            await control.close()
        await app.shutdown()
        printer.close()
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
