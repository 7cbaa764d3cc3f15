"""The simulator without HTTP: matching, validation codes, margin, cancels and settlement."""

from __future__ import annotations

from typing import Any

import pytest
from paper_support import CALL, DAILY_CALL, PERP

from bastion.clock import SimClock
from bastion.errors import UsageError
from bastion.simulators.paper import OrderRequest, PaperVenue, RpcError


def order(name: str, direction: str = "buy", amount: float = 10, **fields: Any) -> OrderRequest:
    return OrderRequest(instrument_name=name, direction=direction, amount=amount, **fields)  # type: ignore[arg-type]


def code_of(venue: PaperVenue, request: OrderRequest, client: str = "alice") -> int:
    with pytest.raises(RpcError) as caught:
        venue.place(client, request)
    return caught.value.code


def test_resting_buy_fills_when_the_ask_comes_down(venue: PaperVenue, clock: SimClock) -> None:
    """A limit buy below the ask rests, then fills as maker at its price once the ask reaches it."""
    ask = venue.ticker(PERP)["best_ask_price"]
    price = ask - 5.0
    placed = venue.place("alice", order(PERP, price=price))
    assert placed["order"]["order_state"] == "open"
    assert placed["trades"] == []
    for _ in range(600):
        clock.advance(1)
        state = venue.order_state("alice", placed["order"]["order_id"])
        if state["order_state"] != "open":
            break
        assert venue.ticker(PERP)["best_ask_price"] > price
    assert state["order_state"] == "filled"
    assert venue.ticker(PERP)["best_ask_price"] <= price
    trade = venue.user_trades("alice", currency="BTC")["trades"][0]
    assert (trade["price"], trade["liquidity"], trade["fee"]) == (price, "M", 0.0)
    assert venue.positions("alice")[0]["size"] == 10


def test_resting_sell_fills_when_the_bid_comes_up(venue: PaperVenue, clock: SimClock) -> None:
    """A limit sell above the bid fills once the best bid rises to its price."""
    price = venue.ticker(PERP)["best_bid_price"] + 5.0
    placed = venue.place("alice", order(PERP, "sell", price=price))
    for _ in range(600):
        clock.advance(1)
        if venue.order_state("alice", placed["order"]["order_id"])["order_state"] == "filled":
            break
    assert venue.ticker(PERP)["best_bid_price"] >= price
    assert venue.positions("alice")[0]["direction"] == "sell"
    assert venue.positions("alice")[0]["size"] == -10


def test_marketable_limit_fills_at_the_touch_as_taker(venue: PaperVenue) -> None:
    """A buy limit above the ask fills at once, at the ask, as taker with the taker fee."""
    ticker = venue.ticker(CALL)
    result = venue.place("alice", order(CALL, amount=0.5, price=ticker["best_ask_price"] + 0.001))
    assert result["order"]["order_state"] == "filled"
    (trade,) = result["trades"]
    assert trade["price"] == ticker["best_ask_price"]
    assert trade["liquidity"] == "T"
    assert trade["fee"] == pytest.approx(min(0.0003 * 0.5, 0.125 * trade["price"] * 0.5))
    assert result["order"]["average_price"] == ticker["best_ask_price"]


def test_market_orders_fill_at_the_touch(venue: PaperVenue) -> None:
    """Market buys take the ask and market sells hit the bid; the order shows 'market_price'."""
    ticker = venue.ticker(PERP)
    bought = venue.place("alice", order(PERP, amount=100, order_type="market"))
    sold = venue.place("alice", order(PERP, "sell", amount=100, order_type="market"))
    assert bought["trades"][0]["price"] == ticker["best_ask_price"]
    assert sold["trades"][0]["price"] == ticker["best_bid_price"]
    assert bought["order"]["price"] == "market_price"
    assert venue.positions("alice") == []


def test_order_ids_are_sequential_with_the_currency(venue: PaperVenue) -> None:
    """Ids are one counter across currencies, prefixed with the instrument's currency."""
    first = venue.place("alice", order(PERP, price=85_000))["order"]["order_id"]
    second = venue.place("alice", order("ETH-PERPETUAL", amount=1, price=2_800))["order"][
        "order_id"
    ]
    assert (first, second) == ("BTC-1", "ETH-2")


def test_post_only(venue: PaperVenue) -> None:
    """A taking post-only order is rejected (11054) or, without reject_post_only, moved back."""
    ask = venue.ticker(PERP)["best_ask_price"]
    assert code_of(venue, order(PERP, price=ask, post_only=True, reject_post_only=True)) == 11054
    moved = venue.place("alice", order(PERP, price=ask, post_only=True))["order"]
    assert moved["order_state"] == "open"
    assert moved["price"] == ask - 0.5


