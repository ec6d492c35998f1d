"""`broxy-tray doctor`: what a bug report needs, without secrets.

Version, platform, display and tray backend, notification service and its
capabilities, keyring backend (and whether it is locked), the config path and
whether it validates, the log path. Values from mcp.json never appear: only
counts and the validator's messages (which never contain expanded values).
Every probe has a timeout; a probe that fails says so and the report goes on.
"""

from __future__ import annotations

import asyncio
import os
import platform
import sys
import threading
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

from .. import __version__

PROBE_TIMEOUT = 5.0


def _version_of(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _with_timeout(fn: Callable[[], Any], timeout: float = PROBE_TIMEOUT) -> Any:
    """Run `fn` in a daemon thread; a locked keyring may block forever, the report must not."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:  # reported, not raised
            box["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        raise TimeoutError(f"no answer within {timeout:.0f} s")
    if "error" in box:
        raise box["error"]
    return box.get("value")


def _tray_lines() -> list[str]:
    from .tray import TrayUnavailable, load_backend

    display = os.environ.get("DISPLAY")
    wayland = os.environ.get("WAYLAND_DISPLAY")
    lines = [
        f"display: DISPLAY={display or '(unset)'} WAYLAND_DISPLAY={wayland or '(unset)'} "
        f"session={os.environ.get('XDG_SESSION_TYPE') or '?'} desktop={os.environ.get('XDG_CURRENT_DESKTOP') or '?'}",
        f"pystray {_version_of('pystray')}, Pillow {_version_of('Pillow')}, dbus-fast {_version_of('dbus-fast')}, "
        f"PyGObject {_version_of('PyGObject')} (only for the XEmbed fallback)",
    ]
    if sys.platform.startswith("linux"):
        lines.append(f"StatusNotifierWatcher on the session bus: {_sni_watcher()}")
    try:
        backend = _with_timeout(lambda: load_backend(sni_wait=0))
        if backend.waiting:
            lines.append(f"tray backend: sni, headless until a StatusNotifierWatcher appears — {backend.note}")
        elif backend.name == "sni":
            lines.append("tray backend: sni (StatusNotifierItem + dbusmenu over D-Bus, no toolkit)")
        else:
            lines.append(f"tray backend: {backend.name}" + (f" (fallback: {backend.note})" if backend.note else ""))
    except TrayUnavailable as e:
        lines.append(f"tray backend: none — {e} (broxy-tray runs headless)")
    except Exception as e:
        lines.append(f"tray backend: none — {type(e).__name__}: {e}")
    return lines


def _sni_watcher() -> str:
    try:
        from .sni import probe_watcher

        probe = probe_watcher()
    except Exception as e:
        return f"unknown ({type(e).__name__}: {e})"
    if probe.error:
        return f"unknown ({probe.error})"
    if not probe.owner:
        return "none (the panel shows no StatusNotifierItems; broxy-tray falls back to XEmbed or headless)"
    return f"owned by {probe.describe()}"


def _notification_lines() -> list[str]:
    lines = [f"desktop-notifier {_version_of('desktop-notifier')}"]

    async def probe() -> tuple[str, list[str]]:
        from desktop_notifier import DesktopNotifier

        notifier = DesktopNotifier(app_name="broxy-tray")
        caps = await asyncio.wait_for(notifier.get_capabilities(), PROBE_TIMEOUT)
        server = ""
        if sys.platform.startswith("linux"):
            try:
                from dbus_fast.aio import MessageBus

                bus = await asyncio.wait_for(MessageBus().connect(), PROBE_TIMEOUT)
                try:
                    intro = await bus.introspect("org.freedesktop.Notifications", "/org/freedesktop/Notifications")
                    obj = bus.get_proxy_object("org.freedesktop.Notifications", "/org/freedesktop/Notifications", intro)
                    iface = obj.get_interface("org.freedesktop.Notifications")
                    name, vendor, version, spec = await asyncio.wait_for(
                        iface.call_get_server_information(), PROBE_TIMEOUT)  # type: ignore[attr-defined]
                    server = f"{name} {version} ({vendor}, spec {spec})"
                finally:
                    bus.disconnect()
            except Exception:
                server = ""
        return server, sorted(c.name for c in caps)

    try:
        server, caps = _with_timeout(lambda: asyncio.run(probe()), PROBE_TIMEOUT * 2)
        if server:
            lines.append(f"notification service: {server}")
        else:
            lines.append("notification service: available")
        lines.append(f"notification capabilities: {', '.join(caps) or 'none reported'}")
    except Exception as e:
        lines.append(f"notification service: none ({type(e).__name__}: {str(e) or 'no answer'}); "
                     "the menu shows everything")
    return lines


def _keyring_lines() -> list[str]:
    try:
        import keyring
    except Exception:
        return ["keyring: not installed (tokens live in memory for one run)"]

    def probe() -> list[str]:
        kr = keyring.get_keyring()
        name = f"{type(kr).__module__}.{type(kr).__name__}"
        out = [f"keyring {_version_of('keyring')}: backend {name} (priority {getattr(kr, 'priority', '?')})"]
        if "fail" in type(kr).__module__:
            out.append("secure storage: unavailable — you may need to authorize again after restart")
            return out
        locked = _keyring_locked(kr)
        if locked is not None:
            out.append(f"keyring locked: {'yes (unlock it, or sign-ins will not be remembered)' if locked else 'no'}")
        return out

    try:
        return _with_timeout(probe)  # type: ignore[no-any-return]
    except TimeoutError:
        return [f"keyring {_version_of('keyring')}: no answer within {PROBE_TIMEOUT:.0f} s — probably locked "
                "(waiting on a password prompt); broxy-tray then keeps tokens in memory for this run"]
    except Exception as e:
        return [f"keyring: probe failed ({type(e).__name__}: {e})"]


def _keyring_locked(kr: Any) -> bool | None:
    """Whether the Secret Service default collection is locked (None: not that backend, or unknown)."""
    if "SecretService" not in type(kr).__module__:
        return None
    try:
        import secretstorage

        conn = secretstorage.dbus_init()
        try:
            return bool(secretstorage.get_default_collection(conn).is_locked())
        finally:
            conn.close()
    except Exception:
        return None


def _secret_lines() -> list[str]:
    """How many secrets for `${NAME}` are stored (never their names or values)."""
    from ..secrets import SecretStore, SecretStoreUnavailable

    store = SecretStore(timeout=PROBE_TIMEOUT)
    try:
        names = _with_timeout(lambda: asyncio.run(store.names()), PROBE_TIMEOUT * 2)
    except SecretStoreUnavailable as e:
        return [f"secret store: unavailable — {e.reason}"]
    finally:
        store.close()
    return [f"secret store: {len(names)} stored secret{'s' if len(names) != 1 else ''} ({store.description})"]


def _config_lines(config_path: Path | None) -> list[str]:
    from ..config import ConfigFileError, resolve_config_path
    from ..secrets._resolve import load_with_secrets

    try:
        path = config_path or resolve_config_path(None)
    except Exception as e:
        return [f"config: cannot resolve the path ({e})"]
    lines = [f"config: {path}"]
    try:
        config, _ = load_with_secrets(path)
    except ConfigFileError as e:
        lines.append(f"config: does not load — {e.issue}")
        return lines
    except Exception as e:
        lines.append(f"config: does not load — {type(e).__name__}")
        return lines
    enabled = sum(1 for s in config.servers if s.enabled)
    transports: dict[str, int] = {}
    for s in config.servers:
        key = s.transport.value if getattr(s, "transport", None) is not None else "?"
        transports[key] = transports.get(key, 0) + 1
    kinds = ", ".join(f"{n} {t}" for t, n in sorted(transports.items()))
    state = "valid" if not config.errors else f"{len(config.errors)} problem(s)"
    lines.append(f"config: {state}; {len(config.servers)} servers ({kinds or 'none'}), {enabled} enabled")
    for issue in list(config.errors)[:5]:
        lines.append(f"  {issue}")
    for w in list(config.warnings)[:5]:
        lines.append(f"  warning: {w.message}")
    return lines


def doctor_report(config_path: Path | None = None) -> str:
    """The whole report as text (one fact per line)."""
    from .._logging import LOG_FILE_NAME, default_log_dir

    lines = [
        f"broxy-tray {__version__}",
        f"python {platform.python_version()} ({sys.executable})",
        f"platform: {platform.platform()} ({sys.platform}, {platform.machine()})",
        f"mcp SDK {_version_of('mcp')}, httpx2 {_version_of('httpx2')}, watchdog {_version_of('watchdog')}",
    ]
    for section in (_tray_lines, _notification_lines, _keyring_lines, _secret_lines):
        try:
            lines.extend(section())
        except Exception as e:  # a broken probe must not hide the rest
            lines.append(f"{section.__name__.strip('_').replace('_lines', '')}: probe failed ({type(e).__name__}: {e})")
    lines.extend(_config_lines(config_path))
    log_dir = default_log_dir()
    lines.append(f"log: {log_dir / LOG_FILE_NAME}")
    return "\n".join(lines) + "\n"
