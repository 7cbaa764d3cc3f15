"""Group commit for settlements: concurrent calls of one process share one store transaction.

Every LLM call ends with a settlement (its spend, its ledger row, the running totals). Written
one transaction each, a process with many calls in flight queues them behind one another on
the store's lock (SQLite) or on the WAL flush (PostgreSQL). Here a call's settlement joins a
batch instead: the batch is written at the end of the event loop's current turn, so every call
that finished in that turn shares it, and while a batch is being written in a worker thread
the next ones queue and the next batch takes all of them. A quiet process still writes each
call at once: there is no timer and no added latency.

Where the store allows it (SQLite, :attr:`~bastion.store.budget.BudgetStore.settles_inline`)
a batch is written on the event loop's own thread when that needs no waiting: the write is
some tens of microseconds of local file I/O, while the hand-off to a worker thread and back
costs more than the write itself. If this process's lock or the database's write lock is taken
(:class:`~bastion.store.budget.WouldWait`), nothing is written there and the batch goes to a
worker thread, which waits as every other write does: the event loop never waits on a lock.

:meth:`Settlements.settle` returns only once its batch is committed: a call's spend is in the
store, with the durability of the store's settings (see :mod:`bastion.store.settlement`),
before its commit returns. A caller cancelled while waiting does not cancel the write: the
call was made, its spend is recorded. A batch that fails fails every call in it, and nothing
of it is written.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Any

from bastion.store.budget import BudgetStore, Settlement, UsageRow, WouldWait

__all__ = ["Settlements"]

Outcome = tuple[list[UsageRow], datetime]


class Settlements:
    """Queue settlements and write each batch in one transaction."""

    def __init__(self, store: BudgetStore, *, expiry: Callable[[], datetime]) -> None:
        """``expiry`` gives the new expiry of the holds a batch settles against."""
        self._store = store
        self._expiry = expiry
        self._queue: list[tuple[Settlement, asyncio.Future[Outcome]]] = []
        self._scheduled = False
        self._writing = False

    async def settle(self, settlement: Settlement) -> Outcome:
        """Write ``settlement`` in the next batch; the batch's scope rows and hold expiry."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Outcome] = loop.create_future()
        done.add_done_callback(_retrieved)
        self._queue.append((settlement, done))
        if not self._scheduled and not self._writing:
            self._scheduled = True
            loop.call_soon(self._flush, loop)
        return await asyncio.shield(done)

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        """Write everything queued: here if that needs no waiting, else in a worker thread."""
        self._scheduled = False
        if not self._queue:
            return
        batch, self._queue = self._queue, []
        settlements = [s for s, _ in batch]
        expires_at = self._expiry()
        if self._store.settles_inline:
            try:
                rows = self._store.settle(settlements, expires_at=expires_at, wait=False)
            except WouldWait:
                pass
            except Exception as exc:
                _fail(batch, exc)
                return
            else:
                _succeed(batch, (rows, expires_at))
                return
        self._writing = True
        written = loop.run_in_executor(None, _settle, self._store, settlements, expires_at)

        def landed(future: asyncio.Future[list[UsageRow]]) -> None:
            self._writing = False
            if future.cancelled():
                for _, done in batch:
                    done.cancel()
            elif (error := future.exception()) is not None:
                _fail(batch, error)
            else:
                _succeed(batch, (future.result(), expires_at))
            self._flush(loop)  # what queued meanwhile is the next batch

        written.add_done_callback(landed)


def _settle(store: BudgetStore, batch: list[Settlement], expires_at: datetime) -> list[UsageRow]:
    return store.settle(batch, expires_at=expires_at)


def _succeed(batch: list[tuple[Settlement, asyncio.Future[Outcome]]], outcome: Outcome) -> None:
    for _, done in batch:
        if not done.done():
            done.set_result(outcome)


def _fail(batch: list[tuple[Settlement, asyncio.Future[Outcome]]], error: BaseException) -> None:
    for _, done in batch:
        if not done.done():
            done.set_exception(error)


def _retrieved(done: asyncio.Future[Any]) -> None:
    """Mark a failure as seen: its caller may have been cancelled and never will."""
    if not done.cancelled():
        done.exception()
