"""Bring a database to the schema this Bastion expects, safely when several processes start.

Every :meth:`Store.open <bastion.store.Store.open>` calls :func:`upgrade`. The whole upgrade runs
in one write transaction that first takes a lock: ``pg_advisory_xact_lock`` on PostgreSQL,
``BEGIN IMMEDIATE`` on SQLite. A second process starting at the same moment waits, then finds
the schema already at head and does nothing. A database stamped with a revision this code has
never heard of was written by a newer Bastion; it is refused rather than half-understood.

Alembic takes about a tenth of a second to import, and ``bastion kill`` opens the store, so
:func:`upgrade` first reads the stamped revision without it and compares it with
:func:`~bastion.store.revisions.head_revisions`, which reads the revision files as text. Only a
database that is not at head (new, behind, or newer than us) takes the locked path through
Alembic; a test keeps the text reading equal to Alembic's own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bastion.errors import ConfigError
from bastion.sensitive import mask_url
from bastion.store.engine import reading, writing
from bastion.store.revisions import MIGRATIONS_DIR, head_revisions

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = ["MIGRATIONS_DIR", "alembic_config", "head_revisions", "upgrade"]

# Any constant every Bastion process agrees on; these are the bytes of "bastion".
_PG_LOCK_KEY = 0x62617374696F6E
_STAMPED = sa.text("SELECT version_num FROM alembic_version")  # Alembic's default table name


def alembic_config() -> Config:
    """An Alembic configuration built in code: no ``alembic.ini`` is needed at run time."""
    from alembic.config import Config  # noqa: PLC0415  lazy: see the module docstring

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def _at_head(engine: Engine) -> bool:
    """Whether the database is stamped with exactly the shipped heads (no lock, no Alembic)."""
    heads = head_revisions()
    if heads is None:
        return False
    with reading(engine) as conn:
        if not sa.inspect(conn).has_table("alembic_version"):
            return False
        return frozenset(conn.execute(_STAMPED).scalars()) == heads


def upgrade(engine: Engine) -> None:
    """Migrate ``engine``'s database to head; :class:`ConfigError` if it is newer than us."""
    if _at_head(engine):
        return
    from alembic import command  # noqa: PLC0415  lazy: see the module docstring
    from alembic.runtime.migration import MigrationContext  # noqa: PLC0415  (as above)
    from alembic.script import ScriptDirectory  # noqa: PLC0415  (as above)

    config = alembic_config()
    script = ScriptDirectory.from_config(config)
    heads = set(script.get_heads())
    known = {revision.revision for revision in script.walk_revisions()}
    with writing(engine) as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
        current = set(MigrationContext.configure(conn).get_current_heads())
        unknown = sorted(current - known)
        if unknown:
            where = mask_url(engine.url.render_as_string(hide_password=False))
            raise ConfigError(
                f"The store {where} is at schema revision {', '.join(unknown)}, newer than this "
                f"Bastion knows (its newest is {', '.join(sorted(heads))}): a newer Bastion "
                "wrote it. Fix: upgrade Bastion; do not point an older one at this database."
            )
        if current == heads:
            return
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
