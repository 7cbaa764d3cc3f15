"""Bring a database to the schema this Bastion expects, safely when several processes start.

Every :meth:`Store.open <bastion.store.Store.open>` calls :func:`upgrade`. The whole upgrade runs
in one write transaction that first takes a lock: ``pg_advisory_xact_lock`` on PostgreSQL,
``BEGIN IMMEDIATE`` on SQLite. A second process starting at the same moment waits, then finds
the schema already at head and does nothing. A database stamped with a revision this code has
never heard of was written by a newer Bastion; it is refused rather than half-understood.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

from bastion.errors import ConfigError
from bastion.sensitive import mask_url
from bastion.store.engine import writing

__all__ = ["MIGRATIONS_DIR", "alembic_config", "upgrade"]

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
"""Where the Alembic environment and revisions live, inside the installed package."""

# Any constant every Bastion process agrees on; these are the bytes of "bastion".
_PG_LOCK_KEY = 0x62617374696F6E


def alembic_config() -> Config:
    """An Alembic configuration built in code: no ``alembic.ini`` is needed at run time."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def upgrade(engine: Engine) -> None:
    """Migrate ``engine``'s database to head; :class:`ConfigError` if it is newer than us."""
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
