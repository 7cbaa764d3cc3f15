"""Approvals: the queue of questions only a person may answer.

An entry is something Bastion will not decide alone: an LLM fallback chain with no model and no
fresh cached answer (``kind="llm_escalation"``), or an order the risk review marked
``needs_approval`` (``kind="order"``). Each entry is asked once, answered at most once, and kept
as history: ``pending`` becomes ``approved`` or ``rejected`` by a named person, or ``expired``
when nobody answered before ``expires_at``.

The database, not the caller, makes the answer unique. A decision is one conditional ``UPDATE``::

    UPDATE approvals SET status = :status, decided_at = :at, decided_by = :who, note = :note
     WHERE id = :id AND status = 'pending' AND (expires_at IS NULL OR expires_at > :at)

so of two people deciding at once, in one process or on two machines, exactly one touches the
row; the other is refused with :class:`ApprovalAlreadyDecided`, which names the winner. There is
no read-then-write to race.

``subject`` is the JSON document describing what is asked; callers redact it before it gets
here, because the console shows it to whoever may decide.

The table is declared here, on the shared :data:`~bastion.store.schema.metadata`, so the test
that compares ``schema.py``'s metadata with the migrations covers it too.
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine, RowMapping

from bastion.errors import BastionError, ErrorCode, UsageError
from bastion.store.engine import reading, writing
from bastion.store.schema import metadata
from bastion.store.types import JSONDocument, UtcDateTime, aware_utc, to_document

__all__ = [
    "ApprovalAlreadyDecided",
    "ApprovalNotFound",
    "ApprovalRecord",
    "ApprovalStatus",
    "ApprovalsStore",
    "approvals",
]

approvals = sa.Table(
    "approvals",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("agent", sa.String(200), nullable=False),
    sa.Column("run_id", sa.String(64), nullable=True),
    sa.Column("subject", JSONDocument(), nullable=False),
    sa.Column("reason", sa.Text(), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("decided_at", UtcDateTime(), nullable=True),
    sa.Column("decided_by", sa.String(200), nullable=True),
    sa.Column("note", sa.Text(), nullable=True),
    sa.Column("expires_at", UtcDateTime(), nullable=True),
    sa.Index("ix_approvals_status_created_at", "status", "created_at"),
)


class ApprovalStatus(StrEnum):
    """Where an entry stands; every status but ``pending`` is final."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class ApprovalRecord:
    """One entry as stored: what was asked, by whom, and how (and by whom) it was answered.

    ``decided_at`` is the decision's time, or for an expired entry its ``expires_at``;
    ``decided_by`` stays ``None`` when it expired.
    """

    id: str
    created_at: datetime
    kind: str
    agent: str
    run_id: str | None
    subject: dict[str, Any]
    reason: str
    status: ApprovalStatus
    decided_at: datetime | None
    decided_by: str | None
    note: str | None
    expires_at: datetime | None

    @property
    def pending(self) -> bool:
        """True until someone decides it or it expires."""
        return self.status is ApprovalStatus.PENDING

    def to_dict(self) -> dict[str, Any]:
        """The entry as JSON-ready data for the API: timestamps as ISO 8601 text."""
        return {
            "id": self.id,
            "created_at": self.created_at.isoformat(),
            "kind": self.kind,
            "agent": self.agent,
            "run_id": self.run_id,
            "subject": self.subject,
            "reason": self.reason,
            "status": self.status.value,
            "decided_at": None if self.decided_at is None else self.decided_at.isoformat(),
            "decided_by": self.decided_by,
            "note": self.note,
            "expires_at": None if self.expires_at is None else self.expires_at.isoformat(),
        }


class ApprovalNotFound(BastionError):
    """No entry has this id: mistyped, or from another database."""

    default_code = ErrorCode.NOT_FOUND

    def __init__(self, approval_id: str) -> None:
        super().__init__(
            f"no approval with id {approval_id!r}; check the id against the pending list",
            dependency="approvals",
            observed=approval_id,
        )
        self.approval_id = approval_id


class ApprovalAlreadyDecided(BastionError):
    """The entry was answered (or expired) before this decision; ``record`` says how.

    The usual cause is two people deciding at once: the first one won and nothing is left to do.
    """

    default_code = ErrorCode.CONFLICT

    def __init__(self, record: ApprovalRecord) -> None:
        if record.status is ApprovalStatus.EXPIRED:
            when = record.expires_at or record.decided_at
            message = (
                f"approval {record.id} expired at {_when(when)} before anyone decided it; "
                "nothing to do: it can no longer be approved or rejected, the requester must ask "
                "again"
            )
        else:
            message = (
                f"approval {record.id} was already {record.status.value} by "
                f"{record.decided_by} at {_when(record.decided_at)}; nothing to do"
            )
        super().__init__(message, dependency="approvals", observed=record.status.value)
        self.record = record


