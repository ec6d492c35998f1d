"""broxy-tray's own secrets: values for `${NAME}` in mcp.json, kept in the OS keyring.

Public surface (used by the app, the CLI, the tray and importers)::

    from broxy_tray.secrets import SecretStore, check_name, is_valid_name

    store = SecretStore()              # service "broxy-tray-secrets"; every call off the loop, 5 s timeout
    await store.set("GITHUB_TOKEN", value)   # ValueError: empty value; InvalidSecretName: bad name
    await store.get("GITHUB_TOKEN")          # str | None
    await store.delete("GITHUB_TOKEN")       # True if something was stored
    await store.names()                      # sorted list of stored names
    # any keyring trouble (locked, no backend, no answer): SecretStoreUnavailable(reason)

After storing, tell a running app with `notify_running_app(config_path)` so
that it re-expands mcp.json at once.
"""

from ._notify import notify_running_app
from ._store import (
    SERVICE,
    InvalidSecretName,
    SecretStore,
    SecretStoreUnavailable,
    check_name,
    is_valid_name,
)

__all__ = [
    "SERVICE",
    "InvalidSecretName",
    "SecretStore",
    "SecretStoreUnavailable",
    "check_name",
    "is_valid_name",
    "notify_running_app",
]
