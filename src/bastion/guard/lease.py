"""Escrow leases: budget a process holds in the store and admits LLM calls from locally.

Admission must be exact across processes, so every admitted call is backed by a hold in the
store. One store transaction per call would make that hold the hot spot of a fleet (the fleet's
daily row is on every call of every agent) and cost more than the call's own bookkeeping. A
*lease* is one such hold, sized for several calls: the process takes a slice of what is left in
one transaction (:meth:`~bastion.store.budget.BudgetStore.reserve`, conditional on every
claim), admits calls from it with no I/O, settles their spend against it, and gives back what it
did not use. Spend stays exact and never exceeds a limit, because the store never holds more
than the limit and a call is only admitted against what this process holds.

Sizing, so a lease never sits on budget another process could use:

* a lease starts at one call's estimate and doubles while calls come quickly (a refill within
  ``GROWTH_SECONDS`` of the last), halves otherwise, and never exceeds ``MAX_CALLS`` calls;
* when it is bigger than one call it also takes at most ``1/SHARE`` of what is left on every
  limited claim: close to a limit leases shrink to exactly one call, which is admission one
  reservation per call, as before leases;
* a lease with nothing in flight for ``idle_seconds`` is released whole, and :meth:`aclose`
  releases every lease (the runner closes its budget at the end of a run).

Life: a lease's hold expires ``ttl`` after it was taken, topped up or last settled, like any
reservation; a call is admitted only from a lease with at least ``3/4`` of ``ttl`` left, so
every admitted call keeps the guarantee reservations always had (a hold that outlives the
slowest call). A lease that expired was reclaimed by the store, budget and all: it is dropped
here and a new one is taken; spend settled against it is still recorded.

Refusals come from the store's row as read after the refused transaction, less this process's
own unused lease (which the refused top-up would have given back), so the message says what
another call could really get.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from bastion.clock import Clock
from bastion.store.budget import BudgetClaim, BudgetStore, Shortfall

__all__ = ["GROWTH_SECONDS", "MAX_CALLS", "SHARE", "Lease", "Leases"]

MAX_CALLS = 64
SHARE = 8
GROWTH_SECONDS = 1.0
_ATTEMPTS = 3

Key = tuple[BudgetClaim, ...]


@dataclass(slots=True)
class Lease:
    """One hold in the store and what of it is still free here; ``held`` is admitted."""

    id: str
    claims: Key
    expires_at: datetime
    free_tokens: int = 0
    free_usd: int = 0
    held_tokens: int = 0
    held_usd: int = 0
    calls: int = 1
    refilled_at: float = field(default=-1e9)
    used_at: float = 0.0

    def admits(self, tokens: int, usd: int, now: datetime, ttl: timedelta) -> bool:
        """Whether a call needing ``tokens`` and ``usd`` fits, with enough life left."""
        return (
            tokens <= self.free_tokens
            and usd <= self.free_usd
            and self.expires_at - now >= ttl * 3 / 4
        )

    def admit(self, tokens: int, usd: int, at: float) -> None:
        self.free_tokens -= tokens
        self.free_usd -= usd
        self.held_tokens += tokens
        self.held_usd += usd
        self.used_at = at

    def give_back(self, tokens: int, usd: int, at: float) -> None:
        """An admitted call was not made: what it held is free again."""
        self.held_tokens -= tokens
        self.held_usd -= usd
        self.free_tokens += tokens
        self.free_usd += usd
        self.used_at = at

    def settled(self, tokens: int, usd: int, expires_at: datetime) -> None:
        """An admitted call's spend is in the store, which shrank the hold by what it held."""
        self.held_tokens -= tokens
        self.held_usd -= usd
        self.expires_at = max(self.expires_at, expires_at)

    @property
    def idle(self) -> bool:
        return self.held_tokens == 0 and self.held_usd == 0


