"""ccxt's own Deribit client works against the paper exchange: the proof that it speaks Deribit.

ccxt signs every private call with deri-hmac-sha256 over the raw query and the server pins the
credentials, so every passing private call below also proves the HMAC check.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import ccxt
import pytest
from conformance_support import KEYS, LiveExchange, make_client


def atm_call(exchange: ccxt.deribit) -> dict[str, Any]:
    """The BTC call nearest the money on the first weekly expiry at least a day away."""
    soon = (time.time() + 86_400) * 1000
    calls = [
        m
        for m in exchange.markets.values()
        if m["option"] and m["base"] == "BTC" and m["optionType"] == "call" and m["expiry"] > soon
    ]
    expiry = min(m["expiry"] for m in calls if m["info"]["settlement_period"] == "week")
    index = exchange.fetch_ticker("BTC/USD:BTC")["indexPrice"]
    return min((m for m in calls if m["expiry"] == expiry), key=lambda m: abs(m["strike"] - index))


def test_load_markets(markets_client: ccxt.deribit) -> None:
    """Perpetuals are inverse swaps; every option has the right symbol, strike, type and expiry."""
    perp = markets_client.market("BTC/USD:BTC")
    assert (perp["id"], perp["type"], perp["inverse"], perp["settle"]) == (
        "BTC-PERPETUAL",
        "swap",
        True,
        "BTC",
    )
    assert (perp["contractSize"], perp["precision"]["price"], perp["limits"]["amount"]["min"]) == (
        10,
        0.5,
        10,
    )
    assert markets_client.market("ETH/USD:ETH")["contractSize"] == 1
    options = [m for m in markets_client.markets.values() if m["option"]]
    assert len(options) > 500
    assert {m["optionType"] for m in options} == {"call", "put"}
    for market in options:
        info = market["info"]
        expiry = datetime.fromtimestamp(info["expiration_timestamp"] / 1000, tz=UTC)
        letter = "C" if info["option_type"] == "call" else "P"
        strike = int(info["strike"])
        base = info["base_currency"]
        assert market["symbol"] == f"{base}/USD:{base}-{expiry:%y%m%d}-{strike}-{letter}"
        assert market["strike"] == info["strike"]
        assert market["optionType"] == info["option_type"]
        assert market["expiry"] == info["expiration_timestamp"]
        assert expiry.hour == 8
        assert market["inverse"] is True
        assert market["precision"]["price"] == 0.0001


def test_fetch_time(deribit: ccxt.deribit) -> None:
    """fetch_time returns the server's epoch milliseconds (a WallClock here)."""
    assert abs(deribit.fetch_time() - time.time() * 1000) < 5_000


def test_fetch_ticker(deribit: ccxt.deribit) -> None:
    """The perpetual quotes one tick wide around the index; an option quotes bid < mark < ask."""
    perp = deribit.fetch_ticker("BTC/USD:BTC")
    assert perp["ask"] - perp["bid"] == 0.5
    assert perp["bid"] <= perp["markPrice"] < perp["ask"]
    assert perp["markPrice"] == perp["indexPrice"]
    option = deribit.fetch_ticker(atm_call(deribit)["symbol"])
    assert option["bid"] < option["markPrice"] < option["ask"]
    assert 0.3 < option["info"]["greeks"]["delta"] < 0.7


def test_fetch_order_book(deribit: ccxt.deribit) -> None:
    """The book has the requested depth, sorted sides and change_id as its nonce."""
    book = deribit.fetch_order_book("BTC/USD:BTC", 5)
    assert len(book["bids"]) == len(book["asks"]) == 5
    assert book["bids"] == sorted(book["bids"], reverse=True)
    assert book["asks"] == sorted(book["asks"])
    assert book["asks"][0][0] - book["bids"][0][0] == 0.5
    assert isinstance(book["nonce"], int)


def test_fetch_balance(deribit: ccxt.deribit) -> None:
    """A fresh account holds 10 BTC and 100 ETH, all free."""
    balance = deribit.fetch_balance()
    assert balance["BTC"] == {"free": 10.0, "used": 0.0, "total": 10.0}
    assert balance["ETH"]["total"] == 100.0


