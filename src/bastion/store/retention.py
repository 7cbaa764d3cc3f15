"""Budget ledger retention: delete ledger rows older than a number of days, in batches.

The ledger (``budget_ledger``) keeps one row per priced call for audit; nothing Bastion decides
reads it, because :meth:`~bastion.store.budget.BudgetStore.settle` keeps running totals
(``budget_usage`` per scope and period, ``budget_model_usage`` per agent, UTC day and model) in
the same transaction. Pruning therefore touches the ledger only: the totals keep their figures,
so a day's spend and a month's budget read the same after a prune as before. Retention is about
how long the audit trail is kept, never a refund.

A big first prune (a year of rows, a million of them) must not hold the database's write lock
for its whole length: SQLite has one writer, and a budget settlement waiting behind the prune
would time out. Each batch is its own short transaction: find the next ``batch_size`` ids older
than the cut-off above the last batch (walking the primary key upwards, so rows already deleted
are not scanned again) and delete that id range's expired rows; a short pause between batches
lets other writers take the lock. ``should_stop`` is asked between batches, so a run that is
shutting down does not wait for a prune to finish.

Rows are chosen by their own ``at``; the cut-off is ``now - days``, and a row exactly at the
cut-off is kept.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bastion.errors import ConfigError
from bastion.store.budget import budget_ledger
from bastion.store.engine import reading, writing
from bastion.store.types import aware_utc

__all__ = ["DEFAULT_BATCH_SIZE", "DEFAULT_PAUSE_SECONDS", "LedgerRetention"]

DEFAULT_BATCH_SIZE = 5_000
"""Rows per delete transaction: tens of milliseconds of write lock on SQLite."""

DEFAULT_PAUSE_SECONDS = 0.05
"""Between two batches; long enough for a writer in SQLite's busy handler to get the lock."""

_ledger = budget_ledger.c

_CUTOFF = sa.bindparam("b_cutoff", type_=_ledger.at.type)
_AFTER = sa.bindparam("b_after", type_=_ledger.id.type)
_next_ids = (
    sa.select(_ledger.id)
    .where(_ledger.id > _AFTER, _ledger.at < _CUTOFF)
    .order_by(_ledger.id)
    .limit(sa.bindparam("b_limit"))
    .subquery()
)
_NEXT_BATCH = sa.select(sa.func.count(), sa.func.max(_next_ids.c.id)).select_from(_next_ids)
"""How many ids the next batch holds (up to ``b_limit``) and the highest of them."""
_DELETE_BATCH = sa.delete(budget_ledger).where(
    _ledger.id > _AFTER,
    _ledger.id <= sa.bindparam("b_upto", type_=_ledger.id.type),
    _ledger.at < _CUTOFF,
)
_COUNT = sa.select(sa.func.count()).select_from(budget_ledger).where(_ledger.at < _CUTOFF)


class LedgerRetention:
    """Keeps ``days`` days of budget ledger on ``engine``; older rows go, the totals stay."""

    def __init__(
        self,
        engine: Engine,
        *,
        days: int,
        batch_size: int = DEFAULT_BATCH_SIZE,
        pause_seconds: float = DEFAULT_PAUSE_SECONDS,
    ) -> None:
        if days < 1:
            raise ConfigError(
                f"budget_ledger_retention_days (BASTION_BUDGET_LEDGER_RETENTION_DAYS): {days} "
                "is below 1. Fix: set at least 1, or leave it empty to keep the ledger forever."
            )
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        self._engine = engine
        self.days = days
        self._batch_size = batch_size
        self._pause = max(0.0, pause_seconds)

    def cutoff(self, now: datetime) -> datetime:
        """The oldest ``at`` kept at ``now``: rows strictly before it are past retention."""
        return aware_utc(now) - timedelta(days=self.days)

    def expired(self, now: datetime) -> int:
        """How many ledger rows :meth:`prune` would delete at ``now`` (a dry run)."""
        with reading(self._engine) as conn:
            return int(conn.scalar(_COUNT, {"b_cutoff": self.cutoff(now)}) or 0)

    def prune(self, now: datetime, *, should_stop: Callable[[], bool] | None = None) -> int:
        """Delete the ledger rows older than :meth:`cutoff` at ``now``; returns how many went.

        Stops early, between two batches, once ``should_stop()`` is true; what was deleted by
        then stays deleted and the next prune picks up the rest.
        """
        cutoff = self.cutoff(now)
        deleted = 0
        after = 0
        while True:
            params = {"b_cutoff": cutoff, "b_after": after, "b_limit": self._batch_size}
            with writing(self._engine) as conn:
                found, upto = conn.execute(_NEXT_BATCH, params).one()
                if found:
                    gone = conn.execute(_DELETE_BATCH, {**params, "b_upto": upto}).rowcount
                    deleted += max(0, int(gone))
            if found < self._batch_size or (should_stop is not None and should_stop()):
                return deleted
            after = int(upto)
            if self._pause:
                time.sleep(self._pause)
