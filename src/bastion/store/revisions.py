"""The schema revisions this Bastion ships, read from the revision files as text.

Alembic takes about a tenth of a second to import and SQLAlchemy twice that; the commands that
must start at once (``bastion kill``) still need to know whether a database is at the schema
they were written for. Reading the ``revision`` and ``down_revision`` assignments of the shipped
files answers that with the standard library; a test keeps this reading equal to Alembic's own.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

__all__ = ["MIGRATIONS_DIR", "head_revisions"]

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
"""Where the Alembic environment and revisions live, inside the installed package."""

_ASSIGNMENT = re.compile(r"^(revision|down_revision)\s*(?::[^=]+)?=\s*(.+?)\s*$", re.MULTILINE)


def head_revisions() -> frozenset[str] | None:
    """The head revisions of the shipped migrations, read as text; None if a file is unusual.

    A head is a revision no other revision revises. ``None`` (a revision file this reading
    does not understand) sends :func:`~bastion.store.migrate.upgrade` down Alembic's path, which
    is always right.
    """
    revised: set[str] = set()
    revisions: set[str] = set()
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        found = {m.group(1): m.group(2) for m in _ASSIGNMENT.finditer(text)}
        try:
            revision = ast.literal_eval(found["revision"])
            down = ast.literal_eval(found["down_revision"])
        except (KeyError, ValueError, SyntaxError):
            return None
        if not isinstance(revision, str):
            return None
        revisions.add(revision)
        revised.update((down,) if isinstance(down, str) else down or ())
    return frozenset(revisions - revised) or None