def test_option_limit_order_lifecycle(deribit: ccxt.deribit) -> None:
    """A resting option bid: create, fetch, list as open, cancel."""
    symbol = atm_call(deribit)["symbol"]
    order = deribit.create_order(symbol, "limit", "buy", 0.1, 0.0001)
    assert (order["status"], order["type"], order["side"]) == ("open", "limit", "buy")
    assert (order["price"], order["amount"], order["filled"]) == (0.0001, 0.1, 0.0)
    assert order["id"].startswith("BTC-")
    assert deribit.fetch_order(order["id"])["status"] == "open"
    assert [o["id"] for o in deribit.fetch_open_orders()] == [order["id"]]
    assert [o["id"] for o in deribit.fetch_open_orders(symbol)] == [order["id"]]
    assert deribit.cancel_order(order["id"])["status"] == "canceled"
    assert deribit.fetch_order(order["id"])["status"] == "canceled"
    assert deribit.fetch_open_orders() == []


def test_perp_market_order_trades_and_positions(deribit: ccxt.deribit) -> None:
    """A market buy fills at once; it shows as a taker trade and as a long position."""
    order = deribit.create_order("BTC/USD:BTC", "market", "buy", 100)
    assert (order["status"], order["filled"]) == ("closed", 100)
    (trade,) = deribit.fetch_my_trades()
    assert (trade["order"], trade["side"], trade["amount"], trade["takerOrMaker"]) == (
        order["id"],
        "buy",
        100,
        "taker",
    )
    assert trade["price"] == order["average"]
    assert trade["fee"]["currency"] == "BTC"
    assert trade["fee"]["cost"] == pytest.approx(0.0005 * 100 / trade["price"], rel=1e-3)
    (position,) = deribit.fetch_positions()
    assert (position["symbol"], position["side"], position["contracts"]) == (
        "BTC/USD:BTC",
        "long",
        100,
    )
    assert position["entryPrice"] == trade["price"]


def test_fetch_ohlcv(deribit: ccxt.deribit) -> None:
    """Minute candles up to now: aligned, a minute apart, low <= open, close <= high."""
    candles = deribit.fetch_ohlcv("BTC/USD:BTC", "1m", limit=5)
    now = deribit.fetch_time()
    assert len(candles) == 5
    ticks = [c[0] for c in candles]
    assert all(t % 60_000 == 0 for t in ticks)
    assert [b - a for a, b in itertools.pairwise(ticks)] == [60_000] * 4
    assert ticks[-1] <= now < ticks[-1] + 120_000
    for _, open_, high, low, close, volume in candles:
        assert low <= min(open_, close) <= max(open_, close) <= high
        assert volume >= 0
    index = deribit.fetch_ticker("BTC/USD:BTC")["indexPrice"]
    assert abs(candles[-1][4] - index) / index < 0.01


def test_fetch_ohlcv_counts_a_fill(deribit: ccxt.deribit) -> None:
    """A market buy shows as volume in the last candles (coin: USD amount over price)."""
    order = deribit.create_order("BTC/USD:BTC", "market", "buy", 1000)
    candles = deribit.fetch_ohlcv("BTC/USD:BTC", "1m", limit=2)
    volume = sum(c[5] for c in candles)
    assert volume >= 1000 / order["average"] * 0.999
    assert any(c[3] <= order["average"] <= c[2] for c in candles)


def test_fetch_closed_orders(deribit: ccxt.deribit) -> None:
    """A filled order is closed history at once; a cancelled untouched one with include_unfilled."""
    filled = deribit.create_order("BTC/USD:BTC", "market", "buy", 10)
    bid = deribit.fetch_ticker("BTC/USD:BTC")["bid"]
    resting = deribit.create_order("BTC/USD:BTC", "limit", "buy", 10, round(bid * 0.95))
    deribit.cancel_order(resting["id"])
    (closed,) = deribit.fetch_closed_orders("BTC/USD:BTC")
    assert (closed["id"], closed["status"], closed["filled"]) == (filled["id"], "closed", 10)
    assert [o["id"] for o in deribit.fetch_closed_orders()] == [filled["id"]]
    with_unfilled = deribit.fetch_closed_orders("BTC/USD:BTC", params={"include_unfilled": True})
    by_id = {o["id"]: o for o in with_unfilled}
    assert by_id[resting["id"]]["status"] == "canceled"
    assert by_id[resting["id"]]["filled"] == 0
    assert set(by_id) == {filled["id"], resting["id"]}


