"""Column types that behave the same on SQLite and PostgreSQL.

SQLite has no timezone-aware timestamp and no binary JSON, so the two backends would otherwise
hand back different Python values for the same row. These types make the difference vanish at the
column: callers always get aware UTC datetimes and plain dicts, whichever database is behind.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect

from bastion.store.values import aware_utc, dumps_json, loads_json, to_document

__all__ = [
    "JSONDocument",
    "UtcDateTime",
    "aware_utc",
    "dumps_json",
    "loads_json",
    "to_document",
]


class UtcDateTime(sa.TypeDecorator[datetime]):
    """An aware UTC datetime: ``timestamptz`` on PostgreSQL, ISO text on SQLite.

    Naive datetimes are refused on the way in (see :func:`aware_utc`); values come back aware
    and in UTC on both backends.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = aware_utc(value)
        # SQLite stores the text form; dropping the (always UTC) zone keeps it sortable.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def JSONDocument() -> sa.types.TypeEngine[Any]:
    """JSON on SQLite, JSONB on PostgreSQL (indexable, compact, keys de-duplicated)."""
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
