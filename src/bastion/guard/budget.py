"""Token and USD budgets, admitted before an LLM call is made and settled after it.

Every call is priced first and :meth:`Budget.reserve` holds its estimate against each scope that
applies to it, in one store transaction, all or nothing:

* **request**: the most one call may cost (checked here, no state);
* **daily** and **monthly** for the agent, in UTC days and months of the injected clock;
* **envelope** for a workflow (or, without one, a run);
* **fleet daily**: every agent on the database together.

Every admitted call is backed by a hold in the store, taken with one conditional upsert per
scope row (see :mod:`bastion.store.budget`), so budgets hold across tasks, processes and
machines. The hold is an escrow *lease* for several calls (:mod:`bastion.guard.lease`): most
calls are admitted from it without I/O. The caller then :meth:`Reservation.commit` s the actual
cost (recorded in the ledger with tokens in and out, model, run, operation and phase; concurrent
commits share one transaction, :mod:`bastion.guard.settlements`) or :meth:`Reservation.release`
s its share. A process that dies holding a lease leaves it to expire after
``reservation_ttl_seconds``; expired holds are reclaimed at a later reserve, and always before a
refusal is reported. :meth:`Budget.aclose` gives unused leases back.

A refusal raises :class:`BudgetExhausted` stating the limit and the observed value. At
``alert_ratio`` of a limit ``on_alert`` fires, once per scope per UTC day across every process
(the store keeps the mark). Exhausting a daily or fleet budget, or any USD cap, calls
``on_exhausted(reason)`` once per scope per day; the runtime wires it to
``halt.trip("cost_cap")``.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Literal

from bastion.clock import Clock
from bastion.errors import BudgetExhausted, UsageError
from bastion.guard.lease import Lease, Leases
from bastion.guard.settlements import Settlements
from bastion.llm.pricing import MICROS, Cost
from bastion.store import Store
from bastion.store.budget import BudgetClaim, LedgerEntry, Settlement, Shortfall, UsageRow
from bastion.telemetry.metrics import Metrics

__all__ = [
    "Budget",
    "BudgetAlert",
    "BudgetExhausted",
    "BudgetLimits",
    "BudgetUsage",
    "Cost",
    "ModelUsage",
    "Reservation",
    "format_amount",
]

Unit = Literal["tokens", "usd"]
Callback = Callable[[Any], Awaitable[object] | object]

_MICROS = MICROS
_FLEET = "fleet"


@dataclass(frozen=True, slots=True)
class BudgetLimits:
    """Every budget limit, in tokens and USD separately; ``None`` means unlimited."""

    request_tokens: int | None = None
    request_usd: float | None = None
    daily_tokens: int | None = None
    daily_usd: float | None = None
    monthly_tokens: int | None = None
    monthly_usd: float | None = None
    envelope_tokens: int | None = None
    envelope_usd: float | None = None
    fleet_daily_tokens: int | None = None
    fleet_daily_usd: float | None = None


@dataclass(frozen=True, slots=True)
class BudgetAlert:
    """Sent to ``on_alert``: a scope crossed ``ratio`` of its limit."""

    scope: str
    period: str
    label: str
    unit: Unit
    used: float
    limit: float
    ratio: float


@dataclass(frozen=True, slots=True)
class ModelUsage:
    """One model's share of today's spend."""

    invocations: int
    tokens: int
    usd: float


@dataclass(frozen=True, slots=True)
class BudgetUsage:
    """Today's spend for one agent against its daily budgets: what the API and CLI show.

    ``tokens_remaining`` and ``usd_remaining`` are None without a limit; ``budget_available``
    also looks at the fleet's daily limits. ``reset_date`` is the next UTC midnight's date.
    """

    agent: str
    daily_budget: int | None
    daily_usd_budget: float | None
    tokens_used_today: int
    tokens_remaining: float | None
    usd_used_today: float
    usd_remaining: float | None
    budget_available: bool
    reset_date: str
    invocations_today: int
    by_model: Mapping[str, ModelUsage]

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of ``/api/budget`` and ``bastion budget --json``."""
        data = asdict(self)
        data["by_model"] = {name: asdict(row) for name, row in self.by_model.items()}
        return data

    def refusal(self) -> BudgetExhausted | None:
        """Why a run that needs the LLM may not start today, or None while budget is left.

        The one refusal message: ``Run refused: budget_exhausted (1,000 of 1,000 tokens used
        today; resets 2026-01-02 00:00 UTC). Fix: ...``.
        """
        if self.budget_available:
            return None
        used, limit = self.tokens_used_today, self.daily_budget
        if limit is not None and used >= limit:
            figures = f"{used:,} of {limit:,} tokens used today"
        else:
            figures = f"{format_amount('usd', self.usd_used_today)} used today"
        return BudgetExhausted(
            f"Run refused: budget_exhausted ({figures}; resets {self.reset_date} 00:00 UTC). "
            "Fix: wait for the reset or raise BASTION_DAILY_TOKEN_BUDGET / "
            "BASTION_DAILY_USD_BUDGET.",
            limit=limit or 0,
            observed=used,
            scope=f"agent:{self.agent}",
            unit="tokens",
            need=0,
            remaining=self.tokens_remaining or 0,
            exhausted=True,
        )


