"""`broxy-tray status | auth | logout | enable | disable | reload | quit`: talk to the running instance.

Each function takes the parsed arguments (`args.config`, and `args.server`
for the commands that name a server, `args.json` for status) and returns the
process exit code.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Callable

from ._client import NotRunning
from ._locate import Unreachable, locate
from ._locate import request as located_request
from ._protocol import ControlError

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_NOT_RUNNING = 3

STATUS_TIMEOUT = 10.0
COMMAND_TIMEOUT = 75.0  # longer than the server's own command timeout, so its answer arrives first
QUIT_WAIT = 15.0


def _config_path(args: argparse.Namespace) -> Path:
    from ..config import resolve_config_path

    return resolve_config_path(getattr(args, "config", None))


def _err(text: str) -> None:
    print(f"broxy-tray: {text}", file=sys.stderr)


def not_running_message(config: Path) -> str:
    location = locate(config)
    inst = location.instance
    if inst.running:
        return (f"broxy-tray seems to be running for {config} (process {inst.pid}), "
                f"but its control channel {location.socket} does not answer")
    return f"broxy-tray is not running for {config}; start it with `{start_command(config)}`"


def start_command(config: Path) -> str:
    """The command that starts the app for `config` from this shell: plain `broxy-tray` would start
    the default config, so any other config is named with `--config`."""
    from ..config import resolve_config_path

    if config == resolve_config_path(None):
        return "broxy-tray"
    return f"broxy-tray --config {shlex.quote(str(config))}"


def _request(config: Path, message: dict[str, Any], timeout: float) -> dict[str, Any]:
    """One round trip to the app for `config`, found through its lock file (any environment)."""
    import asyncio

    return asyncio.run(located_request(config, message, timeout))


def _call(config: Path, message: dict[str, Any], timeout: float) -> dict[str, Any] | int:
    """The response, or an exit code after printing why there is none."""
    try:
        return _request(config, message, timeout)
    except Unreachable as e:
        _err(str(e))
        return EXIT_NOT_RUNNING
    except NotRunning:
        _err(not_running_message(config))
        return EXIT_NOT_RUNNING
    except ControlError as e:
        _err(f"cannot reach broxy-tray for {config}: {e}")
        return EXIT_FAILURE


# -- status --

def status(args: argparse.Namespace) -> int:
    config = _config_path(args)
    as_json = bool(getattr(args, "json", False))
    try:
        response = _request(config, {"cmd": "status"}, STATUS_TIMEOUT)
    except Unreachable as e:
        _err(str(e))
        return EXIT_NOT_RUNNING
    except NotRunning:
        return _status_not_running(config, as_json)
    except ControlError as e:
        _err(f"cannot reach broxy-tray for {config}: {e}")
        return EXIT_FAILURE
    if not response["ok"]:
        _err(response["error"]["message"])
        return EXIT_FAILURE
    result = response["result"]
    app, servers = result["app"], result["servers"]
    if as_json:
        _emit({"event": "app", "running": True, **app})
        now = round(time.time(), 3)
        for s in servers:
            _emit({"event": "status", **s, "ts": now})
        return EXIT_OK
    print(f"broxy-tray is running for {app['configPath']} (process {app['pid']}): {app['summary']}")
    if app.get("configError"):
        print(f"  config error: {app['configError']}")
    if not servers:
        print("  no servers in the config")
    for s in servers:
        note = f"  (mcp.json: {s['configError']})" if s.get("configError") else ""
        print(f"  {s['name']} [{s['server']}]: {_label(s)}{note}")
        if s.get("authUrl") and s.get("status") == "Authorization":
            print(f"      sign-in page: {s['authUrl']}")
    if app.get("storage"):
        print(f"  secure storage: {app['storage']}")
    if isinstance(app.get("clients"), dict):
        print(f"  MCP clients: {_clients_label(app['clients'])}")
    return EXIT_OK


def _clients_label(clients: dict[str, Any]) -> str:
    from ..state import ClientCounts

    try:
        presets = tuple(sorted((str(k), int(v)) for k, v in (clients.get("presets") or {}).items()))
        return ClientCounts(int(clients.get("stdio", 0)), int(clients.get("http", 0)), presets).label()
    except (TypeError, ValueError, AttributeError):
        return "unknown"


def _label(s: dict[str, Any]) -> str:
    from ..state import ServerState, ServerStatus

    try:
        state = ServerState(id=s["server"], name=s["name"], status=ServerStatus(s["status"]),
                            detail=s.get("detail") or "", seconds_left=s.get("secondsLeft"), tools=s.get("tools"))
    except (KeyError, ValueError):
        return f"{s.get('status')}" + (f" · {s['detail']}" if s.get("detail") else "")
    return state.label()


def _status_not_running(config: Path, as_json: bool) -> int:
    """Say so, and show what the config would run."""
    from ..config import ConfigFileError
    from ..secrets._resolve import load_with_secrets

    servers: list[dict[str, Any]] = []
    problem: str | None = None
    try:
        cfg, _ = load_with_secrets(config)
    except ConfigFileError as e:
        problem = str(e.issue)
        if e.issue.message == "file not found":
            problem = f"{config} does not exist yet (broxy-tray creates a starter config there on first run)"
    else:
        for s in cfg.servers:
            servers.append({
                "server": s.id,
                "name": s.name,
                "enabled": s.enabled,
                "transport": s.transport.value if s.transport is not None else None,
                "error": s.problems[0].message if s.problems else None,
            })
        file_errors = [i for i in cfg.errors if i.server is None]
        if file_errors:
            problem = str(file_errors[0])
    message = not_running_message(config)
    if as_json:
        _emit({"event": "app", "running": False, "configPath": str(config), "configError": problem,
               "message": message})
        for s in servers:
            _emit({"event": "server", **s})
        return EXIT_NOT_RUNNING
    print(message)
    if problem:
        print(f"  {problem}")
    if servers:
        print("Started, it would run:")
    for s in servers:
        if s["error"]:
            what = f"error — {s['error']}"
        else:
            what = f"{'enabled' if s['enabled'] else 'disabled'}" + (f" ({s['transport']})" if s["transport"] else "")
        print(f"  {s['name']} [{s['server']}]: {what}")
    if not servers and not problem:
        print("  the config has no servers")
    return EXIT_NOT_RUNNING


def _emit(obj: dict[str, Any]) -> None:
    print(json.dumps(obj, ensure_ascii=False), flush=True)


# -- commands that change something --

def _server_command(cmd: str, describe: Callable[[dict[str, Any], str], str]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        config = _config_path(args)
        name = args.server
        response = _call(config, {"cmd": cmd, "server": name}, COMMAND_TIMEOUT)
        if isinstance(response, int):
            return response
        if not response["ok"]:
            _err(response["error"]["message"])
            return EXIT_FAILURE
        result = response["result"]
        print(describe(result, name))
        server = result.get("server")
        if server:
            print(f"  {server['name']} [{server['server']}]: {_label(server)}")
            if server.get("authUrl") and server.get("status") == "Authorization":
                print(f"  sign-in page: {server['authUrl']}")
        return EXIT_OK

    run.__name__ = cmd
    return run


def _who(result: dict[str, Any], name: str) -> str:
    s = result.get("server")
    return s["name"] if s else name


auth = _server_command("auth", lambda r, n: f"Signing in to {_who(r, n)}; finish in the browser.")
logout = _server_command("logout", lambda r, n: f"Signed out of {_who(r, n)}.")
enable = _server_command(
    "enable",
    lambda r, n: f"Enabled {_who(r, n)} (saved in mcp.json)." if r.get("changed") else f"{_who(r, n)} is already enabled.",
)
disable = _server_command(
    "disable",
    lambda r, n: f"Disabled {_who(r, n)} (saved in mcp.json)." if r.get("changed") else f"{_who(r, n)} is already disabled.",
)


def reload(args: argparse.Namespace) -> int:
    config = _config_path(args)
    response = _call(config, {"cmd": "reload"}, COMMAND_TIMEOUT)
    if isinstance(response, int):
        return response
    if not response["ok"]:
        _err(response["error"]["message"])
        return EXIT_FAILURE
    error = response["result"].get("configError")
    if error:
        _err(error)
        return EXIT_FAILURE
    print(f"Reloaded {config} ({response['result'].get('servers', 0)} servers).")
    return EXIT_OK


def quit(args: argparse.Namespace) -> int:  # noqa: A001 - the command's name
    config = _config_path(args)
    response = _call(config, {"cmd": "quit"}, STATUS_TIMEOUT)
    if isinstance(response, int):
        return response
    if not response["ok"]:
        _err(response["error"]["message"])
        return EXIT_FAILURE
    pid = response["result"].get("pid")
    end = time.monotonic() + QUIT_WAIT
    while time.monotonic() < end:
        try:
            answer = _request(config, {"cmd": "ping"}, 2.0)
        except (NotRunning, Unreachable):
            print(f"broxy-tray (process {pid}) is shutting down.")
            return EXIT_OK
        except ControlError:
            pass
        else:
            if answer.get("ok") and answer["result"].get("pid") != pid:  # already replaced by a new instance
                print(f"broxy-tray (process {pid}) is shutting down.")
                return EXIT_OK
        time.sleep(0.1)
    _err(f"asked broxy-tray (process {pid}) to quit, but it still answers after {QUIT_WAIT:g} s")
    return EXIT_FAILURE


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "status": status,
    "auth": auth,
    "logout": logout,
    "enable": enable,
    "disable": disable,
    "reload": reload,
    "quit": quit,
}


def run(args: argparse.Namespace) -> int:
    """Dispatch on `args.command`."""
    return COMMANDS[args.command](args)
