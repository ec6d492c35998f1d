"""Ask for a secret's value with the platform's own password prompt ("Set NAME…" in the tray menu).

Linux: `zenity --entry --hide-text` (which, unlike `zenity --password`, shows
a text naming the variable) or `kdialog --password` when installed; macOS: an
`osascript` dialog with a hidden answer; Windows: a PowerShell credential
prompt. The value comes back on the helper's stdout (a pipe), never on a
command line. No helper → `None` for the prompt, and the caller shows the CLI
command instead; cancelling gives `Cancelled` and changes nothing.
"""

from __future__ import annotations

import html
import shutil
import subprocess
import sys
from dataclasses import dataclass
from typing import Callable

PROMPT_TIMEOUT = 600.0  # a person typing; the dialog is closed (and nothing stored) after that


@dataclass(frozen=True)
class Cancelled:
    """The user closed or cancelled the prompt (or it failed); nothing is stored."""

    reason: str = "cancelled"


def prompt_command(name: str, *, server: str | None = None, platform: str | None = None,
                   which: Callable[[str], str | None] = shutil.which) -> list[str] | None:
    """The helper command that asks for `name`'s value (a validated `${NAME}` name), or None if there is none.

    `server`: the id of the server that needs it, named in the prompt so the person knows what it is for.
    """
    plat = platform or sys.platform
    title = f"broxy-tray: set {name}"
    used_by = f", used by server {server!r}" if server else ""
    text = f"Value for {name}{used_by} (stored in the OS keyring)"
    if plat in ("darwin", "win32"):  # inside a quoted script: keep the server id from closing the quotes
        text = text.replace('"', "").replace("'", "")
    if plat == "darwin":
        script = (f'display dialog "{text}" default answer "" with hidden answer with title "{title}" '
                  'buttons {"Cancel", "Store"} default button "Store"\n'
                  "return text returned of result")
        return ["osascript", "-e", script]
    if plat == "win32":
        script = (f"$c = Get-Credential -UserName '{name}' -Message '{text}'; "
                  "if ($c) { [Console]::Out.Write($c.GetNetworkCredential().Password) } else { exit 1 }")
        exe = which("powershell") or which("pwsh")
        return [exe, "-NoProfile", "-NonInteractive", "-Command", script] if exe else None
    zenity, kdialog = which("zenity"), which("kdialog")
    if zenity:
        # zenity's --text is Pango markup: escape the server id (names are validated already)
        return [zenity, "--entry", "--hide-text", f"--title={title}", f"--text={html.escape(text)}"]
    if kdialog:
        return [kdialog, "--title", title, "--password", text]
    return None


def ask_secret(name: str, *, server: str | None = None, timeout: float = PROMPT_TIMEOUT, platform: str | None = None,
               which: Callable[[str], str | None] = shutil.which) -> str | Cancelled | None:
    """Block (call it off the UI thread) until the user answers: the value, `Cancelled`, or None (no prompt)."""
    argv = prompt_command(name, server=server, platform=platform, which=which)
    if argv is None:
        return None
    try:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return Cancelled(f"no answer within {timeout:g} s")
    except OSError as e:
        return Cancelled(f"the password prompt could not start ({e.strerror or e})")
    if proc.returncode != 0:
        return Cancelled()
    value = proc.stdout.decode("utf-8", "replace")
    if value.endswith("\n"):
        value = value[:-2] if value.endswith("\r\n") else value[:-1]
    return value if value else Cancelled("empty value")