def format_amount(unit: Unit, amount: float) -> str:
    """``512,340`` for tokens, ``$1.25`` for USD (more digits below a cent)."""
    if unit == "tokens":
        return f"{int(amount):,}"
    if 0 < abs(amount) < 0.01:
        return f"${amount:,.6f}".rstrip("0")
    return f"${amount:,.2f}"


@dataclass(frozen=True, slots=True)
class _Scope:
    label: str
    claim: BudgetClaim
    halts: bool


class Reservation:
    """A hold on budget for one call: :meth:`commit` what it cost or :meth:`release` it.

    Usable as ``async with``: leaving the block without committing releases the hold.
    """

    def __init__(
        self,
        budget: Budget,
        lease: Lease,
        estimate: Cost,
        scopes: tuple[_Scope, ...],
        *,
        run_id: str | None,
        workflow: str | None,
        model: str,
        operation: str | None,
        phase: str | None,
    ) -> None:
        self.id = lease.id
        self.estimate = estimate
        self.run_id = run_id
        self.workflow = workflow
        self.model = model
        self.operation = operation
        self.phase = phase
        self._budget = budget
        self._lease = lease
        self._scopes = scopes
        self._settled = False

    @property
    def settled(self) -> bool:
        """True once committed or released."""
        return self._settled

    async def commit(
        self,
        actual: Cost,
        *,
        tokens_in: int = 0,
        tokens_out: int = 0,
        model: str | None = None,
    ) -> None:
        """Record what the call actually cost and give back the rest of the hold.

        The actual cost is recorded even above the estimate: it was spent. Alerts and
        exhaustion are checked against the new totals.
        """
        self._settle()
        await self._budget._commit(
            self, actual, tokens_in=tokens_in, tokens_out=tokens_out, model=model
        )

    async def release(self) -> None:
        """Give the whole hold back: the call was not made."""
        self._settle()
        estimate = self.estimate
        self._budget._leases.release(self._lease, estimate.tokens, estimate.usd_micros)

    def _settle(self) -> None:
        if self._settled:
            raise UsageError(f"reservation {self.id} was already committed or released")
        self._settled = True

    async def __aenter__(self) -> Reservation:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._settled:
            await self.release()


