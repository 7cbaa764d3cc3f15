"""History through the app: order history (get_order_history_by_*) and chart candles."""

from __future__ import annotations

import itertools
from typing import Any

import httpx
import pytest
from paper_support import CALL, PERP, START, Rpc

from bastion.clock import SimClock
from bastion.simulators.paper import create_app
from bastion.simulators.paper.candles import FINE_SPAN_SECONDS

START_MS = int(START * 1000)
MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000


async def resting_buy(rpc: Rpc, price: float = 85_000, instrument: str = PERP) -> dict[str, Any]:
    result = await rpc.result("private/buy", instrument_name=instrument, amount=10, price=price)
    return dict(result["order"])


async def market_buy(rpc: Rpc, amount: int = 100) -> dict[str, Any]:
    result = await rpc.result("private/buy", instrument_name=PERP, amount=amount, type="market")
    return dict(result["order"])


# -- order history --------------------------------------------------------------------------


async def test_filled_order_is_in_the_history_by_instrument_and_currency(rpc: Rpc) -> None:
    """A filled market order appears, with its id and state, in both history methods."""
    await rpc.login()
    order = await market_buy(rpc)
    by_instrument = await rpc.result(
        "private/get_order_history_by_instrument", instrument_name=PERP
    )
    by_currency = await rpc.result("private/get_order_history_by_currency", currency="BTC")
    assert [o["order_id"] for o in by_instrument] == [order["order_id"]]
    assert by_currency == by_instrument
    (closed,) = by_instrument
    assert (closed["order_state"], closed["filled_amount"]) == ("filled", 100)
    assert closed == await rpc.result("private/get_order_state", order_id=order["order_id"])


async def test_unfilled_cancelled_orders_need_include_unfilled(rpc: Rpc) -> None:
    """A cancelled untouched order is listed only with include_unfilled, as on Deribit."""
    await rpc.login()
    order = await resting_buy(rpc)
    assert await rpc.result("private/get_order_history_by_instrument", instrument_name=PERP) == []
    await rpc.result("private/cancel", order_id=order["order_id"])
    assert await rpc.result("private/get_order_history_by_instrument", instrument_name=PERP) == []
    (cancelled,) = await rpc.result(
        "private/get_order_history_by_instrument", instrument_name=PERP, include_unfilled=True
    )
    assert (cancelled["order_id"], cancelled["order_state"], cancelled["cancel_reason"]) == (
        order["order_id"],
        "cancelled",
        "user_request",
    )


async def test_open_orders_are_not_history(rpc: Rpc) -> None:
    """A resting order is not in the history even with include_unfilled."""
    await rpc.login()
    await resting_buy(rpc)
    history = await rpc.result(
        "private/get_order_history_by_currency", currency="BTC", include_unfilled=True
    )
    assert history == []


async def test_history_is_newest_first_and_pages(rpc: Rpc, clock: SimClock) -> None:
    """Orders come newest first; count and offset page through them."""
    await rpc.login()
    ids = []
    for _ in range(4):
        ids.append((await market_buy(rpc, amount=10))["order_id"])
        clock.advance(1)
    newest_first = ids[::-1]
    page = {"currency": "BTC", "count": 2}
    assert [
        o["order_id"] for o in await rpc.result("private/get_order_history_by_currency", **page)
    ] == newest_first[:2]
    second = await rpc.result("private/get_order_history_by_currency", **page, offset=2)
    assert [o["order_id"] for o in second] == newest_first[2:]


async def test_history_filters_by_kind_and_currency(rpc: Rpc) -> None:
    """kind=option leaves the perpetual out; ETH history holds none of the BTC orders."""
    await rpc.login()
    await market_buy(rpc)
    option = (await rpc.result("private/buy", instrument_name=CALL, amount=0.1, type="market"))[
        "order"
    ]
    options = await rpc.result(
        "private/get_order_history_by_currency", currency="BTC", kind="option"
    )
    assert [o["order_id"] for o in options] == [option["order_id"]]
    assert await rpc.result("private/get_order_history_by_currency", currency="ETH") == []


async def test_orders_older_than_two_days_need_include_old(rpc: Rpc, clock: SimClock) -> None:
    """After two days an order leaves the default history; include_old brings it back."""
    await rpc.login()
    order = await market_buy(rpc)
    clock.advance(2 * 86_400 + 1)
    await rpc.login()  # the token has expired meanwhile
    assert await rpc.result("private/get_order_history_by_currency", currency="BTC") == []
    old = await rpc.result(
        "private/get_order_history_by_currency", currency="BTC", include_old=True
    )
    assert [o["order_id"] for o in old] == [order["order_id"]]


