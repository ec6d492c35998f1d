"""The minimal-edit writer: one value changes, every other byte survives."""

from __future__ import annotations

import json
import os
import stat
import threading

import pytest

from broxy_tray.config import ConfigWriteError, edit_enabled, parse_config, set_enabled
from broxy_tray.config import _writer

UNUSUAL = (
    '{\r\n'
    '\t"mcpServers":{\r\n'
    '\t\t"secured" :  {\r\n'
    '\t\t\t"url":"${BASE_URL:-https://h}/mcp",  "x-note": "keep me",\r\n'
    '\t\t\t"auth": {"clientSecret": "${CLIENT_SECRET}", "clientId": "c"},\r\n'
    '\t\t\t"enabled" :true\r\n'
    '\t\t},\r\n'
    '\t\t"files": { "command": "uvx", "args": ["a"] },\r\n'
    '\t\t"multi": {\r\n'
    '      "command": "x"\r\n'
    '    }\r\n'
    '\t},\r\n'
    '\t"zUnknownTopLevel": [1, 2, {"deep": "${NOT_EXPANDED}"}]\r\n'
    '}\r\n'
)


def only_difference(before: str, after: str) -> tuple[str, str]:
    """The differing middle of two strings."""
    i = 0
    while i < min(len(before), len(after)) and before[i] == after[i]:
        i += 1
    j = 0
    while j < min(len(before), len(after)) - i and before[-1 - j] == after[-1 - j]:
        j += 1
    return before[i: len(before) - j], after[i: len(after) - j]


def test_existing_value_replaced_in_place():
    out = edit_enabled(UNUSUAL, "secured", False)
    assert only_difference(UNUSUAL, out) == ("tru", "fals")
    assert json.loads(out)["mcpServers"]["secured"]["enabled"] is False


def test_same_value_is_a_noop():
    assert edit_enabled(UNUSUAL, "secured", True) is UNUSUAL


def test_inserted_on_single_line_object():
    out = edit_enabled(UNUSUAL, "files", False)
    assert only_difference(UNUSUAL, out) == ("", ', "enabled": false')
    assert '"args": ["a"], "enabled": false }' in out


def test_inserted_on_multi_line_object_keeps_indent_and_crlf():
    out = edit_enabled(UNUSUAL, "multi", False)
    assert only_difference(UNUSUAL, out) == ("", ',\r\n      "enabled": false')
    assert json.loads(out)["mcpServers"]["multi"] == {"command": "x", "enabled": False}


def test_separator_style_copied():
    text = '{"mcpServers": {"a": {\n  "command":"x"\n}}}'
    assert edit_enabled(text, "a", False) == '{"mcpServers": {"a": {\n  "command":"x",\n  "enabled":false\n}}}'


def test_empty_object():
    assert edit_enabled('{"mcpServers": {"a": {}}}', "a", True) == '{"mcpServers": {"a": {"enabled": true}}}'


def test_bom_kept():
    text = '\ufeff{"mcpServers": {"a": {"command": "x", "enabled": true}}}'
    out = edit_enabled(text, "a", False)
    assert out.startswith("\ufeff") and out.endswith('"enabled": false}}}')


def test_escaped_server_id_and_nested_lookalikes():
    text = json.dumps({"mcpServers": {"we\"ird/id": {"command": "x", "env": {"enabled": "true"}},
                                      "other": {"command": "y", "enabled": True}}}, indent=2)
    out = edit_enabled(text, 'we"ird/id', False)
    data = json.loads(out)
    assert data["mcpServers"]['we"ird/id'] == {"command": "x", "env": {"enabled": "true"}, "enabled": False}
    assert data["mcpServers"]["other"]["enabled"] is True


def test_duplicate_enabled_key_edits_the_effective_one():
    text = '{"mcpServers": {"a": {"enabled": true, "command": "x", "enabled": false}}}'
    out = edit_enabled(text, "a", True)
    assert out == '{"mcpServers": {"a": {"enabled": true, "command": "x", "enabled": true}}}'
    assert json.loads(out)["mcpServers"]["a"]["enabled"] is True


def test_placeholders_never_expanded(monkeypatch):
    monkeypatch.setenv("CLIENT_SECRET", "the-real-secret")
    out = edit_enabled(UNUSUAL, "secured", False)
    assert "${CLIENT_SECRET}" in out and "the-real-secret" not in out
    assert parse_config(out, "m.json", {"CLIENT_SECRET": "v"}).server("secured").enabled is False


