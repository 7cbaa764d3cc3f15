"""The risk review: every cap rejects with its limit and the observed value, nothing else does."""

from __future__ import annotations

import pytest

from bastion.agent import Decision, Observation, OrderIntent
from bastion.guard.risk import RiskLimits, review
from bastion.market import AccountSummary, Instrument, Order, Position

OPTION = "BTC-27DEC26-120000-C"
PERP = "BTC-PERPETUAL"
LIMITS = RiskLimits(
    max_order_amount=1.0,
    max_order_notional_usd=50_000.0,
    max_position=1.5,
    allowed_instruments=("BTC-*",),
)


def _instrument(name: str) -> Instrument:
    if name.endswith("PERPETUAL"):  # Deribit's inverse perpetuals trade in USD
        return Instrument(name, "future", "BTC", 0, 0.5, 10, 10, amount_unit="usd")
    return Instrument(name, "option", "BTC", 0, 0.0001, 0.1, 1.0)


def _obs(
    positions: tuple[Position, ...] = (),
    open_orders: tuple[Order, ...] = (),
    instruments: dict[str, Instrument] | None = None,
) -> Observation:
    return Observation(
        time_ms=0,
        currency="BTC",
        index_price=40_000.0,
        account=AccountSummary("BTC", 10, 10, 10, 0, 0),
        positions=positions,
        open_orders=open_orders,
        tickers={},
        instruments=instruments or {n: _instrument(n) for n in (OPTION, PERP, "ETH-PERPETUAL")},
    )


def _sell(amount: float, name: str = OPTION, **kw: object) -> OrderIntent:
    return OrderIntent(name, "sell", amount, price=0.01, **kw)  # type: ignore[arg-type]


def _resting(amount: float, direction: str = "sell") -> Order:
    return Order("BTC-1", OPTION, direction, "limit", "open", amount, 0.0, 0.01, 0.0, "", 0, 0)  # type: ignore[arg-type]


def test_an_order_within_every_cap_is_approved() -> None:
    """A small sale on an allowed option passes."""
    [verdict] = review(Decision((_sell(0.5),)), _obs(), LIMITS)
    assert verdict.approved
    assert verdict.cap is None


@pytest.mark.parametrize(
    ("intent", "cap", "limit", "observed"),
    [
        (_sell(0.5, "ETH-PERPETUAL"), "allowed_instruments", "BTC-*", "ETH-PERPETUAL"),
        (_sell(1.2), "max_order_amount", 1.0, 1.2),
        (_sell(-0.1), "amount", 0, -0.1),
        (OrderIntent(OPTION, "sell", 0.1, price=None), "price", 0, None),
    ],
)
def test_each_cap_names_itself_its_limit_and_the_observed_value(
    intent: OrderIntent, cap: str, limit: object, observed: object
) -> None:
    """A rejection says which cap, the limit and what was observed."""
    [verdict] = review(Decision((intent,)), _obs(), LIMITS)
    assert verdict.status == "rejected"
    assert (verdict.cap, verdict.limit, verdict.observed) == (cap, limit, observed)
    assert cap in verdict.reason


def test_notional_of_an_option_is_amount_times_index() -> None:
    """1.0 BTC of options at a 60,000 index is $60,000 notional, above a $50,000 cap."""
    obs = _obs()
    obs = Observation(**{**{f: getattr(obs, f) for f in obs.__slots__}, "index_price": 60_000.0})
    [verdict] = review(Decision((_sell(1.0),)), obs, LIMITS)
    assert verdict.cap == "max_order_notional_usd"
    assert verdict.observed == 60_000.0


def test_notional_of_a_perpetual_is_its_usd_amount() -> None:
    """Perpetual amounts are USD: $30,000 is 0.75 BTC at a 40,000 index, within every cap."""
    [verdict] = review(Decision((_sell(30_000, PERP),)), _obs(), LIMITS)
    assert verdict.approved


def test_perpetual_amounts_are_capped_in_coin() -> None:
    """$48,000 of perpetual at a 40,000 index is 1.2 BTC, above max_order_amount 1.0."""
    [verdict] = review(Decision((_sell(48_000, PERP),)), _obs(), LIMITS)
    assert (verdict.cap, verdict.observed) == ("max_order_amount", 1.2)


def test_the_quote_unit_decides_not_the_kind() -> None:
    """A USD-quoted option is judged in USD and a coin-quoted (linear) perpetual in coin."""
    usd_option = Instrument(OPTION, "option", "BTC", 0, 0.0001, 0.1, 1.0, amount_unit="usd")
    linear = Instrument(PERP, "future", "BTC", 0, 0.5, 0.001, 1.0, amount_unit="coin")
    obs = _obs(instruments={OPTION: usd_option, PERP: linear})
    option_usd, perp_coin = review(Decision((_sell(30_000), _sell(1.2, PERP))), obs, LIMITS)
    assert option_usd.approved  # $30,000 is 0.75 BTC at a 40,000 index
    assert (perp_coin.cap, perp_coin.observed) == ("max_order_amount", 1.2)

    [too_big] = review(Decision((_sell(48_000),)), obs, LIMITS)
    assert (too_big.cap, too_big.observed) == ("max_order_amount", 1.2)


def test_an_instrument_defaults_to_coin_the_stricter_reading() -> None:
    """Without an amount_unit an amount counts as coin: 30,000 of it is far above the cap."""
    plain = Instrument(PERP, "future", "BTC", 0, 0.5, 10, 10)
    assert plain.amount_unit == "coin"
    [verdict] = review(Decision((_sell(30_000, PERP),)), _obs(instruments={PERP: plain}), LIMITS)
    assert verdict.cap == "max_order_amount"


def test_position_cap_counts_held_resting_and_earlier_intents() -> None:
    """Held 0.5 short + 0.5 resting + 0.4 approved earlier + 0.4 now = 1.8 > 1.5."""
    obs = _obs(
        positions=(Position(OPTION, "option", -0.5, 0.01, 0.01),),
        open_orders=(_resting(0.5),),
    )
    first, second = review(Decision((_sell(0.4), _sell(0.4))), obs, LIMITS)
    assert first.approved
    assert second.cap == "max_position"
    assert second.observed == pytest.approx(1.8)
    assert second.limit == 1.5


def test_reduce_only_buy_back_is_never_blocked_by_the_position_cap() -> None:
    """A short above the cap (e.g. after the cap was lowered) can always be bought back."""
    obs = _obs(positions=(Position(OPTION, "option", -1.8, 0.01, 0.01),))
    buy = OrderIntent(OPTION, "buy", 0.5, price=0.02, reduce_only=True)
    [verdict] = review(Decision((buy,)), obs, LIMITS)
    assert verdict.approved


def test_a_rejected_intent_does_not_count_towards_later_ones() -> None:
    """Only approved intents add to pending exposure."""
    first, second = review(Decision((_sell(1.2), _sell(1.0))), _obs(), LIMITS)
    assert first.cap == "max_order_amount"
    assert second.approved
