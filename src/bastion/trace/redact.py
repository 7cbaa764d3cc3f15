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
from collections.abc import Iterable, Iterator, Mapping
from datetime import date, datetime, time, timedelta
from enum import Enum
from typing import Any
from urllib.parse import unquote, unquote_plus
from uuid import UUID

from pydantic import BaseModel, SecretBytes, SecretStr

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

MIN_SECRET_LENGTH = 4
"""Shorter secret values are not searched for (see the module docstring)."""

URL_MASK = "***"
"""What a masked password or secret parameter reads as inside a URL.

SQLAlchemy's own marker, so a masked store URL reads the same in every message; unlike
``[REDACTED]`` it leaves the URL a URL (brackets are not allowed in userinfo and would read as
an IPv6 host).
"""

_SECRET_NAME = re.compile(
    # "token" only at the end of a name: access_token, X-Auth-Token; not token_ttl_seconds or
    # input_tokens, which are settings and usage counts an audit needs to read.
    r"secret|passw(or)?d|passphrase|authorization|api_?key|private_?key|token$",
    re.IGNORECASE,
)
# Names a URL uses for a secret that a settings field would not: libpq/ODBC "pwd", Google's
# "key", signed-URL signatures and credentials (Azure "sig", AWS "X-Amz-Signature").
_URL_SECRET_NAME = re.compile(r"^(?:pwd|key|sig|auth)$|signature|credential", re.IGNORECASE)
# A scheme, "://", and the rest up to a blank, a quote or an angle bracket: where userinfo hides.
_URL = re.compile(r"(?<![\w+.\-])[A-Za-z][\w+.\-]*://[^\s\"'<>`]+")
_USER = re.compile(r"[^:/?#@\s]*")
# name=value anywhere: a query or fragment parameter, a conninfo pair ("password='a b'").
_PAIR = re.compile(r"(?<![\w.%\-])(?P<key>[\w.%\-]+)=(?P<value>'[^']*'|\"[^\"]*\"|[^&\s\"'<>`]+)")
_PASSTHROUGH = (bool, int, float, datetime, date, time, UUID)
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1
# Deeper than this is a cycle or a mistake; the rest is rendered as redacted text.
_MAX_DEPTH = 64


def is_secret_name(name: str) -> bool:
    """Whether a key or field called ``name`` holds a secret (``X-Api-Key``, ``client_secret``)."""
    return _SECRET_NAME.search(name.replace("-", "_")) is not None


def mask_url(text: str) -> str:
    """``text`` with every URL password and secret-shaped parameter value replaced by ``***``.

    ``text`` is usually one URL (a setting, a store to name in an error) but may be any message:
    every URL in it is masked. Two rules:

    * **userinfo**: ``scheme://user:password@`` becomes ``scheme://user:***@``; the user name
      stays, since who connects is what an operator debugs. The password runs to the last ``@``
      before the query, or, failing that, to the first ``@`` after it, because SQLAlchemy reads
      an unencoded ``@``, ``/``, ``?`` or ``#`` as part of the password, and masking a little too
      much is better than leaking a little;
    * **parameters**: in every ``name=value`` pair (``?password=``, ``&sslpassword=``,
      ``?api_key=``, ``#access_token=``, a conninfo ``password='...'``) whose name is secret by
      :func:`is_secret_name` or is a URL's own secret name (``pwd``, ``key``, ``sig``, ``auth``,
      ``*signature*``, ``*credential*``; percent-encoded names are decoded first), the value
      becomes ``***``. ``sslmode=require``, ``max_tokens=5`` or ``sslkey=/path`` stay readable.

    A credential in the user name slot alone (``https://TOKEN@host``) is not recognised: put it
    where the URL scheme puts secrets. Masking is idempotent and imports no database library, so
    the pure layers use it too.
    """
    if "://" not in text and "=" not in text:
        return text
    return _PAIR.sub(_mask_pair, _URL.sub(_mask_userinfo, text))


def url_secrets(text: str) -> list[str]:
    """The secret values :func:`mask_url` would hide in ``text``, in every spelling.

    Each value is listed raw and percent-decoded (also with ``+`` as a space): a driver's error
    may echo the decoded password it sent, and a redactor told about every form catches it even
    where no URL surrounds it.
    """
    found = list(_userinfo_passwords(text))
    for match in _PAIR.finditer(text):
        if _is_secret_param(match["key"]):
            value = match["value"]
            found.append(value[1:-1] if value[:1] in {"'", '"'} else value)
    spellings = (form for raw in found for form in (raw, unquote(raw), unquote_plus(raw)))
    return list(dict.fromkeys(s for s in spellings if s and s != URL_MASK))


def _is_secret_param(key: str) -> bool:
    name = unquote(key)
    return is_secret_name(name) or _URL_SECRET_NAME.search(name) is not None


def _mask_pair(match: re.Match[str]) -> str:
    if not _is_secret_param(match["key"]):
        return match.group()
    return f"{match['key']}={URL_MASK}"


def _password_span(rest: str) -> tuple[int, int] | None:
    """Where the password sits in ``rest`` (a URL after ``://``), or None without one."""
    user = _USER.match(rest)
    colon = user.end() if user else 0
    if rest[colon : colon + 1] != ":":
        return None
    query = min((i for i in (rest.find("?", colon), rest.find("#", colon)) if i >= 0), default=-1)
    at = rest.rfind("@", colon, len(rest) if query < 0 else query)
    if at < 0 and query >= 0:
        at = rest.find("@", query)
        if at >= 0 and "/" in rest[colon:at]:
            at = -1  # host:port/path?email=a@b: the "@" is a parameter's, not userinfo's
    if at <= colon + 1:
        return None
    return colon + 1, at


def _userinfo_passwords(text: str) -> Iterator[str]:
    for match in _URL.finditer(text):
        rest = match.group().partition("://")[2]
        span = _password_span(rest)
        if span is not None:
            yield rest[span[0] : span[1]]
        yield from _userinfo_passwords(rest if span is None else rest[span[1] :])


def _mask_userinfo(match: re.Match[str]) -> str:
    scheme, _, rest = match.group().partition("://")
    span = _password_span(rest)
    head, tail = ("", rest) if span is None else (f"{rest[: span[0]]}{URL_MASK}", rest[span[1] :])
    # A URL nested in this one (?next=https://u:pw@h) has its own userinfo masked too.
    return f"{scheme}://{head}{_URL.sub(_mask_userinfo, tail)}"


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
