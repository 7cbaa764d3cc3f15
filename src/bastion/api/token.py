"""The console tokens: what every ``/api`` route asks for, and who a request acts as.

The shared token is generated on first run into ``<data_dir>/console_token`` with mode 0600
and printed as part of the console URL, the way Jupyter does, so a person on the same machine
can open the console while other local users and web pages cannot call the API. A token set in
settings wins. A request with it acts as the operating-system user the console runs as,
``<user> (console)``, as the kill switch records it.

Named tokens (``console_named_tokens``: name -> token) tell people apart: a request with one
acts as its name. That name, and never anything in a request body, is who a decision is
recorded as (:func:`console_user`), so an approval in the store says which person approved it.
"""

from __future__ import annotations

import getpass
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from fastapi import HTTPException, Request, status

__all__ = ["TokenGuard", "console_user", "ensure_console_token"]

_TOKEN_BYTES = 32
_USER = "console_user"


def ensure_console_token(path: Path) -> str:
    """Read the token at ``path``, creating it (0600) on first use."""
    try:
        token = path.read_text(encoding="utf-8").strip()
        if token:
            return token
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(_TOKEN_BYTES)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(token + "\n")
    os.chmod(path, 0o600)
    return token


def _os_user() -> str:
    try:
        return f"{getpass.getuser()} (console)"
    except (OSError, KeyError):  # no login name in the environment nor the password database
        return "console"


class TokenGuard:
    """FastAPI dependency: accept ``Authorization: Bearer <token>`` or ``?token=<token>``.

    The shared ``token`` or any of ``named`` (name -> token) opens the API; which one did is
    kept on the request for :func:`console_user`. Every token is compared, in constant time,
    so the answer's timing does not tell which names exist.
    """

    def __init__(self, token: str, named: Mapping[str, str] | None = None) -> None:
        self._tokens: list[tuple[bytes, str | None]] = [(token.encode(), None)]
        self._tokens += [(value.encode(), name) for name, value in (named or {}).items()]

    def __call__(self, request: Request) -> None:
        offered = request.query_params.get("token", "")
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            offered = header[7:].strip()
        found: str | None = None
        matched = False
        for value, name in self._tokens:
            if secrets.compare_digest(offered.encode(), value) and offered:
                matched, found = True, name
        if not matched:
            raise HTTPException(
                status_code=status.HTTP_401_UNAUTHORIZED,
                detail="console token missing or wrong: open the URL `bastion run` printed, "
                "or send Authorization: Bearer <data/console_token or your named token>",
                headers={"WWW-Authenticate": "Bearer"},
            )
        setattr(request.state, _USER, found if found is not None else _os_user())


def console_user(request: Request) -> str:
    """Who the request acts as: its named token's name, or the console's OS user.

    Refuses (401) a request the :class:`TokenGuard` did not pass, so a route mounted without
    the guard can never record a decision under a made-up name.
    """
    who = getattr(request.state, _USER, None)
    if not isinstance(who, str) or not who:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "this route needs the console token: mount it behind TokenGuard",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return who
