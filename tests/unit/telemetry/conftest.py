"""Fixtures for the alert monitor's tests: a SQLite store and a simulated run on it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bastion.store import Store
from slo_sim import SimRun, make_run


@pytest.fixture
def sim_store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(f"sqlite:///{tmp_path / 'bastion.db'}") as store:
        yield store


@pytest.fixture
def sim_run(sim_store: Store) -> SimRun:
    return make_run(sim_store)
