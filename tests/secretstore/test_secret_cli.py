"""`broxy-tray secret set|list|rm|import` on a real gnome-keyring: good input and every kind of bad input."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from secrets_testlib import run_cli

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="gnome-keyring: Linux")

SERVICE = "broxy-tray-secrets"


def stored_usernames(env: dict[str, str]) -> list[str]:
    """What is in the keyring under our service, as libsecret's secret-tool sees it."""
    proc = subprocess.run(["secret-tool", "search", "--all", "service", SERVICE], env=env, capture_output=True,
                          text=True, timeout=10)
    out = proc.stdout + proc.stderr
    return sorted(line.split(" = ", 1)[1] for line in out.splitlines() if line.startswith("attribute.username = "))


def read_back_digest(env: dict[str, str], name: str) -> str:
    """sha256 of the value the real SecretStore reads back, in a fresh process (the value never printed)."""
    code = ("import asyncio, hashlib, sys\nfrom broxy_tray.secrets import SecretStore\n"
            f"v = asyncio.run(SecretStore().get({name!r}))\n"
            "print(hashlib.sha256(v.encode()).hexdigest() if v is not None else 'none')\n")
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=30).stdout.strip()


@pytest.mark.parametrize("bad", ["1ABC", "A-B", "A B", "${A}", "", "ÄPFEL", "A" * 129])
def test_bad_names_are_refused_and_nothing_is_stored(keyring_env: dict[str, str], bad: str) -> None:
    for args in (["set", bad], ["rm", bad], ["import", "GOOD_ONE", bad]):
        r = run_cli({**keyring_env, "GOOD_ONE": "good-value-1"}, "secret", *args, input="some-value-1")
        assert r.returncode == 1, (args, r)
        assert "secret name" in r.stderr, r.stderr
    assert stored_usernames(keyring_env) == [], "a bad name in an import stores none of the others either"


def test_empty_values_and_a_closed_stdin_are_refused(keyring_env: dict[str, str]) -> None:
    for given in ("", "\n", "\r\n"):
        r = run_cli(keyring_env, "secret", "set", "EMPTY_ONE", input=given)
        assert r.returncode == 1 and "refusing to store an empty value for EMPTY_ONE" in r.stderr, r
    r = run_cli(keyring_env, "secret", "set", "EMPTY_ONE", stdin=subprocess.DEVNULL)  # stdin at EOF at once
    assert r.returncode == 1 and "empty value" in r.stderr, r
    closed = subprocess.run([sys.executable, "-m", "broxy_tray", "secret", "set", "EMPTY_ONE"], env=keyring_env,
                            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
                            preexec_fn=lambda: os.close(0))  # no fd 0 at all
    assert closed.returncode == 1 and "standard input is closed" in closed.stderr, closed
    assert stored_usernames(keyring_env) == []


