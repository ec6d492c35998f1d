"""The local control channel: the running instance's user-only socket (named pipe on Windows).

The CLI (`broxy-tray status`, `enable NAME`, …) and the stdio bridge talk to
a running instance through it. See `_protocol` for the wire format.
"""

from ._client import ControlConnection, NotRunning, request, request_sync
from ._paths import config_key, control_path, runtime_dir
from ._protocol import COMMANDS, MAX_REQUEST, PROTOCOL_VERSION, ControlError, decode, encode, read_line, server_json
from ._server import ControlServer, serve_app

__all__ = [
    "COMMANDS",
    "MAX_REQUEST",
    "PROTOCOL_VERSION",
    "ControlConnection",
    "ControlError",
    "ControlServer",
    "NotRunning",
    "config_key",
    "control_path",
    "decode",
    "encode",
    "read_line",
    "request",
    "request_sync",
    "runtime_dir",
    "serve_app",
    "server_json",
]
