"""Load mcp.json the way the app does — environment, then the secret store — for the CLI's one-shot commands."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Mapping

from ..config import Config, load_config, parse_config
from ..config._expand import Sources
from ._store import SecretStore, SecretStoreUnavailable


def load_with_secrets(path: Path, environ: Mapping[str, str] | None = None,
                      store: SecretStore | None = None) -> tuple[Config, str | None]:
    """The config and, when the secret store could not be read, why. Raises `ConfigFileError`.

    The keyring is asked only for the variables the environment lacks (and only then is it loaded).
    """
    env = os.environ if environ is None else environ
    config, text = load_config(path, Sources(env))
    missing = config.missing_variables()
    if not missing:
        return config, None
    own = store is None
    store = store or SecretStore()
    error: str | None = None
    try:
        found = asyncio.run(store.get_many(missing))
    except SecretStoreUnavailable as e:
        found, error = {}, e.reason
    finally:
        if own:
            store.close()
    return parse_config(text, str(path), Sources(env, found, error)), error


def origins(config: Config) -> list[tuple[str, str, list[str]]]:
    """(name, origin, servers using it) per variable and origin, in first-use order (never a value)."""
    seen: dict[tuple[str, str], list[str]] = {}
    for use in config.variables:
        servers = seen.setdefault((use.name, use.origin), [])
        if use.server and use.server not in servers:
            servers.append(use.server)
    return [(name, origin, servers) for (name, origin), servers in seen.items()]
