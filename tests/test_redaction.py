"""Issue 17.2: no value expanded from `${VAR}` in any output — the log file, headless lines, `status`,
`doctor`, `config check` and error messages — and the log file private (0600 in a 0700 directory).

Every test first puts the value where it used to leak (a crashed child's last stderr line, the
command line and cwd the log names, an invalid tokenEndpointAuthMethod or url scheme) and then
greps every output for it.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Any


def _secret(tag: str) -> str:
    return f"{tag}-{os.urandom(6).hex()}"


def _logs(env: dict[str, str]) -> str:
    folder = Path(env["XDG_STATE_HOME"]) / "broxy" / "log"
    return "".join(p.read_text(errors="replace") for p in folder.glob("broxy-tray.log*"))


def test_a_crashed_childs_stderr_and_its_command_line_never_show_the_value(user_env: dict[str, str], tmp_path: Path,
                                                                            headless: Any, cli: Any) -> None:
    token, arg, folder_name = _secret("tok"), _secret("arg"), _secret("dir")
    workdir = tmp_path / folder_name
    workdir.mkdir()
    env = {**user_env, "LEAKY_TOKEN": token, "LEAKY_ARG": arg, "LEAKY_DIR": str(workdir)}
    crash = "import os, sys; sys.stderr.write('boom ' + os.environ['TOKEN'] + ' ' + sys.argv[1] + '\\n'); sys.exit(3)"
    config = tmp_path / "mcp.json"
    config.write_text(json.dumps({"mcpServers": {"crashy": {
        "command": sys.executable, "args": ["-c", crash, "${LEAKY_ARG}"], "cwd": "${LEAKY_DIR}",
        "env": {"TOKEN": "${LEAKY_TOKEN}"}}}}))
    h = headless("--config", str(config), "--log-level", "debug", env=env)
    err = h.wait_for(lambda e: e["event"] == "status" and e["status"] == "Error" and "code 3" in e["detail"], 30)
    assert "boom ***" in err["detail"], err  # the reason is still there, the value is not
    status = cli("status", "--config", str(config), env=env)
    status_json = cli("status", "--json", "--config", str(config), env=env)
    assert "exited with code 3: boom ***" in status.stdout, status.stdout
    assert h.stop() == 0
    outputs = [json.dumps(h.lines), h.stderr(), status.stdout, status.stderr, status_json.stdout, _logs(env)]
    assert "boom ***" in outputs[-1], "the log file still carries the (redacted) stderr line"
    for value in (token, arg, folder_name):
        for text in outputs:
            assert value not in text


def test_config_check_doctor_and_status_never_echo_an_expanded_value(user_env: dict[str, str], tmp_path: Path,
                                                                     cli: Any) -> None:
    method, url, header = _secret("method"), f"ftp://{_secret('host')}.example/mcp", _secret("hdr")
    env = {**user_env, "AUTH_METHOD": method, "SERVER_URL": url, "HDR": header, "SHORT": "abc"}
    config = tmp_path / "mcp.json"
    config.write_text(json.dumps({"mcpServers": {
        "m": {"url": "https://h.example/mcp", "headers": {"X-K": "${HDR}"},
              "auth": {"tokenEndpointAuthMethod": "${AUTH_METHOD}"}},
        "u": {"transport": "http", "url": "${SERVER_URL}"},
        "s": {"url": "https://h.example/mcp", "auth": {"tokenEndpointAuthMethod": "${SHORT}"}},
    }}, indent=2))
    check = cli("config", "check", "--config", str(config), env=env)
    assert check.returncode == 1
    assert "tokenEndpointAuthMethod must be one of none, client_secret_basic, client_secret_post " \
           "(got '${AUTH_METHOD}')" in check.stderr, check.stderr
    assert "(got '${SHORT}')" in check.stderr, "a value too short to redact is not echoed either"
    assert "url scheme of the expanded url does not fit transport http" in check.stderr, check.stderr
    assert "  AUTH_METHOD: environment (m)" in check.stdout and "  SERVER_URL: environment (u)" in check.stdout
    doctor = cli("doctor", "--config", str(config), env=env, timeout=60)
    status = cli("status", "--config", str(config), env=env)  # not running: shows what it would run
    for text in (check.stdout, check.stderr, doctor.stdout, doctor.stderr, status.stdout, status.stderr):
        for value in (method, url, url.split("//")[1].split(".")[0], header, "'abc'"):
            assert value not in text


def test_log_file_is_private(user_env: dict[str, str], tmp_path: Path, headless: Any) -> None:
    config = tmp_path / "mcp.json"
    config.write_text('{"mcpServers": {}}')
    folder = Path(user_env["XDG_STATE_HOME"]) / "broxy" / "log"
    folder.mkdir(parents=True)
    os.chmod(folder, 0o755)  # an older version (or umask) left it readable by others
    (folder / "broxy-tray.log").write_text("old\n")
    os.chmod(folder / "broxy-tray.log", 0o644)
    h = headless("--config", str(config))
    h.config_event(30)
    assert h.stop() == 0
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / "broxy-tray.log").stat().st_mode) == 0o600


def test_rotated_log_files_are_private_too(tmp_path: Path) -> None:
    import logging

    from broxy_tray._logging import setup_logging

    path = setup_logging("info", tmp_path / "logs", stderr_level=None)
    handler = next(h for h in logging.getLogger().handlers if getattr(h, "baseFilename", None) == str(path))
    try:
        handler.maxBytes = 200  # type: ignore[attr-defined]
        for i in range(20):
            logging.getLogger("t").info("line %d %s", i, "x" * 40)
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
    files = sorted((tmp_path / "logs").iterdir())
    assert len(files) > 1
    assert {stat.S_IMODE(f.stat().st_mode) for f in files} == {0o600}


def test_tray_menu_lines_and_copy_error_are_redacted() -> None:
    from broxy_tray._redact import register
    from broxy_tray.state import ServerState, ServerStatus
    from broxy_tray.ui import menu as m

    value = _secret("menu")
    register([value])
    s = ServerState("c", "Crashy", ServerStatus.ERROR, detail=f"exited with code 1: boom {value}")
    assert m.server_label(s) == "✕ Crashy — Error: exited with code 1: boom ***"
    copy = m.find(m.server_actions(s), "Copy error")
    assert copy is not None and copy.action is not None and copy.action.payload == "exited with code 1: boom ***"


def test_every_expanded_value_is_registered_except_the_users_own_folders(tmp_path: Path) -> None:
    from broxy_tray._redact import redact
    from broxy_tray.config import parse_config
    from broxy_tray.config._expand import Sources

    env_value, stored, home = _secret("env"), _secret("stored"), f"/home/{_secret('user')}"
    text = json.dumps({"mcpServers": {"a": {"command": "${CMD}", "args": ["${STORED}"], "cwd": "${HOME}/work",
                                            "env": {"X": "${NOPE:-plain-default-value}"}}}})
    parse_config(text, "mcp.json", Sources({"CMD": env_value, "HOME": home}, {"STORED": stored}))
    line = f"started {env_value} {stored} in {home}/work with plain-default-value"
    assert redact(line) == f"started *** *** in {home}/work with plain-default-value"
