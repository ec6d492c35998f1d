"""Parsing and validation of mcp.json: every rule, with its message and location."""

from __future__ import annotations

import json
import textwrap

import pytest

from broxy_tray.config import ConfigFileError, Transport, parse_config

ENV = {"HOME": "/home/u", "TEAM_ID": "team-42", "CLIENT_SECRET": "s3cr3t-value", "EMPTY": ""}


def parse(obj_or_text, env=ENV):
    text = obj_or_text if isinstance(obj_or_text, str) else json.dumps(obj_or_text, indent=2)
    return parse_config(text, "mcp.json", env)


def servers(**entries):
    return {"mcpServers": entries}


def only_error(config, server_id):
    s = config.server(server_id)
    assert s is not None and not s.valid, f"{server_id} should be invalid"
    assert len(s.problems) == 1
    return s.problems[0]


DESIGN_EXAMPLE = """\
{
  "mcpServers": {
    "secured": {
      "name": "Secured MCP",
      "transport": "http",
      "url": "https://mcp.example.com/mcp",
      "headers": {"X-Team": "${TEAM_ID}"},
      "enabled": true,
      "auth": {
        "type": "oauth",
        "clientId": "client-id",
        "clientSecret": "${CLIENT_SECRET}",
        "clientIdMetadataUrl": "https://auth.example.com/client-metadata",
        "redirectUri": "http://localhost:8080/callback",
        "authorizationServer": "https://auth.example.com",
        "tokenEndpointAuthMethod": "client_secret_post",
        "scopes": ["files:read"],
        "allowDynamicRegistration": true
      }
    },
    "files": {"transport": "stdio", "command": "uvx", "args": ["mcp-server-files"], "env": {"ROOT": "${HOME}/work"}}
  }
}
"""


def test_design_example_parses_with_every_field():
    c = parse(DESIGN_EXAMPLE)
    assert c.errors == ()
    assert c.server_ids == ("secured", "files")
    secured, files = c.servers
    assert secured.name == "Secured MCP"
    assert secured.transport is Transport.HTTP
    assert secured.url == "https://mcp.example.com/mcp"
    assert dict(secured.headers) == {"X-Team": "team-42"}
    assert secured.enabled is True
    a = secured.auth
    assert a is not None
    assert (a.client_id, a.client_secret) == ("client-id", "s3cr3t-value")
    assert a.client_id_metadata_url == "https://auth.example.com/client-metadata"
    assert a.redirect_uri == "http://localhost:8080/callback"
    assert a.authorization_server == "https://auth.example.com"
    assert a.token_endpoint_auth_method == "client_secret_post"
    assert a.scopes == ("files:read",)
    assert a.allow_dynamic_registration is True
    assert files.transport is Transport.STDIO
    assert (files.command, files.args, dict(files.env)) == ("uvx", ("mcp-server-files",), {"ROOT": "/home/u/work"})
    assert files.name == "files"  # name defaults to the id
    assert secured.line == 3 and files.line == 21


def test_secrets_hidden_from_repr():
    c = parse(DESIGN_EXAMPLE)
    text = repr(c)
    assert "s3cr3t-value" not in text and "team-42" not in text


def test_top_level_settings_and_defaults():
    c = parse({"mcpServers": {}})
    assert (c.authorization_timeout, c.request_timeout, c.connect_timeout) == (120, 60, 30)
    c = parse({"mcpServers": {}, "authorizationTimeoutSeconds": 5, "requestTimeoutSeconds": 1.5, "connectTimeoutSeconds": 7})
    assert (c.authorization_timeout, c.request_timeout, c.connect_timeout) == (5, 1.5, 7)


@pytest.mark.parametrize("value", [0, -1, "30", True, None, 10**9])
def test_bad_timeout_reports_and_uses_default(value):
    c = parse({"mcpServers": {}, "requestTimeoutSeconds": value})
    assert c.request_timeout == 60
    (err,) = c.errors
    assert err.path == "requestTimeoutSeconds" and "requestTimeoutSeconds must be a number of seconds" in err.message
    assert err.line == 3


def test_missing_mcp_servers_is_an_empty_config():
    c = parse("{}")
    assert c.servers == () and c.errors == ()


