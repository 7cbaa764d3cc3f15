"""Human approvals: ask a person, and never act on the question until one has answered.

Some things Bastion must not settle alone. The LLM fallback chain, with no model able to answer
and no cached answer fresh enough, queues an ``llm_escalation`` and hands the agent an
``escalated`` result instead of guessing; the risk review queues an ``order`` whose verdict is
``needs_approval``. :meth:`Approvals.request` puts the question in the store's queue (see
:mod:`bastion.store.approvals`) and calls ``on_request`` with the new entry, which the runtime
wires to a journal event and an alert so a person hears about it.

A person answers with :meth:`Approvals.decide`. The store makes the answer unique: of two people
deciding at once, on any number of machines, exactly one wins and the other gets
:class:`ApprovalAlreadyDecided` naming the winner. An entry nobody answered before its
``ttl_seconds`` ran out is expired, never approved by default.

``subject`` and ``reason`` are shown to whoever may decide; the service redacts both with
``redact`` (the runtime's secret redactor) before they are stored, whoever asks.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from typing import Any

from bastion.clock import Clock
from bastion.errors import UsageError
from bastion.store import Store
from bastion.store.approvals import (
    ApprovalAlreadyDecided,
    ApprovalNotFound,
    ApprovalRecord,
    ApprovalStatus,
)

__all__ = [
    "ApprovalAlreadyDecided",
    "ApprovalNotFound",
    "ApprovalRecord",
    "ApprovalStatus",
    "Approvals",
    "OnRequest",
]

OnRequest = Callable[[ApprovalRecord], Awaitable[object] | object]
"""Called with each new entry; may be a plain function or a coroutine function."""


class Approvals:
    """Queue questions for a person and record their answers.

    What it queues is labelled with ``agent``; what it lists and decides is the whole queue, so
    one instance also serves the console and the CLI.
    """

    def __init__(
        self,
        store: Store,
        *,
        clock: Clock,
        agent: str,
        on_request: OnRequest | None = None,
        redact: Callable[[Any], Any] | None = None,
    ) -> None:
        """``agent`` is recorded on every entry this service queues; ``redact`` scrubs each
        entry's subject and reason before it is stored."""
        self._store = store
        self._clock = clock
        self.agent = agent
        self._on_request = on_request
        self._redact = redact

    async def request(
        self,
        kind: str,
        subject: Mapping[str, Any],
        reason: str,
        *,
        run_id: str | None = None,
        ttl_seconds: float | None = None,
    ) -> ApprovalRecord:
        """Queue a pending entry, tell ``on_request`` about it, and return it.

        ``ttl_seconds`` (``None``: until answered) is how long a person has to decide before
        the entry expires.
        """
        if ttl_seconds is not None and ttl_seconds <= 0:
            raise UsageError(f"ttl_seconds must be > 0 or None, got {ttl_seconds}")
        if self._redact is not None:
            subject = self._redact(dict(subject))
            reason = str(self._redact(reason))
        now = self._clock.now()
        expires_at = None if ttl_seconds is None else now + timedelta(seconds=ttl_seconds)
        record = await asyncio.to_thread(
            self._store.approvals.add,
            kind=kind,
            agent=self.agent,
            subject=subject,
            reason=reason,
            at=now,
            run_id=run_id,
            expires_at=expires_at,
        )
        if self._on_request is not None:
            result = self._on_request(record)
            if inspect.isawaitable(result):
                await result
        return record

    async def decide(
        self, approval_id: str, approve: bool, who: str, note: str | None = None
    ) -> ApprovalRecord:
        """Approve or reject a pending entry as ``who``; returns it decided.

        Raises :class:`ApprovalAlreadyDecided` if it was decided or expired first, and
        :class:`ApprovalNotFound` for an unknown id.
        """
        return await asyncio.to_thread(
            self._store.approvals.decide,
            approval_id,
            approve=approve,
            who=who,
            note=note,
            at=self._clock.now(),
        )

    async def pending(self, limit: int = 50) -> list[ApprovalRecord]:
        """Entries still waiting for a person (from every agent), newest first.

        Entries whose time ran out are marked expired first, so none of them is offered.
        """
        await self.expire()
        return await asyncio.to_thread(self._store.approvals.list, ApprovalStatus.PENDING, limit)

    async def recent(self, limit: int = 50) -> list[ApprovalRecord]:
        """The last ``limit`` entries, newest first, whatever their status (from every agent)."""
        await self.expire()
        return await asyncio.to_thread(self._store.approvals.list, None, limit)

    async def count_pending(self) -> int:
        """How many entries wait for a person, after sweeping out expired ones."""
        await self.expire()
        return await asyncio.to_thread(self._store.approvals.count_pending)

    async def get(self, approval_id: str) -> ApprovalRecord | None:
        """The entry with this id, whatever its status, if any."""
        return await asyncio.to_thread(self._store.approvals.get, approval_id)

    async def expire(self) -> int:
        """Mark every entry whose time ran out as expired; returns how many."""
        return await asyncio.to_thread(self._store.approvals.expire, self._clock.now())
