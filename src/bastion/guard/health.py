"""System Health: a registry of async checks, run together, each under its own timeout.

A check is an ``async`` callable that answers a :class:`CheckResult` or a ``(status, detail)``
pair, or raises. :class:`HealthChecker` runs every registered check concurrently; the report's
overall status is the worst of them and its ``summary`` is one line naming each non-OK check and
why. A run never raises because of a check and never outlives the longest check timeout by more
than a short grace: a check that overstays is abandoned and reported as ``TIMEOUT``.

Failures are described through the error taxonomy, not as exception dumps: a
:class:`~bastion.errors.BastionError` becomes ``Deribit public API FORBIDDEN (HTTP 403)``,
``Deribit public API NETWORK: timeout after 5 s`` or ``Deribit public API INSUFFICIENT_FUNDS
(10009)``, with ``, retry after 2 s`` when the far side said so (:func:`describe_error`, from
the error's fields); any other exception becomes its class name and message. How severe a
failure is depends on the environment: network, timeout, forbidden, rate-limit, server and
open-circuit failures are passing weather in dev, test and paper (WARN) but a reason not to
trade in testnet and live (FAIL); everything else is FAIL everywhere.
``severity_overrides`` re-grade a code per check (``{"exchange_public": {"rate_limit":
"FAIL"}}``); they apply to any result that carries that code.

Every run updates the cache the runtime guard and the console read
(:meth:`HealthChecker.get_cached_health_status`) and, given a store, is recorded there and
pruned to ``retention`` runs, so history survives restarts. The built-in checks (config,
exchange, LLM, state builder, store, disk, clock skew) live in
:mod:`bastion.guard.health_checks`; its ``builtin_checks`` registers them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal

from bastion.clock import Clock
from bastion.errors import (
    BastionError,
    ErrorCode,
    UsageError,
    code_for_exception,
    code_for_http_status,
)

if TYPE_CHECKING:
    from bastion.store import Store
    from bastion.store.health import HealthRecord

__all__ = [
    "CachedHealthStatus",
    "Check",
    "CheckFailed",
    "CheckResult",
    "Environment",
    "HealthChecker",
    "HealthReport",
    "HealthStatus",
    "describe_error",
    "severity_for",
    "summarize",
    "worst",
]

_log = logging.getLogger(__name__)

Environment = Literal["dev", "test", "paper", "testnet", "live"]

LENIENT_ENVIRONMENTS = frozenset({"dev", "test", "paper"})
"""Where dependency weather (``TRANSIENT_CODES``) is a WARN rather than a FAIL."""

TRANSIENT_CODES = frozenset(
    {
        ErrorCode.NETWORK.value,
        ErrorCode.TIMEOUT.value,
        ErrorCode.FORBIDDEN.value,
        ErrorCode.RATE_LIMIT.value,
        ErrorCode.SERVER.value,
        ErrorCode.CIRCUIT_OPEN.value,
    }
)
"""Failure codes that say a dependency is unreachable or unwilling right now, not that we are
misconfigured."""

_GRACE_SECONDS = 0.5  # how long a run waits past the longest timeout for checks to wind up
_MAX_DETAIL = 300
_MAX_REASON = 80
# Codes that explain a failure on their own in the summary; for the rest the detail does.
_CODE_REASONS = frozenset(c.value for c in ErrorCode) - {
    ErrorCode.UNKNOWN.value,
    ErrorCode.CONFIG.value,
}


class HealthStatus(StrEnum):
    """How healthy one check, or the whole system, is. The worst status wins."""

    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"

    @property
    def rank(self) -> int:
        """0 for OK, 1 for WARN, 2 for FAIL: higher is worse (also the CLI's exit code)."""
        return _RANKS[self]


_RANKS = {HealthStatus.OK: 0, HealthStatus.WARN: 1, HealthStatus.FAIL: 2}


def worst(statuses: Iterable[HealthStatus]) -> HealthStatus:
    """The worst of ``statuses``; OK when there are none."""
    return max(statuses, key=lambda s: s.rank, default=HealthStatus.OK)


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check's verdict. ``code`` names the failure (an ``ErrorCode`` value or the check's
    own, like ``clock_skew``); ``latency_ms`` is wall time spent in the check."""

    name: str
    status: HealthStatus
    detail: str
    code: str | None = None
    latency_ms: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The result as the API, the store and ``bastion health --json`` show it."""
        return {
            "name": self.name,
            "status": self.status.value,
            "detail": self.detail,
            "code": self.code,
            "latency_ms": round(self.latency_ms, 1),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CheckResult:
        """Read back what :meth:`to_dict` wrote."""
        code = data.get("code")
        return cls(
            name=str(data["name"]),
            status=HealthStatus(data["status"]),
            detail=str(data.get("detail", "")),
            code=None if code is None else str(code),
            latency_ms=float(data.get("latency_ms", 0.0)),
        )


@dataclass(frozen=True, slots=True)
class HealthReport:
    """One run of the checks: overall status (the worst), when, every result, one-line summary."""

    overall_status: HealthStatus
    run_at: datetime
    checks: tuple[CheckResult, ...]
    summary: str

    def to_dict(self) -> dict[str, Any]:
        """The shape of ``POST /api/agent_healthcheck`` (less the paused flag the API adds)."""
        return {
            "last_run_at": self.run_at.isoformat(),
            "overall_status": self.overall_status.value,
            "summary": self.summary,
            "checks": [check.to_dict() for check in self.checks],
        }

    def check(self, name: str) -> CheckResult | None:
        """The result of the check called ``name``, if it ran."""
        return next((c for c in self.checks if c.name == name), None)

    @classmethod
    def from_record(cls, record: HealthRecord) -> HealthReport:
        """A report as the store kept it."""
        return cls(
            overall_status=HealthStatus(record.overall_status),
            run_at=record.run_at,
            checks=tuple(CheckResult.from_dict(c) for c in record.checks),
            summary=record.summary,
        )


@dataclass(frozen=True, slots=True)
class CachedHealthStatus:
    """The last run as the runtime guard and the console see it; all empty before the first."""

    overall_status: HealthStatus | None = None
    last_run_at: datetime | None = None
    details: tuple[CheckResult, ...] = ()
    summary: str | None = None

    @classmethod
    def from_report(cls, report: HealthReport) -> CachedHealthStatus:
        return cls(report.overall_status, report.run_at, report.checks, report.summary)

    def to_dict(self) -> dict[str, Any]:
        """Same keys as :meth:`HealthReport.to_dict`, with nulls before the first run."""
        return {
            "last_run_at": None if self.last_run_at is None else self.last_run_at.isoformat(),
            "overall_status": None if self.overall_status is None else self.overall_status.value,
            "summary": self.summary,
            "checks": [check.to_dict() for check in self.details],
        }


class CheckFailed(BastionError):
    """Raised by a check to report a classified failure with its own wording.

    ``str()`` is the detail shown as is (``state builder failed: Deribit public API FORBIDDEN
    (HTTP 403)``); ``code`` grades it like any other failure (environment, then overrides).
    """


Check = Callable[[], Awaitable["CheckResult | tuple[HealthStatus | str, str]"]]
"""What :meth:`HealthChecker.register` takes: an async callable with no arguments."""


def severity_for(code: str | None, environment: str) -> HealthStatus:
    """How bad a failure with ``code`` is in ``environment``, before per-check overrides.

    Unknown environments are treated as strict: a typo must not soften a live gate.
    """
    if code in TRANSIENT_CODES and environment in LENIENT_ENVIRONMENTS:
        return HealthStatus.WARN
    return HealthStatus.FAIL


def _dependency_label(dependency: str | None) -> str:
    """``"deribit public/ticker"`` → ``"Deribit public API"``; other names as they are."""
    if not dependency:
        return ""
    name, _, method = dependency.partition(" ")
    if not method or "/" not in method:
        return dependency
    private = method.startswith("private/") or method == "public/auth"
    return f"{name[:1].upper()}{name[1:]} {'private' if private else 'public'} API"


def describe_error(error: BastionError) -> str:
    """A classified failure in one short line, from its fields rather than its message text.

    ``<dependency> <CODE> (<source>)[, retry after <n> s]``, where the source is the venue's
    own error code when it says more than the HTTP status (the status alone would classify
    differently, or there is none), else ``HTTP <status>``, else the class of the foreign
    exception behind it. A timeout of ours reads ``<dependency> NETWORK: timeout after <n> s``
    (its ``timeout``). An error without a dependency, or with none of these fields, is
    ``<CODE>: <message>``: its message is then all there is to say.
    """
    code = error.code
    where = _dependency_label(error.dependency)
    source = _source(error)
    if not where or (source is None and error.timeout is None and error.retry_after is None):
        return _one_line(f"{code.name}: {error.message}")
    if code is ErrorCode.TIMEOUT and error.http_status is None:
        text = "NETWORK: timeout"
        if error.timeout is not None:
            text += f" after {error.timeout:.3g} s"
        elif source is not None:
            text += f" ({source})"
    else:
        text = code.name if source is None else f"{code.name} ({source})"
    if error.retry_after is not None:
        text += f", retry after {error.retry_after:g} s"
    return _one_line(f"{where} {text}")


def _source(error: BastionError) -> str | None:
    """What answered with the failure: the venue's code, the HTTP status, or the exception."""
    status, venue = error.http_status, error.exchange_code
    if venue is not None and (status is None or code_for_http_status(status) is not error.code):
        return str(venue)
    if status is not None:
        return f"HTTP {status}"
    if error.__cause__ is not None:
        return type(error.__cause__).__name__
    return None


def _one_line(text: str, limit: int = _MAX_DETAIL) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _reason(result: CheckResult) -> str:
    if result.code in _CODE_REASONS:
        return result.code
    return _one_line(result.detail, _MAX_REASON) or (result.code or result.status.value)


def summarize(results: Sequence[CheckResult], titles: Mapping[str, str] | None = None) -> str:
    """One line: each non-OK check with its reason, worst first, then how many passed.

    ``Deribit public WARN (rate_limit); LLM WARN (LLM keys missing); 6 other checks OK``. No
    leading overall word: callers print the status beside it (``System Health FAIL: <summary>``).
    """
    titles = titles or {}
    if not results:
        return "no checks registered"
    bad = sorted(
        (r for r in results if r.status is not HealthStatus.OK), key=lambda r: -r.status.rank
    )
    if not bad:
        return f"all {len(results)} checks OK" if len(results) > 1 else "1 check OK"
    parts = [f"{titles.get(r.name, r.name)} {r.status.value} ({_reason(r)})" for r in bad]
    passed = len(results) - len(bad)
    if passed:
        parts.append(f"{passed} other check{'s' if passed > 1 else ''} OK")
    return "; ".join(parts)


@dataclass(frozen=True, slots=True)
class _Registered:
    name: str
    check: Check
    lightweight: bool
    timeout: float
    title: str


@dataclass(slots=True)
class _Stragglers:
    """Checks that ignored cancellation; held so they are not garbage-collected mid-flight."""

    tasks: set[asyncio.Task[CheckResult]] = field(default_factory=set)

    def keep(self, task: asyncio.Task[CheckResult]) -> None:
        self.tasks.add(task)
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[CheckResult]) -> None:
        self.tasks.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved, so asyncio does not log it as never retrieved


