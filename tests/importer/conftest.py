"""Fixtures for the import tests: a fake home with each client's files, written from the clients' documentation."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "proxy"))

from import_testlib import Home  # noqa: E402


@pytest.fixture
def home(tmp_path) -> Home:
    return Home(tmp_path)


@pytest.fixture
def short_dir():
    from proxy_testlib import short_dir_fixture

    yield from short_dir_fixture()
