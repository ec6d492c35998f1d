"""The optional top-level `presets`: shape, references, locations of every problem."""

from __future__ import annotations

import json
import textwrap

import pytest

from broxy_tray.config import parse_config

SERVERS = {"github": {"url": "https://gh.example.com/mcp"}, "files": {"command": "uvx"}}


def parse(presets, servers=SERVERS):
    text = json.dumps({"mcpServers": servers, "presets": presets}, indent=2)
    return parse_config(text, "mcp.json", {})


def test_no_presets_is_an_empty_tuple():
    config = parse_config(json.dumps({"mcpServers": SERVERS}), "mcp.json", {})
    assert config.presets == ()
    assert config.preset("coding") is None


def test_the_issue_example_parses():
    config = parse({"coding": {"servers": ["github", "files"], "tools": ["github__create_issue"]}})
    assert config.issues == ()
    p = config.preset("coding")
    assert p is not None and p.valid
    assert p.servers == ("github", "files")
    assert p.tools == ("github__create_issue",)
    assert p.line == 11


def test_presets_keep_file_order_and_drop_duplicates():
    config = parse({"b": {"servers": ["files", "files"]}, "a": {"tools": ["files__x", "files__x"]}})
    assert [p.name for p in config.presets] == ["b", "a"]
    assert config.preset("b").servers == ("files",)
    assert config.preset("a").tools == ("files__x",)


def test_presets_must_be_an_object():
    config = parse(["coding"])
    assert config.presets == ()
    (issue,) = config.errors
    assert issue.message == "presets must be an object, not an array; presets are ignored"
    assert issue.path == "presets"
    assert (issue.line, issue.column) == (10, 14)


@pytest.mark.parametrize(
    ("preset", "message", "path"),
    [
        ("github", "preset must be an object, not a string", "presets.p"),
        ({"servers": "github"}, "servers must be an array of strings, not a string", "presets.p.servers"),
        ({"servers": ["github", 3]}, "servers[1] must be a string, not a number", "presets.p.servers[1]"),
        ({"tools": {"a": 1}}, "tools must be an array of strings, not an object", "presets.p.tools"),
        ({"tools": [""]}, "a tool name must not be empty", "presets.p.tools[0]"),
        ({"description": 1, "servers": ["github"]}, "description must be a string, not a number", "presets.p.description"),
    ],
)
def test_a_wrong_shape_is_an_error_of_that_preset_only(preset, message, path):
    config = parse({"p": preset, "ok": {"servers": ["files"]}})
    p = config.preset("p")
    assert p is not None and not p.valid
    assert p.servers == () and p.tools == ()
    (issue,) = config.errors
    assert issue.message == message
    assert issue.path == path
    assert issue.line is not None and issue.column is not None
    assert config.preset("ok").valid


def test_bad_preset_name_is_an_error():
    config = parse({"has space": {"servers": ["files"]}})
    (issue,) = config.errors
    assert "preset name 'has space'" in issue.message
    assert issue.path == "presets.has space"
    assert not config.preset("has space").valid


def test_unknown_references_and_keys_are_warnings_with_locations():
    text = textwrap.dedent("""\
        {
          "mcpServers": {"github": {"url": "https://gh.example.com/mcp"}},
          "presets": {
            "coding": {
              "servers": ["gihub"],
              "tools": ["github__create_issue", "jira__search"],
              "colour": "blue"
            },
            "empty": {}
          }
        }
        """)
    config = parse_config(text, "mcp.json", {})
    assert config.errors == ()
    got = {(w.path, w.line, w.message) for w in config.warnings}
    assert got == {
        ("presets.coding.servers[0]", 5, "preset 'coding' names server 'gihub', which is not in mcpServers"),
        ("presets.coding.tools[1]", 6,
         "preset 'coding' names tool 'jira__search', which is not <serverId>__<toolName> of a server in mcpServers"),
        ("presets.coding.colour", 7, "unknown key 'colour' is ignored"),
        ("presets.empty", 9, "preset 'empty' offers no servers and no tools"),
    }
    assert config.preset("coding").valid and config.preset("coding").servers == ("gihub",)


def test_presets_are_not_an_unknown_setting():
    config = parse({"coding": {"servers": ["files"]}})
    assert not any("unknown setting" in i.message for i in config.issues)


def test_placeholders_are_not_expanded_in_presets():
    config = parse({"p": {"servers": ["${HOME}"]}})
    assert config.preset("p").servers == ("${HOME}",)