def _buy(**params: Any) -> Callable[[ccxt.deribit], Any]:
    return lambda ex: ex.privateGetBuy(
        {"instrument_name": "BTC-PERPETUAL", "type": "limit"} | params
    )


def _sell_too_many_options(ex: ccxt.deribit) -> Any:
    symbol = atm_call(ex)["symbol"]
    return ex.create_order(symbol, "limit", "sell", 1000, ex.fetch_ticker(symbol)["bid"])


def _post_only_that_takes(ex: ccxt.deribit) -> Any:
    ask = ex.fetch_ticker("BTC/USD:BTC")["ask"]
    return ex.create_order("BTC/USD:BTC", "limit", "buy", 10, round(ask * 1.01), {"postOnly": True})


def _label_too_long(ex: ccxt.deribit) -> Any:
    bid = ex.fetch_ticker("BTC/USD:BTC")["bid"]
    return ex.create_order("BTC/USD:BTC", "limit", "buy", 10, bid, {"label": "x" * 65})


ERRORS: list[tuple[str, Callable[[ccxt.deribit], Any], type[Exception]]] = [
    ("10009 not_enough_funds", _sell_too_many_options, ccxt.InsufficientFunds),
    (
        "10004 order_not_found (cancel)",
        lambda ex: ex.cancel_order("BTC-424242"),
        ccxt.OrderNotFound,
    ),
    ("10004 order_not_found (fetch)", lambda ex: ex.fetch_order("ETH-424242"), ccxt.OrderNotFound),
    ("10043 price_wrong_tick", _buy(amount=10, price="90000.3"), ccxt.InvalidOrder),
    ("10002 qty_too_low", _buy(amount=5, price="90000"), ccxt.InvalidOrder),
    ("10021 invalid_amount", _buy(amount=-10, price="90000"), ccxt.InvalidOrder),
    ("11054 post_only_reject", _post_only_that_takes, ccxt.InvalidOrder),
    ("11029 invalid_arguments", _label_too_long, ccxt.BadRequest),
    ("-32602 invalid params", lambda ex: ex.privateGetBuy({"amount": 10}), ccxt.BadRequest),
    (
        "10020 unknown instrument",
        lambda ex: ex.publicGetTicker({"instrument_name": "BTC-1JAN20-1-C"}),
        ccxt.ExchangeError,
    ),
]


@pytest.mark.parametrize(("name", "call", "error"), ERRORS, ids=[e[0] for e in ERRORS])
def test_error_codes_reach_ccxt_as_its_exceptions(
    deribit: ccxt.deribit, name: str, call: Callable[[ccxt.deribit], Any], error: type[Exception]
) -> None:
    """Each Deribit error code raises ccxt's matching exception class (exactly that class)."""
    with pytest.raises(ccxt.BaseError) as caught:
        call(deribit)
    assert type(caught.value) is error, (name, caught.value)
    assert name.split(maxsplit=1)[0] in str(caught.value)


@pytest.mark.parametrize(
    ("key", "secret"), [("ccxt-key-1", "not-the-secret"), ("unknown-key", "whatever")]
)
def test_bad_credentials_are_authentication_errors(
    live_exchange: LiveExchange, key: str, secret: str
) -> None:
    """A wrong secret (13009 bad signature) or unknown key (13004) is ccxt's AuthenticationError."""
    exchange = make_client(live_exchange.url, key, secret)
    try:
        with pytest.raises(ccxt.AuthenticationError):
            exchange.privateGetGetAccountSummaries()
    finally:
        exchange.close()
    assert KEYS["ccxt-key-1"] != secret


@pytest.mark.parametrize(
    ("code", "error"),
    [(11050, ccxt.BadRequest), (10028, ccxt.DDoSProtection), (10040, ccxt.ExchangeNotAvailable)],
)
def test_injected_codes_reach_ccxt(
    deribit: ccxt.deribit, live_exchange: LiveExchange, code: int, error: type[Exception]
) -> None:
    """Codes a healthy venue never sends (bad_request, rate limit, retry) arrive classified too."""
    live_exchange.app.faults.inject("public/get_time", code=code)
    with pytest.raises(ccxt.BaseError) as caught:
        deribit.fetch_time()
    assert type(caught.value) is error
    assert isinstance(deribit.fetch_time(), int)
