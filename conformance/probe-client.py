#!/usr/bin/env python3
"""Client command for the MCP conformance harness: runs `broxy-tray probe`.

The harness (`conformance client --command ...`) runs this with the mock
server's URL as the last argument and tells the scenario in
MCP_CONFORMANCE_SCENARIO, plus a JSON MCP_CONFORMANCE_CONTEXT for some
scenarios (pre-registered client credentials). This script maps both to
probe options and runs the project's own `broxy-tray probe` from .venv.

- The client secret goes to probe through BROXY_PROBE_CLIENT_SECRET, never argv.
- BROWSER is a small shim that runs tests/auth/redirect_browser.py with the
  project's Python: it GETs the authorization URL without following redirects
  and delivers the 302 Location to probe's loopback receiver. (Python's
  webbrowser takes BROWSER as one executable path without arguments.)
- Every run gets fresh XDG folders, so nothing of the user's own broxy-tray
  state is read or written.
- With BROXY_CONFORMANCE_EXITS set, probe's exit code is written there as
  <scenario>.rc (`/` -> `__`) for conformance/report.py: in suite mode the
  harness judges only its own checks, not the client's exit code.

Only stdlib; no absolute paths: everything is relative to the repository root.
Debugging overrides: BROXY_CONFORMANCE_PROBE (probe executable),
BROXY_CONFORMANCE_BROWSER (browser script run with the project's Python).
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = REPO / ".venv" / "bin"

# The client_id the basic-cimd scenario expects (never fetched by the client).
CIMD_URL = "https://conformance-test.local/client-metadata.json"

# Options common to every scenario. Every mock server lists exactly one tool,
# `test-tool`; calling it is what triggers step-up in auth/scope-step-up
# (tools/call needs `mcp:basic mcp:write`, tools/list only `mcp:basic`), and it
# proves the token works end to end everywhere else. The mocks speak Streamable
# HTTP only. Probe's own timeout stays under the harness's --timeout 60000.
COMMON_OPTIONS = ["--transport", "http", "--call-first", "--timeout", "30"]

# Extra options per scenario. Anything not listed runs with COMMON_OPTIONS only:
# discovery, registration (DCR), scopes and auth method all come from the mocks.
SCENARIO_OPTIONS: dict[str, list[str]] = {
    "auth/basic-cimd": ["--client-metadata-url", CIMD_URL],
}


def probe_command(url: str, scenario: str, context: dict[str, object]) -> tuple[list[str], dict[str, str]]:
    """argv and extra environment for one harness invocation."""
    probe = os.environ.get("BROXY_CONFORMANCE_PROBE") or str(VENV_BIN / "broxy-tray")
    argv = [probe, "probe", *COMMON_OPTIONS, *SCENARIO_OPTIONS.get(scenario, [])]
    env: dict[str, str] = {}
    client_id = context.get("client_id")
    if isinstance(client_id, str) and client_id:
        argv += ["--client-id", client_id]
    secret = context.get("client_secret")
    if isinstance(secret, str) and secret:
        env["BROXY_PROBE_CLIENT_SECRET"] = secret
    argv.append(url)
    return argv, env


def write_browser_shim(folder: Path) -> Path:
    script = os.environ.get("BROXY_CONFORMANCE_BROWSER") or str(REPO / "tests" / "auth" / "redirect_browser.py")
    python = VENV_BIN / "python"
    shim = folder / "redirect-browser"
    shim.write_text(f"#!/bin/sh\nexec {shlex.quote(str(python))} {shlex.quote(script)} \"$@\"\n")
    shim.chmod(0o700)
    return shim


def record_exit(scenario: str, status: str) -> None:
    folder = os.environ.get("BROXY_CONFORMANCE_EXITS")
    if folder and scenario:
        path = Path(folder) / (scenario.replace("/", "__") + ".rc")
        path.write_text(status + "\n")


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: probe-client.py SERVER_URL  (run by `conformance client --command`)", file=sys.stderr)
        return 2
    url = argv[-1]
    scenario = os.environ.get("MCP_CONFORMANCE_SCENARIO", "")
    try:
        context = json.loads(os.environ.get("MCP_CONFORMANCE_CONTEXT") or "{}")
    except ValueError:
        print("probe-client: MCP_CONFORMANCE_CONTEXT is not JSON", file=sys.stderr)
        return 2
    if not isinstance(context, dict):
        context = {}

    cmd, extra_env = probe_command(url, scenario, context)
    with tempfile.TemporaryDirectory(prefix="broxy-conformance-") as tmp:
        folder = Path(tmp)
        env = dict(os.environ)
        env.pop("BROXY_PROBE_CLIENT_SECRET", None)  # only the scenario's own secret
        env.pop("MCP_CONFORMANCE_CONTEXT", None)  # holds the secret; probe doesn't need it
        env.update(extra_env)
        env["BROWSER"] = str(write_browser_shim(folder))
        for name in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME"):
            path = folder / name.lower()
            path.mkdir()
            env[name] = str(path)
        env.setdefault("PYTHONUNBUFFERED", "1")

        shown = " ".join(shlex.quote(a) for a in [Path(cmd[0]).name, *cmd[1:]])
        secret_note = " (client secret in BROXY_PROBE_CLIENT_SECRET)" if "BROXY_PROBE_CLIENT_SECRET" in extra_env else ""
        print(f"probe-client: scenario {scenario or '?'}: {shown}{secret_note}", file=sys.stderr, flush=True)
        record_exit(scenario, "running")

        child = subprocess.Popen(cmd, env=env, cwd=REPO)

        def forward(signum: int, _frame: object) -> None:
            record_exit(scenario, f"killed-by-signal-{signum}")
            child.send_signal(signum)

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        rc = child.wait()
        if rc < 0:
            record_exit(scenario, f"killed-by-signal-{-rc}")
            return 128 - rc
        record_exit(scenario, str(rc))
        return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv))
