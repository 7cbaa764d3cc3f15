"""Typed access to JSON-RPC parameters that may have arrived as query-string text.

A GET request carries every value as a string (``amount=0.1``, ``reduce_only=true``); a POST
body carries JSON types. Rather than guessing types up front (``client_id=12345`` must stay a
string), each handler asks for the type it needs and :class:`Params` coerces or refuses with a
Deribit-shaped error (see :mod:`.errors` for which code means what). A parameter sent as JSON
``null`` counts as absent.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import Any, TypeVar, overload

from bastion.simulators.paper.errors import invalid_argument, invalid_param

__all__ = ["Params"]

_D = TypeVar("_D")
_MISSING: Any = object()
_TRUE = frozenset({"true", "1"})
_FALSE = frozenset({"false", "0"})


def _as_number(name: str, value: Any) -> float:
    if isinstance(value, bool):
        raise invalid_argument(name, "must be a number")
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise invalid_argument(name, "must be a number") from None
    if not isinstance(value, int | float) or not math.isfinite(value):
        raise invalid_argument(name, "must be a number")
    return float(value)


class Params:
    """Named parameters of one call; unknown names are ignored, as Deribit does."""

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self._raw = dict(raw)

    def __contains__(self, name: str) -> bool:
        return self._raw.get(name) is not None

    def _value(self, name: str, default: Any) -> Any:
        value = self._raw.get(name)
        if value is None and default is _MISSING:
            raise invalid_param(name, "missing required parameter")
        return value

    @overload
    def text(self, name: str) -> str: ...
    @overload
    def text(self, name: str, default: _D) -> str | _D: ...
    def text(self, name: str, default: Any = _MISSING) -> Any:
        """A string parameter; numbers are accepted and turned into text."""
        value = self._value(name, default)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise invalid_argument(name, "must be a string")
        return str(value)

    @overload
    def number(self, name: str) -> float: ...
    @overload
    def number(self, name: str, default: _D) -> float | _D: ...
    def number(self, name: str, default: Any = _MISSING) -> Any:
        """A finite number; numeric strings are parsed, booleans and NaN are refused."""
        value = self._value(name, default)
        return default if value is None else _as_number(name, value)

    @overload
    def integer(self, name: str) -> int: ...
    @overload
    def integer(self, name: str, default: _D) -> int | _D: ...
    def integer(self, name: str, default: Any = _MISSING) -> Any:
        """A whole number (``5``, ``"5"`` or ``5.0``)."""
        value = self._value(name, default)
        if value is None:
            return default
        number = _as_number(name, value)
        if not number.is_integer():
            raise invalid_argument(name, "must be an integer")
        return int(number)

    def flag(self, name: str, default: bool = False) -> bool:
        """A boolean: JSON ``true``/``false`` or the lowercase strings ccxt writes."""
        value = self._raw.get(name)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
            return value.lower() in _TRUE
        raise invalid_argument(name, "must be a boolean")

    def strings(self, name: str) -> list[str]:
        """A required JSON list of strings (``channels``); Deribit's reason when it is not."""
        value = self._value(name, _MISSING)
        if not isinstance(value, list):
            raise invalid_param(name, "value must be a list")
        if not all(isinstance(item, str) for item in value):
            raise invalid_param(name, "value must be a list of strings")
        return list(value)

    @overload
    def choice(self, name: str, options: Collection[str]) -> str: ...
    @overload
    def choice(self, name: str, options: Collection[str], default: _D) -> str | _D: ...
    def choice(self, name: str, options: Collection[str], default: Any = _MISSING) -> Any:
        """One of ``options``, or ``-32602`` naming them all."""
        if name not in self and default is not _MISSING:
            return default
        value = self.text(name)
        if value not in options:
            raise invalid_param(name, "must be one of: " + ", ".join(options))
        return value
