"""ccxt.pro's Deribit WebSocket client works against the paper exchange's subscriptions.

Each test gets its own funded account (a fresh pinned key), so ccxt.pro's ``authenticate``
(``public/auth`` with ``client_signature``) is checked against the pinned secret as well.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import ccxt
import ccxt.pro
import pytest
from conformance_support import KEYS, LiveExchange, fresh_key, make_pro_client

PERP = "BTC/USD:BTC"
_BOUND_S = 5.0  # a watch that has not resolved by then has failed
_T = TypeVar("_T")


@pytest.fixture
async def pro(
    live_exchange: LiveExchange, markets_client: ccxt.deribit
) -> AsyncIterator[ccxt.pro.deribit]:
    """A ccxt.pro client with its own account and the session's loaded markets."""
    key = fresh_key()
    exchange = make_pro_client(live_exchange.url, key, KEYS[key])
    exchange.set_markets(markets_client.markets, markets_client.currencies)
    try:
        yield exchange
    finally:
        await exchange.close()


async def bounded(awaitable: Awaitable[_T]) -> _T:
    return await asyncio.wait_for(awaitable, _BOUND_S)


async def watch_while(watch: Awaitable[_T], act: Callable[[], Awaitable[Any]]) -> _T:
    """Start ``watch``, then ``act`` until it resolves: event channels send no snapshot, so
    whatever is done before the subscription is in place goes unseen."""
    watcher = asyncio.ensure_future(watch)
    try:
        for _ in range(50):
            await act()
            done, _ = await asyncio.wait({watcher}, timeout=0.1)
            if done:
                return watcher.result()
        return await bounded(watcher)
    finally:
        watcher.cancel()


async def test_watch_ticker(pro: ccxt.pro.deribit) -> None:
    """watch_ticker resolves with the perpetual's ticker: one tick wide around the index."""
    ticker = await bounded(pro.watch_ticker(PERP))
    assert ticker["symbol"] == PERP
    assert ticker["info"]["instrument_name"] == "BTC-PERPETUAL"
    assert ticker["ask"] - ticker["bid"] == 0.5
    assert ticker["bid"] <= ticker["markPrice"] < ticker["ask"]


async def test_watch_order_book(pro: ccxt.pro.deribit) -> None:
    """watch_order_book builds the book from the snapshot: sorted sides, one tick apart."""
    book = await bounded(pro.watch_order_book(PERP))
    assert book["symbol"] == PERP
    assert len(book["bids"]) == len(book["asks"]) == 10
    assert book["bids"] == sorted(book["bids"], reverse=True)
    assert book["asks"] == sorted(book["asks"])
    assert book["asks"][0][0] - book["bids"][0][0] == 0.5
    later = await bounded(pro.watch_order_book(PERP))  # the next change, a second on
    assert later["asks"][0][0] - later["bids"][0][0] == 0.5


async def test_watch_trades(pro: ccxt.pro.deribit) -> None:
    """watch_trades sees a paper fill on the public tape, with its price, size and side."""
    fills: list[dict[str, Any]] = []

    async def buy() -> None:
        fills.append(await pro.create_order(PERP, "market", "buy", 10))

    trades = await watch_while(pro.watch_trades(PERP), buy)
    prices = {fill["average"] for fill in fills}
    assert trades
    for trade in trades:
        assert (trade["symbol"], trade["side"], trade["amount"]) == (PERP, "buy", 10)
        assert trade["price"] in prices


async def test_watch_orders(pro: ccxt.pro.deribit) -> None:
    """watch_orders (user.orders.any.any.raw) reports the account's new resting order."""
    placed: list[dict[str, Any]] = []
    bid = (await pro.fetch_ticker(PERP))["bid"]

    async def rest() -> None:
        placed.append(await pro.create_order(PERP, "limit", "buy", 10, round(bid * 0.95)))

    orders = await watch_while(pro.watch_orders(PERP), rest)
    ids = {order["id"] for order in placed}
    assert orders
    for order in orders:
        assert order["id"] in ids
        assert (order["status"], order["side"], order["price"]) == (
            "open",
            "buy",
            round(bid * 0.95),
        )


async def test_watch_balance(pro: ccxt.pro.deribit) -> None:
    """watch_balance (user.portfolio.*) shows the fresh account's 10 BTC, all free."""
    balance = await bounded(pro.watch_balance())
    # ccxt 4.5.90 stores each portfolio notification as a whole balance under its currency.
    assert balance["BTC"]["BTC"] == {"free": 10.0, "used": 0.0, "total": 10.0}
    assert balance["BTC"]["info"]["currency"] == "BTC"
