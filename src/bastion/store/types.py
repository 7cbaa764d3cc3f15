"""Column types that behave the same on SQLite and PostgreSQL.

SQLite has no timezone-aware timestamp and no binary JSON, so the two backends would otherwise
hand back different Python values for the same row. These types make the difference vanish at the
column: callers always get aware UTC datetimes and plain dicts, whichever database is behind.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect

from bastion.errors import UsageError

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


def aware_utc(value: datetime) -> datetime:
    """``value`` in UTC; a naive datetime is a :class:`UsageError`, never silently guessed.

    A timestamp without a zone is a bug waiting for the next daylight-saving change. The stores
    call this on their arguments so the error reaches the caller unwrapped.
    """
    if value.tzinfo is None or value.utcoffset() is None:
        raise UsageError(f"naive datetime {value.isoformat()} given to the store; use UTC")
    return value.astimezone(UTC)


def JSONDocument() -> sa.types.TypeEngine[Any]:
    """JSON on SQLite, JSONB on PostgreSQL (indexable, compact, keys de-duplicated)."""
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def dumps_json(value: Any) -> str:
    """The engine's JSON serialiser: orjson, so datetimes, dataclasses and UUIDs just work."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def loads_json(text: str | bytes) -> Any:
    """The engine's JSON deserialiser."""
    return orjson.loads(text)


def to_document(value: Mapping[str, Any], what: str) -> dict[str, Any]:
    """``value`` as the plain JSON dict it will read back as, or :class:`UsageError`.

    Serialising up front means a payload that cannot be stored fails at the caller with a clear
    message, and what a reader gets back is exactly what was written (datetimes as ISO text,
    dataclasses as dicts) on both backends.
    """
    try:
        document = orjson.loads(orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS))
    except TypeError as exc:
        raise UsageError(f"{what} is not JSON-serialisable: {exc}") from None
    if not isinstance(document, dict):
        raise UsageError(f"{what} must be a mapping, got {type(value).__name__}")
    return document
