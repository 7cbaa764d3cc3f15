"""The operator agent's records: alerts received, their analyses, and the actions proposed.

An **alert** is one occurrence of a condition Alertmanager reported, keyed by its
``fingerprint`` (the label set's hash, 16 hex digits) and ``starts_at``: Alertmanager repeats a
firing alert every ``repeat_interval`` and sends it once more when it resolves, and each of
those notifications updates the one row (status, ``ends_at``, annotations) instead of adding
another. The same labels firing again later start a new occurrence, a new row.

An **analysis** is what the operator concluded about an alert (from its rules or from the LLM);
each analysis is kept, the latest is the one shown. An **action** is one step from the operator's
fixed set proposed for an alert; it carries the audit trail: its ``status`` (``proposed``,
``approved``, ``rejected``, ``executed``, ``failed``), the approvals-queue entry that gates it,
who decided and when, when it ran, what it did (``result``) and, once validated, whether it
worked (``outcome``). A status change is one conditional ``UPDATE`` (``WHERE status = :from``),
so of two processes executing the same approved action exactly one does.

The tables are declared here, on the shared :data:`~bastion.store.schema.metadata`, so the test
that compares ``schema.py``'s metadata with the migrations covers them too.
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine, RowMapping

from bastion.errors import UsageError
from bastion.store.engine import reading, writing
from bastion.store.schema import metadata
from bastion.store.types import JSONDocument, UtcDateTime, aware_utc, to_document

__all__ = [
    "ACTION_STATUSES",
    "ALERT_STATUSES",
    "ActionRecord",
    "AlertRecord",
    "AlertStore",
    "AnalysisRecord",
    "Received",
    "operator_actions",
    "operator_alerts",
    "operator_analyses",
]

ALERT_STATUSES = ("firing", "resolved")
ACTION_STATUSES = ("proposed", "approved", "rejected", "executed", "failed")

_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

operator_alerts = sa.Table(
    "operator_alerts",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("fingerprint", sa.String(16), nullable=False),
    sa.Column("starts_at", UtcDateTime(), nullable=False),
    sa.Column("alertname", sa.String(200), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("severity", sa.String(64), nullable=True),
    sa.Column("summary", sa.Text(), nullable=True),
    sa.Column("labels", JSONDocument(), nullable=False),
    sa.Column("annotations", JSONDocument(), nullable=False),
    sa.Column("generator_url", sa.Text(), nullable=True),
    sa.Column("ends_at", UtcDateTime(), nullable=True),
    sa.Column("received_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.UniqueConstraint("fingerprint", "starts_at", name="uq_operator_alerts_occurrence"),
    sa.Index("ix_operator_alerts_status_received_at", "status", "received_at"),
)

operator_analyses = sa.Table(
    "operator_analyses",
    metadata,
    sa.Column("id", _BigId, primary_key=True, autoincrement=True),
    sa.Column("alert_id", sa.String(32), nullable=False),
    sa.Column("at", UtcDateTime(), nullable=False),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("analysis", JSONDocument(), nullable=False),
    sa.Column("note", sa.Text(), nullable=True),
    sa.Index("ix_operator_analyses_alert_id", "alert_id"),
)

operator_actions = sa.Table(
    "operator_actions",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("alert_id", sa.String(32), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("params", JSONDocument(), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("approval_id", sa.String(32), nullable=True),
    sa.Column("proposed_at", UtcDateTime(), nullable=False),
    sa.Column("decided_by", sa.String(200), nullable=True),
    sa.Column("decided_at", UtcDateTime(), nullable=True),
    sa.Column("executed_at", UtcDateTime(), nullable=True),
    sa.Column("result", sa.Text(), nullable=True),
    sa.Column("outcome", JSONDocument(), nullable=True),
    sa.Index("ix_operator_actions_alert_id", "alert_id"),
    sa.Index("ix_operator_actions_status", "status"),
)


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """One occurrence of an alert, as last reported."""

    id: str
    fingerprint: str
    starts_at: datetime
    alertname: str
    status: str
    severity: str | None
    summary: str | None
    labels: dict[str, str]
    annotations: dict[str, str]
    generator_url: str | None
    ends_at: datetime | None
    received_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class AnalysisRecord:
    """One analysis of an alert: ``source`` rules or llm, the answer, and a note (why the
    rules stood in for the LLM, when they did)."""

    id: int
    alert_id: str
    at: datetime
    source: str
    analysis: dict[str, Any]
    note: str | None


@dataclass(frozen=True, slots=True)
class ActionRecord:
    """One proposed action and its audit trail (see the module docstring)."""

    id: str
    alert_id: str
    action: str
    params: dict[str, Any]
    status: str
    approval_id: str | None
    proposed_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    executed_at: datetime | None
    result: str | None
    outcome: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class Received:
    """What :meth:`AlertStore.receive` did: the row as it stands, and whether it was new or
    changed status (a resolve), which is when the operator has something to do."""

    alert: AlertRecord
    created: bool
    status_changed: bool


class AlertStore:
    """Alerts, analyses and actions of the operator agent."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # -- alerts -------------------------------------------------------------------------
    def receive(
        self,
        *,
        fingerprint: str,
        starts_at: datetime,
        alertname: str,
        status: str,
        severity: str | None,
        summary: str | None,
        labels: Mapping[str, str],
        annotations: Mapping[str, str],
        generator_url: str | None,
        ends_at: datetime | None,
        at: datetime,
    ) -> Received:
        """Record one notification of an alert: a new occurrence, or an update of its row."""
        if status not in ALERT_STATUSES:
            raise UsageError(f"alert status must be firing or resolved, got {status!r}")
        at = aware_utc(at)
        key = (fingerprint, aware_utc(starts_at))
        values: dict[str, Any] = {
            "alertname": alertname,
            "status": status,
            "severity": severity,
            "summary": summary,
            "labels": to_document(labels, "alert labels"),
            "annotations": to_document(annotations, "alert annotations"),
            "generator_url": generator_url,
            "ends_at": None if ends_at is None else aware_utc(ends_at),
            "updated_at": at,
        }
        c = operator_alerts.c
        with writing(self._engine) as conn:
            row = conn.execute(_occurrence(*key)).first()
            if row is None:
                insert = sa.insert(operator_alerts).values(
                    id=uuid.uuid4().hex,
                    fingerprint=key[0],
                    starts_at=key[1],
                    received_at=at,
                    **values,
                )
                new = conn.execute(insert.returning(*c)).one()
                return Received(_alert(new._mapping), created=True, status_changed=False)
            before = row._mapping["status"]
            update = sa.update(operator_alerts).where(c.id == row._mapping["id"]).values(values)
            new = conn.execute(update.returning(*c)).one()
        return Received(_alert(new._mapping), created=False, status_changed=before != status)

    def alert(self, alert_id: str) -> AlertRecord | None:
        """The alert with this id, if any."""
        with reading(self._engine) as conn:
            row = conn.execute(
                sa.select(operator_alerts).where(operator_alerts.c.id == alert_id)
            ).first()
        return None if row is None else _alert(row._mapping)

    def alerts(self, status: str | None = None, limit: int = 100) -> builtins.list[AlertRecord]:
        """Up to ``limit`` alerts, the last received first; ``status`` firing or resolved."""
        if limit < 1:
            raise UsageError(f"limit must be >= 1, got {limit}")
        if status is not None and status not in ALERT_STATUSES:
            raise UsageError(f"alert status must be firing or resolved, got {status!r}")
        c = operator_alerts.c
        statement = sa.select(operator_alerts).order_by(c.received_at.desc(), c.id).limit(limit)
        if status is not None:
            statement = statement.where(c.status == status)
        with reading(self._engine) as conn:
            rows = conn.execute(statement).all()
        return [_alert(row._mapping) for row in rows]

    def unanalysed(self, limit: int = 100) -> builtins.list[AlertRecord]:
        """Firing alerts with no analysis yet (received while the operator was stopped)."""
        c = operator_alerts.c
        analysed = sa.select(operator_analyses.c.alert_id)
        statement = (
            sa.select(operator_alerts)
            .where(c.status == "firing", c.id.not_in(analysed))
            .order_by(c.received_at, c.id)
            .limit(limit)
        )
        with reading(self._engine) as conn:
            rows = conn.execute(statement).all()
        return [_alert(row._mapping) for row in rows]

    # -- analyses -----------------------------------------------------------------------
    def add_analysis(
        self,
        alert_id: str,
        *,
        source: str,
        analysis: Mapping[str, Any],
        at: datetime,
        note: str | None = None,
    ) -> AnalysisRecord:
        """Keep one analysis of an alert; the latest is the one shown."""
        values = {
            "alert_id": alert_id,
            "at": aware_utc(at),
            "source": source,
            "analysis": to_document(analysis, "alert analysis"),
            "note": note,
        }
        with writing(self._engine) as conn:
            row = conn.execute(
                sa.insert(operator_analyses).values(values).returning(*operator_analyses.c)
            ).one()
        return _analysis(row._mapping)

    def latest_analyses(self, alert_ids: Iterable[str]) -> dict[str, AnalysisRecord]:
        """The latest analysis of each of these alerts that has one."""
        ids = list(alert_ids)
        if not ids:
            return {}
        c = operator_analyses.c
        statement = sa.select(operator_analyses).where(c.alert_id.in_(ids)).order_by(c.id)
        with reading(self._engine) as conn:
            rows = conn.execute(statement).all()
        return {row._mapping["alert_id"]: _analysis(row._mapping) for row in rows}

    # -- actions ------------------------------------------------------------------------
    def add_action(
        self,
        alert_id: str,
        *,
        action: str,
        params: Mapping[str, Any],
        status: str,
        at: datetime,
        approval_id: str | None = None,
        decided_by: str | None = None,
    ) -> ActionRecord:
        """Record a proposed (or, outside safety mode, already approved) action."""
        _check_status(status)
        at = aware_utc(at)
        values = {
            "id": uuid.uuid4().hex,
            "alert_id": alert_id,
            "action": action,
            "params": to_document(params, f"params of action {action!r}"),
            "status": status,
            "approval_id": approval_id,
            "proposed_at": at,
            "decided_by": decided_by,
            "decided_at": at if decided_by is not None else None,
            "executed_at": None,
            "result": None,
            "outcome": None,
        }
        with writing(self._engine) as conn:
            row = conn.execute(
                sa.insert(operator_actions).values(values).returning(*operator_actions.c)
            ).one()
        return _action(row._mapping)

    def move_action(
        self, action_id: str, *, from_status: str, to_status: str, **values: Any
    ) -> ActionRecord | None:
        """Move an action from ``from_status`` to ``to_status`` and set ``values``
        (``decided_by``, ``decided_at``, ``executed_at``, ``result``, ``outcome``).

        None when it was not in ``from_status`` (another process moved it first): exactly one
        caller wins each move.
        """
        _check_status(from_status)
        _check_status(to_status)
        allowed = {"decided_by", "decided_at", "executed_at", "result", "outcome"}
        unknown = set(values) - allowed
        if unknown:
            raise UsageError(f"an action's {sorted(unknown)} cannot be changed")
        for name in ("decided_at", "executed_at"):
            if values.get(name) is not None:
                values[name] = aware_utc(values[name])
        if values.get("outcome") is not None:
            values["outcome"] = to_document(values["outcome"], "action outcome")
        c = operator_actions.c
        statement = (
            sa.update(operator_actions)
            .where(c.id == action_id, c.status == from_status)
            .values(status=to_status, **values)
            .returning(*c)
        )
        with writing(self._engine) as conn:
            row = conn.execute(statement).first()
        return None if row is None else _action(row._mapping)

    def set_outcome(self, action_id: str, outcome: Mapping[str, Any]) -> ActionRecord | None:
        """Record what validation found for an executed action."""
        c = operator_actions.c
        statement = (
            sa.update(operator_actions)
            .where(c.id == action_id)
            .values(outcome=to_document(outcome, "action outcome"))
            .returning(*c)
        )
        with writing(self._engine) as conn:
            row = conn.execute(statement).first()
        return None if row is None else _action(row._mapping)

    def action(self, action_id: str) -> ActionRecord | None:
        """The action with this id, if any."""
        with reading(self._engine) as conn:
            row = conn.execute(
                sa.select(operator_actions).where(operator_actions.c.id == action_id)
            ).first()
        return None if row is None else _action(row._mapping)

    def actions(
        self,
        *,
        status: str | None = None,
        alert_ids: Iterable[str] | None = None,
        limit: int = 1000,
    ) -> builtins.list[ActionRecord]:
        """Actions in the order they were proposed, filtered by status or alert."""
        c = operator_actions.c
        statement = sa.select(operator_actions).order_by(c.proposed_at, c.id).limit(limit)
        if status is not None:
            _check_status(status)
            statement = statement.where(c.status == status)
        if alert_ids is not None:
            statement = statement.where(c.alert_id.in_(list(alert_ids)))
        with reading(self._engine) as conn:
            rows = conn.execute(statement).all()
        return [_action(row._mapping) for row in rows]

    def executed(self, limit: int = 10_000) -> builtins.list[tuple[str, ActionRecord]]:
        """Every action that ran (executed or failed) with its alert's name, oldest first:
        what ``bastion operator actions`` tallies."""
        a, c = operator_alerts.c, operator_actions.c
        statement = (
            sa.select(a.alertname, operator_actions)
            .join(operator_alerts, a.id == c.alert_id)
            .where(c.status.in_(("executed", "failed")))
            .order_by(c.executed_at, c.id)
            .limit(limit)
        )
        with reading(self._engine) as conn:
            rows = conn.execute(statement).all()
        return [(row._mapping["alertname"], _action(row._mapping)) for row in rows]

    def counts(self) -> dict[str, dict[str, int]]:
        """How many alerts there are by status, and actions by status."""
        with reading(self._engine) as conn:
            alerts = conn.execute(
                sa.select(operator_alerts.c.status, sa.func.count()).group_by(
                    operator_alerts.c.status
                )
            ).all()
            actions = conn.execute(
                sa.select(operator_actions.c.status, sa.func.count()).group_by(
                    operator_actions.c.status
                )
            ).all()
        return {
            "alerts": {status: 0 for status in ALERT_STATUSES} | {s: int(n) for s, n in alerts},
            "actions": {status: 0 for status in ACTION_STATUSES} | {s: int(n) for s, n in actions},
        }


