"""The runtime health guard: do not start, or keep trading, while System Health is FAIL.

Start-up runs every check: FAIL aborts before the first step (nothing is traded, the run is
recorded as failed), WARN starts with a warning. While running, the loop asks the guard at the
top of each step; every ``recheck_interval`` seconds of the injected clock it re-runs the
*lightweight* checks and records a :class:`~bastion.guard.limits.HealthReading` in the loop's
ledger. The health trigger (:class:`~bastion.guard.limits.HealthTrigger`) turns an OK/WARN →
FAIL reading into the one halt path, reason ``health_fail``, at the same step's limits check
when ``auto_kill`` is on. The guard itself never sends an order nor trips anything at runtime.

``paused`` (``agent_paused_due_to_health`` in the API) is derived from the halt flag, so it is
the same in every process that looks and clears itself when a person resumes.
"""

from __future__ import annotations

import logging

from bastion.clock import Clock
from bastion.errors import BastionError, ErrorCode
from bastion.guard.halt import Halt
from bastion.guard.health import HealthChecker, HealthReport, HealthStatus
from bastion.guard.limits import HaltReason, HealthReading, Ledger

__all__ = ["HEALTH_FAIL_REASON", "HealthAborted", "HealthGuard"]

_log = logging.getLogger(__name__)

HEALTH_FAIL_REASON = HaltReason.HEALTH_FAIL
"""The halt reason of a health FAIL (kept under this name for the CLI and the API)."""


class HealthAborted(BastionError):
    """Start-up found System Health FAIL; the run did not start."""

    default_code = ErrorCode.HALTED


class HealthGuard:
    """Start-up gate and runtime re-checks around a :class:`HealthChecker`."""

    def __init__(
        self,
        *,
        checker: HealthChecker,
        halt: Halt,
        clock: Clock,
        recheck_interval: float = 300.0,
        auto_kill: bool = True,
    ) -> None:
        self.checker = checker
        self._halt = halt
        self._clock = clock
        self._interval = recheck_interval
        self._auto_kill = auto_kill
        self._last_status: HealthStatus | None = None
        self._last_at: float | None = None

    @property
    def paused(self) -> bool:
        """True while the active halt is the health guard's own."""
        state = self._halt.state()
        return state is not None and state.reason == HEALTH_FAIL_REASON

    async def startup(self) -> HealthReport:
        """Run every check; raise :class:`HealthAborted` on FAIL, warn on WARN."""
        report = await self.checker.run_and_cache_healthcheck()
        self._remember(report)
        if report.overall_status is HealthStatus.FAIL:
            _log.error("AGENT ABORTED – System Health FAIL: %s", report.summary)
            raise HealthAborted(
                f"AGENT ABORTED – System Health FAIL: {report.summary}",
                observed=report.summary,
            )
        if report.overall_status is HealthStatus.WARN:
            _log.warning("Starting agent with WARN health status: %s", report.summary)
        return report

    async def maybe_recheck(self, ledger: Ledger) -> HealthReport | None:
        """Re-run the lightweight checks when due and record the reading in ``ledger``.

        Returns the report, or None when no re-check was due. A reading that halts (OK/WARN →
        FAIL under ``auto_kill``) is announced here; the loop's limits check trips it.
        """
        now = self._clock.monotonic()
        if self._last_at is not None and now - self._last_at < self._interval:
            return None
        previous = self._last_status
        report = await self.checker.run_and_cache_healthcheck(lightweight_only=True)
        self._remember(report)
        reading = HealthReading(
            status=report.overall_status,
            previous=previous,
            summary=report.summary,
            report=report.to_dict(),
            auto_kill=self._auto_kill,
        )
        ledger.record_health(reading)
        if reading.halts:
            _log.error("AGENT STOPPED – System Health FAIL during runtime. %s", report.summary)
        return report

    def _remember(self, report: HealthReport) -> None:
        self._last_status = report.overall_status
        self._last_at = self._clock.monotonic()
