"""Day marks: where each account's UTC day started and its peak, so a restart keeps them.

The daily-loss and drawdown halts (:class:`~bastion.guard.limits.DailyLossTrigger`) measure
NAV against the first observation of the UTC day and against the day's highest. Those two
figures are written here whenever they change (the first look of a day, a new peak), one row
per account, so a run restarted mid-day carries on from the day's real start and peak instead
of counting the day afresh. A row for an earlier day is simply replaced on the next day.

The table is declared here, on the shared :data:`~bastion.store.schema.metadata`, so the test
that compares ``schema.py``'s metadata with the migrations covers it too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from bastion.store.engine import reading, writing
from bastion.store.schema import metadata
from bastion.store.types import UtcDateTime, aware_utc

__all__ = ["DayMark", "DayMarkStore", "day_marks"]

day_marks = sa.Table(
    "day_marks",
    metadata,
    sa.Column("account", sa.String(200), primary_key=True),
    sa.Column("day", sa.Date(), nullable=False),
    sa.Column("currency", sa.String(16), nullable=False),
    sa.Column("start_nav", sa.Float(), nullable=False),
    sa.Column("peak_nav", sa.Float(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
)


@dataclass(frozen=True, slots=True)
class DayMark:
    """One account's UTC day: the NAV it started at and the highest since, in ``currency``."""

    day: date
    currency: str
    start_nav: float
    peak_nav: float


class DayMarkStore:
    """Reads and writes the ``day_marks`` rows: one per account, the latest day only."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert

    def get(self, account: str) -> DayMark | None:
        """The account's latest day mark, or None when it has none."""
        with reading(self._engine) as conn:
            row = conn.execute(sa.select(day_marks).where(day_marks.c.account == account)).first()
        if row is None:
            return None
        m = row._mapping
        return DayMark(m["day"], m["currency"], float(m["start_nav"]), float(m["peak_nav"]))

    def put(self, account: str, mark: DayMark, *, at: datetime) -> None:
        """Make ``mark`` the account's day mark (replacing any earlier day's)."""
        values: Mapping[str, Any] = {
            "account": account,
            "day": mark.day,
            "currency": mark.currency,
            "start_nav": mark.start_nav,
            "peak_nav": mark.peak_nav,
            "updated_at": aware_utc(at),
        }
        statement = self._insert(day_marks).values(values)
        statement = statement.on_conflict_do_update(
            index_elements=[day_marks.c.account],
            set_={name: statement.excluded[name] for name in values if name != "account"},
        )
        with writing(self._engine) as conn:
            conn.execute(statement)
