"""The operator's fixed set of actions, and what each does when it runs.

=================  =================================================================
``healthcheck``    run every health check now (the result is stored like any run)
``halt``           the one halt path (:meth:`Halt.trip <bastion.guard.halt.Halt.trip>`),
                   reason ``operator``: flag, cancel resting orders, alert
``flatten``        REDUCING through the same path, as ``bastion flatten`` raises it: the
                   running agent cancels what rests and closes every position
``open_approval``  ask a person to look: an ``operator_escalation`` entry in the approvals
                   queue with the alert and the analysis
``silence``        silence the alert's label set in Alertmanager, with a reason
                   (:mod:`bastion.ops.operator.silences`)
=================  =================================================================

Nothing else can run: the LLM may recommend any words, and only these names are proposed
(:meth:`Analysis.proposed <bastion.ops.operator.analysis.Analysis.proposed>`). Who approved the
action is named on what it does (the halt's ``who``, the silence's ``createdBy``), so the halt
history and Alertmanager carry the audit trail as well as the operator's own records.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from bastion.errors import UsageError
from bastion.guard.approvals import Approvals
from bastion.guard.halt import Halt
from bastion.guard.limits import HaltReason
from bastion.ops.operator.analysis import ActionName, Analysis
from bastion.ops.operator.silences import Silencer
from bastion.status import TradingState
from bastion.store.alerts import AlertRecord

__all__ = ["Effects", "HealthRun", "params_for"]


class HealthRun(Protocol):
    """One run of the health checks, as :class:`~bastion.guard.health.HealthReport` has it."""

    @property
    def overall_status(self) -> Any: ...

    @property
    def summary(self) -> str: ...


def params_for(
    action: ActionName, alert: AlertRecord, analysis: Analysis, *, silence_minutes: float
) -> dict[str, Any]:
    """What an action will do, fixed when it is proposed so the person approves exactly that."""
    if action in ("halt", "flatten"):
        return {"reason": HaltReason.OPERATOR.value, "alertname": alert.alertname}
    if action == "silence":
        return {
            "minutes": silence_minutes,
            "reason": f"operator: {analysis.issue_type} ({alert.alertname})",
            "labels": dict(alert.labels),
        }
    if action == "open_approval":
        return {"question": f"look at {alert.alertname}: {analysis.description[:500]}"}
    return {}


@dataclass(frozen=True, slots=True)
class Effects:
    """What the actions act on: the halt path, the approvals queue, Alertmanager, the checks."""

    halt: Halt
    approvals: Approvals
    silencer: Silencer
    healthcheck: Callable[[], Awaitable[HealthRun]] | None = None

    async def run(
        self, action: str, params: dict[str, Any], *, alert: AlertRecord, action_id: str, who: str
    ) -> str:
        """Run one action approved by ``who``; returns what it did, raises if it failed."""
        detail = {"alert_id": alert.id, "alertname": alert.alertname, "action_id": action_id}
        by = f"operator agent, approved by {who}"
        if action == "healthcheck":
            if self.healthcheck is None:
                return "no health checks in this process: nothing ran"
            report = await self.healthcheck()
            status = getattr(report.overall_status, "value", report.overall_status)
            return f"health {status}: {report.summary}"
        if action == "halt":
            state = await self.halt.trip(HaltReason.OPERATOR, who=by, detail=detail)
            return f"halted ({state.reason}, by {state.who})"
        if action == "flatten":
            state = await self.halt.trip(
                HaltReason.OPERATOR, who=by, detail=detail, state=TradingState.REDUCING
            )
            return f"{state.state.value} ({state.reason}, by {state.who}): positions close"
        if action == "open_approval":
            record = await self.approvals.request(
                "operator_escalation",
                {**detail, "labels": alert.labels},
                str(params.get("question", f"look at {alert.alertname}")),
            )
            return f"approval {record.id} asks a person to look"
        if action == "silence":
            return await self.silencer.silence(
                params.get("labels") or alert.labels,
                reason=str(params.get("reason", "operator")),
                minutes=float(params.get("minutes", 60)),
                who=by,
            )
        raise UsageError(f"{action!r} is not one of the operator's actions")