class Leases:
    """The leases of one budget, one per set of claims (agent day, month, fleet, envelope)."""

    def __init__(
        self,
        store: BudgetStore,
        *,
        clock: Clock,
        agent: str,
        ttl: timedelta,
        idle_seconds: float = 1.0,
    ) -> None:
        self._store = store
        self._clock = clock
        self._agent = agent
        self._ttl = ttl
        self._idle_seconds = idle_seconds
        self._leases: dict[Key, Lease] = {}
        self._locks: dict[Key, asyncio.Lock] = {}
        self._idle_checks: set[Key] = set()

    async def admit(self, key: Key, tokens: int, usd: int) -> Lease | Shortfall:
        """Admit one call from the lease of its claims ``key`` (sorted), refilled when needed.

        Returns the lease the call holds on, or the store's :class:`Shortfall` holding nothing.
        """
        loop_now = asyncio.get_running_loop().time()
        admitted = self._admit_locally(key, tokens, usd, loop_now)
        if admitted is not None:
            return admitted
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            admitted = self._admit_locally(key, tokens, usd, loop_now)
            if admitted is not None:
                return admitted
            # The refill admits the call as soon as it lands, before any other task can take
            # the slice. Shielded: a caller cancelled meanwhile gets its share given back.
            refill = asyncio.ensure_future(self._refill(key, tokens, usd))
            try:
                return await asyncio.shield(refill)
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):
                    granted = await refill
                    if isinstance(granted, Lease):
                        self.release(granted, tokens, usd)
                raise

    def release(self, lease: Lease, tokens: int, usd: int) -> None:
        """A call admitted from ``lease`` was not made: its share is free again."""
        if self._leases.get(lease.claims) is lease:
            lease.give_back(tokens, usd, asyncio.get_running_loop().time())
            self._watch_idle(lease)

    def settled(self, lease: Lease, tokens: int, usd: int, expires_at: datetime) -> None:
        """A call admitted from ``lease`` is settled in the store."""
        lease.settled(tokens, usd, expires_at)
        if self._leases.get(lease.claims) is lease:
            lease.used_at = asyncio.get_running_loop().time()
            self._watch_idle(lease)

    def free(self, scope: str, period: str) -> tuple[int, int]:
        """Tokens and micro-USD this process holds unused on one scope row."""
        tokens = usd = 0
        for lease in list(self._leases.values()):
            if any(c.scope == scope and c.period == period for c in lease.claims):
                tokens += lease.free_tokens
                usd += lease.free_usd
        return tokens, usd

    async def aclose(self) -> None:
        """Give every lease's unused budget back to the store."""
        for key in list(self._leases):
            await self._give_back(key)

    # --- local admission and refills ------------------------------------------------------

    def _admit_locally(self, key: Key, tokens: int, usd: int, at: float) -> Lease | None:
        lease = self._leases.get(key)
        if lease is None or not lease.admits(tokens, usd, self._clock.now(), self._ttl):
            return None
        lease.admit(tokens, usd, at)
        return lease

    async def _refill(self, key: Key, tokens: int, usd: int) -> Lease | Shortfall:
        """Top the lease up to a new slice, or take a new one, and admit the call from it.

        Up to ``_ATTEMPTS`` transactions, each in a worker thread: the first asks for the grown
        slice, each refusal resizes the slice from the refused row, and a refusal of the call's
        own need is final. The lease's figures change only here, on the event loop's thread,
        by what the store granted, so calls admitted meanwhile are never double-counted.
        """
        now = self._clock.now()
        loop_now = asyncio.get_running_loop().time()
        lease = self._leases.get(key)
        if lease is not None and now >= lease.expires_at:
            self._drop(key)  # reclaimed, or about to be: its budget went back with it
            lease = None
        calls = _next_size(lease, loop_now)
        want = (tokens * calls, usd * calls)
        share = calls > 1
        for attempt in range(_ATTEMPTS):
            refused = await self._take(key, lease, want, now, share=share)
            lease = self._leases.get(key)  # a new one if the store had reclaimed the old
            if refused is None and lease is not None:
                lease.calls, lease.refilled_at = calls, loop_now
                lease.admit(tokens, usd, loop_now)  # no await since the grant: still there
                return lease
            assert refused is not None
            shortfall = self._own_free_deducted(refused, lease)
            room_tokens, room_usd = _room(shortfall)
            if room_tokens < tokens or room_usd < usd or attempt == _ATTEMPTS - 1:
                return shortfall
            want = (
                max(tokens, min(want[0], room_tokens // SHARE)),
                max(usd, min(want[1], room_usd // SHARE)),
            )
            share = False
        raise AssertionError("unreachable")  # pragma: no cover - the last attempt returns

    async def _take(
        self, key: Key, lease: Lease | None, want: tuple[int, int], now: datetime, *, share: bool
    ) -> Shortfall | None:
        """One transaction: top ``lease`` up to ``want`` free, or take a new hold of ``want``.

        With ``share`` every limited claim is checked as if it were ``SHARE`` times as needy,
        which keeps the slice within ``1/SHARE`` of what is left. A lease the store had
        reclaimed is dropped and a new hold is taken instead.
        """
        claims = [_shared(c, want, share) for c in key]
        expires_at = now + self._ttl
        if lease is None:
            lease_id = uuid.uuid4().hex
            refused = await asyncio.to_thread(
                self._store.reserve,
                lease_id,
                agent=self._agent,
                claims=claims,
                tokens=want[0],
                usd=want[1],
                at=now,
                expires_at=expires_at,
            )
            if refused is not None:
                return _original(refused, key)
            self._leases[key] = Lease(
                lease_id, key, expires_at, free_tokens=want[0], free_usd=want[1]
            )
            return None
        delta = (want[0] - lease.free_tokens, want[1] - lease.free_usd)
        result = await asyncio.to_thread(
            self._store.top_up,
            lease.id,
            claims=claims,
            tokens=delta[0],
            usd=delta[1],
            expires_at=expires_at,
        )
        if result == "gone":  # expired and reclaimed: its budget went back with it
            self._drop(key)
            return await self._take(key, None, want, now, share=share)
        if result is not None:
            return _original(result, key)
        lease.free_tokens += delta[0]  # calls admitted meanwhile already took their share
        lease.free_usd += delta[1]
        lease.expires_at = expires_at
        return None

    def _own_free_deducted(self, shortfall: Shortfall, lease: Lease | None) -> Shortfall:
        """The refused row as another call sees it: this process's unused lease is not held."""
        if lease is None:
            return shortfall
        usage = shortfall.usage
        return Shortfall(
            shortfall.claim,
            replace(
                usage,
                tokens_reserved=max(0, usage.tokens_reserved - lease.free_tokens),
                usd_reserved=max(0, usage.usd_reserved - lease.free_usd),
            ),
        )

    # --- giving back ------------------------------------------------------------------------

    def _watch_idle(self, lease: Lease, after: float | None = None) -> None:
        """Release ``lease`` once nothing is in flight on it for ``idle_seconds``; the check
        runs ``after`` seconds from now (``idle_seconds`` unless told)."""
        if not lease.idle or lease.claims in self._idle_checks:
            return
        self._idle_checks.add(lease.claims)
        delay = self._idle_seconds if after is None else after
        asyncio.get_running_loop().call_later(delay, self._idle_check, lease.claims)

    def _idle_check(self, key: Key) -> None:
        self._idle_checks.discard(key)
        lease = self._leases.get(key)
        if lease is None or not lease.idle:
            return
        waited = asyncio.get_running_loop().time() - lease.used_at
        if waited < self._idle_seconds:  # used since: check again when it has been idle long
            self._watch_idle(lease, self._idle_seconds - waited)
            return
        task = asyncio.ensure_future(self._give_back(key))
        task.add_done_callback(_quiet)

    async def _give_back(self, key: Key) -> None:
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            lease = self._leases.get(key)
            if lease is None:
                return
            if lease.idle:
                self._drop(key)
                await asyncio.to_thread(self._store.release, lease.id)
                return
            free_tokens, free_usd = lease.free_tokens, lease.free_usd
            lease.free_tokens = lease.free_usd = 0
            scopes = [(c.scope, c.period) for c in lease.claims]
            await asyncio.to_thread(
                self._store.give_back, lease.id, scopes=scopes, tokens=free_tokens, usd=free_usd
            )

    def _drop(self, key: Key) -> None:
        self._leases.pop(key, None)


def _next_size(lease: Lease | None, now: float) -> int:
    """Double a lease that ran out within ``GROWTH_SECONDS`` of its refill, else halve it."""
    if lease is None:
        return 1
    if now - lease.refilled_at < GROWTH_SECONDS:
        return min(MAX_CALLS, lease.calls * 2)
    return max(1, lease.calls // 2)


def _shared(claim: BudgetClaim, want: tuple[int, int], share: bool) -> BudgetClaim:
    """``claim`` with each limit lowered so a slice of ``want`` leaves ``SHARE - 1`` more."""
    if not share:
        return claim
    tokens_limit = claim.tokens_limit
    usd_limit = claim.usd_limit
    if tokens_limit is not None:
        tokens_limit -= (SHARE - 1) * want[0]
    if usd_limit is not None:
        usd_limit -= (SHARE - 1) * want[1]
    return BudgetClaim(claim.scope, claim.period, tokens_limit, usd_limit)


def _original(shortfall: Shortfall, key: Key) -> Shortfall:
    """The shortfall naming the claim as the budget knows it, not its lowered twin."""
    for claim in key:
        if (claim.scope, claim.period) == (shortfall.claim.scope, shortfall.claim.period):
            return Shortfall(claim, shortfall.usage)
    return shortfall


def _room(shortfall: Shortfall) -> tuple[int, int]:
    """What is left on the refused claim for each unit (very large where unlimited)."""
    claim, usage = shortfall.claim, shortfall.usage
    unlimited = 2**62
    tokens = (
        unlimited
        if claim.tokens_limit is None
        else claim.tokens_limit - usage.tokens_used - usage.tokens_reserved
    )
    usd = (
        unlimited
        if claim.usd_limit is None
        else claim.usd_limit - usage.usd_used - usage.usd_reserved
    )
    return tokens, usd


def _quiet(task: asyncio.Future[None]) -> None:
    """An idle lease that could not be given back expires in the store: nothing to report."""
    with contextlib.suppress(asyncio.CancelledError, Exception):
        task.result()
