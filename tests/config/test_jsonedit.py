"""Minimal JSON text edits: members added and removed in the file's own layout; JSONC comments survive."""

from __future__ import annotations

import json

import pytest

from broxy_tray.config._jsonedit import blank_jsonc, indent_unit, insert_member, member_raw, remove_member
from broxy_tray.config._spans import SpanMap


def add(text: str, base: tuple, key: str, value=None, raw=None) -> str:
    return insert_member(text, SpanMap(blank_jsonc(text)), base, key, value, raw=raw)


def rm(text: str, base: tuple, key: str) -> str:
    return remove_member(text, SpanMap(blank_jsonc(text)), base, key)


def test_object_value_follows_the_files_indentation_and_line_endings():
    text = '{\r\n\t"mcpServers": {\r\n\t\t"a": {"command": "x"}\r\n\t}\r\n}\r\n'
    out = add(text, ("mcpServers",), "b", {"command": "y", "args": ["1", "2"], "env": {"K": "v"}})
    assert out == ('{\r\n\t"mcpServers": {\r\n\t\t"a": {"command": "x"},\r\n\t\t"b": {\r\n\t\t\t"command": "y",\r\n'
                   '\t\t\t"args": ["1", "2"],\r\n\t\t\t"env": {\r\n\t\t\t\t"K": "v"\r\n\t\t\t}\r\n\t\t}\r\n\t}\r\n}\r\n')
    assert json.loads(out)["mcpServers"]["b"]["env"] == {"K": "v"}


def test_single_line_objects_stay_single_line():
    out = add('{"mcpServers": {"a": 1}}', ("mcpServers",), "b", {"url": "u"})
    assert out == '{"mcpServers": {"a": 1, "b": {"url": "u"}}}'


def test_empty_object_in_a_multi_line_file_opens_up():
    text = '{\n  "mcpServers": {}\n}\n'
    out = add(text, ("mcpServers",), "b", {"url": "u"})
    assert out == '{\n  "mcpServers": {\n    "b": {\n      "url": "u"\n    }\n  }\n}\n'
    assert indent_unit(text) == "  "


def test_missing_parent_key_is_added_at_the_root():
    out = add('{\n    "other": true\n}', (), "mcpServers", {"b": {"url": "u"}})
    assert out == '{\n    "other": true,\n    "mcpServers": {\n        "b": {\n            "url": "u"\n        }\n    }\n}'


@pytest.mark.parametrize("key,expected", [
    ("a", '{\n  "s": {\n    "b": 2,\n    "c": 3\n  }\n}'),
    ("b", '{\n  "s": {\n    "a": 1,\n    "c": 3\n  }\n}'),
    ("c", '{\n  "s": {\n    "a": 1,\n    "b": 2\n  }\n}'),
])
def test_remove_first_middle_last(key, expected):
    text = '{\n  "s": {\n    "a": 1,\n    "b": 2,\n    "c": 3\n  }\n}'
    assert rm(text, ("s",), key) == expected


def test_remove_only_member_and_put_it_back_verbatim():
    text = '{"s": {"a": {"x":   [1,2]}}}'
    raw = member_raw(text, SpanMap(text), ("s", "a"))
    empty = rm(text, ("s",), "a")
    assert empty == '{"s": {}}'
    assert add(empty, ("s",), "a", raw=raw) == '{"s": {"a": {"x":   [1,2]}}}'


def test_jsonc_comments_and_trailing_commas_are_kept():
    text = '{\n  // servers\n  "s": {\n    "a": 1, /* one */\n    "b": "//not a comment", // two\n  },\n}\n'
    blanked = blank_jsonc(text)
    assert len(blanked) == len(text) and json.loads(blanked) == {"s": {"a": 1, "b": "//not a comment"}}
    out = rm(text, ("s",), "a")
    assert "// servers" in out and "// two" in out and '"a"' not in out
    out = add(out, ("s",), "c", True)
    assert json.loads(blank_jsonc(out)) == {"s": {"b": "//not a comment", "c": True}}
    assert "// two" in out
