"""The operator agent: alerts in, analysed, actions proposed, approved, run, validated.

One notification from Alertmanager becomes, per alert::

    store (one row per fingerprint + startsAt)  ->  analyse (rules; the LLM when configured,
    with Prometheus' series as context)  ->  propose the analysis' actions from the fixed set
    ->  safety mode: a healthcheck runs at once, every other action waits in the approvals
        queue (kind ``operator_action``)  ->  approved: run it, recorded with who approved
    ->  validate: did the alert resolve and health return OK within the window

The intake only stores and schedules, so Alertmanager's request returns at once. A poll
(:meth:`Operator.tick`, every ``poll_seconds`` while started) reads the decisions people made
on the queued actions, runs the approved ones, closes the rejected and expired ones (never
run), and judges the executed ones (:mod:`bastion.ops.operator.validation`). Every status
change is one conditional update in the store, so an action runs at most once even with two
operators on one database.

``stop`` pauses the agent: alerts are still stored, nothing is analysed or run; ``start``
analyses what arrived meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bastion.clock import Clock
from bastion.errors import BastionError, UsageError
from bastion.guard.approvals import Approvals, ApprovalStatus
from bastion.ops.operator.actions import Effects, params_for
from bastion.ops.operator.analysis import Analysed, Analysis
from bastion.ops.operator.analyst import LLMAnalyst
from bastion.ops.operator.payload import AlertmanagerAlert, AlertmanagerWebhook
from bastion.ops.operator.prometheus import PrometheusContext
from bastion.ops.operator.rules import analyse_by_rules
from bastion.ops.operator.validation import judge
from bastion.store import Store
from bastion.store.alerts import ActionRecord, AlertRecord, AnalysisRecord

__all__ = ["APPROVAL_KIND", "Operator", "OperatorConfig"]

APPROVAL_KIND = "operator_action"
"""The approvals-queue kind of an action waiting for a person."""

_log = logging.getLogger(__name__)
_UNASKED_HEALTHCHECK = "operator (a healthcheck runs unasked)"
_SAFETY_OFF = "operator (safety mode off)"


@dataclass(frozen=True, slots=True)
class OperatorConfig:
    """How the operator behaves (the ``operator_*`` settings)."""

    safety_mode: bool = True
    validation_minutes: float = 10.0
    poll_seconds: float = 2.0
    """0: no background poll; the caller calls :meth:`Operator.tick` (tests)."""
    silence_minutes: float = 60.0
    approval_ttl_seconds: float | None = None


class Operator:
    """The operator agent of one process (see the module docstring)."""

    def __init__(
        self,
        *,
        store: Store,
        clock: Clock,
        approvals: Approvals,
        effects: Effects,
        config: OperatorConfig | None = None,
        analyst: LLMAnalyst | None = None,
        prometheus: PrometheusContext | None = None,
        redact: Callable[[Any], Any] | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._approvals = approvals
        self._effects = effects
        self.config = config or OperatorConfig()
        self._analyst = analyst
        self._prometheus = prometheus
        self._redact = redact or (lambda value: value)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._poller: asyncio.Task[None] | None = None
        self._ticking = asyncio.Lock()
        self.running = False
        self.last_tick_at: datetime | None = None

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        """Analyse and act from now on; what arrived while stopped is analysed now."""
        if self.running:
            return
        self.running = True
        self._spawn(self._catch_up())
        if self.config.poll_seconds > 0:
            self._poller = asyncio.create_task(self._poll(), name="operator poll")

    async def stop(self) -> None:
        """Stop analysing and acting (alerts are still stored); waits for work in flight."""
        self.running = False
        poller, self._poller = self._poller, None
        if poller is not None:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
        await self.idle()

    async def aclose(self) -> None:
        """Stop, and close the Prometheus and Alertmanager clients."""
        await self.stop()
        if self._prometheus is not None:
            await self._prometheus.aclose()
        await self._effects.silencer.aclose()

    async def idle(self) -> None:
        """Wait until every analysis scheduled so far has finished."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # -- intake -----------------------------------------------------------------------------
    async def receive(self, webhook: AlertmanagerWebhook) -> list[AlertRecord]:
        """Store each alert of a notification; schedule the analysis of each new one."""
        if webhook.truncated_alerts:
            _log.warning(
                "Alertmanager left %d alert(s) of group %r out of a notification (its "
                "max_alerts): they are not stored; split the group with a finer group_by",
                webhook.truncated_alerts,
                webhook.group_key[:200],
            )
        stored: list[AlertRecord] = []
        for alert in webhook.alerts:
            record, created = await self._store_alert(alert)
            stored.append(record)
            if created and record.status == "firing" and self.running:
                self._spawn(self.analyse(record.id))
        return stored

    async def _store_alert(self, alert: AlertmanagerAlert) -> tuple[AlertRecord, bool]:
        received = await asyncio.to_thread(
            self._store.alerts.receive,
            fingerprint=alert.fingerprint,
            starts_at=alert.starts_at,
            alertname=alert.alertname,
            status=alert.status,
            severity=alert.labels.get("severity"),
            summary=alert.annotations.get("summary"),
            labels=self._redact(dict(alert.labels)),
            annotations=self._redact(dict(alert.annotations)),
            generator_url=alert.generator_url or None,
            ends_at=alert.ends_at,
            at=self._clock.now(),
        )
        return received.alert, received.created

    async def trigger(
        self, *, alert_id: str | None = None, alert: AlertmanagerAlert | None = None
    ) -> dict[str, Any]:
        """Analyse a stored alert (``alert_id``) or a given one (stored first) now."""
        if (alert_id is None) == (alert is None):
            raise UsageError("trigger needs exactly one of alert_id or alert")
        if alert is not None:
            alert_id = (await self._store_alert(alert))[0].id
        assert alert_id is not None
        await self.analyse(alert_id)
        return await self.describe_one(alert_id)

    # -- analysis ---------------------------------------------------------------------------
    async def analyse(self, alert_id: str) -> Analysed:
        """Analyse one alert, keep the analysis, and propose its actions if it has none yet."""
        alert = await asyncio.to_thread(self._store.alerts.alert, alert_id)
        if alert is None:
            raise UsageError(f"no alert with id {alert_id!r}; list them with GET /api/alerts")
        analysed = await self._analysis_of(alert)
        await asyncio.to_thread(
            self._store.alerts.add_analysis,
            alert.id,
            source=analysed.source,
            analysis=analysed.analysis.model_dump(),
            at=self._clock.now(),
            note=analysed.note,
        )
        existing = await asyncio.to_thread(self._store.alerts.actions, alert_ids=[alert.id])
        if alert.status == "firing" and not existing:
            for name in analysed.analysis.proposed():
                await self._propose(alert, name, analysed.analysis)
        return analysed

    async def _analysis_of(self, alert: AlertRecord) -> Analysed:
        rules = analyse_by_rules(
            alert.alertname, alert.labels, status=alert.status, summary=alert.summary
        )
        if self._analyst is None:
            return Analysed(rules, "rules", None)
        context = None
        if self._prometheus is not None:
            try:
                context = await self._prometheus.series(alert.alertname, alert.generator_url)
            except BastionError as exc:
                context = f"(Prometheus could not be asked: {exc.code.value})"
        return await self._analyst.analyse(
            alertname=alert.alertname,
            status=alert.status,
            labels=alert.labels,
            annotations=alert.annotations,
            rules=rules,
            context=context,
        )

    async def _propose(self, alert: AlertRecord, name: Any, analysis: Analysis) -> ActionRecord:
        params = params_for(name, alert, analysis, silence_minutes=self.config.silence_minutes)
        now = self._clock.now()
        if name == "healthcheck" or not self.config.safety_mode:
            who = _UNASKED_HEALTHCHECK if name == "healthcheck" else _SAFETY_OFF
            action = await asyncio.to_thread(
                self._store.alerts.add_action,
                alert.id,
                action=name,
                params=params,
                status="approved",
                at=now,
                decided_by=who,
            )
            return await self._execute(action, alert)
        approval = await self._approvals.request(
            APPROVAL_KIND,
            {
                "action": name,
                "params": params,
                "alert_id": alert.id,
                "alertname": alert.alertname,
                "issue_type": analysis.issue_type,
                "severity": analysis.severity,
            },
            f"the operator proposes to {name} for {alert.alertname}: {analysis.description}"[:2000],
            ttl_seconds=self.config.approval_ttl_seconds,
        )
        return await asyncio.to_thread(
            self._store.alerts.add_action,
            alert.id,
            action=name,
            params=params,
            status="proposed",
            at=now,
            approval_id=approval.id,
        )

    # -- decisions, execution, validation ------------------------------------------------------
    async def tick(self) -> None:
        """One pass: decisions read, approved actions run, executed ones validated."""
        async with self._ticking:
            await self._approvals.expire()
            for action in await asyncio.to_thread(self._store.alerts.actions, status="proposed"):
                await self._follow_decision(action)
            for action in await asyncio.to_thread(self._store.alerts.actions, status="approved"):
                alert = await asyncio.to_thread(self._store.alerts.alert, action.alert_id)
                if alert is not None:
                    await self._execute(action, alert)
            for action in await asyncio.to_thread(self._store.alerts.actions, status="executed"):
                if not (action.outcome or {}).get("validated"):
                    await self._validate(action)
            self.last_tick_at = self._clock.now()

    async def _follow_decision(self, action: ActionRecord) -> None:
        if action.approval_id is None:
            return
        record = await self._approvals.get(action.approval_id)
        if record is None or record.status is ApprovalStatus.PENDING:
            return
        if record.status is ApprovalStatus.APPROVED:
            moved = await asyncio.to_thread(
                self._store.alerts.move_action,
                action.id,
                from_status="proposed",
                to_status="approved",
                decided_by=record.decided_by,
                decided_at=record.decided_at,
            )
            alert = await asyncio.to_thread(self._store.alerts.alert, action.alert_id)
            if moved is not None and alert is not None:
                await self._execute(moved, alert)
            return
        await asyncio.to_thread(
            self._store.alerts.move_action,
            action.id,
            from_status="proposed",
            to_status="rejected",
            decided_by=record.decided_by or f"nobody ({record.status.value})",
            decided_at=record.decided_at or self._clock.now(),
            result=f"not run: the approval was {record.status.value}",
        )

    async def _execute(self, action: ActionRecord, alert: AlertRecord) -> ActionRecord:
        """Claim an approved action (exactly one claimer wins) and run it."""
        now = self._clock.now()
        waiting = judge(
            executed_at=now,
            window=self._window,
            now=now,
            resolved_at=None,
            health_ok_at=None,
        )
        claimed = await asyncio.to_thread(
            self._store.alerts.move_action,
            action.id,
            from_status="approved",
            to_status="executed",
            executed_at=now,
            result="running",
            outcome=waiting.to_dict(),
        )
        if claimed is None:
            return action
        who = claimed.decided_by or "operator"
        try:
            result = await self._effects.run(
                claimed.action, claimed.params, alert=alert, action_id=claimed.id, who=who
            )
        except Exception as exc:  # recorded as the action's failure, never raised to the intake
            _log.warning("operator action %s (%s) failed: %s", claimed.id, claimed.action, exc)
            failed = await asyncio.to_thread(
                self._store.alerts.move_action,
                claimed.id,
                from_status="executed",
                to_status="failed",
                result=str(self._redact(f"failed: {exc}"))[:2000],
                outcome={"validated": True, "effective": False, "detail": "the action failed"},
            )
            return failed or claimed
        done = await asyncio.to_thread(
            self._store.alerts.move_action,
            claimed.id,
            from_status="executed",
            to_status="executed",
            result=str(self._redact(result))[:2000],
        )
        return done or claimed

    async def _validate(self, action: ActionRecord) -> None:
        if action.executed_at is None:
            return
        alert = await asyncio.to_thread(self._store.alerts.alert, action.alert_id)
        health = await asyncio.to_thread(self._store.health.latest)
        resolved_at = None
        if alert is not None and alert.status == "resolved":
            resolved_at = alert.ends_at or alert.updated_at
        health_ok_at = (
            health.run_at if health is not None and health.overall_status == "OK" else None
        )
        verdict = judge(
            executed_at=action.executed_at,
            window=self._window,
            now=self._clock.now(),
            resolved_at=resolved_at,
            health_ok_at=health_ok_at,
        )
        if verdict.to_dict() != action.outcome:
            await asyncio.to_thread(self._store.alerts.set_outcome, action.id, verdict.to_dict())

    @property
    def _window(self) -> timedelta:
        return timedelta(minutes=self.config.validation_minutes)

    # -- reading ----------------------------------------------------------------------------
    async def describe(
        self, status: str | None = "firing", limit: int = 100
    ) -> list[dict[str, Any]]:
        """``GET /api/alerts``' entries: each alert with its latest analysis and its actions."""
        alerts = await asyncio.to_thread(self._store.alerts.alerts, status, limit)
        return await asyncio.to_thread(self._entries, alerts)

    async def describe_one(self, alert_id: str) -> dict[str, Any]:
        """One alert as :meth:`describe` shows it."""
        alert = await asyncio.to_thread(self._store.alerts.alert, alert_id)
        if alert is None:
            raise UsageError(f"no alert with id {alert_id!r}")
        return (await asyncio.to_thread(self._entries, [alert]))[0]

    def _entries(self, alerts: Sequence[AlertRecord]) -> list[dict[str, Any]]:
        ids = [a.id for a in alerts]
        analyses = self._store.alerts.latest_analyses(ids)
        actions: dict[str, list[ActionRecord]] = {}
        for action in self._store.alerts.actions(alert_ids=ids) if ids else []:
            actions.setdefault(action.alert_id, []).append(action)
        return [_entry(a, analyses.get(a.id), actions.get(a.id, [])) for a in alerts]

    async def status(self) -> dict[str, Any]:
        """``GET /api/operator/status``."""
        counts = await asyncio.to_thread(self._store.alerts.counts)
        return {
            "running": self.running,
            "safety_mode": self.config.safety_mode,
            "llm": self._analyst is not None,
            "prometheus": self._prometheus is not None,
            "validation_minutes": self.config.validation_minutes,
            "last_tick_at": None if self.last_tick_at is None else self.last_tick_at.isoformat(),
            "analyses_in_flight": len(self._tasks),
            **counts,
        }

    # -- background -------------------------------------------------------------------------
    def _spawn(self, work: Any) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _log.warning("operator analysis failed: %s", task.exception())

    async def _catch_up(self) -> None:
        for alert in await asyncio.to_thread(self._store.alerts.unanalysed):
            await self.analyse(alert.id)

    async def _poll(self) -> None:
        while self.running:
            try:
                await self.tick()
            except Exception as exc:  # a store that is briefly down: try again next time
                _log.warning("operator poll failed: %s", exc)
            await asyncio.sleep(self.config.poll_seconds)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _entry(
    alert: AlertRecord, analysis: AnalysisRecord | None, actions: Sequence[ActionRecord]
) -> dict[str, Any]:
    return {
        "id": alert.id,
        "fingerprint": alert.fingerprint,
        "alertname": alert.alertname,
        "status": alert.status,
        "severity": alert.severity,
        "summary": alert.summary,
        "labels": alert.labels,
        "annotations": alert.annotations,
        "starts_at": alert.starts_at.isoformat(),
        "ends_at": _iso(alert.ends_at),
        "received_at": alert.received_at.isoformat(),
        "analysis": None if analysis is None else {"source": analysis.source, **analysis.analysis},
        "actions": [
            {
                "id": a.id,
                "action": a.action,
                "params": a.params,
                "status": a.status,
                "approval_id": a.approval_id,
                "decided_by": a.decided_by,
                "outcome": a.outcome,
                "proposed_at": a.proposed_at.isoformat(),
                "decided_at": _iso(a.decided_at),
                "executed_at": _iso(a.executed_at),
                "result": a.result,
            }
            for a in actions
        ],
    }
