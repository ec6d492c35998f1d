"""A private D-Bus session bus with a real, unlocked gnome-keyring, for tests (the `secret_service` fixture).

Its own bus config (no service activation) and isolated HOME / XDG dirs:
nothing from the caller's session is used, whether or not pytest runs under
dbus-run-session. Both processes are stopped by PID at teardown.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from broxy_tray.auth._keyring_store import SERVICE

KEYRING_PASSWORD = b"keyring-test-password"

_BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:dir={dir}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""


def _wait_for(pred: Any, timeout: float, what: str) -> Any:
    end = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > end:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.05)


@dataclass
class SecretService:
    """A running private bus + gnome-keyring, and what a test needs to talk to it."""

    env: dict[str, str]
    address: str
    procs: list[subprocess.Popen[Any]] = field(default_factory=list)

    def start(self, args: list[str], **kw: Any) -> subprocess.Popen[Any]:
        kw.setdefault("stdout", subprocess.DEVNULL)
        kw.setdefault("stderr", subprocess.DEVNULL)
        proc = subprocess.Popen(args, env=self.env, start_new_session=True, **kw)
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()

    # D-Bus, through jeepney (already a dependency of SecretStorage): no gdbus needed.
    def call(self, dest: str, path: str, interface: str, method: str, signature: str | None = None,
             body: tuple[Any, ...] = ()) -> tuple[Any, ...]:
        from jeepney import DBusAddress, new_method_call
        from jeepney.io.blocking import open_dbus_connection

        with open_dbus_connection(bus=self.address) as conn:
            msg = new_method_call(DBusAddress(path, bus_name=dest, interface=interface), method, signature, body)
            return tuple(conn.send_and_get_reply(msg, timeout=5).body)

    def has_name(self, name: str) -> bool:
        return bool(self.call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                              "NameHasOwner", "s", (name,))[0])

    def default_collection(self) -> str:
        path = self.call("org.freedesktop.secrets", "/org/freedesktop/secrets", "org.freedesktop.Secret.Service",
                         "ReadAlias", "s", ("default",))[0]
        assert path and path != "/", "no default collection"
        return str(path)

    def collection_locked(self, path: str) -> bool:
        _sig, value = self.call("org.freedesktop.secrets", path, "org.freedesktop.DBus.Properties", "Get", "ss",
                                ("org.freedesktop.Secret.Collection", "Locked"))[0]
        return bool(value)

    def lock(self) -> None:
        """Lock the login collection, as a screen lock or `seahorse` would."""
        path = self.default_collection()
        self.call("org.freedesktop.secrets", "/org/freedesktop/secrets", "org.freedesktop.Secret.Service",
                  "Lock", "ao", ([path],))
        assert self.collection_locked(path)

    def usernames(self) -> list[str]:
        """Usernames of every broxy-tray item, as secret-tool (libsecret, not keyring) sees them."""
        proc = subprocess.run(["secret-tool", "search", "--all", "service", SERVICE], env=self.env,
                              capture_output=True, text=True, timeout=10)
        out = proc.stdout + proc.stderr  # secret-tool prints the attributes on stderr
        return sorted(line.split(" = ", 1)[1] for line in out.splitlines()
                      if line.startswith("attribute.username = "))

    def lookup(self, username: str) -> str:
        return subprocess.run(["secret-tool", "lookup", "service", SERVICE, "username", username], env=self.env,
                              capture_output=True, text=True, timeout=10).stdout


def _need(*commands: str) -> None:
    missing = [c for c in commands if shutil.which(c) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (Debian: gnome-keyring dbus-daemon libsecret-tools)")


def _clean_env(home: Path, runtime: Path) -> dict[str, str]:
    drop = ("DBUS_SESSION_BUS_ADDRESS", "DISPLAY", "WAYLAND_DISPLAY", "PYTHON_KEYRING_BACKEND")
    env = {k: v for k, v in os.environ.items()
           if k not in drop and not k.startswith(("XDG_", "KEYRING_PROPERTY_", "GNOME_KEYRING"))}
    env.update(
        HOME=str(home),
        XDG_RUNTIME_DIR=str(runtime),
        XDG_DATA_HOME=str(home / ".local/share"),
        XDG_CONFIG_HOME=str(home / ".config"),  # no keyringrc.cfg from the real user
        XDG_CACHE_HOME=str(home / ".cache"),
        NO_AT_BRIDGE="1",
        PYTHONUNBUFFERED="1",
    )
    return env


@contextlib.contextmanager
def private_secret_service(directory: Path) -> Iterator[SecretService]:
    """A private session bus (own config: no service activation) with an unlocked gnome-keyring.

    Also usable outside pytest (bench/token_lifecycle.py); raises RuntimeError if it cannot start.
    """
    home = directory / "keyring-home"  # (directory / "home" may be another fixture's)
    home.mkdir()
    runtime = Path(tempfile.mkdtemp(prefix="bk-"))  # short: unix socket paths are limited to 108 bytes
    os.chmod(runtime, 0o700)
    conf = directory / "bus.conf"
    conf.write_text(_BUS_CONFIG.format(dir=runtime))
    ss = SecretService(env=_clean_env(home, runtime), address="")
    try:
        bus = ss.start(["dbus-daemon", "--config-file", str(conf), "--nofork", "--print-address=1"],
                       stdout=subprocess.PIPE, text=True)
        ss.address = bus.stdout.readline().strip()  # type: ignore[union-attr]
        if not ss.address:
            raise RuntimeError(f"dbus-daemon did not start (exit {bus.wait(5)})")
        ss.env["DBUS_SESSION_BUS_ADDRESS"] = ss.address
        gk_log = open(directory / "gnome-keyring.log", "wb")
        keyring_daemon = ss.start(["gnome-keyring-daemon", "--foreground", "--unlock", "--components=secrets"],
                                  stdin=subprocess.PIPE, stdout=gk_log, stderr=gk_log)
        gk_log.close()
        keyring_daemon.stdin.write(KEYRING_PASSWORD)  # type: ignore[union-attr]
        keyring_daemon.stdin.close()  # type: ignore[union-attr]
        _wait_for(lambda: keyring_daemon.poll() is not None or ss.has_name("org.freedesktop.secrets"), 10,
                  "gnome-keyring on the bus")
        if keyring_daemon.poll() is not None:
            raise RuntimeError((directory / "gnome-keyring.log").read_text())
        _wait_for(lambda: not ss.collection_locked(ss.default_collection()), 5, "an unlocked login keyring")
        yield ss
    finally:
        ss.stop_all()
        shutil.rmtree(runtime, ignore_errors=True)


@pytest.fixture
def secret_service(tmp_path: Path) -> Iterator[SecretService]:
    """`private_secret_service` for one test (skipped where gnome-keyring is not installed)."""
    _need("dbus-daemon", "gnome-keyring-daemon", "secret-tool")
    with private_secret_service(tmp_path) as ss:
        yield ss
