"""Serve the paper exchange over real HTTP on loopback for third-party clients (ccxt)."""

from __future__ import annotations

from collections.abc import Iterator

import ccxt
import pytest
from conformance_support import KEYS, LiveExchange, fresh_key, make_client

from bastion.clock import WallClock
from bastion.simulators.paper import create_app
from loopback_server import serve_on_loopback


@pytest.fixture(scope="session")
def live_exchange() -> Iterator[LiveExchange]:
    """The paper exchange on 127.0.0.1:<free port> in a thread, pinned to KEYS, for the session."""
    app = create_app(clock=WallClock(), seed=7, allowed_credentials=KEYS)
    with serve_on_loopback(app) as url:
        yield LiveExchange(app=app, url=url)


@pytest.fixture(scope="session")
def markets_client(live_exchange: LiveExchange) -> Iterator[ccxt.deribit]:
    """One ccxt client that has loaded the markets once for the session."""
    exchange = make_client(live_exchange.url, "ccxt-key-0", KEYS["ccxt-key-0"])
    exchange.load_markets()
    try:
        yield exchange
    finally:
        exchange.close()


@pytest.fixture
def deribit(live_exchange: LiveExchange, markets_client: ccxt.deribit) -> Iterator[ccxt.deribit]:
    """A ccxt client with its own funded account (a fresh pinned key) and the loaded markets."""
    key = fresh_key()
    exchange = make_client(live_exchange.url, key, KEYS[key])
    exchange.set_markets(markets_client.markets, markets_client.currencies)
    try:
        yield exchange
    finally:
        exchange.close()