def test_errors():
    with pytest.raises(ConfigWriteError, match=r"mcp.json:1:16: fix this JSON error first"):
        edit_enabled('{"mcpServers": ', "a", False)
    with pytest.raises(ConfigWriteError, match="has no server 'gone' any more"):
        edit_enabled('{"mcpServers": {}}', "gone", False)
    with pytest.raises(ConfigWriteError, match="has no server 'a'"):
        edit_enabled('{"mcpServers": {"a": 3}}', "a", False)


def test_set_enabled_roundtrip_on_disk(tmp_path):
    p = tmp_path / "mcp.json"
    p.write_bytes(UNUSUAL.encode())
    os.chmod(p, 0o640)
    assert set_enabled(p, "secured", False) is True
    after = p.read_bytes().decode()
    assert only_difference(UNUSUAL, after) == ("tru", "fals")
    assert stat.S_IMODE(p.stat().st_mode) == 0o640
    assert set_enabled(p, "secured", False) is False
    assert [f.name for f in tmp_path.iterdir()] == ["mcp.json"], "no temp file left behind"


def test_set_enabled_writes_through_symlink(tmp_path):
    real = tmp_path / "dotfiles" / "mcp.json"
    real.parent.mkdir()
    real.write_text('{"mcpServers": {"a": {"command": "x"}}}')
    link = tmp_path / "mcp.json"
    link.symlink_to(real)
    set_enabled(link, "a", False)
    assert link.is_symlink()
    assert json.loads(real.read_text())["mcpServers"]["a"]["enabled"] is False


def test_user_edit_during_write_is_not_overwritten(tmp_path, monkeypatch):
    """The user saves between our read and our rename: we redo the edit on their text."""
    p = tmp_path / "mcp.json"
    p.write_text('{"mcpServers": {"a": {"command": "x"}}}')
    users_text = '{"mcpServers": {"a": {"command": "x"}, "b": {"command": "new"}}}'
    real_replace = _writer._replace_if_unchanged
    calls = []

    def racing_replace(target, original, new):
        if not calls:
            p.write_text(users_text)  # the user's save lands right now
        calls.append(1)
        return real_replace(target, original, new)

    monkeypatch.setattr(_writer, "_replace_if_unchanged", racing_replace)
    assert set_enabled(p, "a", False) is True
    assert len(calls) == 2
    data = json.loads(p.read_text())
    assert data["mcpServers"]["b"] == {"command": "new"}, "the user's newer edit survived"
    assert data["mcpServers"]["a"]["enabled"] is False


def test_unwritable_directory_gives_clear_error(tmp_path, monkeypatch):
    # root ignores directory modes, so the refusal is injected where the OS would raise it
    p = tmp_path / "mcp.json"
    p.write_text('{"mcpServers": {"a": {"command": "x"}}}')

    def refuse(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(_writer.tempfile, "mkstemp", refuse)
    with pytest.raises(ConfigWriteError, match=r"cannot write .*mcp.json: Permission denied"):
        set_enabled(p, "a", False)
    assert p.read_text() == '{"mcpServers": {"a": {"command": "x"}}}'


def test_missing_file_and_non_utf8(tmp_path):
    with pytest.raises(ConfigWriteError, match="cannot read"):
        set_enabled(tmp_path / "nope.json", "a", False)
    bad = tmp_path / "bad.json"
    bad.write_bytes(b'{"mcpServers": {"a": {"command": "\xff"}}}')
    with pytest.raises(ConfigWriteError, match="is not UTF-8 text"):
        set_enabled(bad, "a", False)
    assert bad.read_bytes() == b'{"mcpServers": {"a": {"command": "\xff"}}}'


def test_concurrent_writers_both_land(tmp_path):
    p = tmp_path / "mcp.json"
    p.write_text(json.dumps({"mcpServers": {f"s{i}": {"command": "x"} for i in range(8)}}, indent=2))
    threads = [threading.Thread(target=set_enabled, args=(p, f"s{i}", False)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    data = json.loads(p.read_text())["mcpServers"]
    missing = [k for k, v in data.items() if v.get("enabled") is not False]
    assert missing == [], f"lost updates: {missing}"
