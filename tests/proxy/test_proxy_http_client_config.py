"""`broxy-tray client-config --http`: the Streamable HTTP endpoint's snippet (URL + bearer header)."""

from __future__ import annotations

import asyncio
import json
import shlex
from types import SimpleNamespace

import pytest

from broxy_tray.auth._store import MemoryStore
from broxy_tray.proxy._client_config import http_client_config, run_http
from broxy_tray.proxy._http_endpoint import EndpointToken


def write(tmp_path, endpoint=None, presets=None):
    path = tmp_path / "mcp.json"
    data = {"mcpServers": {"files": {"command": "uvx"}}}
    if endpoint is not None:
        data["endpoint"] = endpoint
    if presets is not None:
        data["presets"] = presets
    path.write_text(json.dumps(data))
    return path


def args(path, client="cursor", preset=None):
    return SimpleNamespace(config=str(path), client=client, preset=preset, http=True)


def test_snippets_carry_url_and_bearer_header():
    data = json.loads(http_client_config("cursor", port=3335, token="tok"))
    assert data == {"mcpServers": {"broxy": {"url": "http://127.0.0.1:3335/mcp",
                                             "headers": {"Authorization": "Bearer tok"}}}}
    data = json.loads(http_client_config("vscode", port=3335, token="tok", preset="coding"))
    assert data["servers"]["broxy-coding"] == {"type": "http", "url": "http://127.0.0.1:3335/presets/coding/mcp",
                                               "headers": {"Authorization": "Bearer tok"}}
    argv = shlex.split(http_client_config("claude-code", port=1, token="tok"))
    assert argv == ["claude", "mcp", "add", "--transport", "http", "--scope", "user", "broxy",
                    "http://127.0.0.1:1/mcp", "--header", "Authorization: Bearer tok"]
    assert json.loads(http_client_config("claude-desktop", port=1, token="t"))["mcpServers"]["broxy"]["type"] == "http"
    with pytest.raises(ValueError):
        http_client_config("emacs", port=1, token="t")


def test_run_prints_the_stored_token_to_stdout_only(tmp_path, capsys):
    store = MemoryStore()
    token = asyncio.run(EndpointToken(store).get())  # what the running app created
    path = write(tmp_path, {"port": 4444}, {"coding": {"servers": ["files"]}})
    assert run_http(args(path, preset="coding"), token_store=store) == 0
    out, err = capsys.readouterr()
    entry = json.loads(out)["mcpServers"]["broxy-coding"]
    assert entry["url"] == "http://127.0.0.1:4444/presets/coding/mcp"
    assert entry["headers"]["Authorization"] == f"Bearer {token}"
    assert token not in err and "bearer token" in err


def test_run_creates_the_token_on_first_use(tmp_path, capsys):
    store = MemoryStore()
    path = write(tmp_path, {"port": 4444})
    assert run_http(args(path), token_store=store) == 0
    out, _ = capsys.readouterr()
    token = json.loads(out)["mcpServers"]["broxy"]["headers"]["Authorization"].split()[1]
    assert asyncio.run(EndpointToken(store).get()) == token  # the app will find the same one


def test_run_refuses_when_the_endpoint_is_off(tmp_path, capsys):
    assert run_http(args(write(tmp_path)), token_store=MemoryStore()) == 1
    assert "the HTTP endpoint is off" in capsys.readouterr().err
    assert run_http(args(write(tmp_path, {"port": 0})), token_store=MemoryStore()) == 1
    assert "port must be an integer" in capsys.readouterr().err


def test_run_refuses_an_unknown_preset(tmp_path, capsys):
    assert run_http(args(write(tmp_path, {"port": 4444}), preset="nope"), token_store=MemoryStore()) == 2
    assert "no valid preset 'nope'" in capsys.readouterr().err


def test_run_refuses_when_secure_storage_is_unavailable(tmp_path, capsys):
    store = MemoryStore()
    store.available = False  # what KeyringStore reports after falling back to memory
    assert run_http(args(write(tmp_path, {"port": 4444})), token_store=store) == 1
    out, err = capsys.readouterr()
    assert out == "" and "secure storage is unavailable" in err