def _check_status(status: str) -> None:
    if status not in ACTION_STATUSES:
        raise UsageError(f"action status must be one of {', '.join(ACTION_STATUSES)}: {status!r}")


def _occurrence(fingerprint: str, starts_at: datetime) -> sa.Select[Any]:
    c = operator_alerts.c
    return sa.select(operator_alerts).where(c.fingerprint == fingerprint, c.starts_at == starts_at)


def _alert(row: RowMapping) -> AlertRecord:
    return AlertRecord(
        id=row["id"],
        fingerprint=row["fingerprint"],
        starts_at=row["starts_at"],
        alertname=row["alertname"],
        status=row["status"],
        severity=row["severity"],
        summary=row["summary"],
        labels=row["labels"],
        annotations=row["annotations"],
        generator_url=row["generator_url"],
        ends_at=row["ends_at"],
        received_at=row["received_at"],
        updated_at=row["updated_at"],
    )


def _analysis(row: RowMapping) -> AnalysisRecord:
    return AnalysisRecord(
        id=int(row["id"]),
        alert_id=row["alert_id"],
        at=row["at"],
        source=row["source"],
        analysis=row["analysis"],
        note=row["note"],
    )


def _action(row: RowMapping) -> ActionRecord:
    return ActionRecord(
        id=row["id"],
        alert_id=row["alert_id"],
        action=row["action"],
        params=row["params"],
        status=row["status"],
        approval_id=row["approval_id"],
        proposed_at=row["proposed_at"],
        decided_by=row["decided_by"],
        decided_at=row["decided_at"],
        executed_at=row["executed_at"],
        result=row["result"],
        outcome=row["outcome"],
    )
