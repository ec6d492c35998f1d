"""Fixtures for tests/mcp (helpers live in mcp_testlib, importable from the test modules)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from mcp_testlib import sdk_servers_fixture  # noqa: E402

sdk_servers = pytest.fixture(sdk_servers_fixture)
