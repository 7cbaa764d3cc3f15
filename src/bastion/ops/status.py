"""The status report: one answer to "is it trading, and if not, why", wherever it is asked.

The console's ``/api/status`` and ``bastion status`` both return :meth:`StatusService.report`,
so they cannot disagree. The running process reports its own :class:`~bastion.status.RuntimeStatus`;
another process (``bastion status``) passes what the running console answered, or nothing when
no process holds the run lock. Either way the service adds what any process can read for itself:
the kill-switch flag, the last run and whether it crashed, the approvals waiting and the budget.

A run the store still calls ``running`` while nobody holds the data directory's run lock is
reported as ``crashed``: that is what a SIGKILL or a power cut leaves behind, and the next
``bastion run`` records it so.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from bastion.clock import Clock
from bastion.guard.budget import BudgetUsage
from bastion.runtime.lock import is_held, read_holder
from bastion.status import HaltState
from bastion.store import RunRecord, RunStatus, Store

__all__ = ["StatusService", "firing_alerts", "run_progress", "run_summary"]

Redact = Callable[[Any], Any]


def run_summary(run: RunRecord) -> dict[str, Any]:
    """A stored run as the report shows it."""
    last_step_at = (run.detail or {}).get("last_step_at")
    return {
        "run_id": run.run_id,
        "status": run.status.value,
        "steps": run.steps,
        "started_at": run.started_at.isoformat(),
        "ended_at": run.ended_at.isoformat() if run.ended_at else None,
        "last_step_at": last_step_at,
    }


class StatusService:
    """Assembles the status report from the parts one process can see."""

    def __init__(
        self,
        *,
        data_dir: Path,
        clock: Clock,
        halt_state: Callable[[], HaltState | None],
        store: Store | None = None,
        budget: Callable[[], BudgetUsage] | None = None,
        breakers: Callable[[], list[dict[str, Any]]] | None = None,
        notifications: Callable[[], list[dict[str, Any]]] | None = None,
        redact: Redact | None = None,
        auto_resume: bool = False,
    ) -> None:
        """``auto_resume`` is ``BASTION_HALT_AUTO_RESUME``: whether a halt's expiry lifts it
        (reported beside the expiry, so nobody waits for a lapse that needs them).
        ``notifications`` is the alert notifier's per-target rows (masked URLs, last success
        and failure): the report's ``notifications``, empty without webhooks."""
        self._data_dir = data_dir
        self._auto_resume = auto_resume
        self._clock = clock
        self._halt_state = halt_state
        self._store = store
        self._budget = budget
        self._breakers = breakers
        self._notifications = notifications
        self._redact = redact or (lambda value: value)

    def report(self, runtime: Mapping[str, Any] | None) -> dict[str, Any]:
        """The report: ``runtime`` is the live run's status (None when no run is live)."""
        data: dict[str, Any] = dict(runtime) if runtime else {"state": "not running"}
        self._add_halt(data)
        if self._breakers is not None:
            data["breakers"] = self._breakers()
        data.setdefault("breakers", [])
        if self._notifications is not None:
            data["notifications"] = self._notifications()
        data.setdefault("notifications", [])
        if self._budget is not None:
            data["budget"] = self._budget().to_dict()
        data.setdefault("budget", None)
        self._add_store(data)
        result: dict[str, Any] = self._redact(data)
        return result

    def _add_halt(self, data: dict[str, Any]) -> None:
        state = self._halt_state()
        data["halted"] = state is not None
        data["trading_state"] = state.state.value if state else "active"
        data["halt_until"] = state.until if state else None
        data["halt_auto_resume"] = self._auto_resume
        data["halt_reason"] = state.reason if state else None
        data["halt"] = state.to_dict() if state else None
        if state is not None and data["state"] in {"running", "halting", "halted"}:
            # The flag may be newer than the loop's last look, and the system is only halted
            # once its resting orders are confirmed cancelled: until then, halting.
            data["state"] = "halted" if state.enforced else "halting"

    def _add_store(self, data: dict[str, Any]) -> None:
        if self._store is None:
            data.setdefault("last_run", None)
            data.setdefault("fleet_halt", None)
            data["store"] = "unavailable"
            return
        last = self._last_run(self._store)
        fleet = self._store.halts.active(scope="fleet")
        data["fleet_halt"] = (
            None
            if fleet is None
            else {"reason": fleet.reason, "who": fleet.who, "when": fleet.tripped_at.isoformat()}
        )
        data["approvals_pending"] = self._store.approvals.count_pending(now=self._clock.now())
        if last is None:
            data["last_run"] = None
            return
        summary = run_summary(last)
        if last.status is RunStatus.RUNNING and self._crashed(last.run_id):
            summary["status"] = RunStatus.CRASHED.value
            summary["note"] = "no process holds the data directory's run lock"
        data["last_run"] = summary

    def _last_run(self, store: Store) -> RunRecord | None:
        """This data directory's last run (``run.json``), else the store's newest.

        On a store shared by a fleet the newest run may be another host's; the one this
        directory's lock last named is what a person asking here means.
        """
        holder = read_holder(self._data_dir)
        if holder is not None:
            run = store.runs.get(holder.run_id)
            if run is not None:
                return run
        return store.runs.latest()

    def _crashed(self, run_id: str) -> bool:
        """True when this data directory's last run is ``run_id`` and nobody holds the lock."""
        holder = read_holder(self._data_dir)
        return holder is not None and holder.run_id == run_id and not is_held(self._data_dir)


def run_progress(report: Mapping[str, Any]) -> tuple[int, int] | None:
    """``(steps done, max_steps)`` of a bounded live run, None for an unbounded or absent one."""
    bound, done = report.get("max_steps"), report.get("last_step")
    if not isinstance(bound, int) or bound <= 0 or not isinstance(done, int):
        return None
    return min(done, bound), bound


def firing_alerts(report: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The report's firing alerts (``Alert.to_payload()`` shapes), an empty list when it has none.

    The alert evaluators add ``alerts`` to the report: a list of payloads, or a mapping with a
    ``firing`` list; anything else reads as none, so the status never fails over an alert.
    """
    alerts = report.get("alerts")
    if isinstance(alerts, Mapping):
        alerts = alerts.get("firing")
    if not isinstance(alerts, list):
        return []
    return [a for a in alerts if isinstance(a, Mapping) and a.get("status", "firing") == "firing"]