def test_reduce_only(venue: PaperVenue) -> None:
    """reduce_only is cut to the position and refused (11029) when there is nothing to reduce."""
    assert (
        code_of(venue, order(PERP, "sell", amount=50, order_type="market", reduce_only=True))
        == 11029
    )
    venue.place("alice", order(PERP, amount=30, order_type="market"))
    cut = venue.place(
        "alice", order(PERP, "sell", amount=50, order_type="market", reduce_only=True)
    )
    assert cut["order"]["amount"] == 30
    assert venue.positions("alice") == []


def test_immediate_or_cancel_that_cannot_fill_is_cancelled(venue: PaperVenue) -> None:
    """An IOC limit away from the touch is cancelled at once and never rests."""
    result = venue.place("alice", order(PERP, price=85_000, time_in_force="immediate_or_cancel"))
    assert result["order"]["order_state"] == "cancelled"
    assert venue.open_orders("alice") == []


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"amount": -10}, 10021),
        ({"amount": 0}, 10021),
        ({"amount": 15}, 10021),
        ({"amount": 5}, 10002),
        ({"price": 90_000.3}, 10043),
        ({"price": -1.0}, 11029),
        ({"price": 50_000.0}, 10005),
        ({"price": 150_000.0}, 10007),
        ({"price": None}, -32602),
        ({"label": "x" * 65}, 11029),
        ({"order_type": "stop_limit"}, 11029),
        ({"order_type": "iceberg"}, -32602),
        ({"time_in_force": "forever"}, -32602),
        ({"instrument_name": "BTC-1JAN20-1000-C"}, 10020),
    ],
)
def test_order_validation_codes(venue: PaperVenue, fields: dict[str, Any], code: int) -> None:
    """Each broken order rule gives Deribit's code for it."""
    request = {"instrument_name": PERP, "direction": "buy", "amount": 10, "price": 90_000.0}
    assert code_of(venue, OrderRequest(**(request | fields))) == code


def test_option_amount_step(venue: PaperVenue) -> None:
    """BTC options trade in steps of 0.1: 0.05 is too low (10002) and 0.15 off the step (10021)."""
    price = venue.ticker(CALL)["best_bid_price"]
    assert code_of(venue, order(CALL, amount=0.05, price=price)) == 10002
    assert code_of(venue, order(CALL, amount=0.15, price=price)) == 10021


def test_insufficient_margin(venue: PaperVenue) -> None:
    """Selling 200 calls needs ~32 BTC of margin against 10: 10009, and nothing is recorded."""
    price = venue.ticker(CALL)["best_bid_price"]
    assert code_of(venue, order(CALL, "sell", amount=200, price=price)) == 10009
    assert venue.open_orders("alice") == []
    summary = venue.account_summary("alice", "BTC")
    assert summary["balance"] == 10
    assert summary["available_funds"] == 10


def test_risk_reducing_order_is_never_refused_for_funds(clock: SimClock) -> None:
    """With margin used up, an order that closes the short still goes through."""
    venue = PaperVenue(clock=clock, seed=1, initial_balances={"BTC": 1.0})
    price = venue.ticker(CALL)["best_bid_price"]
    venue.place("alice", order(CALL, "sell", amount=5, order_type="market"))
    assert code_of(venue, order(CALL, "sell", amount=5, price=price)) == 10009
    closed = venue.place("alice", order(CALL, amount=5, order_type="market"))
    assert closed["order"]["order_state"] == "filled"


def test_open_orders_reserve_margin(venue: PaperVenue) -> None:
    """A resting option buy reserves its premium; cancelling it frees the funds again."""
    price = venue.ticker(CALL)["best_bid_price"]
    placed = venue.place("alice", order(CALL, amount=1, price=price))["order"]
    summary = venue.account_summary("alice", "BTC")
    assert summary["initial_margin"] == pytest.approx(price)
    assert summary["available_funds"] == pytest.approx(10 - price)
    venue.cancel("alice", placed["order_id"])
    assert venue.account_summary("alice", "BTC")["initial_margin"] == 0


def test_cancel_errors(venue: PaperVenue) -> None:
    """Unknown or foreign ids are 10004; an order no longer open is 11044."""
    with pytest.raises(RpcError) as unknown:
        venue.cancel("alice", "BTC-999")
    assert unknown.value.code == 10004
    placed = venue.place("alice", order(PERP, price=85_000))["order"]
    with pytest.raises(RpcError) as foreign:
        venue.cancel("bob", placed["order_id"])
    assert foreign.value.code == 10004
    assert venue.cancel("alice", placed["order_id"])["order_state"] == "cancelled"
    with pytest.raises(RpcError) as again:
        venue.cancel("alice", placed["order_id"])
    assert again.value.code == 11044