async def test_history_is_per_account(rpc: Rpc) -> None:
    """Another account's orders are not in the history."""
    await rpc.login("alice")
    await market_buy(rpc)
    await rpc.login("bob", "bob-secret")
    assert await rpc.result("private/get_order_history_by_currency", currency="BTC") == []


@pytest.mark.parametrize(
    ("method", "params", "code", "param"),
    [
        ("private/get_order_history_by_currency", {"currency": "BTC", "count": 0}, -32602, "count"),
        (
            "private/get_order_history_by_currency",
            {"currency": "BTC", "count": 1001},
            -32602,
            "count",
        ),
        (
            "private/get_order_history_by_currency",
            {"currency": "BTC", "offset": -1},
            -32602,
            "offset",
        ),
        ("private/get_order_history_by_currency", {}, -32602, "currency"),
        ("private/get_order_history_by_currency", {"currency": "DOGE"}, -32602, "currency"),
        ("private/get_order_history_by_instrument", {}, -32602, "instrument_name"),
        ("private/get_order_history_by_instrument", {"instrument_name": "X-1"}, 10020, None),
    ],
)
async def test_bad_history_requests(
    rpc: Rpc, method: str, params: dict[str, Any], code: int, param: str | None
) -> None:
    """Out-of-range paging, missing or unknown names get Deribit's errors."""
    await rpc.login()
    response = await rpc.get(method, **params)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == code
    if param is not None:
        assert error["data"]["param"] == param


async def test_history_needs_auth(rpc: Rpc) -> None:
    """The history is private: no credential is 10000."""
    response = await rpc.get("private/get_order_history_by_currency", currency="BTC")
    assert (response.status_code, response.json()["error"]["code"]) == (401, 10000)


# -- chart data -----------------------------------------------------------------------------


async def chart(rpc: Rpc, resolution: str, start_ms: int, end_ms: int, name: str = PERP) -> Any:
    return await rpc.result(
        "public/get_tradingview_chart_data",
        instrument_name=name,
        resolution=resolution,
        start_timestamp=start_ms,
        end_timestamp=end_ms,
    )


def candles(result: dict[str, Any]) -> list[tuple[Any, ...]]:
    keys = ("ticks", "open", "high", "low", "close", "volume", "cost")
    return list(zip(*(result[key] for key in keys), strict=True))


def assert_well_formed(result: dict[str, Any], span_ms: int) -> None:
    assert result["status"] == "ok"
    for tick, open_, high, low, close, volume, cost in candles(result):
        assert tick % span_ms == 0
        assert low <= min(open_, close) <= max(open_, close) <= high
        assert volume >= 0
        assert cost >= 0
    assert all(b - a == span_ms for a, b in itertools.pairwise(result["ticks"]))


async def test_minute_candles_are_the_marks_the_market_quoted(rpc: Rpc, clock: SimClock) -> None:
    """Each 1m candle opens at the index quoted at its first second and closes at its last."""
    quoted = {}
    for minute in range(4):
        quoted[minute] = (await rpc.result("public/get_index_price", index_name="btc_usd"))[
            "index_price"
        ]
        clock.advance(59)
        quoted[minute + 0.5] = (await rpc.result("public/get_index_price", index_name="btc_usd"))[
            "index_price"
        ]
        clock.advance(1)
    result = await chart(rpc, "1", START_MS, START_MS + 3 * MINUTE_MS)
    assert_well_formed(result, MINUTE_MS)
    assert result["ticks"] == [START_MS + m * MINUTE_MS for m in range(4)]
    assert result["open"] == [quoted[m] for m in range(4)]
    assert result["close"] == [quoted[m + 0.5] for m in range(4)]


async def test_the_current_candle_closes_at_now(rpc: Rpc, clock: SimClock) -> None:
    """The last candle is partial: it closes at the current index, and none lies ahead."""
    clock.advance(90)
    ticker = await rpc.result("public/ticker", instrument_name=PERP)
    result = await chart(rpc, "1", START_MS, START_MS + DAY_MS)
    assert result["ticks"][-1] == START_MS + MINUTE_MS
    assert result["close"][-1] == ticker["index_price"]


async def test_perpetual_history_reaches_before_the_start(rpc: Rpc) -> None:
    """ccxt's default 1000 one-minute candles exist at start-up and join the start price."""
    result = await chart(rpc, "1", START_MS - 999 * MINUTE_MS, START_MS)
    assert_well_formed(result, MINUTE_MS)
    assert len(result["ticks"]) == 1000
    assert result["ticks"][-1] == START_MS
    assert result["close"][-1] == result["open"][-1] == 90_000.0
    assert len(set(result["close"])) > 900  # a path, not a flat line
    assert abs(result["close"][-2] - 90_000.0) < 200  # one second before the start


