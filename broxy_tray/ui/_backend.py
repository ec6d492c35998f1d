"""Which tray to run here, decided before the app starts.

Linux: the StatusNotifierItem tray over D-Bus (pure Python, `ui/sni/`) when a
StatusNotifierWatcher runs on the session bus — every panel that shows tray
menus provides one. Without one (an XEmbed-only panel), pystray's GTK
backends when PyGObject is installed (the `xembed` extra); otherwise the SNI
tray anyway, headless until a watcher appears (`TrayBackend.waiting`), with
one line saying why and what to install; no session bus: no tray.
macOS and Windows: pystray.
`PYSTRAY_BACKEND` forces a pystray backend, as before.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from types import ModuleType
from typing import Mapping

log = logging.getLogger(__name__)

SNI = "sni"
GTK_BACKENDS = ("appindicator", "gtk")
SNI_WAIT_SECONDS = 5.0  # at login the panel may start a little after us

XEMBED_HINT = (
    "the XEmbed fallback needs PyGObject, which is not installed: pip install 'broxy-tray[xembed]' "
    "(Debian/Ubuntu first: apt install gir1.2-gtk-3.0 gir1.2-ayatanaappindicator3-0.1 "
    "libgirepository1.0-dev libcairo2-dev pkg-config)"
)
LINUX_INSTALL_HINT = XEMBED_HINT  # the name other modules knew


class TrayUnavailable(Exception):
    """No tray here; the message is one line for the user (what is missing, what to install)."""


@dataclass(frozen=True)
class TrayBackend:
    name: str  # "sni" | "appindicator" | "gtk" | "darwin" | "win32" | "xorg" (only when asked for)
    pystray: ModuleType | None = None  # None for "sni"
    watcher: str = ""  # sni: the unique bus name of the StatusNotifierWatcher seen at start
    note: str = ""  # why this backend and not the default one ('' when it is the default)

    @property
    def waiting(self) -> bool:
        """The SNI tray with no watcher yet: headless output until a panel's watcher appears."""
        return self.name == SNI and not self.watcher

    @property
    def glib(self) -> bool:
        return self.name in GTK_BACKENDS


def _sni_wait(env: Mapping[str, str], default: float) -> float:
    try:
        return max(0.0, float(env.get("BROXY_SNI_WAIT", default)))
    except ValueError:
        return default


def choose_backend(environ: Mapping[str, str] | None = None, platform: str | None = None, *,
                   sni_wait: float | None = None) -> str:
    """The tray backend to use here ("sni" or a pystray backend), or `TrayUnavailable` saying why there is none."""
    return _choose(environ, platform, sni_wait)[0]


def _choose(environ: Mapping[str, str] | None, platform: str | None,
            sni_wait: float | None) -> tuple[str, str, str]:
    """(backend, watcher owner, note)."""
    env = os.environ if environ is None else environ
    platform = platform or sys.platform
    if platform == "darwin":
        return "darwin", "", ""
    if platform == "win32":
        return "win32", "", ""
    explicit = env.get("PYSTRAY_BACKEND", "").strip()
    if explicit:
        if explicit == "xorg":
            log.warning("PYSTRAY_BACKEND=xorg: this backend has no menu; clicks may not arrive")
        return explicit, "", ""
    if not (env.get("DISPLAY") or env.get("WAYLAND_DISPLAY")):
        raise TrayUnavailable("no display (DISPLAY and WAYLAND_DISPLAY are unset)")
    from .sni import probe_watcher

    wait = _sni_wait(env, SNI_WAIT_SECONDS) if sni_wait is None else sni_wait
    probe = probe_watcher(env, wait)
    if probe.owner:
        return SNI, probe.owner, ""
    why = probe.error or f"no StatusNotifierWatcher on the session bus (waited {wait:g} s; the panel has no " \
                         "StatusNotifierItem support, or none runs yet)"
    try:
        return _choose_gtk(env, why), "", why
    except TrayUnavailable:
        if probe.error:  # no session bus at all: nothing to wait for
            raise
        # No XEmbed fallback either: still export the item; it shows as soon as a watcher appears
        # (a panel that starts after us at login). Until then the runner prints what headless prints.
        return SNI, "", f"{why}; {XEMBED_HINT}"


def _choose_gtk(env: Mapping[str, str], why: str) -> str:
    try:
        import gi
    except Exception:
        raise TrayUnavailable(f"{why}; {XEMBED_HINT}") from None
    # A tray icon draws nothing with OpenGL, but GDK probes GLX when it opens the display and so
    # maps the whole GL driver (Mesa with LLVM: ~50 MiB). GDK reads this once, when it initialises.
    os.environ.setdefault("GDK_GL", "disable")
    try:
        gi.require_version("Gtk", "3.0")
        from gi.repository import Gtk
    except Exception:
        raise TrayUnavailable(f"{why}; the XEmbed fallback needs GTK 3 for PyGObject "
                              "(Debian/Ubuntu: apt install gir1.2-gtk-3.0)") from None
    try:
        ok = Gtk.init_check()[0]
    except Exception:
        ok = False
    if not ok:
        shown = env.get("DISPLAY") or env.get("WAYLAND_DISPLAY")
        raise TrayUnavailable(f"{why}; and GTK cannot open the display {shown}")
    for namespace in ("AyatanaAppIndicator3", "AppIndicator3"):
        try:
            gi.require_version(namespace, "0.1")
            return "appindicator"
        except Exception:
            continue
    return "gtk"


def load_backend(environ: Mapping[str, str] | None = None, platform: str | None = None, *,
                 sni_wait: float | None = None) -> TrayBackend:
    """Choose a backend and, for pystray ones, import pystray with it. Any exception from pystray means "no tray"."""
    name, watcher, note = _choose(environ, platform, sni_wait)
    if name == SNI:
        return TrayBackend(SNI, None, watcher=watcher, note=note)
    candidates = [name] + (["gtk"] if name == "appindicator" else [])
    errors = []
    for candidate in candidates:
        module = _import_pystray(candidate)
        if isinstance(module, ModuleType):
            return TrayBackend(candidate, module, note=note)
        errors.append(f"{candidate}: {module}")
    hint = f"; {XEMBED_HINT}" if (platform or sys.platform).startswith("linux") else ""
    raise TrayUnavailable(f"no tray backend works ({'; '.join(errors)}){hint}")


def _import_pystray(backend: str) -> ModuleType | str:
    previous = os.environ.get("PYSTRAY_BACKEND")
    os.environ["PYSTRAY_BACKEND"] = backend  # pystray reads it at import time
    try:
        import pystray

        return pystray
    except Exception as e:  # without a display it raises Xlib errors, not ImportError
        for name in [k for k in sys.modules if k == "pystray" or k.startswith("pystray.")]:
            del sys.modules[name]
        return f"{type(e).__name__}: {e}"
    finally:  # keep it out of the servers' environment
        if previous is None:
            os.environ.pop("PYSTRAY_BACKEND", None)
        else:
            os.environ["PYSTRAY_BACKEND"] = previous


def unavailable_reason() -> str:
    """Why the tray cannot run here ('' when it can). Imports the toolkit when it can."""
    try:
        load_backend(sni_wait=0)
    except TrayUnavailable as e:
        return str(e)
    return ""
