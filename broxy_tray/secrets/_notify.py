"""Tell a running broxy-tray that stored secrets changed, so it re-expands mcp.json at once."""

from __future__ import annotations

from pathlib import Path

NOTIFY_TIMEOUT = 30.0  # the app reads the keyring (5 s timeout) and reloads before it answers


def notify_running_app(config_path: Path, timeout: float = NOTIFY_TIMEOUT) -> str | None:
    """None when no instance runs for `config_path`; otherwise what it said ("applied" or why not)."""
    import asyncio

    from ..control._client import NotRunning
    from ..control._locate import request
    from ..control._protocol import ControlError

    try:  # found through its instance lock, wherever (whatever XDG_RUNTIME_DIR) the app was started from
        response = asyncio.run(request(config_path, {"cmd": "secrets"}, timeout))
    except NotRunning:
        return None
    except ControlError as e:
        return f"the running broxy-tray did not answer ({e}); it applies the change at its next reload"
    if not response.get("ok"):
        return f"the running broxy-tray refused: {response.get('error', {}).get('message', '?')}"
    result = response.get("result") or {}
    problem = result.get("secretStoreError")
    return f"applied, but it cannot read the secret store: {problem}" if problem else "applied"