def test_set_import_list_rm_roundtrip_with_a_value_split_into_parts(keyring_env: dict[str, str],
                                                                    tmp_path: Path) -> None:
    env = keyring_env
    big = "x" * 1500 + os.urandom(8).hex() + "é" * 300  # > 600 characters: stored in parts
    r = run_cli(env, "secret", "set", "BIG_ONE", input=big + "\n")
    assert r.returncode == 0 and "Stored BIG_ONE in Secret Service" in r.stdout, r
    assert read_back_digest(env, "BIG_ONE") == hashlib.sha256(big.encode()).hexdigest()
    assert stored_usernames(env) == ["#index", "BIG_ONE", "BIG_ONE#1", "BIG_ONE#2", "BIG_ONE#3", "BIG_ONE#4"]

    r = run_cli({**env, "FROM_SHELL": "shell-value-12345", "EMPTY_VAR": ""}, "secret", "import", "FROM_SHELL",
                "NOT_IN_SHELL", "EMPTY_VAR")
    assert r.returncode == 1, r
    assert "Imported FROM_SHELL." in r.stdout
    assert "NOT_IN_SHELL is not set in this shell's environment" in r.stderr
    assert "EMPTY_VAR is empty" in r.stderr

    config = tmp_path / "mcp.json"
    config.write_text('{"mcpServers": {"a": {"command": "x", "env": {"K": "${FROM_SHELL}", "M": "${NOT_STORED}"}}}}')
    r = run_cli(env, "secret", "list", "--config", str(config))
    assert r.returncode == 0, r
    assert r.stdout.splitlines() == [
        "BIG_ONE: not used in mcp.json",
        "FROM_SHELL: used by a",
        "NOT_STORED: not set — needed by a; broxy-tray secret set NOT_STORED",
    ]
    assert "shell-value-12345" not in r.stdout + r.stderr

    small = "short-value-9876"
    assert run_cli(env, "secret", "set", "BIG_ONE", input=small).returncode == 0
    assert stored_usernames(env) == ["#index", "BIG_ONE", "FROM_SHELL"], "a smaller value leaves no stale parts"
    r = run_cli(env, "secret", "rm", "BIG_ONE")
    assert r.returncode == 0 and "Removed BIG_ONE." in r.stdout, r
    r = run_cli(env, "secret", "rm", "BIG_ONE")
    assert r.returncode == 1 and "no secret named BIG_ONE is stored" in r.stderr, r
    assert stored_usernames(env) == ["#index", "FROM_SHELL"]


def test_no_keyring_at_all_is_a_clear_failure(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DBUS_", "XDG_"))}
    env.update(HOME=str(tmp_path), PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring")
    r = run_cli(env, "secret", "set", "SOME_NAME", input="some-value-1")
    assert r.returncode == 1 and "could not store SOME_NAME: no usable keyring" in r.stderr, r


def test_set_on_a_terminal_asks_without_echo(keyring_env: dict[str, str]) -> None:
    import pty
    import select
    import time

    value = f"typed-{os.urandom(6).hex()}"
    pid, fd = pty.fork()  # a real terminal as the controlling tty: getpass reads from it
    if pid == 0:  # pragma: no cover - the child
        os.execve(sys.executable, [sys.executable, "-m", "broxy_tray", "secret", "set", "TTY_ONE"], keyring_env)
    seen = b""

    def read_until(needle: bytes, timeout: float = 60) -> None:
        nonlocal seen
        end = time.monotonic() + timeout
        while needle not in seen and time.monotonic() < end:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                seen += chunk
        assert needle in seen, seen

    try:
        read_until(b"Value for TTY_ONE (not shown): ")
        os.write(fd, value.encode() + b"\n")
        read_until(b"Stored TTY_ONE")
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0
    assert value.encode() not in seen, "the value was echoed"
    assert read_back_digest(keyring_env, "TTY_ONE") == hashlib.sha256(value.encode()).hexdigest()


def test_storing_a_secret_that_mcp_json_does_not_use_says_so(keyring_env: dict[str, str], tmp_path: Path) -> None:
    config = tmp_path / "mcp.json"
    config.write_text('{"mcpServers": {"a": {"command": "x", "env": {"K": "${USED_KEY}"}}}}')
    env = {**keyring_env, "FOO_KEY": "foo-value-31337", "USED_KEY": "used-value-4242"}
    r = run_cli(env, "secret", "import", "FOO_KEY", "--config", str(config))
    assert r.returncode == 0, r
    assert r.stdout.splitlines() == ["Imported FOO_KEY.",
                                     "mcp.json does not use ${FOO_KEY} yet; add it where a server needs it."]
    r = run_cli(env, "secret", "set", "FOO_KEY", "--config", str(config), input="other-value-1\n")
    assert r.returncode == 0 and "mcp.json does not use ${FOO_KEY} yet" in r.stdout, r
    r = run_cli(env, "secret", "import", "USED_KEY", "FOO_KEY", "--config", str(config))
    assert r.returncode == 0, r
    assert r.stdout.splitlines()[-1] == ("broxy-tray is not running; it uses the change when it starts. "
                                         "(FOO_KEY: not used by mcp.json yet.)")
    assert "foo-value-31337" not in r.stdout + r.stderr and "used-value-4242" not in r.stdout + r.stderr
