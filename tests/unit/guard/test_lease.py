"""Leases against a real BudgetStore, on both backends: sizing, the share cap, exact admission
near a limit, idle give-back, close, reclaimed leases and the 3/4-TTL rule.

Two clocks drive a lease, as in the module: the injected :class:`SimClock` (expiry) and the
event loop's ``time()`` (growth and idleness). The loop's clock is frozen here and moved only
by :meth:`LoopTime.advance`, so no test sleeps and "fast" or "slow" refills are exact.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from datetime import timedelta

import pytest
import sqlalchemy as sa

from bastion.clock import SimClock
from bastion.guard.lease import GROWTH_SECONDS, MAX_CALLS, SHARE, Lease, Leases
from bastion.store import Store
from bastion.store.budget import (
    BudgetClaim,
    LedgerEntry,
    Settlement,
    Shortfall,
    budget_reservations,
)

TTL = timedelta(seconds=600)
DAY = ("agent:a", "day:2026-01-01")
FLEET = ("fleet", "day:2026-01-01")
CALL = 10  # tokens one call is admitted for


class LoopTime:
    """The event loop's clock, frozen; moved only by :meth:`advance`."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    with Store.open(store_url) as opened:
        yield opened


@pytest.fixture
async def loop_time(monkeypatch: pytest.MonkeyPatch) -> LoopTime:
    loop = asyncio.get_running_loop()
    frozen = LoopTime(math.ceil(loop.time()) + 1.0)  # whole seconds: sums below are exact
    monkeypatch.setattr(loop, "time", frozen)
    return frozen


def _leases(store: Store, clock: SimClock, idle_seconds: float = 1.0) -> Leases:
    return Leases(store.budget, clock=clock, agent="a", ttl=TTL, idle_seconds=idle_seconds)


def _key(tokens_limit: int | None = None) -> tuple[BudgetClaim, ...]:
    return tuple(sorted([BudgetClaim(*DAY, tokens_limit=tokens_limit), BudgetClaim(*FLEET)]))


def _reserved(store: Store, key: tuple[str, str] = DAY) -> int:
    return store.budget.usage([key])[0].tokens_reserved


def _used(store: Store, key: tuple[str, str] = DAY) -> int:
    return store.budget.usage([key])[0].tokens_used


def _holds(store: Store) -> dict[str, int]:
    """Every hold row in the store: id -> tokens held."""
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(budget_reservations.c.id, budget_reservations.c.tokens))
        return {row.id: int(row.tokens) for row in rows}


async def _admitted(leases: Leases, key: tuple[BudgetClaim, ...], tokens: int = CALL) -> Lease:
    lease = await leases.admit(key, tokens, 0)
    assert isinstance(lease, Lease), lease
    return lease


async def _settle(
    store: Store, leases: Leases, clock: SimClock, lease: Lease, *, spent: int
) -> None:
    """What the budget does after a call held CALL: settle it in the store, tell the leases."""
    entry = LedgerEntry(
        at=clock.now(), agent="a", model="m", tokens_in=spent, tokens_out=0, tokens=spent, usd=0
    )
    scopes = tuple((c.scope, c.period) for c in lease.claims)
    settlement = Settlement(lease.id, scopes, CALL, 0, entry)
    expires_at = clock.now() + TTL
    await asyncio.to_thread(store.budget.settle, [settlement], expires_at=expires_at)
    leases.settled(lease, CALL, 0, expires_at)


async def _background() -> None:
    """Run what is due on the loop (idle checks) and wait for the tasks they started."""
    for _ in range(3):
        await asyncio.sleep(0)
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    await asyncio.gather(*others)


