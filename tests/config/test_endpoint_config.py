"""The optional top-level `endpoint` (the Streamable HTTP endpoint on 127.0.0.1): shape, errors, locations."""

from __future__ import annotations

import json

import pytest

from broxy_tray.config import parse_config
from broxy_tray.config._model import EndpointConfig

SERVERS = {"files": {"command": "uvx"}}


def parse(endpoint):
    text = json.dumps({"mcpServers": SERVERS, "endpoint": endpoint}, indent=2)
    return parse_config(text, "mcp.json", {})


def test_absent_means_off():
    config = parse_config(json.dumps({"mcpServers": SERVERS}), "mcp.json", {})
    assert config.endpoint is None
    assert config.issues == ()


def test_port_turns_it_on():
    config = parse({"port": 3335})
    assert config.issues == ()
    assert config.endpoint == EndpointConfig(port=3335)
    assert config.endpoint.line == 7


def test_enabled_false_turns_it_off_and_true_keeps_it_on():
    assert parse({"port": 3335, "enabled": False}).endpoint is None
    assert parse({"port": 3335, "enabled": False}).issues == ()
    assert parse({"port": 3335, "enabled": True}).endpoint == EndpointConfig(port=3335)


@pytest.mark.parametrize(
    ("endpoint", "message", "path", "line"),
    [
        (3335, "endpoint must be an object, not a number; the HTTP endpoint is off", "endpoint", 7),
        ([], "endpoint must be an object, not an array; the HTTP endpoint is off", "endpoint", 7),
        ({}, 'endpoint needs "port" (an integer from 1 to 65535); the HTTP endpoint is off', "endpoint", 7),
        ({"port": "3335"}, "port must be an integer from 1 to 65535, not a string; the HTTP endpoint is off",
         "endpoint.port", 8),
        ({"port": 3335.5}, "port must be an integer from 1 to 65535, not a number; the HTTP endpoint is off",
         "endpoint.port", 8),
        ({"port": True}, "port must be an integer from 1 to 65535, not a boolean; the HTTP endpoint is off",
         "endpoint.port", 8),
        ({"port": 0}, "port must be an integer from 1 to 65535, not 0; the HTTP endpoint is off", "endpoint.port", 8),
        ({"port": 65536}, "port must be an integer from 1 to 65535, not 65536; the HTTP endpoint is off",
         "endpoint.port", 8),
        ({"port": 3335, "enabled": "no"}, "enabled must be true or false, not a string; the HTTP endpoint is off",
         "endpoint.enabled", 9),
    ],
)
def test_errors_name_the_path_and_line_and_leave_it_off(endpoint, message, path, line):
    config = parse(endpoint)
    assert config.endpoint is None
    (issue,) = config.errors
    assert issue.message == message
    assert issue.path == path
    assert issue.line == line
    assert config.server("files") is not None and config.server("files").valid  # the rest loads normally


def test_unknown_keys_are_warned_not_fatal():
    config = parse({"port": 3335, "host": "0.0.0.0"})
    assert config.endpoint == EndpointConfig(port=3335)
    assert config.errors == ()
    (warning,) = config.warnings
    assert warning.message == "unknown key 'host' is ignored"
    assert warning.path == "endpoint.host"
    assert warning.line == 9


def test_endpoint_is_not_an_unknown_top_level_setting():
    config = parse({"port": 1})
    assert not any("unknown setting" in i.message for i in config.issues)
