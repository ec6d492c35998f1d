"""The OS's openers and clipboard: open a file or folder, open a URL, copy text.

Each call returns at once (the UI thread never waits for an opener); helper
processes are reaped in a daemon thread so none is left behind as a zombie.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import threading
import webbrowser
from pathlib import Path
from typing import Callable

log = logging.getLogger(__name__)


def _spawn(argv: list[str], *, stdin: bytes | None = None) -> bool:
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, close_fds=True)
    except OSError as e:
        log.warning("could not run %s: %s", argv[0], e)
        return False

    def reap() -> None:
        try:
            if stdin is not None and proc.stdin is not None:
                proc.stdin.write(stdin)
                proc.stdin.close()
            proc.wait()
        except Exception:
            log.debug("helper %s failed", argv[0], exc_info=True)

    threading.Thread(target=reap, name=f"reap-{Path(argv[0]).name}", daemon=True).start()
    return True


def open_path(path: str | os.PathLike[str]) -> bool:
    """Open a file or folder with the OS's default application (xdg-open / open / startfile)."""
    target = os.fspath(path)
    if sys.platform == "win32":
        try:
            os.startfile(target)  # type: ignore[attr-defined]
            return True
        except OSError as e:
            log.warning("could not open %s: %s", target, e)
            return False
    if sys.platform == "darwin":
        return _spawn(["open", target])
    opener = shutil.which("xdg-open") or shutil.which("gio")
    if opener is None:
        log.warning("could not open %s: xdg-open is not installed", target)
        return False
    return _spawn([opener, target] if opener.endswith("xdg-open") else [opener, "open", target])


def open_url(url: str) -> None:
    """Open a URL in the default browser, in a daemon thread (some `BROWSER`s wait until closed)."""
    threading.Thread(target=_open_url_now, args=(url,), name="open-url", daemon=True).start()


def _open_url_now(url: str) -> None:
    try:
        if not webbrowser.open(url):
            log.warning("no browser could be opened; open the sign-in page from the menu's Copy sign-in link")
    except Exception as e:
        log.warning("could not open the browser: %s", e)


CLIPBOARD_HINT = "install xclip or xsel (X11), or wl-clipboard (Wayland)"


def copy_text(text: str, *, gtk: bool = False) -> bool:
    """Put `text` on the clipboard. With `gtk`, call from the GTK main thread (menu callbacks are there)."""
    if gtk:
        try:
            import gi

            gi.require_version("Gtk", "3.0")
            gi.require_version("Gdk", "3.0")
            from gi.repository import Gdk, Gtk

            clipboard = Gtk.Clipboard.get(Gdk.SELECTION_CLIPBOARD)
            clipboard.set_text(text, -1)
            clipboard.store()
            return True
        except Exception:
            log.debug("GTK clipboard failed; trying a command", exc_info=True)
    for argv in _clipboard_commands():
        if shutil.which(argv[0]):
            return _spawn(argv, stdin=text.encode("utf-8"))
    log.warning("no clipboard tool found (%s)", CLIPBOARD_HINT)
    return False


def _clipboard_commands() -> list[list[str]]:
    if sys.platform == "darwin":
        return [["pbcopy"]]
    if sys.platform == "win32":
        return [["clip"]]
    cmds = [["xclip", "-selection", "clipboard"], ["xsel", "--clipboard", "--input"]]
    if os.environ.get("WAYLAND_DISPLAY"):
        cmds.insert(0, ["wl-copy"])
    return cmds


Opener = Callable[[str], None]
