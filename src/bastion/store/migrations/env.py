"""Alembic environment: run the migrations on the connection :mod:`bastion.store.migrate` hands in.

Bastion upgrades its own schema at start-up, inside a transaction that already holds the
migration lock, so this environment never opens connections or transactions of its own when one
is given. For hand use (``alembic`` with ``sqlalchemy.url`` set), it opens one through the same
engine factory as the runtime so SQLite gets the same pragmas.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from bastion.store.engine import create_engine, parse_url, writing


def _run(connection: Connection) -> None:
    context.configure(connection=connection, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def _main() -> None:
    given = context.config.attributes.get("connection")
    if isinstance(given, Connection):
        _run(given)
        return
    url = context.config.get_main_option("sqlalchemy.url") or ""
    engine = create_engine(parse_url(url))
    try:
        with writing(engine) as connection:
            _run(connection)
    finally:
        engine.dispose()


_main()