class Budget:
    """Admit, settle and report LLM spend for one agent against :class:`BudgetLimits`."""

    def __init__(
        self,
        store: Store,
        *,
        clock: Clock,
        agent: str,
        limits: BudgetLimits,
        alert_ratio: float = 0.75,
        on_alert: Callback | None = None,
        on_exhausted: Callback | None = None,
        reservation_ttl_seconds: float = 600.0,
        metrics: Metrics | None = None,
    ) -> None:
        """``reservation_ttl_seconds`` must outlast the slowest call (LLM timeout is 120 s).

        With ``metrics``, every settlement sets ``bastion_budget_remaining`` for its scopes.
        """
        if not 0 < alert_ratio <= 1:
            raise UsageError(f"alert_ratio must be in (0, 1], got {alert_ratio}")
        if reservation_ttl_seconds <= 0:
            raise UsageError(f"reservation_ttl_seconds must be > 0, got {reservation_ttl_seconds}")
        self._store = store
        self._clock = clock
        self.agent = agent
        self.limits = limits
        self.alert_ratio = alert_ratio
        self._on_alert = on_alert
        self._on_exhausted = on_exhausted
        self._ttl = timedelta(seconds=reservation_ttl_seconds)
        self._metrics = metrics
        self._leases = Leases(store.budget, clock=clock, agent=agent, ttl=self._ttl)
        self._settlements = Settlements(store.budget, expiry=lambda: self._clock.now() + self._ttl)
        self._next_reclaim: datetime | None = None
        self._scope_cache: dict[object, tuple[tuple[_Scope, ...], tuple[BudgetClaim, ...]]] = {}
        self._marks_day = ""
        self._marked: set[tuple[str, str, str]] = set()

    async def reserve(
        self,
        estimate: Cost,
        *,
        run_id: str | None = None,
        workflow: str | None = None,
        model: str = "",
        operation: str | None = None,
        phase: str | None = None,
    ) -> Reservation:
        """Hold ``estimate`` on every scope, or raise :class:`BudgetExhausted` holding nothing."""
        self._check_request(estimate)
        now = self._clock.now()
        scopes, claims = self._scopes(now, run_id=run_id, workflow=workflow)
        if self._next_reclaim is None or now >= self._next_reclaim:
            await self._reclaim(now)
        lease = await self._leases.admit(claims, estimate.tokens, estimate.usd_micros)
        if isinstance(lease, Shortfall) and await self._reclaim(now):
            lease = await self._leases.admit(claims, estimate.tokens, estimate.usd_micros)
        if isinstance(lease, Shortfall):
            scope, usage = self._refused_scope(scopes, lease)
            error = _refusal(scope, usage, estimate)
            if error.exhausted and (scope.halts or error.unit == "usd"):
                await self._exhausted(scope, error.unit, error.message, now)
            raise error
        return Reservation(
            self,
            lease,
            estimate,
            scopes,
            run_id=run_id,
            workflow=workflow,
            model=model,
            operation=operation,
            phase=phase,
        )

    async def aclose(self) -> None:
        """Give unused leases back to the store; the budget stays usable (it leases again)."""
        await self._leases.aclose()

    async def __aenter__(self) -> Budget:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def reclaim(self) -> int:
        """Give back every expired hold now; returns how many there were."""
        return await self._reclaim(self._clock.now())

    def usage_today(self) -> BudgetUsage:
        """Today's figures for the API and CLI (blocking: call it off the event loop)."""
        now = self._clock.now()
        tomorrow = now.date() + timedelta(days=1)
        day = _day(now)
        (mine, fleet), models = self._store.budget.day(
            [(_agent(self.agent), day), (_FLEET, day)], agent=self.agent, day=f"{now:%Y-%m-%d}"
        )
        mine, fleet = self._unleased(mine), self._unleased(fleet)
        limits = self.limits
        tokens_remaining = _remaining(limits.daily_tokens, mine.tokens_used, mine.tokens_reserved)
        usd_remaining = _remaining(
            _micros(limits.daily_usd), mine.usd_used, mine.usd_reserved, scale=_MICROS
        )
        fleet_left = [
            _remaining(limits.fleet_daily_tokens, fleet.tokens_used, fleet.tokens_reserved),
            _remaining(_micros(limits.fleet_daily_usd), fleet.usd_used, fleet.usd_reserved),
        ]
        left = [tokens_remaining, usd_remaining, *fleet_left]
        return BudgetUsage(
            agent=self.agent,
            daily_budget=limits.daily_tokens,
            daily_usd_budget=limits.daily_usd,
            tokens_used_today=mine.tokens_used,
            tokens_remaining=tokens_remaining,
            usd_used_today=mine.usd_used / _MICROS,
            usd_remaining=usd_remaining,
            budget_available=all(value is None or value > 0 for value in left),
            reset_date=tomorrow.isoformat(),
            invocations_today=sum(m.invocations for m in models),
            by_model={
                m.model: ModelUsage(m.invocations, m.tokens, m.usd / _MICROS) for m in models
            },
        )

    def _unleased(self, row: UsageRow) -> UsageRow:
        """``row`` less what this process holds on it unused: that budget is still available."""
        tokens, usd = self._leases.free(row.scope, row.period)
        return replace(
            row,
            tokens_reserved=max(0, row.tokens_reserved - tokens),
            usd_reserved=max(0, row.usd_reserved - usd),
        )

    def _check_request(self, estimate: Cost) -> None:
        checks: tuple[tuple[Unit, float | None, float], ...] = (
            ("tokens", self.limits.request_tokens, estimate.tokens),
            ("usd", self.limits.request_usd, estimate.usd),
        )
        for unit, limit, need in checks:
            if limit is not None and need > limit:
                raise BudgetExhausted(
                    f"Insufficient per-request budget ({format_amount(unit, limit)} allowed, "
                    f"need {format_amount(unit, need)})",
                    limit=limit,
                    observed=need,
                    scope="request",
                    unit=unit,
                    need=need,
                    remaining=limit,
                )

    def _scopes(
        self, now: datetime, *, run_id: str | None, workflow: str | None
    ) -> tuple[tuple[_Scope, ...], tuple[BudgetClaim, ...]]:
        """The scopes a call on ``now``'s UTC day claims, and their claims in lease order.

        Cached per day, run and workflow: every admission asks, and the answer only changes
        at midnight.
        """
        key = (now.date(), run_id, workflow)
        cached = self._scope_cache.get(key)
        if cached is None:
            if len(self._scope_cache) >= 64:
                self._scope_cache.clear()
            scopes = tuple(self._build_scopes(now, run_id=run_id, workflow=workflow))
            cached = self._scope_cache[key] = (scopes, tuple(sorted(s.claim for s in scopes)))
        return cached

    def _build_scopes(
        self, now: datetime, *, run_id: str | None, workflow: str | None
    ) -> list[_Scope]:
        limits = self.limits
        day, month = _day(now), f"month:{now:%Y-%m}"
        scopes = [
            _Scope(
                "Daily",
                BudgetClaim(
                    _agent(self.agent), day, limits.daily_tokens, _micros(limits.daily_usd)
                ),
                halts=True,
            ),
            _Scope(
                "Monthly",
                BudgetClaim(
                    _agent(self.agent), month, limits.monthly_tokens, _micros(limits.monthly_usd)
                ),
                halts=False,
            ),
            _Scope(
                "Fleet daily",
                BudgetClaim(
                    _FLEET, day, limits.fleet_daily_tokens, _micros(limits.fleet_daily_usd)
                ),
                halts=True,
            ),
        ]
        envelope = f"workflow:{workflow}" if workflow else f"run:{run_id}" if run_id else None
        if envelope is not None:
            label = "Workflow" if workflow else "Run"
            claim = BudgetClaim(
                envelope, "all", limits.envelope_tokens, _micros(limits.envelope_usd)
            )
            scopes.append(_Scope(label, claim, halts=False))
        return scopes

    @staticmethod
    def _refused_scope(scopes: tuple[_Scope, ...], shortfall: Shortfall) -> tuple[_Scope, UsageRow]:
        key = (shortfall.claim.scope, shortfall.claim.period)
        scope = next(s for s in scopes if (s.claim.scope, s.claim.period) == key)
        return scope, shortfall.usage

    async def _reclaim(self, now: datetime) -> int:
        self._next_reclaim = now + self._ttl / 4
        return await asyncio.to_thread(self._store.budget.reclaim, now)

    async def _commit(
        self,
        reservation: Reservation,
        actual: Cost,
        *,
        tokens_in: int,
        tokens_out: int,
        model: str | None,
    ) -> None:
        scopes = reservation._scopes
        now = self._clock.now()
        entry = LedgerEntry(
            at=now,
            agent=self.agent,
            model=model or reservation.model,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            tokens=actual.tokens,
            usd=actual.usd_micros,
            run_id=reservation.run_id,
            workflow=reservation.workflow,
            operation=reservation.operation,
            phase=reservation.phase,
        )
        estimate = reservation.estimate
        settlement = Settlement(
            hold_id=reservation.id,
            scopes=tuple((s.claim.scope, s.claim.period) for s in scopes),
            held_tokens=estimate.tokens,
            held_usd=estimate.usd_micros,
            entry=entry,
        )
        rows, expires_at = await self._settlements.settle(settlement)
        self._leases.settled(reservation._lease, estimate.tokens, estimate.usd_micros, expires_at)
        by_key = {(row.scope, row.period): row for row in rows}
        for scope in scopes:
            row = by_key[(scope.claim.scope, scope.claim.period)]
            self._report_remaining(scope, row)
            figures: tuple[tuple[Unit, int | None, int], ...] = (
                ("tokens", scope.claim.tokens_limit, row.tokens_used),
                ("usd", scope.claim.usd_limit, row.usd_used),
            )
            for unit, limit, used in figures:
                if limit is not None:
                    await self._check_thresholds(scope, unit, limit, used, now)

    def _report_remaining(self, scope: _Scope, row: UsageRow) -> None:
        if self._metrics is None:
            return
        name = scope.label.lower().replace(" ", "_")
        claim = scope.claim
        if claim.tokens_limit is not None:
            left = _remaining(claim.tokens_limit, row.tokens_used, row.tokens_reserved)
            self._metrics.budget_remaining.labels(scope=name, unit="tokens").set(left or 0)
        if claim.usd_limit is not None:
            left = _remaining(claim.usd_limit, row.usd_used, row.usd_reserved, scale=_MICROS)
            self._metrics.budget_remaining.labels(scope=name, unit="usd").set(left or 0)

    async def _check_thresholds(
        self, scope: _Scope, unit: Unit, limit: int, used: int, now: datetime
    ) -> None:
        scale = _MICROS if unit == "usd" else 1
        if used >= self.alert_ratio * limit and await self._mark(scope, f"alert:{unit}", now):
            alert = BudgetAlert(
                scope=scope.claim.scope,
                period=scope.claim.period,
                label=scope.label,
                unit=unit,
                used=used / scale,
                limit=limit / scale,
                ratio=self.alert_ratio,
            )
            await _call(self._on_alert, alert)
        if used >= limit and (scope.halts or unit == "usd"):
            reason = (
                f"{scope.label} budget exhausted ({format_amount(unit, used / scale)} of "
                f"{format_amount(unit, limit / scale)}{' tokens' if unit == 'tokens' else ''} "
                "used)"
            )
            await self._exhausted(scope, unit, reason, now)

    async def _exhausted(self, scope: _Scope, unit: Unit, reason: str, now: datetime) -> None:
        if await self._mark(scope, f"exhausted:{unit}", now):
            await _call(self._on_exhausted, reason)

    async def _mark(self, scope: _Scope, kind: str, now: datetime) -> bool:
        """Win the store's once-a-day mark for ``kind`` on ``scope``, or learn it is taken.

        Once the store has answered, the mark exists for the rest of the day, so this process
        remembers it and every later commit skips the write: past an alert threshold each
        commit would otherwise pay one more write transaction only to be told ``False``.
        """
        day = now.date().isoformat()
        if day != self._marks_day:
            self._marks_day, self._marked = day, set()
        key = (scope.claim.scope, scope.claim.period, kind)
        if key in self._marked:
            return False
        won = await asyncio.to_thread(
            self._store.budget.mark, scope.claim.scope, scope.claim.period, day, kind, now
        )
        self._marked.add(key)
        return won


