"""`broxy-tray probe` as a user runs it: a subprocess, a real browser command, the test AS and MCP server."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REDIRECT_BROWSER = HERE / "redirect_browser.py"
HEADLESS_CHROMIUM = HERE / "chromium_browser.sh"


def browser_command(tmp_path: Path, target: Path) -> str:
    """A one-program BROWSER (Python's webbrowser takes no arguments) that runs `target` with our interpreter."""
    wrapper = tmp_path / "browser"
    runner = sys.executable if target.suffix == ".py" else "/bin/sh"
    wrapper.write_text(f'#!/bin/sh\nexec "{runner}" "{target}" "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return str(wrapper)


def probe(args: list[str], user_env: dict, browser: str, extra_env: dict | None = None, timeout: float = 60):
    env = dict(user_env, BROWSER=browser, **(extra_env or {}))
    return subprocess.run([sys.executable, "-m", "broxy_tray", "probe", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_probe_signs_in_lists_and_calls(auth_server, mcp_server, user_env, tmp_path):
    r = probe([mcp_server.url, "--call", "whoami", "--timeout", "20"], user_env, browser_command(tmp_path, REDIRECT_BROWSER))
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    expected = ["probe: connecting to", "probe: HTTP 401 Bearer challenge", "probe: resource metadata: ",
                "probe: client: dynamic", "probe: Authorize ", "probe: token obtained", "probe: connected: ",
                "probe:   tool whoami", "probe: called whoami: "]
    positions = [next(i for i, line in enumerate(lines) if line.startswith(p)) for p in expected]
    assert positions == sorted(positions), r.stderr
    # the test AS issues codes and tokens as code_…, at_…, rt_…: none may appear in what probe prints
    assert auth_server.count("token") == 1
    assert re.search(r"\b(code|at|rt)_[A-Za-z0-9_-]{20,}", r.stderr + r.stdout) is None


def test_probe_preregistered_secret_from_environment(auth_server, mcp_server, user_env, tmp_path):
    auth_server.add_client("cli-app", client_secret="env-secret-9f8e7d", auth_method="client_secret_basic",
                           redirect_uris=["http://127.0.0.1:38471/callback"])
    r = probe([mcp_server.url, "--client-id", "cli-app", "--redirect-uri", "http://127.0.0.1:38471/callback",
               "--timeout", "20"], user_env, browser_command(tmp_path, REDIRECT_BROWSER),
              {"BROXY_PROBE_CLIENT_SECRET": "env-secret-9f8e7d"})
    assert r.returncode == 0, r.stderr
    assert "client: pre-registered (cli-app)" in r.stderr
    assert "env-secret-9f8e7d" not in r.stderr + r.stdout


def test_probe_failure_exit_1_with_reason(make_auth_server, make_mcp_server, user_env, tmp_path):
    auth = make_auth_server(code_challenge_methods=["plain"])
    rs = make_mcp_server(auth)
    r = probe([rs.url, "--timeout", "10"], user_env, browser_command(tmp_path, REDIRECT_BROWSER))
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1].startswith("probe: failed: authorization server does not support PKCE S256")
    assert auth.count("authorize") == 0


def test_probe_bad_options(user_env, tmp_path):
    r = probe(["ftp://x/mcp"], user_env, "true")
    assert r.returncode == 1 and "url scheme 'ftp' does not fit transport http" in r.stderr
    r = probe(["http://127.0.0.1:9/mcp", "--header", "nocolon"], user_env, "true")
    assert r.returncode == 2 and "expected 'Name: value'" in r.stderr
    r = probe(["http://127.0.0.1:9/mcp", "--args", "[1]", "--call", "x"], user_env, "true")
    assert r.returncode == 2 and "--args must be a JSON object" in r.stderr
    r = probe(["http://127.0.0.1:9/mcp", "--redirect-uri", "http://example.com:80/cb"], user_env, "true")
    assert r.returncode == 1 and "redirectUri must be http://127.0.0.1:PORT" in r.stderr


def test_probe_no_browser_prints_url_and_times_out(auth_server, mcp_server, user_env, tmp_path):
    r = probe([mcp_server.url, "--no-browser", "--timeout", "2"], user_env, "true")
    assert r.returncode == 1
    assert "probe: Authorize " in r.stderr and "/authorize?" in r.stderr
    assert "no sign-in response arrived within 2 s" in r.stderr


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium (scripts/test installs it as root)")
def test_probe_with_real_headless_chromium(auth_server, mcp_server, user_env, tmp_path):
    env = {"BROXY_TEST_BROWSER_TIMEOUT": "20"}
    if os.geteuid() == 0:
        env["HOME"] = str(tmp_path)  # chromium wants a writable home
    r = probe([mcp_server.url, "--call-first", "--timeout", "40"], user_env,
              browser_command(tmp_path, HEADLESS_CHROMIUM), env, timeout=90)
    assert r.returncode == 0, r.stderr
    assert "token obtained" in r.stderr and "called " in r.stderr