class HealthChecker:
    """The registry of checks, the runner, the cache and the history.

    ``environment`` (``dev``, ``test``, ``paper``, ``testnet``, ``live``; usually
    ``settings.mode``) sets how severe dependency failures are. ``check_timeout`` bounds each
    check unless it was registered with its own. With a ``store`` every run is recorded and the
    history pruned to ``retention`` runs; without one, the last ``retention`` runs are kept in
    memory. ``redact`` scrubs secrets from every detail before it is cached, stored or served.
    """

    def __init__(
        self,
        *,
        clock: Clock,
        environment: Environment | str,
        check_timeout: float = 5.0,
        severity_overrides: Mapping[str, Mapping[str, HealthStatus | str]] | None = None,
        store: Store | None = None,
        retention: int = 1000,
        redact: Callable[[str], str] | None = None,
    ) -> None:
        if check_timeout <= 0:
            raise UsageError(f"check_timeout must be > 0, got {check_timeout}")
        if retention < 1:
            raise UsageError(f"retention must be >= 1, got {retention}")
        self.clock = clock
        self.environment = environment
        self.check_timeout = check_timeout
        self.retention = retention
        self._overrides = {
            name: {code: HealthStatus(status) for code, status in by_code.items()}
            for name, by_code in (severity_overrides or {}).items()
        }
        self._store = store
        self._redact = redact
        self._checks: dict[str, _Registered] = {}
        self._cached = CachedHealthStatus()
        self._recent: deque[HealthReport] = deque(maxlen=retention)
        self._stragglers = _Stragglers()

    # -- registry -------------------------------------------------------------------------
    def register(
        self,
        name: str,
        check: Check,
        *,
        lightweight: bool = True,
        timeout: float | None = None,
        title: str | None = None,
    ) -> None:
        """Add a check. ``lightweight`` ones also run in the runtime's periodic re-checks;
        ``title`` is how the summary names it (default: ``name``)."""
        if not name or not name.strip():
            raise UsageError("a health check needs a name")
        if name in self._checks:
            raise UsageError(f"a health check called {name!r} is already registered")
        if timeout is not None and timeout <= 0:
            raise UsageError(f"timeout of check {name!r} must be > 0, got {timeout}")
        self._checks[name] = _Registered(
            name, check, lightweight, timeout or self.check_timeout, title or name
        )

    @property
    def names(self) -> tuple[str, ...]:
        """Registered checks, in registration order."""
        return tuple(self._checks)

    # -- running --------------------------------------------------------------------------
    async def run(self, *, lightweight_only: bool = False) -> HealthReport:
        """Run the checks concurrently and return the report; cache and store it.

        Never raises because of a check, and returns within the longest check timeout plus a
        short grace even when every check hangs. Cancelling ``run`` cancels its checks.
        """
        run_at = self.clock.now()
        chosen = [c for c in self._checks.values() if c.lightweight or not lightweight_only]
        results = await self._run_all(chosen)
        titles = {c.name: c.title for c in chosen}
        report = HealthReport(
            worst(r.status for r in results), run_at, tuple(results), summarize(results, titles)
        )
        await self._remember(report)
        return report

    async def run_and_cache_healthcheck(self, *, lightweight_only: bool = False) -> HealthReport:
        """Run the checks and make the result the cached status (the name the API uses)."""
        return await self.run(lightweight_only=lightweight_only)

    def get_cached_health_status(self) -> CachedHealthStatus:
        """The last run's status without running anything; empty before the first run."""
        return self._cached

    def history(self, limit: int = 50) -> list[HealthReport]:
        """Up to ``limit`` past runs, newest first: from the store, or kept in memory."""
        if limit < 1:
            raise UsageError(f"limit must be >= 1, got {limit}")
        if self._store is None:
            return list(self._recent)[:limit]
        return [HealthReport.from_record(r) for r in self._store.health.recent(limit)]

    async def _run_all(self, chosen: list[_Registered]) -> list[CheckResult]:
        if not chosen:
            return []
        tasks = [asyncio.create_task(self._run_one(c), name=f"health:{c.name}") for c in chosen]
        started = time.perf_counter()
        try:
            _, pending = await asyncio.wait(
                tasks, timeout=max(c.timeout for c in chosen) + _GRACE_SECONDS
            )
        except asyncio.CancelledError:
            for task in tasks:
                task.cancel()
            raise
        for task in pending:  # a check that swallowed its cancellation: abandon it
            task.cancel()
            self._stragglers.keep(task)
        elapsed_ms = (time.perf_counter() - started) * 1000
        results = []
        for check, task in zip(chosen, tasks, strict=True):
            if task in pending:
                results.append(self._timed_out(check, elapsed_ms))
            elif task.cancelled():
                results.append(
                    self._finish(check, HealthStatus.FAIL, "check was cancelled", None, elapsed_ms)
                )
            else:
                results.append(task.result())
        return results

    async def _run_one(self, check: _Registered) -> CheckResult:
        started = time.perf_counter()
        expiry = asyncio.timeout(check.timeout)
        try:
            async with expiry:
                outcome = await check.check()
        except Exception as exc:
            latency = (time.perf_counter() - started) * 1000
            if isinstance(exc, TimeoutError) and expiry.expired():
                return self._timed_out(check, latency)
            return self._from_exception(check, exc, latency)
        return self._from_outcome(check, outcome, (time.perf_counter() - started) * 1000)

    def _timed_out(self, check: _Registered, latency_ms: float) -> CheckResult:
        code = ErrorCode.TIMEOUT.value
        detail = f"TIMEOUT: no answer within {check.timeout:g} s"
        return self._finish(check, severity_for(code, self.environment), detail, code, latency_ms)

    def _from_exception(self, check: _Registered, exc: Exception, latency_ms: float) -> CheckResult:
        if isinstance(exc, BastionError):
            code = exc.code.value
            detail = exc.message if isinstance(exc, CheckFailed) else describe_error(exc)
        else:
            code = code_for_exception(type(exc)).value
            message = str(exc)
            detail = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
        return self._finish(check, severity_for(code, self.environment), detail, code, latency_ms)

    def _from_outcome(self, check: _Registered, outcome: object, latency_ms: float) -> CheckResult:
        if isinstance(outcome, CheckResult):
            return self._finish(check, outcome.status, outcome.detail, outcome.code, latency_ms)
        if isinstance(outcome, tuple) and len(outcome) == 2:
            status, detail = outcome
            try:
                return self._finish(check, HealthStatus(status), str(detail), None, latency_ms)
            except ValueError:
                pass
        return self._finish(
            check,
            HealthStatus.FAIL,
            f"check returned {type(outcome).__name__}; expected a CheckResult or "
            "(status, detail) with status OK, WARN or FAIL",
            None,
            latency_ms,
        )

    def _finish(
        self,
        check: _Registered,
        status: HealthStatus,
        detail: str,
        code: str | None,
        latency_ms: float,
    ) -> CheckResult:
        if code is not None:
            status = self._overrides.get(check.name, {}).get(code, status)
        if self._redact is not None:
            detail = self._redact(detail)
        return CheckResult(check.name, status, _one_line(detail), code, latency_ms)

    # -- cache and history ----------------------------------------------------------------
    async def _remember(self, report: HealthReport) -> None:
        last = self._cached.last_run_at
        if last is None or report.run_at >= last:  # a slower, older run never overwrites
            self._cached = CachedHealthStatus.from_report(report)
        if self._store is None:
            self._recent.appendleft(report)
            return
        try:
            await asyncio.wait_for(asyncio.to_thread(self._persist, report), self.check_timeout)
        except Exception as exc:  # the report stands; history misses one run
            _log.warning("health run not stored: %s: %s", type(exc).__name__, exc)

    def _persist(self, report: HealthReport) -> None:
        assert self._store is not None
        self._store.health.record(report)
        self._store.health.prune(self.retention)