class ApprovalsStore:
    """Add, decide, expire and list approval entries."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def add(
        self,
        *,
        kind: str,
        agent: str,
        subject: Mapping[str, Any],
        reason: str,
        at: datetime,
        run_id: str | None = None,
        expires_at: datetime | None = None,
    ) -> ApprovalRecord:
        """Queue a new ``pending`` entry with a fresh id and return it."""
        if not kind:
            raise UsageError("an approval needs a kind, such as 'llm_escalation' or 'order'")
        created_at = aware_utc(at)
        if expires_at is not None and aware_utc(expires_at) <= created_at:
            raise UsageError(
                f"expires_at {expires_at.isoformat()} is not after created_at "
                f"{created_at.isoformat()}: the entry would be born expired"
            )
        values = {
            "id": uuid.uuid4().hex,
            "created_at": created_at,
            "kind": kind,
            "agent": agent,
            "run_id": run_id,
            "subject": to_document(subject, f"subject of approval {kind!r}"),
            "reason": reason,
            "status": ApprovalStatus.PENDING.value,
            "decided_at": None,
            "decided_by": None,
            "note": None,
            "expires_at": None if expires_at is None else aware_utc(expires_at),
        }
        with writing(self._engine) as conn:
            row = conn.execute(sa.insert(approvals).values(values).returning(*approvals.c)).one()
        return _record(row._mapping)

    def get(self, approval_id: str) -> ApprovalRecord | None:
        """The entry with this id, if any."""
        with reading(self._engine) as conn:
            row = conn.execute(_by_id(approval_id)).first()
        return None if row is None else _record(row._mapping)

    def list(
        self,
        status: ApprovalStatus | str | None = None,
        limit: int = 50,
        *,
        kind: str | None = None,
        agent: str | None = None,
    ) -> builtins.list[ApprovalRecord]:
        """Up to ``limit`` entries, newest first, filtered by status, kind and agent.

        Entries created at the same instant come in a fixed but arbitrary order.
        """
        if limit < 1:
            raise UsageError(f"limit must be >= 1, got {limit}")
        c = approvals.c
        statement = sa.select(approvals).order_by(c.created_at.desc(), c.id.desc()).limit(limit)
        if status is not None:
            statement = statement.where(c.status == _status(status).value)
        if kind is not None:
            statement = statement.where(c.kind == kind)
        if agent is not None:
            statement = statement.where(c.agent == agent)
        with reading(self._engine) as conn:
            rows = conn.execute(statement).all()
        return [_record(row._mapping) for row in rows]

    def decide(
        self,
        approval_id: str,
        *,
        approve: bool,
        who: str,
        note: str | None,
        at: datetime,
    ) -> ApprovalRecord:
        """Answer a pending entry and return it decided; exactly one decision ever wins.

        Raises :class:`ApprovalAlreadyDecided` (carrying the entry as it stands) when it was
        decided or had expired by ``at``, and :class:`ApprovalNotFound` for an unknown id. An
        entry found past its ``expires_at`` is marked expired on the way.
        """
        if not who:
            raise UsageError("a decision needs who made it")
        at = aware_utc(at)
        c = approvals.c
        status = ApprovalStatus.APPROVED if approve else ApprovalStatus.REJECTED
        decision = (
            sa.update(approvals)
            .where(
                c.id == approval_id,
                c.status == ApprovalStatus.PENDING.value,
                sa.or_(c.expires_at.is_(None), c.expires_at > at),
            )
            .values(status=status.value, decided_at=at, decided_by=who, note=note)
            .returning(*c)
        )
        with writing(self._engine) as conn:
            row = conn.execute(decision).first()
            won = row is not None
            if not won:
                conn.execute(_expiry(at).where(c.id == approval_id))
                row = conn.execute(_by_id(approval_id)).first()
        if row is None:
            raise ApprovalNotFound(approval_id)
        record = _record(row._mapping)
        if not won:
            raise ApprovalAlreadyDecided(record)
        return record

    def expire(self, now: datetime) -> int:
        """Mark every pending entry whose ``expires_at`` is at or before ``now`` expired.

        Returns how many were expired; each entry is expired by exactly one caller.
        """
        with writing(self._engine) as conn:
            result = conn.execute(_expiry(aware_utc(now)))
        return int(result.rowcount or 0)

    def count_pending(self, now: datetime | None = None) -> int:
        """How many entries are pending; with ``now``, those already past their expiry (not
        yet swept) do not count, so a read-only caller gets the true figure."""
        c = approvals.c
        statement = (
            sa.select(sa.func.count())
            .select_from(approvals)
            .where(c.status == ApprovalStatus.PENDING.value)
        )
        if now is not None:
            statement = statement.where(sa.or_(c.expires_at.is_(None), c.expires_at > now))
        with reading(self._engine) as conn:
            return int(conn.execute(statement).scalar_one())


def _by_id(approval_id: str) -> sa.Select[Any]:
    return sa.select(approvals).where(approvals.c.id == approval_id)


def _expiry(now: datetime) -> sa.Update:
    c = approvals.c
    return (
        sa.update(approvals)
        .where(
            c.status == ApprovalStatus.PENDING.value,
            c.expires_at.is_not(None),
            c.expires_at <= now,
        )
        .values(status=ApprovalStatus.EXPIRED.value, decided_at=c.expires_at)
    )


def _status(status: ApprovalStatus | str) -> ApprovalStatus:
    try:
        return ApprovalStatus(status)
    except ValueError:
        allowed = ", ".join(s.value for s in ApprovalStatus)
        raise UsageError(f"approval status must be one of {allowed}; got {status!r}") from None


def _when(value: datetime | None) -> str:
    return "an unknown time" if value is None else value.isoformat()


def _record(row: RowMapping) -> ApprovalRecord:
    return ApprovalRecord(
        id=row["id"],
        created_at=row["created_at"],
        kind=row["kind"],
        agent=row["agent"],
        run_id=row["run_id"],
        subject=row["subject"],
        reason=row["reason"],
        status=ApprovalStatus(row["status"]),
        decided_at=row["decided_at"],
        decided_by=row["decided_by"],
        note=row["note"],
        expires_at=row["expires_at"],
    )
