"""The control commands of the CLI against a running instance (broxy-tray run --headless as a subprocess).

The `*_through_the_cli` tests run `python -m broxy_tray …` and need the cli.py
patch from issue 7; the others call `broxy_tray.control._cli` directly.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from broxy_tray.control import _cli, control_path

from .conftest import config_with_servers

pytestmark = pytest.mark.skipif(os.name == "nt", reason="Unix socket tests")


@pytest.fixture
def env(user_env, short_dir, monkeypatch):
    """The same user dirs for this process (the in-process CLI) and the launched instance.

    The runtime dir is a short one: socket paths are limited to ~104 bytes and pytest's tmp paths can be long.
    """
    runtime = short_dir / "run"
    runtime.mkdir(mode=0o700)
    user_env["XDG_RUNTIME_DIR"] = str(runtime)  # the same dict the `headless` fixture uses
    for k, v in user_env.items():
        if k.startswith("XDG_") or k == "HOME":
            monkeypatch.setenv(k, v)
    monkeypatch.delenv("BROXY_CONFIG", raising=False)
    return user_env


@pytest.fixture
def config(tmp_path) -> Path:
    path = tmp_path / "mcp.json"
    path.write_text(json.dumps(config_with_servers(), indent=2))
    return path


def ns(command: str, config: Path, **kw) -> argparse.Namespace:
    return argparse.Namespace(command=command, config=str(config), **kw)


def run(capsys, command: str, config: Path, **kw) -> tuple[int, str, str]:
    rc = _cli.run(ns(command, config, **kw))
    out, err = capsys.readouterr()
    return rc, out, err


def test_status_without_a_running_instance_shows_what_would_run(env, config, capsys):
    rc, out, err = run(capsys, "status", config, json=False)
    assert rc == 3
    assert f"broxy-tray is not running for {config}; start it with `broxy-tray --config {config}`" in out
    assert "Local files [files]: enabled (stdio)" in out
    assert "Switched off [off]: disabled" in out
    assert "Broken [broken]: error — url scheme 'ftp'" in out

    rc, out, err = run(capsys, "status", config, json=True)
    assert rc == 3
    lines = [json.loads(x) for x in out.splitlines()]
    assert lines[0]["event"] == "app" and lines[0]["running"] is False and lines[0]["configPath"] == str(config)
    servers = {x["server"]: x for x in lines[1:]}
    assert servers["files"]["enabled"] is True and servers["files"]["error"] is None
    assert servers["off"]["enabled"] is False
    assert "ftp" in servers["broken"]["error"]


def test_status_without_a_config_file(env, tmp_path, capsys):
    rc, out, _ = run(capsys, "status", tmp_path / "missing.json", json=False)
    assert rc == 3 and "does not exist yet" in out


@pytest.mark.parametrize("command,extra", [
    ("auth", {"server": "files"}), ("logout", {"server": "files"}), ("enable", {"server": "files"}),
    ("disable", {"server": "files"}), ("reload", {}), ("quit", {}),
])
def test_other_commands_without_a_running_instance(env, config, capsys, command, extra):
    before = config.read_text()
    rc, out, err = run(capsys, command, config, **extra)
    assert rc == 3
    assert f"broxy-tray is not running for {config}; start it with `broxy-tray --config {config}`" in err
    assert config.read_text() == before


def test_not_running_hint_names_the_config_only_when_it_is_not_the_default(env, tmp_path, capsys):
    from broxy_tray.config import default_config_path

    default = default_config_path()
    default.parent.mkdir(parents=True, exist_ok=True)
    default.write_text(json.dumps(config_with_servers()))
    rc, out, _ = run(capsys, "status", default, json=False)
    assert rc == 3 and out.startswith(f"broxy-tray is not running for {default}; start it with `broxy-tray`\n")

    spaced = tmp_path / "my configs" / "custom.json"
    spaced.parent.mkdir()
    spaced.write_text(json.dumps(config_with_servers()))
    rc, _, err = run(capsys, "reload", spaced)
    assert rc == 3 and f"start it with `broxy-tray --config '{spaced}'`" in err


def test_every_command_against_a_running_instance(env, config, launch, capsys):
    inst = launch(config)
    sock = inst.ready()
    assert sock == control_path(config)
    assert stat.S_IMODE(os.lstat(sock).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(sock.parent).st_mode) == 0o700
    assert sock.parent == Path(env["XDG_RUNTIME_DIR"]) / "broxy"

    rc, out, _ = run(capsys, "status", config, json=False)
    assert rc == 0
    assert f"broxy-tray is running for {config} (process {inst.proc.pid}): 1 of 2 available" in out
    assert "Local files [files]: Available · 3 tools" in out
    assert "Switched off [off]: Disabled" in out

    rc, out, _ = run(capsys, "status", config, json=True)
    assert rc == 0
    lines = [json.loads(x) for x in out.splitlines()]
    assert lines[0]["event"] == "app" and lines[0]["running"] is True and lines[0]["pid"] == inst.proc.pid
    status = {x["server"]: x for x in lines[1:]}
    # the same objects the runner printed as its own latest status events (ts aside)
    latest = {}
    for e in inst.lines:
        if e["event"] == "status":
            latest[e["server"]] = e
    for sid, mine in status.items():
        assert mine["event"] == "status"
        assert {k: v for k, v in mine.items() if k in latest[sid] and k != "ts"} == \
               {k: v for k, v in latest[sid].items() if k != "ts"}

    rc, out, _ = run(capsys, "disable", config, server="files")
    assert rc == 0 and "Disabled Local files (saved in mcp.json)." in out
    assert '"enabled": false' in config.read_text()
    inst.wait_for(lambda e: e.get("server") == "files" and e.get("status") == "Disabled")
    rc, out, _ = run(capsys, "disable", config, server="files")
    assert rc == 0 and "already disabled" in out

    rc, out, _ = run(capsys, "enable", config, server="files")
    assert rc == 0 and "Enabled Local files" in out
    inst.wait_for(lambda e: e.get("server") == "files" and e.get("status") == "Available")

    rc, out, _ = run(capsys, "reload", config)
    assert rc == 0 and f"Reloaded {config} (3 servers)." in out

    for command in ("auth", "logout"):
        rc, out, err = run(capsys, command, config, server="files")
        # before the sign-in intents: "not available"; after: a stdio server has nothing to sign in to
        assert rc == 0 or "not available" in err or ("files" in err and "OAuth" in err), err

    before = config.read_text()
    rc, out, err = run(capsys, "enable", config, server="nope")
    assert rc == 1 and f"no server 'nope' in {config}" in err
    assert config.read_text() == before

    rc, out, _ = run(capsys, "quit", config)
    assert rc == 0 and f"broxy-tray (process {inst.proc.pid}) is shutting down." in out
    assert inst.proc.wait(15) == 0
    assert not sock.exists()
    rc, out, _ = run(capsys, "status", config, json=False)
    assert rc == 3


def test_a_killed_instance_leaves_a_socket_the_next_one_replaces(env, config, launch, capsys):
    first = launch(config)
    sock = first.ready()
    first.kill(signal.SIGKILL)
    assert stat.S_ISSOCK(os.lstat(sock).st_mode), "a killed process leaves its socket file"
    rc, out, err = run(capsys, "status", config, json=False)
    assert rc == 3 and "is not running" in out

    second = launch(config)
    assert second.ready() == sock
    rc, out, _ = run(capsys, "status", config, json=False)
    assert rc == 0 and f"(process {second.proc.pid})" in out


def test_two_configs_get_two_channels(env, config, tmp_path, launch, capsys):
    other = tmp_path / "other.json"
    other.write_text(json.dumps(config_with_servers()))
    a, b = launch(config), launch(other)
    sa, sb = a.ready(), b.ready()
    assert sa != sb and sa.parent == sb.parent
    rc, out, _ = run(capsys, "status", other, json=True)
    assert rc == 0 and json.loads(out.splitlines()[0])["pid"] == b.proc.pid


# -- through `python -m broxy_tray` (needs the cli.py patch) --


def cli(env, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "broxy_tray", *args], env=env, capture_output=True, text=True,
                          timeout=60)


def test_status_and_commands_through_the_cli(env, config, launch):
    r = cli(env, "status", "--config", str(config))
    assert r.returncode == 3 and "is not running" in r.stdout and "Local files [files]: enabled" in r.stdout
    r = cli(env, "disable", "files", "--config", str(config))
    assert r.returncode == 3 and f"start it with `broxy-tray --config {config}`" in r.stderr

    inst = launch(config)
    inst.ready()
    r = cli(env, "status", "--json", "--config", str(config))
    assert r.returncode == 0
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert [x["server"] for x in lines if x["event"] == "status"] == ["files", "off", "broken"]
    r = cli(env, "--config", str(config), "disable", "files")
    assert r.returncode == 0, r.stderr
    assert json.loads(config.read_text())["mcpServers"]["files"]["enabled"] is False
    r = cli(env, "--config", str(config), "enable", "files")
    assert r.returncode == 0, r.stderr
    r = cli(env, "--config", str(config), "reload")
    assert r.returncode == 0, r.stderr
    for command in ("auth", "logout"):
        r = cli(env, "--config", str(config), command, "files")
        assert r.returncode == 0 or "not available" in r.stderr or "OAuth" in r.stderr, r.stderr
    r = cli(env, "--config", str(config), "enable", "nope")
    assert r.returncode == 1 and "no server 'nope'" in r.stderr
    r = cli(env, "--config", str(config), "quit")
    assert r.returncode == 0, r.stderr
    assert inst.proc.wait(15) == 0


def test_the_real_headless_runner_serves_the_channel_and_quits(env, config, headless):
    """After the patch, `broxy-tray run --headless --json` itself listens, and `quit` stops it."""
    h = headless("--config", str(config))
    h.wait_for(lambda e: e.get("server") == "files" and e.get("status") == "Available", timeout=20)
    r = cli(env, "status", "--json", "--config", str(config))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.splitlines()[0])["pid"] == h.proc.pid
    r = cli(env, "quit", "--config", str(config))
    assert r.returncode == 0, r.stderr
    assert h.proc.wait(15) == 0
    assert not control_path(config).exists()


def test_an_instance_without_a_control_channel_is_named(env, config, capsys):
    """The instance lock is held but nothing answers: say so instead of "not running"."""
    code = ("import sys, time; from pathlib import Path; from broxy_tray._instance import InstanceLock; "
            "InstanceLock(Path(sys.argv[1])).acquire(); print('locked', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(config)], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        rc, out, _ = run(capsys, "status", config, json=False)
        assert rc == 3
        assert f"broxy-tray seems to be running for {config} (process {proc.pid}), but its control channel" in out
        rc, _, err = run(capsys, "reload", config)
        assert rc == 3 and "does not answer" in err
    finally:
        proc.kill()
        proc.wait()
