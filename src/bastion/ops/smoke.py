"""`bastion smoke`: a short, bounded run against the configured exchange.

It answers "can this deployment trade right now?" before anyone lets it: reach the public API,
read the market, authenticate and read the account, then run the agent in dry-run (decide and
record, never send) for what is left of the time box. It never sends an order.

An exchange that is unreachable, refusing us or rate-limiting us is not a bug in our code: the
smoke says so on an OFFLINE line with the classified reason and reports SKIPPED, with its own exit
code, so a CI job or a deploy script can tell "exchange down" from "we are broken". Everything
runs under one deadline, so the smoke never outlives its time box, however the exchange fails.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from bastion.config import Settings
from bastion.errors import BastionError, ErrorCode
from bastion.events import Event, EventKind, Journal
from bastion.exchange.base import Exchange
from bastion.sensitive import mask_url

__all__ = ["EXIT_CODES", "OFFLINE_CODES", "SmokeOutcome", "SmokeReport", "run_smoke"]


class RunResult(Protocol):
    """What the smoke reads of a finished run."""

    @property
    def steps(self) -> int: ...


class DryRun(Protocol):
    """What the smoke needs of a run (the top floor's ``Runner`` is one)."""

    exchange: Exchange
    journal: Journal

    async def run(
        self, *, max_steps: int | None = None, duration_seconds: float | None = None
    ) -> RunResult: ...

    async def aclose(self) -> None: ...


class SmokeOutcome(StrEnum):
    """The verdict, as printed and as mapped to an exit code."""

    PASS = "PASS"  # noqa: S105  (an outcome, not a password)
    WARN = "WARN"
    SKIPPED = "SKIPPED"
    FAIL = "FAIL"


EXIT_CODES: dict[SmokeOutcome, int] = {
    SmokeOutcome.PASS: 0,
    SmokeOutcome.FAIL: 1,
    SmokeOutcome.SKIPPED: 3,
    SmokeOutcome.WARN: 4,
}
"""Exit codes of ``bastion smoke`` (2 is a configuration error, as for every command)."""

OFFLINE_CODES = frozenset(
    {
        ErrorCode.NETWORK,
        ErrorCode.TIMEOUT,
        ErrorCode.FORBIDDEN,
        ErrorCode.RATE_LIMIT,
        ErrorCode.CIRCUIT_OPEN,
        ErrorCode.SERVER,
    }
)
"""Failures that mean "the exchange cannot be used from here now", not "Bastion is broken"."""


@dataclass(frozen=True, slots=True)
class SmokeCheck:
    name: str
    ok: bool
    detail: str
    latency_ms: float


@dataclass(slots=True)
class SmokeReport:
    """What the smoke found; ``offline_reason`` is set when the outcome is SKIPPED."""

    outcome: SmokeOutcome
    exchange: str
    checks: list[SmokeCheck] = field(default_factory=list)
    offline_reason: str | None = None
    steps: int = 0
    step_failures: int = 0
    elapsed_s: float = 0.0

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.outcome]

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome.value,
            "exit_code": self.exit_code,
            "exchange": self.exchange,
            "offline_reason": self.offline_reason,
            "steps": self.steps,
            "step_failures": self.step_failures,
            "elapsed_s": round(self.elapsed_s, 3),
            "checks": [
                {"name": c.name, "ok": c.ok, "detail": c.detail, "latency_ms": c.latency_ms}
                for c in self.checks
            ],
        }


async def _timed(report: SmokeReport, name: str, probe: Callable[[], Awaitable[str]]) -> None:
    started = time.perf_counter()
    try:
        detail = await probe()
    except BastionError as exc:
        report.checks.append(SmokeCheck(name, False, str(exc), _ms_since(started)))
        raise
    report.checks.append(SmokeCheck(name, True, detail, _ms_since(started)))


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


async def _preflight(report: SmokeReport, exchange: Exchange, currency: str) -> None:
    async def public() -> str:
        return f"exchange time {await exchange.get_time()}"

    async def market() -> str:
        index = await exchange.get_index_price(currency)
        listed = await exchange.get_instruments(currency)
        return f"{currency} index {index:,.2f}; {len(listed)} instruments"

    async def private() -> str:
        account = await exchange.get_account_summary(currency)
        return f"authenticated; equity {account.equity:g} {currency}"

    await _timed(report, "public API", public)
    await _timed(report, "market data", market)
    await _timed(report, "private API", private)


async def run_smoke(
    settings: Settings,
    dry_run: Callable[[Settings], DryRun],
    *,
    duration_seconds: float = 30.0,
    max_steps: int | None = None,
) -> SmokeReport:
    """Run the smoke within ``duration_seconds``; never raises for exchange conditions.

    ``dry_run`` builds the run from the smoke's settings (dry run, a deadline inside the time
    box); the caller (the CLI) passes the composition root, which lives above this floor.
    """
    # Retries must give up inside the time box, so the smoke can still say *why* it failed.
    deadline = min(settings.call_deadline_seconds, duration_seconds / 2)
    dry = settings.model_copy(update={"dry_run": True, "call_deadline_seconds": deadline})
    runner = dry_run(dry)
    report = SmokeReport(  # the URL is printed and served: its password and keys masked
        SmokeOutcome.FAIL, mask_url(settings.resolved_exchange_url) or "in-process paper exchange"
    )
    started = time.perf_counter()
    try:
        async with asyncio.timeout(duration_seconds):
            await _preflight(report, runner.exchange, settings.currency)
            remaining = duration_seconds - (time.perf_counter() - started)
            await _dry_run(report, runner, remaining * 0.9, max_steps)
    except TimeoutError:
        report.outcome = SmokeOutcome.SKIPPED
        report.offline_reason = (
            f"TIMEOUT: the exchange did not answer within the {duration_seconds:g} s smoke"
        )
    except BastionError as exc:
        offline = exc.code in OFFLINE_CODES
        report.outcome = SmokeOutcome.SKIPPED if offline else SmokeOutcome.FAIL
        report.offline_reason = str(exc) if offline else None
    finally:
        report.elapsed_s = time.perf_counter() - started
        await runner.aclose()
    return report


async def _dry_run(
    report: SmokeReport, runner: DryRun, seconds: float, max_steps: int | None
) -> None:
    failures: list[Event] = []

    def count_failures(event: Event) -> None:
        if event.kind in (EventKind.STEP_FAILED, EventKind.STEP_TIMEOUT):
            failures.append(event)

    runner.journal.subscribe(count_failures)
    summary = await runner.run(duration_seconds=max(0.0, seconds), max_steps=max_steps)
    report.steps = summary.steps
    report.step_failures = len(failures)
    report.outcome = SmokeOutcome.WARN if failures else SmokeOutcome.PASS
    detail = f"{summary.steps} dry-run steps, {len(failures)} failed; no order was sent"
    report.checks.append(SmokeCheck("agent loop (dry run)", not failures, detail, 0.0))
