"""Configuration: the `mcp.json` model, validation, `${VAR}` expansion, files, live reload, reconcile."""

from ._files import (
    ENV_CONFIG,
    STARTER_CONFIG,
    default_config_path,
    ensure_config,
    load_config,
    read_text,
    resolve_config_path,
)
from ._model import AuthConfig, Config, ConfigIssue, ServerConfig, Transport
from ._parse import ConfigFileError, parse_config
from ._reconcile import AuthAction, Plan, reconcile
from ._watcher import ConfigWatcher
from ._writer import ConfigWriteError, edit_enabled, edit_file, remove_stale_temp_copies, set_enabled

__all__ = [
    "ENV_CONFIG",
    "STARTER_CONFIG",
    "AuthAction",
    "AuthConfig",
    "Config",
    "ConfigFileError",
    "ConfigIssue",
    "ConfigWatcher",
    "ConfigWriteError",
    "Plan",
    "ServerConfig",
    "Transport",
    "default_config_path",
    "edit_enabled",
    "edit_file",
    "ensure_config",
    "load_config",
    "parse_config",
    "read_text",
    "reconcile",
    "remove_stale_temp_copies",
    "resolve_config_path",
    "set_enabled",
]