def _refusal(scope: _Scope, usage: UsageRow, estimate: Cost) -> BudgetExhausted:
    """The refusal for ``estimate`` on ``scope`` given its row: exhausted or insufficient."""
    claim = scope.claim
    tokens_short = (
        claim.tokens_limit is not None
        and usage.tokens_used + usage.tokens_reserved + estimate.tokens > claim.tokens_limit
    )
    unit: Unit
    if tokens_short or claim.usd_limit is None:
        unit, scale = "tokens", 1
        limit, used, held, need = (
            claim.tokens_limit or 0,
            usage.tokens_used,
            usage.tokens_reserved,
            estimate.tokens,
        )
    else:
        unit, scale = "usd", _MICROS
        limit, used, held, need = (
            claim.usd_limit,
            usage.usd_used,
            usage.usd_reserved,
            estimate.usd_micros,
        )
    remaining = max(0, limit - used - held)
    noun = " tokens" if unit == "tokens" else ""
    if used >= limit:
        message = (
            f"{scope.label} budget exhausted ({format_amount(unit, used / scale)} of "
            f"{format_amount(unit, limit / scale)}{noun} used)"
        )
        observed = used
    else:
        which = "" if scope.label == "Daily" else f"{scope.label.lower()} "
        message = (
            f"Insufficient {which}budget ({format_amount(unit, remaining / scale)} remaining, "
            f"need {format_amount(unit, need / scale)})"
        )
        observed = used + held
    return BudgetExhausted(
        message,
        limit=limit / scale if unit == "usd" else limit,
        observed=observed / scale if unit == "usd" else observed,
        scope=f"{claim.scope}/{claim.period}",
        unit=unit,
        need=need / scale if unit == "usd" else need,
        remaining=remaining / scale if unit == "usd" else remaining,
        exhausted=used >= limit,
    )


async def _call(callback: Callback | None, argument: object) -> None:
    if callback is None:
        return
    result = callback(argument)
    if inspect.isawaitable(result):
        await result


def _agent(agent: str) -> str:
    return f"agent:{agent}"


def _day(now: datetime) -> str:
    return f"day:{now:%Y-%m-%d}"


def _micros(usd: float | None) -> int | None:
    return None if usd is None else round(usd * _MICROS)


def _remaining(limit: int | None, used: int, held: int, *, scale: int = 1) -> float | None:
    if limit is None:
        return None
    left = max(0, limit - used - held)
    return left / scale if scale != 1 else left
