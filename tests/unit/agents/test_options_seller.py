"""The reference seller: what it watches, what it sells and when it buys back."""

from __future__ import annotations

from bastion.agent import Context, Observation
from bastion.agents.options_seller import OptionsSeller, SellerParams
from bastion.clock import SimClock
from bastion.market import AccountSummary, Instrument, Order, Position, Ticker

DAY = 86_400_000
NOW = 1_800_000_000_000
INDEX = 100_000.0
PARAMS = SellerParams(
    target_delta=0.15,
    min_days=0.5,
    max_days=10,
    order_amount=0.1,
    max_shorts=2,
    buyback_delta=0.35,
    buyback_days=0.25,
)


def _option(strike: float, kind: str, days: float) -> Instrument:
    expiry = NOW + int(days * DAY)
    suffix = "C" if kind == "call" else "P"
    return Instrument(
        f"BTC-X{int(days)}-{int(strike)}-{suffix}",
        "option",
        "BTC",
        expiry,
        0.0001,
        0.1,
        1.0,
        strike=strike,
        option_type=kind,  # type: ignore[arg-type]
    )


def _ticker(
    name: str, delta: float, mark: float = 0.01, bid: float = 0.0095, ask: float = 0.0105
) -> Ticker:
    return Ticker(name, NOW, mark, INDEX, bid, ask, delta=delta)


def _obs(
    instruments: list[Instrument],
    tickers: list[Ticker],
    positions: tuple[Position, ...] = (),
    orders: tuple[Order, ...] = (),
) -> Observation:
    return Observation(
        time_ms=NOW,
        currency="BTC",
        index_price=INDEX,
        account=AccountSummary("BTC", 10, 10, 10, 0, 0),
        positions=positions,
        open_orders=orders,
        tickers={t.instrument_name: t for t in tickers},
        instruments={i.name: i for i in instruments},
    )


CTX = Context(run_id="r", step=1, clock=SimClock(), dry_run=False)


def test_watchlist_holds_only_otm_options_inside_the_days_window() -> None:
    """Calls above and puts below the index, expiring within [min_days, max_days]."""
    grid = [
        _option(k, t, d)
        for d in (0.2, 3, 20)
        for t in ("call", "put")
        for k in (90_000, 95_000, 105_000, 110_000)
    ]
    names = OptionsSeller(PARAMS).watchlist(grid, INDEX, NOW)
    assert sorted(names) == sorted(
        [
            "BTC-X3-105000-C",
            "BTC-X3-110000-C",
            "BTC-X3-90000-P",
            "BTC-X3-95000-P",
        ]
    )


def test_watchlist_keeps_the_nearest_strikes_per_side() -> None:
    """At most five OTM strikes per expiry and side, nearest to the index first."""
    grid = [_option(100_000 + 1_000 * i, "call", 3) for i in range(1, 12)]
    names = OptionsSeller(PARAMS).watchlist(grid, INDEX, NOW)
    assert names == [f"BTC-X3-{100_000 + 1_000 * i}-C" for i in range(1, 6)]


async def test_sells_the_option_nearest_the_target_delta_at_the_mark() -> None:
    """Delta 0.14 beats 0.25 and 0.05; the price is the mark rounded up to the tick."""
    grid = [_option(k, "call", 3) for k in (104_000, 108_000, 115_000)]
    tickers = [
        _ticker(grid[0].name, 0.25),
        _ticker(grid[1].name, 0.14, mark=0.01234),
        _ticker(grid[2].name, 0.05),
    ]
    decision = await OptionsSeller(PARAMS).decide(_obs(grid, tickers), CTX)
    [intent] = decision.intents
    assert (intent.instrument_name, intent.direction, intent.amount) == (grid[1].name, "sell", 0.1)
    assert intent.price == 0.0124
    assert "0.140" in intent.reason


async def test_never_offers_below_the_best_bid() -> None:
    """When the bid is above the mark, the sale is priced at the bid."""
    option = _option(108_000, "call", 3)
    ticker = _ticker(option.name, 0.15, mark=0.010, bid=0.0112, ask=0.012)
    [intent] = (await OptionsSeller(PARAMS).decide(_obs([option], [ticker]), CTX)).intents
    assert intent.price == 0.0112


async def test_holds_at_max_shorts_counting_resting_sales() -> None:
    """One short position plus one resting sale is two: no third sale."""
    grid = [_option(k, "call", 3) for k in (104_000, 108_000, 115_000)]
    tickers = [_ticker(i.name, 0.15) for i in grid]
    short = Position(grid[0].name, "option", -0.1, 0.01, 0.01)
    resting = Order("BTC-9", grid[1].name, "sell", "limit", "open", 0.1, 0, 0.01, 0, "", 0, 0)
    decision = await OptionsSeller(PARAMS).decide(
        _obs(grid, tickers, positions=(short,), orders=(resting,)), CTX
    )
    assert decision.intents == ()


async def test_buys_back_when_delta_passes_the_trigger() -> None:
    """A short at |delta| 0.40 >= 0.35 is bought back, reduce-only, at the ask."""
    option = _option(104_000, "call", 3)
    short = Position(option.name, "option", -0.2, 0.01, 0.03)
    ticker = _ticker(option.name, 0.40, mark=0.03, bid=0.029, ask=0.0312)
    [intent] = (
        await OptionsSeller(PARAMS).decide(_obs([option], [ticker], positions=(short,)), CTX)
    ).intents
    assert (intent.direction, intent.amount, intent.reduce_only) == ("buy", 0.2, True)
    assert intent.price == 0.0312
    assert "delta" in intent.reason


async def test_buys_back_close_to_expiry_even_when_delta_is_small() -> None:
    """A short 0.2 days from expiry is closed whatever its delta."""
    option = _option(115_000, "call", 0.2)
    short = Position(option.name, "option", -0.1, 0.01, 0.001)
    ticker = _ticker(option.name, 0.01, mark=0.001, bid=0.0009, ask=0.0011)
    [intent] = (
        await OptionsSeller(PARAMS).decide(_obs([option], [ticker], positions=(short,)), CTX)
    ).intents
    assert intent.direction == "buy"
    assert "days to expiry" in intent.reason


async def test_does_not_repeat_a_buy_back_that_is_already_resting() -> None:
    """With a buy order resting for the short, the trigger sends nothing more."""
    option = _option(104_000, "call", 3)
    short = Position(option.name, "option", -0.2, 0.01, 0.03)
    ticker = _ticker(option.name, 0.40, mark=0.03, bid=0.029, ask=0.0312)
    resting = Order("BTC-7", option.name, "buy", "limit", "open", 0.2, 0, 0.0312, 0, "", 0, 0)
    decision = await OptionsSeller(PARAMS).decide(
        _obs([option], [ticker], positions=(short,), orders=(resting,)), CTX
    )
    assert all(i.direction != "buy" for i in decision.intents)
