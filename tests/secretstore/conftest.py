"""Fixtures for the secret store tests: the real gnome-keyring on a private session bus (shared with
tests/auth/test_keyring_store.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_HERE = Path(__file__).resolve().parent
for _dir in (str(_HERE), str(_HERE.parent / "auth")):
    if _dir not in sys.path:
        sys.path.insert(0, _dir)

from secret_service import SecretService, secret_service  # noqa: E402,F401  (the fixture, reused)


@pytest.fixture
def keyring_env(secret_service: SecretService, tmp_path: Path) -> dict[str, str]:  # noqa: F811
    """The isolated environment of the private keyring, with state and logs under tmp_path."""
    env = dict(secret_service.env)
    env["XDG_STATE_HOME"] = str(tmp_path / "state")
    return env


@pytest.fixture
def user_env(keyring_env: dict[str, str]) -> dict[str, str]:
    """Here the shared `headless` fixture runs the app in the private keyring's environment."""
    return keyring_env
