"""Resilience tests start with test mode off and leave it off, whatever a test switched on."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bastion.resilience import set_testing


@pytest.fixture(autouse=True)
def _reset_test_mode() -> Iterator[None]:
    set_testing(False)
    yield
    set_testing(False)
