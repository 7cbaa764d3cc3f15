"""Fixtures for the paper exchange: a SimClock, the venue, the app and an RPC helper."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from paper_support import START, Rpc

from bastion.clock import SimClock
from bastion.simulators.paper import PaperExchangeApp, PaperVenue, create_app


@pytest.fixture
def clock() -> SimClock:
    """A simulated clock at 2026-01-01T00:00:00Z."""
    return SimClock(START)


@pytest.fixture
def venue(clock: SimClock) -> PaperVenue:
    """The bare simulator on the SimClock, seed 1."""
    return PaperVenue(clock=clock, seed=1)


@pytest.fixture
def app(clock: SimClock) -> PaperExchangeApp:
    """The ASGI app on the SimClock, seed 1, sandbox credentials."""
    return create_app(clock=clock, seed=1)


@pytest.fixture
async def rpc(app: PaperExchangeApp) -> AsyncIterator[Rpc]:
    """An RPC helper bound to ``app`` through httpx's ASGI transport."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://paper") as client:
        yield Rpc(client)