def test_cancel_all_variants(venue: PaperVenue) -> None:
    """cancel_all counts what it cancels, by instrument, by currency, or everything."""
    venue.place("alice", order(PERP, price=85_000))
    venue.place("alice", order(PERP, price=85_500))
    venue.place("alice", order("ETH-PERPETUAL", amount=1, price=2_800))
    assert venue.cancel_all("alice", instrument_name=PERP) == 2
    assert venue.cancel_all("alice", currency="BTC") == 0
    assert venue.cancel_all("alice") == 1


def test_expired_option_settles_at_the_index(venue: PaperVenue, clock: SimClock) -> None:
    """At 08:00 the daily call settles at intrinsic value on the index, into the balance."""
    bought = venue.place("alice", order(DAILY_CALL, amount=1, order_type="market"))
    paid = bought["trades"][0]["price"] + bought["trades"][0]["fee"]
    resting = venue.place("alice", order(DAILY_CALL, amount=1, price=0.001))["order"]
    clock.advance(9 * 3600)
    assert venue.positions("alice") == []
    settlement = venue.settlements[[s.instrument_name for s in venue.settlements].index(DAILY_CALL)]
    index_at_expiry = venue.market.index_at("BTC", 1_767_254_400)
    assert settlement.index_price == index_at_expiry
    assert settlement.payoff == pytest.approx(
        (index_at_expiry - 85_000) / index_at_expiry, abs=1e-8
    )
    summary = venue.account_summary("alice", "BTC")
    assert summary["balance"] == pytest.approx(10 - paid + settlement.payoff, abs=1e-9)
    assert summary["options_session_rpl"] == pytest.approx(
        settlement.payoff - paid + bought["trades"][0]["fee"], abs=1e-9
    )
    assert venue.order_state("alice", resting["order_id"])["cancel_reason"] == "settlement"
    names = {i["instrument_name"] for i in venue.instruments()}
    assert DAILY_CALL not in names
    assert "BTC-4JAN26-90000-C" in names
    assert DAILY_CALL in {i["instrument_name"] for i in venue.instruments(expired=True)}


def test_positions_and_summary_shapes(venue: PaperVenue) -> None:
    """Positions carry Deribit's signed size and direction; the summary carries its fields."""
    venue.place("alice", order(CALL, "sell", amount=1, order_type="market"))
    (position,) = venue.positions("alice", currency="BTC", kind="option")
    assert (position["size"], position["direction"], position["kind"]) == (-1, "sell", "option")
    assert position["initial_margin"] > 0
    assert position["maintenance_margin"] == pytest.approx(0.75 * position["initial_margin"])
    summary = venue.account_summary("alice", "BTC", extended=True)
    for field in (
        "equity",
        "available_funds",
        "session_upl",
        "delta_total",
        "options_vega",
        "username",
    ):
        assert field in summary
    assert venue.positions("alice", kind="future") == []


def test_user_trades_paging(venue: PaperVenue) -> None:
    """Trades come newest first by default, oldest first with sorting=asc, with has_more."""
    for _ in range(3):
        venue.place("alice", order(PERP, amount=10, order_type="market"))
    page = venue.user_trades("alice", currency="BTC", count=2)
    assert page["has_more"] is True
    assert [t["trade_id"] for t in page["trades"]] == ["BTC-T3", "BTC-T2"]
    oldest = venue.user_trades("alice", currency="BTC", count=5, newest_first=False)
    assert [t["trade_id"] for t in oldest["trades"]] == ["BTC-T1", "BTC-T2", "BTC-T3"]
    assert oldest["has_more"] is False


def test_ticker_shows_paper_activity(venue: PaperVenue) -> None:
    """After a trade the ticker's last price, volume and open interest reflect it."""
    venue.place("alice", order(CALL, amount=2, order_type="market"))
    ticker = venue.ticker(CALL)
    assert ticker["last_price"] == ticker["best_ask_price"]
    assert ticker["stats"]["volume"] == 2
    assert ticker["open_interest"] == 2


def test_order_book_depth_is_clamped(venue: PaperVenue) -> None:
    """depth is clamped to 1..10 levels; levels step one tick away from the touch."""
    book = venue.order_book(PERP, depth=3)
    assert len(book["bids"]) == 3
    assert book["asks"][1][0] - book["asks"][0][0] == 0.5
    assert len(venue.order_book(PERP, depth=10_000)["asks"]) == 10
    assert len(venue.order_book(PERP, depth=0)["asks"]) == 1


def test_unknown_initial_balance_currency_is_a_usage_error(clock: SimClock) -> None:
    """Funding a currency the venue does not list is a developer mistake."""
    with pytest.raises(UsageError):
        PaperVenue(clock=clock, initial_balances={"DOGE": 1.0})