@pytest.mark.parametrize(
    ("alias", "expected"),
    [
        ("stdio", Transport.STDIO),
        ("http", Transport.HTTP),
        ("streamable-http", Transport.HTTP),
        ("Streamable-HTTP", Transport.HTTP),
        ("SSE", Transport.SSE),
        ("websocket", Transport.WEBSOCKET),
        ("WS", Transport.WEBSOCKET),
    ],
)
def test_transport_aliases_case_insensitive(alias, expected):
    entry = {"transport": alias}
    if expected is Transport.STDIO:
        entry["command"] = "x"
    else:
        entry["url"] = "wss://h/mcp" if expected is Transport.WEBSOCKET else "https://h/mcp"
    c = parse(servers(s=entry))
    assert c.server("s").transport is expected, c.errors
    c = parse(servers(s={("type" if k == "transport" else k): v for k, v in entry.items()}))
    assert c.server("s").transport is expected, "type is read like transport"


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({"command": "npx"}, Transport.STDIO),
        ({"url": "https://h/mcp"}, Transport.HTTP),
        ({"url": "http://127.0.0.1:3000/mcp"}, Transport.HTTP),
        ({"url": "wss://h/mcp"}, Transport.WEBSOCKET),
    ],
)
def test_transport_inferred(entry, expected):
    c = parse(servers(s=entry))
    assert c.errors == () and c.server("s").transport is expected


def test_unknown_transport():
    err = only_error(parse(servers(s={"transport": "grpc", "url": "https://h"})), "s")
    assert err.path == "mcpServers.s.transport"
    assert "unknown transport 'grpc'" in err.message and "websocket" in err.message
    assert err.line == 4


def test_transport_and_type_disagree():
    err = only_error(parse(servers(s={"transport": "http", "type": "sse", "url": "https://h"})), "s")
    assert "disagree" in err.message


def test_no_command_no_url():
    err = only_error(parse(servers(s={"name": "Nothing"})), "s")
    assert "add \"command\" (stdio) or \"url\" (remote)" in err.message
    assert err.path == "mcpServers.s" and err.line == 3


def test_stdio_needs_command():
    err = only_error(parse(servers(s={"transport": "stdio"})), "s")
    assert err.message == 'a stdio server needs "command"'


@pytest.mark.parametrize("transport", ["http", "sse", "websocket"])
def test_remote_needs_url(transport):
    err = only_error(parse(servers(s={"transport": transport})), "s")
    assert err.message.endswith('server needs "url"')


@pytest.mark.parametrize(
    ("transport", "url", "fragment"),
    [
        ("http", "mcp.example.com/mcp", "absolute http:// or https:// URL"),
        ("http", "/relative", "absolute"),
        ("http", "ftp://h/x", "url scheme 'ftp' does not fit transport http"),
        ("http", "ws://h/x", "use \"transport\": \"websocket\""),
        ("sse", "wss://h/x", "use \"transport\": \"websocket\""),
        ("websocket", "https://h/x", "use \"transport\": \"http\" or \"sse\""),
        ("http", "http://h:notaport/x", "not a valid URL"),
    ],
)
def test_remote_url_rules(transport, url, fragment):
    err = only_error(parse(servers(s={"transport": transport, "url": url})), "s")
    assert fragment in err.message
    assert err.path == "mcpServers.s.url" and err.line == 5


def test_auth_on_stdio_is_an_error():
    err = only_error(parse(servers(s={"command": "x", "auth": {"type": "oauth"}})), "s")
    assert "auth applies only to remote servers" in err.message and err.path == "mcpServers.s.auth"


def auth_error(auth, url="https://h/mcp"):
    return only_error(parse(servers(s={"url": url, "auth": auth})), "s")


def test_auth_type_must_be_oauth():
    err = auth_error({"type": "basic"})
    assert err.message == "auth.type must be \"oauth\" (got 'basic')" and err.path == "mcpServers.s.auth.type"


def test_auth_type_defaults_to_oauth():
    c = parse(servers(s={"url": "https://h/mcp", "auth": {"scopes": ["a"]}}))
    assert c.errors == () and c.server("s").auth.scopes == ("a",)


def test_auth_must_be_object():
    err = auth_error("oauth")
    assert err.message == "auth must be an object, not a string"


