"""Instrument naming, the expiry grid, strikes, rounding rules and listing over time."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest

from bastion.simulators.paper.instruments import (
    PERPETUAL_EXPIRY_MS,
    Catalog,
    expiry_schedule,
    option_name,
    strike_grid,
)
from bastion.simulators.paper.specs import CURRENCIES


def ms(year: int, month: int, day: int, hour: int = 8) -> int:
    return int(datetime(year, month, day, hour, tzinfo=UTC).timestamp() * 1000)


@pytest.mark.parametrize(
    ("currency", "expiry", "strike", "kind", "name"),
    [
        ("BTC", ms(2026, 12, 27), 90_000, "call", "BTC-27DEC26-90000-C"),
        ("BTC", ms(2026, 1, 2), 85_000, "put", "BTC-2JAN26-85000-P"),
        ("ETH", ms(2030, 3, 9), 3_050, "call", "ETH-9MAR30-3050-C"),
        ("XRP", ms(2023, 6, 30), 0.625, "call", "XRP-30JUN23-0d625-C"),
    ],
)
def test_option_names(currency: str, expiry: int, strike: float, kind: str, name: str) -> None:
    """Deribit names: day without leading zero, upper-case month, 2-digit year, 'd' decimals."""
    assert option_name(currency, expiry, strike, kind) == name


def test_expiry_schedule_from_new_year() -> None:
    """From Thu 2026-01-01 00:00: three dailies, four Fridays, three month-end Fridays, at 08:00."""
    schedule = expiry_schedule(ms(2026, 1, 1, 0))
    assert schedule == {
        ms(2026, 1, 1): "day",
        ms(2026, 1, 2): "week",
        ms(2026, 1, 3): "day",
        ms(2026, 1, 9): "week",
        ms(2026, 1, 16): "week",
        ms(2026, 1, 23): "week",
        ms(2026, 1, 30): "month",
        ms(2026, 2, 27): "month",
        ms(2026, 3, 27): "month",
    }


def test_expiry_at_the_instant_is_not_listed() -> None:
    """At 08:00 sharp the expiring daily is gone and the next three days are listed."""
    schedule = expiry_schedule(ms(2026, 1, 1))
    assert ms(2026, 1, 1) not in schedule
    assert ms(2026, 1, 4) in schedule


def test_month_end_already_passed_rolls_to_the_next_months() -> None:
    """After the month's last Friday, the next three months' last Fridays are listed."""
    schedule = expiry_schedule(ms(2026, 1, 31, 0))
    monthly = [when for when, period in schedule.items() if period == "month"]
    assert monthly == [ms(2026, 2, 27), ms(2026, 3, 27), ms(2026, 4, 24)]


def test_strike_grid_spans_about_thirty_percent() -> None:
    """BTC strikes step 1000 from 70 % to 130 % of the index."""
    strikes = strike_grid(90_000.0, 1_000.0)
    assert strikes[0] == 63_000
    assert strikes[-1] == 117_000
    assert all(b - a == 1_000 for a, b in itertools.pairwise(strikes))


def test_catalog_lists_perpetuals_and_options() -> None:
    """A new catalog has both perpetuals with Deribit's fields and options for every expiry."""
    catalog = Catalog(CURRENCIES, created_ms=ms(2026, 1, 1, 0))
    added = catalog.list_due(ms(2026, 1, 1, 0), lambda code: CURRENCIES[code].spot)
    perp = catalog.get("BTC-PERPETUAL")
    assert perp is not None
    data = perp.to_deribit()
    assert data["expiration_timestamp"] == PERPETUAL_EXPIRY_MS
    assert data["settlement_period"] == "perpetual"
    assert (data["contract_size"], data["min_trade_amount"], data["tick_size"]) == (10, 10, 0.5)
    option = catalog.get("BTC-27MAR26-90000-C")
    assert option is not None
    fields = option.to_deribit()
    assert fields["strike"] == 90_000
    assert fields["option_type"] == "call"
    assert fields["settlement_period"] == "month"
    assert (fields["tick_size"], fields["min_trade_amount"]) == (0.0001, 0.1)
    assert fields["counter_currency"] == "USD"
    assert fields["settlement_currency"] == "BTC"
    eth = catalog.get("ETH-2JAN26-3000-P")
    assert eth is not None
    assert eth.min_trade_amount == 1
    assert len({i.instrument_id for i in catalog.active()}) == len(catalog.active())
    assert len(added) == len(catalog.active()) - 2


def test_catalog_expires_and_lists_as_time_moves() -> None:
    """Past 08:00 the daily expiry moves to the expired list and a new daily appears."""
    catalog = Catalog(CURRENCIES, created_ms=ms(2026, 1, 1, 0))
    catalog.list_due(ms(2026, 1, 1, 0), lambda code: CURRENCIES[code].spot)
    expired = catalog.expire_due(ms(2026, 1, 1, 9))
    assert expired
    assert {i.expiration_ms for i in expired} == {ms(2026, 1, 1)}
    assert catalog.get(expired[0].name) is None
    added = catalog.list_due(ms(2026, 1, 1, 9), lambda code: CURRENCIES[code].spot * 1.1)
    assert {i.expiration_ms for i in added} == {ms(2026, 1, 4)}
    assert max(i.strike or 0 for i in added if i.currency == "BTC") == 128_000


def test_price_and_amount_rounding() -> None:
    """Ticks and steps: floor/ceil to the tick, on-tick and on-step checks tolerate float noise."""
    catalog = Catalog(CURRENCIES, created_ms=0)
    perp = catalog.get("BTC-PERPETUAL")
    assert perp is not None
    assert perp.floor_price(90_000.74) == 90_000.5
    assert perp.ceil_price(90_000.01) == 90_000.5
    assert perp.on_tick(90_000.5)
    assert not perp.on_tick(90_000.3)
    assert perp.on_amount_step(30)
    assert not perp.on_amount_step(25)
