"""How the stores write values: aware UTC datetimes and JSON documents, checked at the caller.

Pure functions with no database import, shared by the SQLAlchemy column types
(:mod:`bastion.store.types`) and the emergency store (:mod:`bastion.store.emergency`), so a
value is checked and serialised the same way whichever writes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from bastion.errors import UsageError

__all__ = ["aware_utc", "dumps_json", "loads_json", "to_document"]


def aware_utc(value: datetime) -> datetime:
    """``value`` in UTC; a naive datetime is a :class:`UsageError`, never silently guessed.

    A timestamp without a zone is a bug waiting for the next daylight-saving change. The stores
    call this on their arguments so the error reaches the caller unwrapped.
    """
    if value.tzinfo is None or value.utcoffset() is None:
        raise UsageError(f"naive datetime {value.isoformat()} given to the store; use UTC")
    return value.astimezone(UTC)


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