@pytest.mark.parametrize(
    "uri",
    ["http://127.0.0.1:8080/callback", "http://localhost:1/cb", "https://app.example.com/cb", "http://[::1]:9/cb"],
)
def test_redirect_uri_accepted(uri):
    c = parse(servers(s={"url": "https://h/mcp", "auth": {"redirectUri": uri}}))
    assert c.errors == ()


@pytest.mark.parametrize(
    ("uri", "fragment"),
    [
        ("http://127.0.0.1/callback", "explicit port"),
        ("http://localhost/cb", "explicit port"),
        ("http://example.com:8080/cb", "must be http://127.0.0.1:PORT"),
        ("myapp://cb", "must be http://127.0.0.1:PORT"),
        ("http://127.0.0.1:99999/cb", "not a valid URL"),
    ],
)
def test_redirect_uri_rejected(uri, fragment):
    err = auth_error({"redirectUri": uri})
    assert fragment in err.message and err.path == "mcpServers.s.auth.redirectUri"


@pytest.mark.parametrize("url", ["http://auth.example.com/meta", "https://auth.example.com", "https://auth.example.com/", "meta.json"])
def test_client_id_metadata_url_rules(url):
    err = auth_error({"clientIdMetadataUrl": url})
    assert err.message == "clientIdMetadataUrl must be an https:// URL with a path"


@pytest.mark.parametrize("issuer", ["https://auth.example.com", "http://127.0.0.1:9000", "http://localhost:9000/x", "http://[::1]:9"])
def test_authorization_server_accepted(issuer):
    assert parse(servers(s={"url": "https://h/mcp", "auth": {"authorizationServer": issuer}})).errors == ()


@pytest.mark.parametrize("issuer", ["http://auth.example.com", "ftp://x", "auth.example.com"])
def test_authorization_server_rejected(issuer):
    err = auth_error({"authorizationServer": issuer})
    assert "authorizationServer must be an https:// URL (http:// only for 127.0.0.1, ::1 or localhost)" == err.message


def test_token_endpoint_auth_method():
    for m in ("none", "client_secret_basic", "client_secret_post"):
        assert parse(servers(s={"url": "https://h", "auth": {"tokenEndpointAuthMethod": m}})).errors == ()
    err = auth_error({"tokenEndpointAuthMethod": "private_key_jwt"})
    assert "tokenEndpointAuthMethod must be one of none, client_secret_basic, client_secret_post" in err.message


@pytest.mark.parametrize(
    ("scopes", "fragment", "path"),
    [
        ("files:read", "scopes must be an array of strings, not a string", "mcpServers.s.auth.scopes"),
        (["a", 3], "scopes[1] must be a string, not a number", "mcpServers.s.auth.scopes[1]"),
        (["a b"], "one non-empty word", "mcpServers.s.auth.scopes[0]"),
        ([""], "one non-empty word", "mcpServers.s.auth.scopes[0]"),
    ],
)
def test_scopes_rules(scopes, fragment, path):
    err = auth_error({"scopes": scopes})
    assert fragment in err.message and err.path == path


def test_client_secret_needs_client_id():
    err = auth_error({"clientSecret": "x"})
    assert err.message == "clientSecret needs clientId"


@pytest.mark.parametrize(
    ("entry", "path", "message"),
    [
        ({"command": "x", "enabled": "yes"}, "mcpServers.s.enabled", "enabled must be true or false, not a string"),
        ({"command": "x", "enabled": 1}, "mcpServers.s.enabled", "enabled must be true or false, not a number"),
        ({"url": "https://h", "auth": {"allowDynamicRegistration": "false"}}, "mcpServers.s.auth.allowDynamicRegistration",
         "allowDynamicRegistration must be true or false, not a string"),
        ({"command": 5}, "mcpServers.s.command", "command must be a string, not a number"),
        ({"command": "x", "args": "a b"}, "mcpServers.s.args", "args must be an array of strings, not a string"),
        ({"command": "x", "args": ["a", None]}, "mcpServers.s.args[1]", "args[1] must be a string, not null"),
        ({"command": "x", "env": ["A=1"]}, "mcpServers.s.env", "env must be an object of strings, not an array"),
        ({"command": "x", "env": {"A": 1}}, "mcpServers.s.env.A", "env.A must be a string, not a number"),
        ({"command": "x", "cwd": False}, "mcpServers.s.cwd", "cwd must be a string, not a boolean"),
        ({"url": "https://h", "headers": {"X": True}}, "mcpServers.s.headers.X", "headers.X must be a string, not a boolean"),
        ({"url": "https://h", "headers": {"Bad Name": "v"}}, "mcpServers.s.headers.Bad Name", "is not a valid HTTP header name"),
        ({"url": "https://h", "name": 7}, "mcpServers.s.name", "name must be a string, not a number"),
    ],
)
def test_type_errors_name_path(entry, path, message):
    err = only_error(parse(servers(s=entry)), "s")
    assert err.path == path
    assert message in err.message


