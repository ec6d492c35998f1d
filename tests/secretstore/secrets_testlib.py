"""Helpers for the secret store tests: run the CLI, find the app's children by a marker in their command line."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

MINIMAL_SERVER = Path(__file__).resolve().parent.parent / "mcp" / "servers" / "minimal_stdio.py"


def run_cli(env: dict[str, str], *args: str, input: str | None = None, stdin: Any = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`broxy-tray ARGS` as a subprocess; the value (if any) goes in on stdin, never as an argument."""
    kwargs: dict[str, Any] = {"input": input} if input is not None else {"stdin": stdin or subprocess.DEVNULL}
    return subprocess.run([sys.executable, "-m", "broxy_tray", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, **kwargs)


def marker() -> str:
    return f"bt-secret-{uuid.uuid4().hex[:10]}"


def stdio_entry(mark: str, **extra: Any) -> dict[str, Any]:
    """A tiny real stdio MCP server, findable in /proc by `mark`."""
    return {"command": sys.executable, "args": [str(MINIMAL_SERVER), "--marker", mark], **extra}


def pids_with(mark: str) -> list[int]:
    """Live processes whose command line contains `mark`."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
            with open(f"/proc/{entry}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if mark.encode() in cmdline and state != b"Z":
            out.append(int(entry))
    return out


def environ_of(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/environ", "rb") as f:
        raw = f.read()
    return dict(item.decode().split("=", 1) for item in raw.split(b"\0") if b"=" in item)
