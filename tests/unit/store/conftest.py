"""Fixtures for store tests: an opened store on each backend."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bastion.store import Store


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """A migrated store on SQLite or PostgreSQL, closed after the test."""
    with Store.open(store_url) as opened:
        yield opened