def test_entry_must_be_object():
    err = only_error(parse(servers(s=["npx"])), "s")
    assert err.message == "server entry must be an object, not an array"


def test_file_level_errors():
    with pytest.raises(ConfigFileError) as e:
        parse('{\n  "mcpServers": {\n    "a": {"command": "x",}\n  }\n}')
    assert (e.value.issue.line, e.value.issue.column) == (3, 26)
    assert e.value.issue.message.startswith("invalid JSON: ")
    assert str(e.value).startswith("mcp.json:3:26: invalid JSON")
    with pytest.raises(ConfigFileError, match="the top level must be a JSON object, not an array"):
        parse("[]")
    with pytest.raises(ConfigFileError, match="mcpServers must be an object, not an array") as e:
        parse('{"mcpServers": []}')
    assert (e.value.issue.line, e.value.issue.column) == (1, 16)
    with pytest.raises(ConfigFileError, match="invalid JSON"):
        parse("")


def test_bad_entry_does_not_affect_others():
    c = parse(servers(good={"command": "a"}, bad={"command": "b", "enabled": "no"}, also={"url": "https://h"}))
    assert [s.id for s in c.servers if s.valid] == ["good", "also"]
    bad = c.server("bad")
    assert not bad.valid and bad.transport is Transport.STDIO and bad.name == "bad" and bad.line == 6
    assert [e.server for e in c.errors] == ["bad"]


def test_broken_entry_keeps_name_and_enabled_for_display():
    c = parse(servers(x={"name": "Pretty", "enabled": False, "url": "ftp://h"}))
    x = c.server("x")
    assert (x.name, x.enabled, x.valid) == ("Pretty", False, False)


def test_unknown_keys_are_kept_and_warned():
    c = parse({"mcpServers": {"s": {"command": "x", "color": "red", "auth2": {}}}, "theme": "dark", "$schema": "x"})
    assert c.errors == () and c.server("s").valid
    warnings = {(w.path, w.message) for w in c.warnings}
    assert ("mcpServers.s.color", "unknown key 'color' is ignored") in warnings
    assert ("mcpServers.s.auth2", "unknown key 'auth2' is ignored") in warnings
    assert ("theme", "unknown setting 'theme' is ignored") in warnings
    assert not any(p == "$schema" for p, _ in warnings)


def test_servers_key_hint():
    c = parse({"servers": {}})
    assert any("broxy-tray reads mcpServers" in w.message for w in c.warnings)


def test_fields_of_other_transport_warned():
    c = parse(servers(s={"command": "x", "url": "https://h"}, r={"url": "https://h", "args": ["a"]}))
    paths = {w.path for w in c.warnings}
    assert {"mcpServers.s.url", "mcpServers.r.args"} <= paths


def test_unset_variable_puts_only_that_server_in_error():
    c = parse(servers(a={"url": "https://h", "auth": {"clientId": "c", "clientSecret": "${NOPE_SECRET}"}}, b={"command": "x"}))
    err = only_error(c, "a")
    assert err.message == "environment variable NOPE_SECRET is not set: `broxy-tray secret set NOPE_SECRET`"
    assert err.path == "mcpServers.a.auth.clientSecret"
    assert c.server("b").valid


@pytest.mark.parametrize(
    "entry",
    [
        {"url": "https://${NOPE}/mcp"},
        {"url": "https://h", "headers": {"X": "${NOPE}"}},
        {"command": "${NOPE}"},
        {"command": "x", "args": ["${NOPE}"]},
        {"command": "x", "env": {"A": "${NOPE}"}},
        {"command": "x", "cwd": "${NOPE}"},
        {"url": "https://h", "auth": {"redirectUri": "${NOPE}"}},
    ],
)
def test_expansion_applies_to_every_string_field(entry):
    err = only_error(parse(servers(s=entry)), "s")
    assert err.message == "environment variable NOPE is not set: `broxy-tray secret set NOPE`"