async def test_option_history_starts_at_its_listing(rpc: Rpc, clock: SimClock) -> None:
    """An option has no candles before its creation_timestamp; its last close is its mark."""
    clock.advance(600)
    result = await chart(rpc, "1", START_MS - HOUR_MS, START_MS + HOUR_MS, name=CALL)
    assert_well_formed(result, MINUTE_MS)
    assert result["ticks"][0] == START_MS
    assert len(result["ticks"]) == 11
    ticker = await rpc.result("public/ticker", instrument_name=CALL)
    assert result["close"][-1] == ticker["mark_price"]


async def test_trades_show_in_volume_cost_and_range(rpc: Rpc, clock: SimClock) -> None:
    """A paper fill adds its coin volume and USD cost, and its price lies within the candle."""
    await rpc.login()
    clock.advance(30)
    result = await rpc.result("private/buy", instrument_name=PERP, amount=1000, type="market")
    (trade,) = result["trades"]
    bars = candles(await chart(rpc, "1", START_MS, START_MS))
    (tick, _, high, low, _, volume, cost) = bars[-1]
    assert tick == START_MS
    assert low <= trade["price"] <= high
    assert volume == round(1000 / trade["price"], 8)
    assert cost == 1000


async def test_candles_are_deterministic_for_a_seed_and_clock() -> None:
    """Two apps with one seed and clock draw identical charts; another seed draws another."""

    async def draw(seed: int) -> list[Any]:
        clock = SimClock(START)
        app = create_app(clock=clock, seed=seed)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://paper") as client:
            rpc = Rpc(client)
            clock.advance(7200)
            return [
                await chart(rpc, "1", START_MS - HOUR_MS, START_MS + 2 * HOUR_MS),
                await chart(rpc, "60", START_MS - 30 * DAY_MS, START_MS + DAY_MS),
                await chart(rpc, "1D", START_MS - 400 * DAY_MS, START_MS + DAY_MS),
            ]

    first, again, other = await draw(5), await draw(5), await draw(6)
    assert first == again
    assert first[0]["close"] != other[0]["close"]


async def test_long_windows_are_capped(rpc: Rpc) -> None:
    """Under an hour a window is cut to its newest 48 h; nothing returns over 5000 candles."""
    minutes = await chart(rpc, "1", START_MS - 10 * DAY_MS, START_MS)
    assert len(minutes["ticks"]) == FINE_SPAN_SECONDS // 60
    assert minutes["ticks"][-1] == START_MS
    hours = await chart(rpc, "60", 0, START_MS)
    assert len(hours["ticks"]) == 5000
    assert hours["ticks"][-1] == START_MS
    assert_well_formed(hours, HOUR_MS)


async def test_hourly_points_draw_long_windows_without_seams(rpc: Rpc) -> None:
    """A 30-day window of 1h candles: each opens where the previous closed."""
    result = await chart(rpc, "60", START_MS - 30 * DAY_MS, START_MS)
    assert_well_formed(result, HOUR_MS)
    assert len(result["ticks"]) == 30 * 24 + 1
    assert result["open"][1:] == result["close"][:-1]


@pytest.mark.parametrize(
    ("start", "end"),
    [(START_MS + DAY_MS, START_MS + 2 * DAY_MS), (START_MS, START_MS - 1)],
)
async def test_no_data_outside_history(rpc: Rpc, start: int, end: int) -> None:
    """A window in the future, or ending before it starts, is status no_data with no bars."""
    result = await chart(rpc, "1", start, end)
    assert result == {
        "status": "no_data",
        "ticks": [],
        "open": [],
        "high": [],
        "low": [],
        "close": [],
        "volume": [],
        "cost": [],
    }


@pytest.mark.parametrize(
    ("params", "code", "param"),
    [
        ({"resolution": "2"}, -32602, "resolution"),
        ({"resolution": None}, -32602, "resolution"),
        ({"start_timestamp": None}, -32602, "start_timestamp"),
        ({"end_timestamp": "soon"}, 11029, "end_timestamp"),
        ({"instrument_name": "BTC-1JAN20-1-C"}, 10020, None),
    ],
)
async def test_bad_chart_requests(
    rpc: Rpc, params: dict[str, Any], code: int, param: str | None
) -> None:
    """A resolution off Deribit's list, a missing or malformed time, an unknown instrument."""
    query: dict[str, Any] = {
        "instrument_name": PERP,
        "resolution": "1",
        "start_timestamp": START_MS,
        "end_timestamp": START_MS,
    }
    query |= params
    query = {k: v for k, v in query.items() if v is not None}
    response = await rpc.get("public/get_tradingview_chart_data", **query)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == code
    if param is not None:
        assert error["data"]["param"] == param
