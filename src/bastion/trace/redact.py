"""Take secrets out of anything before it is written, logged or served.

Two rules, applied together and recursively through mappings, sequences, dataclasses and pydantic
models:

* **by value**: every occurrence of a known secret (the exchange secret, the console token, a
  database password...) inside any string is replaced by ``[REDACTED]``, wherever it hides: an
  error message, a URL, a header echoed back by a server;
* **by name**: whatever is stored under a key or field whose name looks secret (``secret``,
  ``password``, ``token``, ``authorization``, ``api_key``...) is replaced outright, so a secret
  nobody told us about is still caught when it is labelled as one.

``tokens`` (plural) is not a secret name: LLM usage counts (``input_tokens``, ``max_tokens``) are
what cost audits are made of. Secrets shorter than :data:`MIN_SECRET_LENGTH` are ignored: a one
to three character "secret" (a test's ``"x"``) would match inside ordinary words and numbers and
shred the record, while protecting nothing, since a value that short is guessable anyway.

URLs get a third rule, :func:`mask_url`, applied to every string first: the password in a URL's
userinfo (``user:password@host``) and the value of every secret-shaped ``name=value`` pair (a
query parameter such as ``?password=``, ``&sslpassword=``, ``?api_key=``; a conninfo pair) are
replaced by ``***``, whether or not anybody told us the value. A URL is the one place an operator
puts a secret in plain sight of every error message and settings dump, so it is masked by shape.

The result holds only JSON-friendly values (dicts, lists, strings, numbers, booleans, ``None``
and the date/time/UUID types orjson writes natively); an object of any other type is replaced by
its redacted ``str()``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from datetime import date, datetime, time, timedelta
from enum import Enum
from typing import Any
from uuid import UUID

from pydantic import BaseModel, SecretBytes, SecretStr

from bastion.sensitive import MIN_SECRET_LENGTH, URL_MASK, is_secret_name, mask_url, url_secrets

__all__ = [
    "MIN_SECRET_LENGTH",
    "REDACTED",
    "URL_MASK",
    "Redactor",
    "is_secret_name",
    "mask_url",
    "url_secrets",
]

REDACTED = "[REDACTED]"
"""What a redacted secret reads as."""

_PASSTHROUGH = (bool, int, float, datetime, date, time, UUID)
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1
# Deeper than this is a cycle or a mistake; the rest is rendered as redacted text.
_MAX_DEPTH = 64


class Redactor:
    """Redacts known secret values and secret-named fields; reusable and thread-safe."""

    def __init__(self, secrets: Iterable[str]) -> None:
        """Build a redactor for ``secrets`` (plain values, e.g. ``Settings.secret_values()``)."""
        usable = {s for s in secrets if len(s) >= MIN_SECRET_LENGTH}
        # Longest first, so a secret that contains another is removed whole.
        alternatives = sorted(usable, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, alternatives))) if usable else None

    def redact_text(self, text: str) -> str:
        """``text`` with URL secrets masked and every known secret value replaced by
        ``[REDACTED]``."""
        text = mask_url(text)
        if self._pattern is None:
            return text
        return self._pattern.sub(REDACTED, text)

    def redact(self, value: Any) -> Any:
        """A redacted, JSON-friendly copy of ``value``; the original is left untouched."""
        return self._redact(value, 0)

    def _redact(self, value: Any, depth: int) -> Any:  # noqa: PLR0911 - one branch per kind
        if isinstance(value, Enum):  # before str: a (str, Enum) member's str() is its name
            return self._redact(value.value, depth + 1)
        if isinstance(value, str):
            return self.redact_text(str(value))
        if isinstance(value, int) and not _INT_MIN <= value <= _INT_MAX:
            return str(value)  # past 64 bits; JSON writers refuse it
        if value is None or isinstance(value, _PASSTHROUGH):
            return value
        if isinstance(value, SecretStr | SecretBytes):
            return REDACTED
        if depth >= _MAX_DEPTH:
            return self.redact_text(str(value))
        if isinstance(value, Mapping):
            return self._mapping(value.items(), depth)
        if isinstance(value, list | tuple | set | frozenset):
            return [self._redact(item, depth + 1) for item in value]
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            fields = dataclasses.fields(value)
            return self._mapping(((f.name, getattr(value, f.name)) for f in fields), depth)
        if isinstance(value, BaseModel):
            return self._mapping(iter(value), depth)
        if isinstance(value, bytes | bytearray):
            return self.redact_text(bytes(value).decode("utf-8", "replace"))
        if isinstance(value, timedelta):
            return value.total_seconds()
        return self.redact_text(str(value))

    def _mapping(self, items: Iterable[tuple[Any, Any]], depth: int) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        for key, item in items:
            name = key if isinstance(key, str | int | float | bool) else str(key)
            if isinstance(name, str):
                if is_secret_name(name):
                    result[self.redact_text(name)] = REDACTED
                    continue
                name = self.redact_text(name)
            result[name] = self._redact(item, depth + 1)
        return result
