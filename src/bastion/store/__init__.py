"""Durable state on SQLite (embedded) or PostgreSQL (fleet), through SQLAlchemy Core.

Open it with :meth:`Store.open`; use ``store.runs``, ``store.events``, ``store.halts``,
``store.health``, ``store.budget`` and ``store.approvals``. Each aggregate lives in its own module
and returns frozen records, never database rows, so callers cannot tell (and need not care) which
backend is behind.

Schema and migrations
---------------------
The schema is owned by Alembic revisions in ``bastion/store/migrations/versions/``, shipped
inside the package. :meth:`Store.open` upgrades the database to head every time, configured in
code (no ``alembic.ini``), under a lock so that processes starting together do not race:
``pg_advisory_xact_lock`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite. A database at a revision
this code does not know was written by a newer Bastion and is refused with a
:class:`~bastion.errors.ConfigError` telling the operator to upgrade Bastion.

To change the schema: add a revision file next to ``0001_initial.py`` (for instance with
``alembic.command.revision(bastion.store.migrate.alembic_config(), message=..., rev_id="0002")``),
write its ``upgrade()`` and ``downgrade()`` so they run on both SQLite and PostgreSQL, then
update ``schema.py`` to match; a test fails while the two disagree. Revisions are never edited
once released.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bastion.lazy_names import lazy_names

if TYPE_CHECKING:
    from bastion.store.approvals import ApprovalRecord, ApprovalsStore
    from bastion.store.budget import BudgetStore
    from bastion.store.events import EventRecord, EventStore
    from bastion.store.halt_record import HaltRecord
    from bastion.store.halts import HaltStore
    from bastion.store.health import HealthRecord, HealthStore
    from bastion.store.runs import RunRecord, RunStatus, RunStore
    from bastion.store.store import Store

__all__ = [
    "ApprovalRecord",
    "ApprovalsStore",
    "BudgetStore",
    "EventRecord",
    "EventStore",
    "HaltRecord",
    "HaltStore",
    "HealthRecord",
    "HealthStore",
    "RunRecord",
    "RunStatus",
    "RunStore",
    "Store",
]

_LAZY = {
    **dict.fromkeys(("ApprovalRecord", "ApprovalsStore"), "bastion.store.approvals"),
    "BudgetStore": "bastion.store.budget",
    **dict.fromkeys(("EventRecord", "EventStore"), "bastion.store.events"),
    "HaltRecord": "bastion.store.halt_record",
    "HaltStore": "bastion.store.halts",
    **dict.fromkeys(("HealthRecord", "HealthStore"), "bastion.store.health"),
    **dict.fromkeys(("RunRecord", "RunStatus", "RunStore"), "bastion.store.runs"),
    "Store": "bastion.store.store",
}
"""Every public name and its module, imported on first use (PEP 562): the emergency store
(:mod:`bastion.store.emergency`) and the value modules live in this package too, and importing
them must not import SQLAlchemy."""


__getattr__, __dir__ = lazy_names("bastion.store", globals(), _LAZY)
