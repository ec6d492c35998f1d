"""Finding, creating and reading `mcp.json`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

from ._model import Config, ConfigIssue
from ._parse import ConfigFileError, parse_config

APP_NAME = "broxy"
ENV_CONFIG = "BROXY_CONFIG"

STARTER_CONFIG = """{
  "mcpServers": {
    "everything": {
      "name": "Example: MCP reference server (needs Node.js)",
      "command": "npx",
      "args": ["-y", "@modelcontextprotocol/server-everything"],
      "enabled": false
    },
    "remote-example": {
      "name": "Example: remote server",
      "url": "https://mcp.example.com/mcp",
      "enabled": false
    }
  }
}
"""


def default_config_path() -> Path:
    """The platform's user config dir for `broxy`, file `mcp.json`."""
    import platformdirs

    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)) / "mcp.json"


def resolve_config_path(cli_value: str | None = None, environ: Mapping[str, str] | None = None) -> Path:
    """`--config` wins over `BROXY_CONFIG`, which wins over the default location."""
    env = os.environ if environ is None else environ
    raw = cli_value or env.get(ENV_CONFIG) or None
    path = Path(raw).expanduser() if raw else default_config_path()
    return Path(os.path.abspath(path))


def ensure_config(path: Path) -> bool:
    """Create a small valid starter config if `path` does not exist. Returns True if created."""
    if path.exists() or path.is_symlink():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
        f.write(STARTER_CONFIG)
    return True


def read_text(path: Path) -> str:
    """The file's text without a BOM. Raises `ConfigFileError` with a readable reason."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigFileError(ConfigIssue(file=str(path), message="file not found")) from None
    except IsADirectoryError:
        raise ConfigFileError(ConfigIssue(file=str(path), message="is a directory, not a file")) from None
    except OSError as e:
        import errno

        transient = e.errno in (errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.EAGAIN, errno.EINTR)
        raise ConfigFileError(ConfigIssue(file=str(path), message=f"cannot read: {e.strerror or e}"),
                              transient=transient) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        col = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise ConfigFileError(
            ConfigIssue(file=str(path), message="not UTF-8 text", line=line, column=col)
        ) from None
    return text[1:] if text.startswith("\ufeff") else text


def load_config(path: Path, environ: Mapping[str, str] | None = None) -> tuple[Config, str]:
    """Read and parse `path`; returns the config and the text it came from."""
    text = read_text(path)
    return parse_config(text, str(path), environ), text