async def test_a_lease_doubles_while_refills_are_quick_up_to_max_calls_and_halves_when_slow(
    store: Store, loop_time: LoopTime
) -> None:
    """Each refill's slice, as held in the store: 1, 2, 4 … MAX_CALLS calls, then no more;
    after a refill more than GROWTH_SECONDS later, half the previous size each time."""
    clock = SimClock()
    leases = _leases(store, clock)
    key = _key()  # unlimited: only the growth rule sizes the lease
    slices: list[int] = []
    lease: Lease | None = None
    for _ in range(2 * MAX_CALLS + 127):
        before = _reserved(store)
        lease = await _admitted(leases, key)
        if _reserved(store) != before:  # a refill: the slice the store now holds for us
            slices.append(_reserved(store) - before)
    assert slices == [CALL * n for n in (1, 2, 4, 8, 16, 32, 64, 64, 64)]
    assert lease is not None
    assert lease.calls == MAX_CALLS
    # Slow refills: the lease runs dry each time, GROWTH_SECONDS after its last refill.
    halves = []
    for _ in range(3):
        for _ in range(lease.free_tokens // CALL):
            await _admitted(leases, key)  # use up what is free, locally
        loop_time.advance(GROWTH_SECONDS)
        before = _reserved(store)
        await _admitted(leases, key)
        halves.append(_reserved(store) - before)
    assert halves == [CALL * 32, CALL * 16, CALL * 8]
    assert _reserved(store, FLEET) == _reserved(store)  # every claim holds the same slice
    await leases.aclose()


async def test_a_lease_bigger_than_one_call_takes_at_most_a_share_of_what_is_left(
    store: Store, loop_time: LoopTime
) -> None:
    """On a limited claim, each slice above one call is at most 1/SHARE of what was left for
    everyone else (the row less this process's own free lease) when it was taken, and the
    store's row is exactly what was granted; another process can still admit."""
    clock = SimClock()
    limit = 1_000
    leases = _leases(store, clock)
    key = _key(tokens_limit=limit)
    slices = []
    calls = 0
    while True:
        before = _reserved(store)
        own_free = leases.free(*DAY)[0]
        admitted = await leases.admit(key, CALL, 0)
        if isinstance(admitted, Shortfall):
            break
        calls += 1
        after = _reserved(store)
        assert after <= limit
        if after != before:
            taken = after - before  # the top-up
            size = taken + own_free  # the lease's free budget right after the refill
            left = limit - (before - own_free)
            slices.append(size)
            assert size == CALL or size * SHARE <= left, (size, left)
    assert max(slices) > CALL  # it did grow, so the share rule was exercised
    assert slices[:4] == [10, 20, 40, 80]  # below the cap, doubling
    assert slices[4] == (limit - 150) // SHARE  # 160 would be more than 850/8
    assert calls == limit // CALL  # sizing lost no call: every one that fit was admitted

    # Another process on the same store sees all of it in flight in the first, none free.
    await leases.aclose()
    other = _leases(store, clock)
    refused = await other.admit(key, CALL, 0)
    assert isinstance(refused, Shortfall)
    assert refused.usage.tokens_reserved == calls * CALL
    await other.aclose()


async def test_near_a_limit_leases_are_one_call_and_admission_is_exact(
    store: Store, loop_time: LoopTime
) -> None:
    """With room for ten calls: ten are admitted, each refill holding exactly one call's need
    once the share no longer fits; the eleventh is refused holding nothing; settled, spend is
    exactly what the calls spent and nothing stays held."""
    clock = SimClock()
    limit = 10 * CALL
    leases = _leases(store, clock)
    key = _key(tokens_limit=limit)
    admitted: list[Lease] = []
    sizes = []  # the lease's free budget right after each refill
    for _ in range(10):
        before, own_free = _reserved(store), leases.free(*DAY)[0]
        admitted.append(await _admitted(leases, key))
        assert _reserved(store) <= limit
        if _reserved(store) != before:
            sizes.append(_reserved(store) - before + own_free)
    # one call, then 11 (90/8: less than two calls), then exactly one call's need each time
    assert sizes == [CALL, (limit - CALL) // SHARE] + [CALL] * 8
    refused = await leases.admit(key, CALL, 0)
    assert isinstance(refused, Shortfall)
    assert (refused.claim.scope, refused.claim.tokens_limit) == (DAY[0], limit)
    assert (refused.usage.tokens_used, refused.usage.tokens_reserved) == (0, limit)
    assert _reserved(store) == limit  # the refusal held nothing more
    for lease in admitted:
        await _settle(store, leases, clock, lease, spent=CALL - 1)
    assert (_used(store), _reserved(store)) == (10 * (CALL - 1), 0)
    assert _used(store, FLEET) == 10 * (CALL - 1)
    await leases.aclose()


async def test_a_refusal_reports_the_row_less_the_processes_own_free_lease(
    store: Store, loop_time: LoopTime
) -> None:
    """The store holds 21 for this process (20 in flight, 1 free); a call of 81 does not fit
    in the 80 another call could get, and the refusal says 20 reserved, not 21."""
    clock = SimClock()
    limit = 10 * CALL
    leases = _leases(store, clock)
    key = _key(tokens_limit=limit)
    await _admitted(leases, key)
    await _admitted(leases, key)
    assert (_reserved(store), leases.free(*DAY)) == (21, (1, 0))
    refused = await leases.admit(key, 81, 0)
    assert isinstance(refused, Shortfall)
    assert refused.usage.tokens_reserved == 20
    assert _reserved(store) == 21  # nothing held by the refusal, nothing given back
    assert isinstance(await leases.admit(key, 80, 0), Lease)  # exactly what was reported
    assert _reserved(store) == limit
    await leases.aclose()


async def test_an_idle_lease_is_given_back_after_idle_seconds(
    store: Store, loop_time: LoopTime
) -> None:
    """A lease with free budget and nothing in flight is released once idle_seconds passed
    since its last use (an admission given back counts): not before, and not while a call is
    in flight."""
    clock = SimClock()
    leases = _leases(store, clock, idle_seconds=5.0)
    key = _key(tokens_limit=1_000)
    first = await _admitted(leases, key)
    second = await _admitted(leases, key)  # a refill of two calls: one free left
    assert _reserved(store) == 3 * CALL
    await _settle(store, leases, clock, first, spent=CALL)
    loop_time.advance(5.0)
    await _background()
    assert _reserved(store) == 2 * CALL  # `second` is in flight: the lease stays
    await _settle(store, leases, clock, second, spent=CALL)  # idle from here
    loop_time.advance(3.0)
    unmade = await _admitted(leases, key)  # a call admitted and not made: a use of the lease
    leases.release(unmade, CALL, 0)
    loop_time.advance(2.0)  # 5 s since idle, 2 s since last used
    await _background()
    assert (_reserved(store), len(_holds(store))) == (CALL, 1)  # not idle for long enough
    loop_time.advance(2.5)
    await _background()
    assert (_reserved(store), len(_holds(store))) == (CALL, 1)
    loop_time.advance(0.5)  # 5 s since its last use
    await _background()
    assert (_reserved(store), _reserved(store, FLEET), _holds(store)) == (0, 0, {})
    assert (_used(store), leases.free(*DAY)) == (2 * CALL, (0, 0))
    # The next call takes a fresh lease.
    await _admitted(leases, key)
    assert _reserved(store) == CALL
    await leases.aclose()


async def test_aclose_gives_every_lease_back(store: Store, loop_time: LoopTime) -> None:
    """Close releases idle leases whole and gives back the free part of busy ones: only
    what is in flight stays held, and nothing once that is settled."""
    clock = SimClock()
    leases = _leases(store, clock)
    one = tuple(sorted([*_key(1_000), BudgetClaim("workflow:x", "all")]))
    two = tuple(sorted([*_key(1_000), BudgetClaim("workflow:y", "all")]))
    calls = [await _admitted(leases, key) for key in (one, one, one, two, two)]
    for lease in calls[:4]:
        await _settle(store, leases, clock, lease, spent=CALL)
    in_flight = calls[4]
    assert _reserved(store) > CALL
    await leases.aclose()
    assert _reserved(store) == _reserved(store, FLEET) == CALL  # only the call in flight
    assert _reserved(store, ("workflow:x", "all")) == 0
    assert _holds(store) == {in_flight.id: CALL}
    await _settle(store, leases, clock, in_flight, spent=CALL)
    await leases.aclose()
    assert (_reserved(store), _reserved(store, FLEET), _used(store)) == (0, 0, 5 * CALL)
    assert _holds(store) == {}


async def test_a_lease_reclaimed_by_the_store_is_replaced_inside_the_take(
    store: Store, loop_time: LoopTime
) -> None:
    """Another process's reclaim (its clock ahead of ours) takes the lease's hold back while
    a call is in flight on it: the next call gets a new lease from the same admit, and the
    call of the old one still records its spend without unholding anything twice."""
    clock = SimClock()
    leases = _leases(store, clock)
    key = _key(tokens_limit=1_000)
    old = await _admitted(leases, key)
    assert store.budget.reclaim(clock.now() + TTL + timedelta(seconds=1)) == 1
    assert (_reserved(store), _holds(store)) == (0, {})
    new = await _admitted(leases, key)  # the top-up finds the hold gone: a new one
    assert new.id != old.id
    assert _holds(store) == {new.id: new.free_tokens + CALL}
    held = _reserved(store)
    assert held == new.free_tokens + CALL
    await _settle(store, leases, clock, old, spent=7)
    assert (_used(store), _used(store, FLEET), _reserved(store)) == (7, 7, held)
    (model,) = store.budget.model_totals("a", "2026-01-01")
    assert (model.invocations, model.tokens) == (1, 7)
    await _settle(store, leases, clock, new, spent=CALL)
    await leases.aclose()
    assert (_used(store), _reserved(store), _holds(store)) == (7 + CALL, 0, {})


async def test_a_lease_that_expired_locally_is_dropped_and_a_new_one_taken(
    store: Store, loop_time: LoopTime
) -> None:
    """Past its expiry a lease is not topped up: a new hold is taken (the old one is the
    store's to reclaim, which gives back exactly its own budget)."""
    clock = SimClock()
    leases = _leases(store, clock)
    key = _key(tokens_limit=1_000)
    old = await _admitted(leases, key)
    clock.advance(TTL.total_seconds())
    new = await _admitted(leases, key)
    assert new.id != old.id
    assert set(_holds(store)) == {old.id, new.id}
    assert store.budget.reclaim(clock.now() + timedelta(seconds=1)) == 1
    assert set(_holds(store)) == {new.id}
    assert _reserved(store) == CALL
    await leases.aclose()


async def test_a_call_is_admitted_only_from_a_lease_with_three_quarters_of_its_ttl_left(
    store: Store, loop_time: LoopTime
) -> None:
    """A lease with a call's worth free admits locally (no store write) while at least 3/4 of
    ttl is left; with less, the call goes to the store, which tops the same hold up and moves
    its expiry to now + ttl."""
    clock = SimClock()
    leases = _leases(store, clock)
    x = ("workflow:x", "all")
    y = ("workflow:y", "all")
    on_x = tuple(sorted([*_key(1_000), BudgetClaim(*x)]))
    on_y = tuple(sorted([*_key(1_000), BudgetClaim(*y)]))
    await _admitted(leases, on_x)
    await _admitted(leases, on_y)
    await _admitted(leases, on_x)  # two calls' slice each: one call free on each
    lease = await _admitted(leases, on_y)
    assert (_reserved(store, x), _reserved(store, y), leases.free(*y)) == (30, 30, (CALL, 0))

    clock.advance(TTL.total_seconds() / 4)  # exactly 3/4 of ttl left
    await _admitted(leases, on_x)
    assert (_reserved(store, x), leases.free(*x)) == (30, (0, 0))  # local: store untouched

    clock.advance(1)  # less than 3/4 left on y's lease
    before = _reserved(store, y)
    again = await _admitted(leases, on_y)
    assert again is lease
    assert _holds(store)[lease.id] > 2 * CALL
    assert _reserved(store, y) > before
    with store.engine.connect() as conn:
        expiry = conn.scalar(
            sa.select(budget_reservations.c.expires_at).where(budget_reservations.c.id == lease.id)
        )
    assert expiry == lease.expires_at == clock.now() + TTL
    await leases.aclose()
