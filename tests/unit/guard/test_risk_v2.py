"""Risk caps v2: each cap rejects (or asks for approval) naming itself, its limit and the
observed value; each is off in a bare RiskLimits so v1 limits keep their meaning."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from bastion.agent import Decision, Observation, OrderIntent
from bastion.guard.risk import RiskLimits, Verdict, review
from bastion.market import AccountSummary, Instrument, Order, Position, Ticker

OPTION = "BTC-27DEC26-120000-C"
FUTURE = "BTC-27DEC26"
PERP = "BTC-PERPETUAL"
ETH_OPTION = "ETH-27DEC26-5000-C"
INDEX = 40_000.0
MARK = 0.01
BASE = RiskLimits(
    max_order_amount=10.0,
    max_order_notional_usd=1_000_000.0,
    max_position=20.0,
    allowed_instruments=("BTC-*", "ETH-*"),
)
INSTRUMENTS = {
    OPTION: Instrument(OPTION, "option", "BTC", 0, 0.0001, 0.1, 1.0),
    FUTURE: Instrument(FUTURE, "future", "BTC", 0, 0.5, 10, 10, amount_unit="usd"),
    PERP: Instrument(
        PERP, "future", "BTC", 0, 0.5, 10, 10, settlement_period="perpetual", amount_unit="usd"
    ),
    ETH_OPTION: Instrument(ETH_OPTION, "option", "ETH", 0, 0.0001, 1, 1.0),
}


def _ticker(name: str, mark: float) -> Ticker:
    return Ticker(name, 0, mark, INDEX, mark * 0.97, mark * 1.03)


def _obs(
    positions: tuple[Position, ...] = (),
    open_orders: tuple[Order, ...] = (),
    *,
    index: float = INDEX,
) -> Observation:
    return Observation(
        time_ms=0,
        currency="BTC",
        index_price=index,
        account=AccountSummary("BTC", 10, 10, 10, 0, 0),
        positions=positions,
        open_orders=open_orders,
        tickers={OPTION: _ticker(OPTION, MARK), ETH_OPTION: _ticker(ETH_OPTION, MARK)},
        instruments=INSTRUMENTS,
    )


def _sell(amount: float = 0.5, name: str = OPTION, price: float | None = MARK) -> OrderIntent:
    return OrderIntent(name, "sell", amount, price=price)


def _market(amount: float, name: str) -> OrderIntent:
    return OrderIntent(name, "sell", amount, order_type="market")


def _buy(amount: float = 0.5, name: str = OPTION, price: float | None = MARK) -> OrderIntent:
    return OrderIntent(name, "buy", amount, price=price)


def _resting(name: str, direction: str, amount: float) -> Order:
    return Order("BTC-1", name, direction, "limit", "open", amount, 0.0, MARK, 0.0, "", 0, 0)  # type: ignore[arg-type]


def _one(intent: OrderIntent, obs: Observation, limits: RiskLimits, **kw: object) -> Verdict:
    [verdict] = review(Decision((intent,)), obs, limits, **kw)  # type: ignore[arg-type]
    return verdict


def _assert(verdict: Verdict, status: str, cap: str, limit: object, observed: object) -> None:
    assert (verdict.status, verdict.cap, verdict.limit, verdict.observed) == (
        status,
        cap,
        limit,
        observed,
    ), verdict
    assert verdict.reason


# -- total notional ---------------------------------------------------------------------------
def test_total_notional_counts_every_instrument_held_and_resting() -> None:
    """Held 4 BTC of options + $80,000 perp resting + 3 BTC now = 9 BTC, $360,000 > $300,000."""
    limits = replace(BASE, max_total_notional_usd=300_000.0)
    obs = _obs(
        positions=(Position(OPTION, "option", -4.0, MARK, MARK),),
        open_orders=(_resting(PERP, "buy", 80_000),),
    )
    verdict = _one(_sell(3.0, FUTURE.replace("27DEC26", "27DEC26-1-C")), obs, limits)
    assert verdict.cap == "listed_only"  # an unlisted name fails closed before any exposure
    verdict = _one(_sell(3.0), obs, limits)
    _assert(verdict, "rejected", "max_total_notional_usd", 300_000.0, 360_000.0)
    assert _one(_sell(1.0), obs, limits).approved  # 7 BTC: $280,000


def test_an_order_that_lowers_the_total_passes_over_the_cap() -> None:
    """A book above a lowered total cap can always be brought back under it."""
    limits = replace(BASE, max_total_notional_usd=100_000.0)
    obs = _obs(positions=(Position(OPTION, "option", -4.0, MARK, MARK),))
    assert _one(_buy(1.0), obs, limits).approved
    assert _one(_sell(0.1), obs, limits).cap == "max_total_notional_usd"


def test_earlier_intents_count_towards_the_total() -> None:
    """Two sales of 2 BTC on two instruments: the second takes the total to $160,000."""
    limits = replace(BASE, max_total_notional_usd=150_000.0)
    first, second = review(Decision((_sell(2.0), _sell(2.0, ETH_OPTION))), _obs(), limits)
    assert first.approved
    _assert(second, "rejected", "max_total_notional_usd", 150_000.0, 160_000.0)


# -- order rate -------------------------------------------------------------------------------
def test_the_order_rate_counts_the_last_minute_and_this_review() -> None:
    """3 per minute: 2 sent within 60 s, so the first intent passes and the second is the 4th."""
    limits = replace(BASE, max_orders_per_minute=3)
    submits = [900.0, 950.0, 1000.0]  # 900 is 100 s old: outside the window
    first, second = review(
        Decision((_sell(0.1), _sell(0.1))), _obs(), limits, now=1000.0, recent_submits=submits
    )
    assert first.approved
    _assert(second, "rejected", "max_orders_per_minute", 3, 4)


def test_a_burst_is_throttled_after_the_cap() -> None:
    """Ten intents at once under a cap of 4: four pass, six are throttled."""
    limits = replace(BASE, max_orders_per_minute=4)
    verdicts = review(Decision(tuple(_sell(0.1) for _ in range(10))), _obs(), limits)
    assert [v.approved for v in verdicts] == [True] * 4 + [False] * 6
    assert {v.cap for v in verdicts[4:]} == {"max_orders_per_minute"}


# -- price collar -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("price", "approved"),
    [(0.012, True), (0.008, True), (0.0125, False), (0.0075, False), (0.05, False)],
)
def test_the_collar_bounds_a_limit_price_on_both_sides(price: float, approved: bool) -> None:
    """20 % of a 0.01 mark: 0.008-0.012 pass, anything further is rejected."""
    limits = replace(BASE, price_collar_pct=20.0)
    verdict = _one(_sell(price=price), _obs(), limits)
    assert verdict.approved is approved
    if not approved:
        assert (verdict.cap, verdict.limit) == ("price_collar", "20%")
        assert verdict.observed == f"{abs(price - MARK) / MARK * 100:.2f}%"


def test_the_collar_is_never_narrower_than_its_minimum_ticks() -> None:
    """A 0.0003 mark, 10 %: the band is 3 ticks (0.0003), so 0.0006 passes and 0.0007 not."""
    limits = replace(BASE, price_collar_pct=10.0, price_collar_min_ticks=3)
    obs = replace(_obs(), tickers={OPTION: _ticker(OPTION, 0.0003)})
    assert _one(_sell(price=0.0006), obs, limits).approved
    assert _one(_sell(price=0.0007), obs, limits).cap == "price_collar"


def test_a_limit_order_without_a_mark_is_refused_by_the_collar() -> None:
    """No ticker, no mark: the collar cannot judge, so it fails closed."""
    limits = replace(BASE, price_collar_pct=20.0)
    _assert(
        _one(_sell(price=0.01), replace(_obs(), tickers={}), limits),
        "rejected",
        "price_collar",
        "20%",
        "no mark",
    )


def test_a_market_order_is_not_collared() -> None:
    """The collar bounds a limit price; a market order has none."""
    limits = replace(BASE, price_collar_pct=20.0)
    assert _one(OrderIntent(OPTION, "sell", 0.1, order_type="market"), _obs(), limits).approved


# -- currencies, kinds, listing ----------------------------------------------------------------
def test_currencies_outside_the_allowed_list_are_rejected() -> None:
    """allowed_currencies BTC: an ETH option is refused, naming the coin."""
    limits = replace(BASE, allowed_currencies=("BTC",))
    _assert(
        _one(_sell(name=ETH_OPTION), _obs(), limits), "rejected", "allowed_currencies", "BTC", "ETH"
    )
    assert _one(_sell(), _obs(), limits).approved


@pytest.mark.parametrize(
    ("name", "kind"), [(OPTION, "option"), (FUTURE, "future"), (PERP, "perpetual")]
)
def test_kinds_outside_the_allowed_list_are_rejected(name: str, kind: str) -> None:
    """A perpetual is its own kind; each kind left out of allowed_kinds is refused."""
    others = tuple(k for k in ("option", "future", "perpetual") if k != kind)
    limits = replace(BASE, allowed_kinds=others)
    verdict = _one(_market(1000 if kind != "option" else 0.5, name), _obs(), limits)
    _assert(verdict, "rejected", "allowed_kinds", ", ".join(others), kind)
    assert _one(_market(1000 if kind != "option" else 0.5, name), _obs(), BASE).approved


def test_an_unlisted_instrument_is_refused_unless_listing_is_waived() -> None:
    """An instrument the exchange does not list cannot be judged: fail closed by default."""
    name = "BTC-1JAN27-1-C"
    _assert(_one(_sell(name=name), _obs(), BASE), "rejected", "listed_only", "listed", name)
    assert _one(_sell(name=name), _obs(), replace(BASE, listed_only=False)).approved


# -- numbers ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("intent", "cap"),
    [
        (_sell(math.nan), "amount"),
        (_sell(math.inf), "amount"),
        (_sell(-math.inf), "amount"),
        (_sell(0.0), "amount"),
        (_sell(price=math.nan), "price"),
        (_sell(price=math.inf), "price"),
        (_sell(price=-0.01), "price"),
        (OrderIntent(OPTION, "sell", 0.1, order_type="market", price=math.inf), "price"),
        (OrderIntent(OPTION, "short", 0.1, price=MARK), "direction"),  # type: ignore[arg-type]
        (OrderIntent(OPTION, "sell", 0.1, order_type="stop", price=MARK), "order_type"),  # type: ignore[arg-type]
    ],
)
def test_non_finite_and_unknown_values_are_rejected(intent: OrderIntent, cap: str) -> None:
    """NaN, infinities, zero and negatives, unknown directions and types never pass."""
    verdict = _one(intent, _obs(), BASE)
    assert (verdict.status, verdict.cap) == ("rejected", cap)


@pytest.mark.parametrize("index", [math.nan, math.inf, 0.0, -1.0])
def test_an_insane_index_rejects_everything(index: float) -> None:
    """Every amount and notional depends on the index: a broken one stops the review."""
    verdicts = review(Decision((_sell(), _buy())), _obs(index=index), BASE, approved=(_sell(),))
    assert len(verdicts) == 3
    assert {v.cap for v in verdicts} == {"index_price"}


# -- REDUCING ---------------------------------------------------------------------------------
def test_reducing_allows_only_orders_that_shrink_a_position() -> None:
    """Short 1.0: a buy of 0.4 passes (sent reduce-only); a sale, or a buy to flip, does not."""
    obs = _obs(positions=(Position(OPTION, "option", -1.0, MARK, MARK),))
    ok = _one(_buy(0.4), obs, BASE, reducing=True)
    assert ok.approved
    assert ok.intent.reduce_only
    _assert(
        _one(_sell(0.1), obs, BASE, reducing=True),
        "rejected",
        "reduce_only",
        "REDUCING",
        "position -1 -> -1.1",
    )
    assert _one(_buy(1.5), obs, BASE, reducing=True).cap == "reduce_only"
    assert _one(_buy(0.4, ETH_OPTION), obs, BASE, reducing=True).cap == "reduce_only"  # flat


def test_reducing_counts_resting_and_earlier_closing_orders() -> None:
    """Short 1.0 with 0.5 resting to buy: a buy of 0.4 passes, then another 0.4 would flip."""
    obs = _obs(
        positions=(Position(OPTION, "option", -1.0, MARK, MARK),),
        open_orders=(_resting(OPTION, "buy", 0.5),),
    )
    first, second = review(Decision((_buy(0.4), _buy(0.4))), obs, BASE, reducing=True)
    assert first.approved
    assert second.cap == "reduce_only"


def test_reducing_never_asks_for_approval() -> None:
    """Shrinking a position must not wait for a person, whatever its size."""
    limits = replace(BASE, approval_notional_usd=1.0)
    obs = _obs(positions=(Position(OPTION, "option", -1.0, MARK, MARK),))
    assert _one(_buy(0.5), obs, limits, reducing=True).approved
    assert _one(_buy(0.5), obs, limits).needs_approval


# -- approvals --------------------------------------------------------------------------------
def test_notional_above_the_approval_threshold_needs_a_person() -> None:
    """$40,000 above a $20,000 threshold: needs_approval, naming the threshold and notional."""
    limits = replace(BASE, approval_notional_usd=20_000.0)
    _assert(
        _one(_sell(1.0), _obs(), limits),
        "needs_approval",
        "approval_notional_usd",
        20_000.0,
        40_000.0,
    )
    assert _one(_sell(0.5), _obs(), limits).approved


def test_a_hard_cap_rejects_before_approval_is_asked() -> None:
    """A person is never asked to approve what a cap forbids."""
    limits = replace(BASE, approval_notional_usd=20_000.0, max_order_amount=0.8)
    assert _one(_sell(1.0), _obs(), limits).cap == "max_order_amount"


def test_a_new_underlying_needs_a_person() -> None:
    """Holding only BTC: the first ETH order waits; another BTC one does not."""
    limits = replace(BASE, approve_new_underlying=True)
    obs = _obs(positions=(Position(OPTION, "option", -1.0, MARK, MARK),))
    _assert(
        _one(_sell(name=ETH_OPTION), obs, limits),
        "needs_approval",
        "approve_new_underlying",
        "BTC",
        "ETH",
    )
    assert _one(_sell(), obs, limits).approved


def test_a_new_kind_needs_a_person() -> None:
    """Holding only options: the first perpetual order waits; options do not."""
    limits = replace(BASE, approve_new_kind=True)
    obs = _obs(positions=(Position(OPTION, "option", -1.0, MARK, MARK),))
    _assert(
        _one(_market(1000, PERP), obs, limits),
        "needs_approval",
        "approve_new_kind",
        "option",
        "perpetual",
    )
    assert _one(_sell(), obs, limits).approved


def test_needs_approval_does_not_count_towards_later_intents() -> None:
    """An intent waiting for a person adds no exposure and no submit in this review."""
    limits = replace(BASE, approval_notional_usd=20_000.0, max_orders_per_minute=1)
    waiting, small = review(Decision((_sell(1.0), _sell(0.1))), _obs(), limits)
    assert waiting.needs_approval
    assert small.approved


def test_a_person_approved_intent_is_reviewed_again_but_not_asked_again() -> None:
    """Approved intents come first, face every hard cap as things stand, and count first."""
    limits = replace(BASE, approval_notional_usd=20_000.0, max_orders_per_minute=1)
    approved_one, agents = review(Decision((_sell(0.1),)), _obs(), limits, approved=(_sell(1.0),))
    assert approved_one.approved
    assert agents.cap == "max_orders_per_minute"
    [stale] = review(
        Decision(), _obs(), replace(limits, price_collar_pct=5.0), approved=(_sell(price=0.02),)
    )
    assert stale.cap == "price_collar"


def test_every_v2_cap_is_off_in_bare_limits() -> None:
    """Bare limits keep v1's meaning: no total, rate, collar, currency, kind or approval cap."""
    obs = replace(_obs(positions=(Position(OPTION, "option", -10.0, MARK, MARK),)), tickers={})
    intents = tuple(_sell(5.0, OPTION, 1.0) for _ in range(50))
    verdicts = review(Decision(intents[:2]), obs, BASE, now=0.0, recent_submits=[0.0] * 1000)
    assert [v.approved for v in verdicts] == [True, True]
