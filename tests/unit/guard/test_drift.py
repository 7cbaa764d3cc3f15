"""Position drift: our fills explain every change, or the difference is reported."""

from __future__ import annotations

from bastion.guard.drift import PositionBook
from bastion.market import Instrument, Position

OPTION = "BTC-27DEC26-120000-C"
PERP = "BTC-PERPETUAL"
INSTRUMENTS = {
    OPTION: Instrument(OPTION, "option", "BTC", 2_000, 0.0001, 0.1, 1.0, strike=120_000.0),
    PERP: Instrument(
        PERP,
        "future",
        "BTC",
        32503708800000,
        0.5,
        10,
        10,
        settlement_period="perpetual",
        amount_unit="usd",
    ),
}


def _pos(name: str, size: float) -> Position:
    return Position(name, "future" if name == PERP else "option", size, 0.0, 0.0)


def _check(book: PositionBook, *positions: Position, now_ms: int = 1_000) -> list[str]:
    found = book.check(positions, INSTRUMENTS, now_ms=now_ms, index_price=100_000.0)
    return [d.instrument_name for d in found]


def test_fills_of_our_own_orders_explain_the_new_positions() -> None:
    """Seeded from the account, moved by our fills: no drift."""
    book = PositionBook(dust_coin=1e-4, observations=1)
    book.seed((_pos(OPTION, -0.1),))
    book.apply_fill(OPTION, "sell", 0.1)
    book.apply_fill(PERP, "buy", 20)
    assert _check(book, _pos(OPTION, -0.2), _pos(PERP, 20)) == []


def test_a_change_nobody_explains_is_drift_with_the_numbers() -> None:
    """A position we never traded is drift: expected 0, reported, difference in coin."""
    book = PositionBook(dust_coin=1e-4, observations=1)
    book.seed(())
    [drift] = book.check((_pos(PERP, 50),), INSTRUMENTS, now_ms=1_000, index_price=100_000.0)
    assert (drift.instrument_name, drift.expected, drift.reported) == (PERP, 0.0, 50)
    assert drift.difference_coin == 0.0005  # $50 at a 100,000 index


def test_drift_must_persist_before_it_counts() -> None:
    """One disagreeing observation (an order filling between two requests) is not drift."""
    book = PositionBook(dust_coin=1e-4, observations=2)
    book.seed(())
    assert _check(book, _pos(OPTION, -0.1)) == []
    book.apply_fill(OPTION, "sell", 0.1)  # the fill showed up in the orders a moment later
    assert _check(book, _pos(OPTION, -0.1)) == []
    assert _check(book, _pos(OPTION, -0.3)) == []
    assert _check(book, _pos(OPTION, -0.3)) == [OPTION]


def test_dust_is_ignored() -> None:
    """A rounding-sized difference below the dust is not drift."""
    book = PositionBook(dust_coin=1e-4, observations=1)
    book.seed((_pos(OPTION, -0.1),))
    assert _check(book, _pos(OPTION, -0.10005)) == []


def test_expired_instruments_leave_the_expected_book() -> None:
    """An option settled at expiry disappears from both sides: no drift."""
    book = PositionBook(dust_coin=1e-4, observations=1)
    book.seed((_pos(OPTION, -0.1),))
    assert _check(book, now_ms=1_000) == [OPTION]
    assert _check(book, now_ms=2_000) == []


def test_reset_accepts_the_book_as_it_stands() -> None:
    """After a resume the next observation seeds the book again."""
    book = PositionBook(dust_coin=1e-4, observations=1)
    book.seed(())
    book.reset()
    assert not book.seeded
    book.seed((_pos(PERP, 50),))
    assert _check(book, _pos(PERP, 50)) == []


def test_the_largest_gap_is_kept_at_every_check_before_drift_persists_or_past_dust() -> None:
    """gap_coin (the drift gauge) shows a gap at once, under the dust or before the streak."""
    book = PositionBook(dust_coin=1e-3, observations=2)
    assert book.gap_coin is None
    book.seed(())
    assert _check(book, _pos(PERP, 50)) == []  # $50 is 0.0005 BTC: under the dust
    assert book.gap_coin == 0.0005
    assert _check(book, _pos(OPTION, 0.1)) == []  # over the dust, but not yet twice
    assert book.gap_coin == 0.1
    assert _check(book, _pos(OPTION, 0.1)) == [OPTION]
    book.reset()
    assert book.gap_coin is None
