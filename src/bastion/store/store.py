"""The store: one database handle exposing one object per aggregate."""

from __future__ import annotations

from types import TracebackType

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bastion.errors import BastionError, ErrorCode
from bastion.sensitive import mask_url, url_secrets
from bastion.store.alerts import AlertStore
from bastion.store.approvals import ApprovalsStore
from bastion.store.budget import BudgetStore
from bastion.store.day_marks import DayMarkStore
from bastion.store.engine import create_engine, parse_url
from bastion.store.events import EventStore
from bastion.store.halts import HaltStore
from bastion.store.health import HealthStore
from bastion.store.migrate import upgrade
from bastion.store.runs import RunStore
from bastion.store.tasks import TaskStore
from bastion.trace.redact import Redactor

__all__ = ["Store"]


class Store:
    """Bastion's durable state, one object per aggregate over one engine.

    The aggregates are ``runs``, ``events``, ``halts``, ``health``, ``budget``, ``approvals``,
    ``day_marks``, ``tasks`` and ``alerts`` (the operator agent's).

    Build it with :meth:`open`, which also brings the schema up to date. It is safe to share
    between threads, and several processes may open the same database at once.
    """

    def __init__(self, engine: Engine, *, synchronous_settle: bool = False) -> None:
        """Wrap an engine whose schema is already at head; most callers want :meth:`open`.

        ``synchronous_settle`` is :class:`~bastion.store.budget.BudgetStore`'s (PostgreSQL:
        settlements wait for the WAL flush)."""
        self.engine = engine
        self.runs = RunStore(engine)
        self.events = EventStore(engine)
        self.halts = HaltStore(engine)
        self.health = HealthStore(engine)
        self.budget = BudgetStore(engine, synchronous_settle=synchronous_settle)
        self.approvals = ApprovalsStore(engine)
        self.day_marks = DayMarkStore(engine)
        self.tasks = TaskStore(engine)
        self.alerts = AlertStore(engine)

    @classmethod
    def open(cls, url: str, *, synchronous_settle: bool = False) -> Store:
        """Connect to ``url`` (``sqlite:///…`` or ``postgresql+psycopg://…``) and migrate it.

        ``synchronous_settle`` (setting ``budget_synchronous_settle``) makes PostgreSQL wait
        for the WAL flush of every budget settlement; see ``docs/durability.md``.

        Raises :class:`~bastion.errors.ConfigError` for a URL Bastion cannot use or a database
        written by a newer Bastion, and :class:`~bastion.errors.BastionError` when the database
        cannot be reached.
        """
        parsed = parse_url(url)
        engine = create_engine(parsed)
        try:
            upgrade(engine)
        except sa.exc.OperationalError as exc:
            engine.dispose()
            # mask_url, not SQLAlchemy's hide_password: that leaves ?password= in the query.
            where = mask_url(url)
            cause = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
            cause = Redactor(url_secrets(url)).redact_text(cause)
            raise BastionError(
                f"cannot open the store {where}: {cause}. Fix: check store_url "
                "(BASTION_STORE_URL) and that the database is running and reachable.",
                code=ErrorCode.NETWORK if engine.dialect.name == "postgresql" else ErrorCode.CONFIG,
                dependency="store",
            ) from exc
        except BaseException:
            engine.dispose()
            raise
        return cls(engine, synchronous_settle=synchronous_settle)

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.engine.dialect.name

    def close(self) -> None:
        """Close every pooled connection; the store must not be used afterwards."""
        self.budget.close()
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
