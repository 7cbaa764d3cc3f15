"""The console token: what every ``/api`` route asks for.

Generated on first run into ``<data_dir>/console_token`` with mode 0600 and printed as part of
the console URL, the way Jupyter does, so a person on the same machine can open the console
while other local users and web pages cannot call the API. A token set in settings wins.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from fastapi import HTTPException, Request, status

__all__ = ["TokenGuard", "ensure_console_token"]

_TOKEN_BYTES = 32


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


class TokenGuard:
    """FastAPI dependency: accept ``Authorization: Bearer <token>`` or ``?token=<token>``."""

    def __init__(self, token: str) -> None:
        self._token = token.encode()

    def __call__(self, request: Request) -> None:
        offered = request.query_params.get("token", "")
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            offered = header[7:].strip()
        if not offered or not secrets.compare_digest(offered.encode(), self._token):
            raise HTTPException(
                status_code=status.HTTP_401_UNAUTHORIZED,
                detail="console token missing or wrong: open the URL `bastion run` printed, "
                "or send Authorization: Bearer <data/console_token>",
                headers={"WWW-Authenticate": "Bearer"},
            )