def test_expansion_defaults_and_escape_in_fields():
    c = parse(servers(s={"command": "${TOOL:-npx}", "args": ["$${LITERAL}", "${EMPTY:-fallback}"], "cwd": "${HOME}"}))
    s = c.server("s")
    assert (s.command, s.args, s.cwd) == ("npx", ("${LITERAL}", "fallback"), "/home/u")


def test_error_messages_never_contain_expanded_values():
    env = dict(ENV, HOSTY="super-secret-host-value")
    c = parse(servers(s={"transport": "websocket", "url": "https://${HOSTY}/x"}), env)
    assert all("super-secret-host-value" not in str(e) for e in c.issues)


def test_line_and_column_point_at_value():
    text = textwrap.dedent("""\
        {
          "mcpServers": {
            "a": {
              "url": "https://h",
              "auth": {
                "redirectUri": "http://127.0.0.1/cb"
              }
            }
          }
        }
        """)
    err = only_error(parse(text), "a")
    assert (err.line, err.column) == (6, 24)
    assert str(err) == "mcp.json:6:24: redirectUri needs an explicit port, e.g. http://127.0.0.1:8080/callback (mcpServers.a.auth.redirectUri)"


def test_duplicate_server_ids_last_wins_like_json():
    c = parse('{"mcpServers": {"a": {"command": "one"}, "a": {"command": "two"}}}')
    assert c.server_ids == ("a",) and c.server("a").command == "two"


@pytest.mark.parametrize("entry,transport", [
    ({"command": "x", "env": {"T": "${UNSET_TOKEN}"}}, Transport.STDIO),
    ({"url": "https://h/${UNSET_TOKEN}"}, Transport.HTTP),
    ({"url": "wss://h", "headers": {"X": "${UNSET_TOKEN}"}}, Transport.WEBSOCKET),
    ({"type": "sse", "url": "${UNSET_TOKEN}"}, Transport.SSE),
    ({"type": "sse", "transport": "stdio", "command": "x"}, None),
    ({"args": ["x"]}, None),
])
def test_a_broken_entry_keeps_the_transport_it_asks_for(entry, transport):
    s = parse(servers(a=entry)).server("a")
    assert not s.valid and s.transport is transport


def test_duplicate_keys_at_any_level_are_located_warnings():
    text = textwrap.dedent("""\
        {
          "mcpServers": {
            "a": {"command": "x"},
            "b": {"command": "y",
                  "command": "z"},
            "a": {"command": "w"}
          }
        }
        """)
    c = parse(text)
    assert c.server("a").command == "w" and c.server("b").command == "z" and c.errors == ()
    warnings = sorted((w for w in c.issues if w.severity == "warning"), key=lambda w: w.line)
    assert [str(w) for w in warnings] == [
        "mcp.json:5:11: duplicate key 'command': the later entry wins (the one at line 4 is ignored)"
        " (mcpServers.b.command)",
        "mcp.json:6:5: duplicate key 'a': the later entry wins (the one at line 3 is ignored) (mcpServers.a)",
    ]


def test_duplicate_inside_an_overridden_entry_is_not_reported_twice():
    text = '{"mcpServers": {"a": {"command": "x", "command": "y"},\n "a": {"command": "z"}}}'
    warnings = [w for w in parse(text).issues if w.severity == "warning"]
    assert [(w.path, w.line, w.column) for w in warnings] == [("mcpServers.a", 2, 2)]


def test_empty_server_id():
    err = only_error(parse(servers(**{"": {"command": "x"}})), "")
    assert err.message == "server id must not be empty"


def test_headers_authorization_detected_any_case():
    c = parse(servers(s={"url": "https://h", "headers": {"authorization": "Bearer x"}}))
    assert c.server("s").has_authorization_header


def test_two_hundred_servers():
    c = parse({"mcpServers": {f"s{i}": {"command": "x", "args": [str(i)]} for i in range(200)}})
    assert len(c.servers) == 200 and c.errors == ()
