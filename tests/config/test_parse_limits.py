"""Audit item 5: deep nesting and huge numbers are located errors, never a traceback or a silent skip."""

from __future__ import annotations

import json

import pytest

from broxy_tray.config import ConfigFileError, parse_config
from broxy_tray.config._spans import MAX_DEPTH
from broxy_tray.config._writer import ConfigWriteError, edit_enabled

DEEP = '{\n  "mcpServers": {},\n  "x": ' + "[" * 5000 + "]" * 5000 + "\n}\n"
HUGE = '{\n  "mcpServers": {},\n  "requestTimeoutSeconds": ' + "7" * 5000 + "\n}\n"


@pytest.mark.parametrize(("text", "column", "reason"), [
    (DEEP, 7 + MAX_DEPTH, "nested deeper than"),  # the `{` of the file is level 1,
    (HUGE, 28, "a number longer than"),
])
def test_parse_locates_deep_nesting_and_huge_numbers(text, column, reason):
    with pytest.raises(ConfigFileError) as err:
        parse_config(text, "mcp.json")
    issue = err.value.issue
    assert (issue.line, issue.column) == (3, column)
    assert issue.message.startswith("invalid JSON: " + reason)


def test_nesting_within_the_limit_and_brackets_in_strings_still_load():
    ok = {"mcpServers": {}, "x": json.loads("[" * (MAX_DEPTH - 2) + "]" * (MAX_DEPTH - 2)),
          "y": "[" * 5000, "z": "9" * 5000}
    config = parse_config(json.dumps(ok), "mcp.json")
    assert [w.path for w in config.warnings] == ["x", "y", "z"], "unknown keys, nothing worse"


def test_writer_refuses_with_a_location_instead_of_crashing():
    with pytest.raises(ConfigWriteError, match=r"^mcp.json:3:\d+: fix this JSON error first \(nested deeper"):
        edit_enabled(DEEP.replace('"mcpServers": {}', '"mcpServers": {"a": {"command": "x"}}'), "a", False)


@pytest.mark.parametrize("text", [DEEP, HUGE])
def test_config_check_prints_a_located_error_not_a_traceback(cli, tmp_path, text):
    p = tmp_path / "mcp.json"
    p.write_text(text)
    r = cli("config", "check", "--config", str(p))
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    assert r.stderr.startswith(f"{p}:3:") and "invalid JSON" in r.stderr


def test_running_app_reports_it_and_keeps_running(headless, tmp_path, save_config, minimal_server):
    p = tmp_path / "mcp.json"
    save_config(p, {"mcpServers": {"a": dict(minimal_server)}})
    h = headless("--config", str(p))
    assert h.config_event()["started"] == ["a"]
    for text in (DEEP, HUGE):
        save_config(p, text)
        ev = h.config_event()
        assert ev["action"] == "error"
        assert (ev["errors"][0]["file"], ev["errors"][0]["line"]) == (str(p), 3)
        assert ev["errors"][0]["message"].startswith("invalid JSON")
    save_config(p, {"mcpServers": {"a": dict(minimal_server), "b": dict(minimal_server)}})
    ev = h.config_event()
    assert ev["action"] == "reloaded" and ev["started"] == ["b"] and ev["unchanged"] == ["a"]
    assert h.stop() == 0
    assert "Traceback" not in h.stderr()


def test_a_key_with_a_line_break_stays_on_one_line_in_messages():
    config = parse_config('{"mcpServers": {}, "presets": {"cod\\ng": {"servers": []}}}', "mcp.json")
    [error] = config.errors
    assert error.path == 'presets["cod\\ng"]'
    assert "\n" not in str(error) and str(error).startswith("mcp.json:1:")
