"""Start at login, per OS, for the current user (no admin rights).

- Linux (and other XDG desktops): `$XDG_CONFIG_HOME/autostart/broxy-tray.desktop`,
  or, with method "systemd", a user unit `$XDG_CONFIG_HOME/systemd/user/broxy-tray.service`
  enabled for `graphical-session.target`;
- macOS: `~/Library/LaunchAgents/<LABEL>.plist` (RunAtLoad, restarted after a crash only,
  stdout/stderr into the app's log folder);
- Windows: `broxy-tray.cmd` in the per-user Startup folder.

Each entry runs the interpreter broxy-tray was installed into (its absolute
path, symlinks kept, so a virtualenv or pipx venv stays in use) with
`-m broxy_tray`, plus `--config PATH` only when a non-default config is in use.
The templates live in `installers/` and are rendered here.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Mapping, Sequence
from xml.sax.saxutils import escape as xml_escape

LABEL = "org.broxy.tray"  # the LaunchAgent's label
ENTRY_NAME = "broxy-tray"

METHODS = {"linux": ("xdg", "systemd"), "darwin": ("launchd",), "win32": ("startup",)}
METHOD_NAMES = {
    "xdg": "XDG autostart entry",
    "systemd": "systemd user unit",
    "launchd": "LaunchAgent",
    "startup": "Startup-folder script",
}


class AutostartError(Exception):
    """Start at login cannot be set up; the message says why."""


def templates_dir() -> Path:
    """`installers/` of a checkout (or editable install), else the copy a wheel installs as data files
    (`<venv>/share/broxy-tray/installers`, or under the user base for `pip install --user`)."""
    import site

    candidates = [
        Path(__file__).resolve().parents[2] / "installers",
        Path(sys.prefix) / "share" / "broxy-tray" / "installers",
        Path(site.getuserbase()) / "share" / "broxy-tray" / "installers",
    ]
    for c in candidates:
        if (c / "linux" / "autostart.desktop.in").is_file():
            return c
    raise AutostartError("the start-at-login templates are missing (looked in "
                         + ", ".join(str(c) for c in candidates) + "); reinstall broxy-tray")


def _template(relative: str) -> Template:
    path = templates_dir() / relative
    return Template(path.read_text(encoding="utf-8"))


def platform_kind(platform: str | None = None) -> str:
    p = platform or sys.platform
    if p.startswith("win"):
        return "win32"
    if p == "darwin":
        return "darwin"
    return "linux"  # Linux and the BSDs: XDG desktops


def launch_command(config_path: Path | None = None, *, executable: str | None = None,
                   platform: str | None = None) -> list[str]:
    """argv that starts this installation of broxy-tray, for the given config."""
    exe = executable or sys.executable
    if not exe:
        raise AutostartError("cannot tell which Python runs broxy-tray (sys.executable is empty)")
    exe = os.path.abspath(exe)  # not realpath: a venv's python is a symlink that must stay one
    if platform_kind(platform) == "win32":
        pythonw = Path(exe).with_name("pythonw.exe")
        if Path(exe).name.lower() == "python.exe" and pythonw.exists():
            exe = str(pythonw)  # no console window
    argv = [exe, "-m", "broxy_tray"]
    if config_path is not None:
        from ..config import default_config_path

        config = Path(os.path.abspath(config_path))
        if config != Path(os.path.abspath(default_config_path())):
            argv += ["--config", str(config)]
    return argv


# -- quoting for each format --

_DESKTOP_RESERVED = set(" \t\n\"'\\><~|&;$*?#()`")


def desktop_exec(argv: Sequence[str]) -> str:
    """An `Exec=` value (Desktop Entry Specification: quoting, `%%`, then string escaping)."""
    words = []
    for arg in argv:
        if "\n" in arg or "\r" in arg:
            raise AutostartError(f"cannot put a line break into a desktop entry: {arg!r}")
        if arg and not (set(arg) & _DESKTOP_RESERVED):
            word = arg
        else:
            word = '"' + "".join("\\" + c if c in '"`$\\' else c for c in arg) + '"'
        words.append(word.replace("%", "%%"))
    return " ".join(words).replace("\\", "\\\\")


def systemd_exec(argv: Sequence[str]) -> str:
    """An `ExecStart=` value: `%` and `$` doubled, words with specials double-quoted with C escapes."""
    words = []
    for arg in argv:
        if "\n" in arg or "\r" in arg:
            raise AutostartError(f"cannot put a line break into a systemd unit: {arg!r}")
        a = arg.replace("%", "%%").replace("$", "$$")
        if a and not re.search(r"[\s\"'\\;]", a):
            words.append(a)
        else:
            words.append('"' + a.replace("\\", "\\\\").replace('"', '\\"') + '"')
    return " ".join(words)


def windows_command(argv: Sequence[str]) -> str:
    """A cmd.exe command line: every word double-quoted (so `&|<>^` stay literal), `%` doubled."""
    words = []
    for arg in argv:
        if '"' in arg or "\n" in arg:
            raise AutostartError(f"cannot quote {arg!r} for cmd.exe")
        # backslashes before the closing quote must be doubled (CommandLineToArgvW rules)
        trailing = len(arg) - len(arg.rstrip("\\"))
        words.append('"' + arg + "\\" * trailing + '"')
    return " ".join(words).replace("%", "%%")


# -- the entry --


@dataclass(frozen=True)
class AutostartStatus:
    enabled: bool
    method: str  # the method found enabled, else the one `enable` would use
    path: Path  # the entry's file
    up_to_date: bool  # the file is what `enable` would write now
    command: tuple[str, ...]  # what `enable` would start

    def describe(self) -> str:
        what = METHOD_NAMES[self.method]
        if not self.enabled:
            return f"Start at login: disabled ({what} would be {self.path})"
        text = f"Start at login: enabled ({what} {self.path})"
        if not self.up_to_date:
            text += "\n  the entry differs from what `broxy-tray autostart enable` would write now; run it to update"
        return text


class Autostart:
    """Start at login for this user: `is_enabled()`, `enable()`, `disable()` (the tray's toggle), `status()`.

    `enable()` and `disable()` are idempotent and return whether they changed anything.
    """

    def __init__(
        self,
        config_path: Path | None = None,
        *,
        method: str | None = None,
        platform: str | None = None,
        environ: Mapping[str, str] | None = None,
        home: Path | None = None,
        executable: str | None = None,
        run_tools: bool = True,
    ) -> None:
        self.kind = platform_kind(platform)
        allowed = METHODS[self.kind]
        if method is not None and method not in allowed:
            raise AutostartError(f"start-at-login method {method!r} is not available here (use {', '.join(allowed)})")
        self.method = method or allowed[0]
        self.config_path = config_path
        self.environ = dict(os.environ if environ is None else environ)
        self.home = Path(home) if home is not None else Path(self.environ.get("HOME") or Path.home())
        self.executable = executable
        self.run_tools = run_tools  # systemctl --user daemon-reload after changes (off in tests)

    # -- where --

    def _xdg_config_home(self) -> Path:
        raw = self.environ.get("XDG_CONFIG_HOME", "")
        return Path(raw) if raw and os.path.isabs(raw) else self.home / ".config"

    def path_for(self, method: str) -> Path:
        if method == "xdg":
            return self._xdg_config_home() / "autostart" / f"{ENTRY_NAME}.desktop"
        if method == "systemd":
            return self._xdg_config_home() / "systemd" / "user" / f"{ENTRY_NAME}.service"
        if method == "launchd":
            return self.home / "Library" / "LaunchAgents" / f"{LABEL}.plist"
        appdata = self.environ.get("APPDATA") or str(self.home / "AppData" / "Roaming")
        return Path(appdata) / "Microsoft" / "Windows" / "Start Menu" / "Programs" / "Startup" / f"{ENTRY_NAME}.cmd"

    def _wants_link(self) -> Path:
        unit = self.path_for("systemd")
        return unit.parent / "graphical-session.target.wants" / unit.name

    @property
    def path(self) -> Path:
        return self.path_for(self.method)

    def log_dir(self) -> Path:
        if self.kind == "darwin":
            return self.home / "Library" / "Logs" / "broxy"
        from .._logging import default_log_dir

        return default_log_dir()

    # -- what --

    def command(self) -> list[str]:
        return launch_command(self.config_path, executable=self.executable, platform=self.kind)

    def render(self, method: str | None = None) -> str:
        method = method or self.method
        argv = self.command()
        if method == "xdg":
            return _template("linux/autostart.desktop.in").substitute(exec=desktop_exec(argv))
        if method == "systemd":
            return _template("linux/broxy-tray.service.in").substitute(exec=systemd_exec(argv))
        if method == "launchd":
            logs = self.log_dir()
            args = "\n".join(f"    <string>{xml_escape(a)}</string>" for a in argv)
            path = self.environ.get("PATH") or "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
            return _template("macos/launchagent.plist.in").substitute(
                label=xml_escape(LABEL), program_arguments=args, path=xml_escape(path),
                stdout_log=xml_escape(str(logs / "launchd.stdout.log")),
                stderr_log=xml_escape(str(logs / "launchd.stderr.log")),
            )
        text = _template("windows/startup.cmd.in").substitute(command=windows_command(argv))
        return "\r\n".join(text.splitlines()) + "\r\n"

    # -- state --

    def _enabled_methods(self) -> list[str]:
        found = []
        for m in METHODS[self.kind]:
            if m == "systemd":
                if os.path.lexists(self._wants_link()):
                    found.append(m)
            elif self.path_for(m).is_file():
                found.append(m)
        return found

    def is_enabled(self) -> bool:
        return bool(self._enabled_methods())

    def status(self) -> AutostartStatus:
        found = self._enabled_methods()
        method = found[0] if found else self.method
        up_to_date = False
        if found:
            try:
                up_to_date = _read(self.path_for(method)) == self.render(method)
            except (OSError, UnicodeDecodeError):
                up_to_date = False
        return AutostartStatus(bool(found), method, self.path_for(method), up_to_date, tuple(self.command()))

    # -- changes --

    def enable(self) -> bool:
        """Write (or update) the entry for `self.method`; other methods' entries are removed."""
        changed = False
        for other in METHODS[self.kind]:
            if other != self.method:
                changed |= self._remove(other)
        text = self.render()
        path = self.path
        try:
            current = _read(path) if path.is_file() else None
        except (OSError, UnicodeDecodeError):
            current = None
        if current != text:
            _write_atomic(path, text)
            changed = True
        if self.method == "systemd":
            link = self._wants_link()
            if not os.path.lexists(link):
                link.parent.mkdir(parents=True, exist_ok=True)
                os.symlink(os.path.join("..", path.name), link)
                changed = True
        if self.method == "launchd":
            self.log_dir().mkdir(parents=True, exist_ok=True)  # launchd does not create it
        if changed and self.method == "systemd":
            self._daemon_reload()
        return changed

    def disable(self) -> bool:
        """Remove every start-at-login entry of this app for this user."""
        changed = False
        for m in METHODS[self.kind]:
            changed |= self._remove(m)
        return changed

    def _remove(self, method: str) -> bool:
        removed = False
        paths = [self.path_for(method)]
        if method == "systemd":
            paths.insert(0, self._wants_link())
        for p in paths:
            if os.path.lexists(p):
                os.unlink(p)
                removed = True
        if removed and method == "systemd":
            self._daemon_reload()
        return removed

    def _daemon_reload(self) -> None:
        if not self.run_tools or shutil.which("systemctl") is None:
            return
        try:
            subprocess.run(["systemctl", "--user", "daemon-reload"], capture_output=True, timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired):
            pass


def _read(path: Path) -> str:
    with open(path, encoding="utf-8", newline="") as f:  # keep CRLF as written
        return f.read()


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
