"""Fixtures for tests/proxy (helpers live in proxy_testlib, importable from the test modules)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from proxy_testlib import config_path_fixture, http_server_fixture, short_dir_fixture  # noqa: E402

http_server = pytest.fixture(scope="module")(http_server_fixture)
short_dir = pytest.fixture(short_dir_fixture)
config_path = pytest.fixture(config_path_fixture)
