"""What counts as a secret, by name and inside URLs: the rules every layer masks by.

:func:`is_secret_name` says which keys hold secrets (``client_secret``, ``X-Api-Key``,
``access_token``; not ``max_tokens``). :func:`mask_url` hides the password in a URL's userinfo
and the value of every secret-shaped ``name=value`` pair (``?password=``, ``&sslpassword=``,
``?api_key=``, a conninfo ``password='...'``) by shape, whether or not anybody told us the
value, and :func:`url_secrets` lists those values so a redactor can hunt them anywhere.

They sit on the ground floor because settings (``Settings.public_dict``), the store's errors and
the trace's :class:`~bastion.trace.redact.Redactor` all apply them; the module imports nothing
but the standard library.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import unquote, unquote_plus

__all__ = ["MIN_SECRET_LENGTH", "URL_MASK", "is_secret_name", "mask_url", "url_secrets"]

URL_MASK = "***"
"""What a masked password or secret parameter reads as inside a URL.

SQLAlchemy's own marker, so a masked store URL reads the same in every message; unlike
``[REDACTED]`` it leaves the URL a URL (brackets are not allowed in userinfo and would read as
an IPv6 host).
"""

MIN_SECRET_LENGTH = 4
"""Shorter secret values are not searched for by value: a one to three character "secret" (a
test's ``"x"``) would match inside ordinary words and numbers and shred the record, while
protecting nothing, since a value that short is guessable anyway."""

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
