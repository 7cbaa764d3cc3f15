"""Shared fixtures: one throwaway PostgreSQL cluster per session and the ``store_url`` fixture.

``store_url`` runs every test that asks for it on SQLite and, when a PostgreSQL server binary
(``pg_ctl``) is on PATH, again on a fresh PostgreSQL database. Without ``pg_ctl`` the PostgreSQL
cases are not generated at all; CI installs PostgreSQL, so there they always run.
"""

from __future__ import annotations

import os
import pwd
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings
from psycopg import Connection
from pytest_postgresql import factories
from sqlalchemy.engine import URL

# Property tests must not flake on a loaded 2-core box: no per-example deadline anywhere, and in
# CI a fixed exploration so a red run is reproducible (a failure found locally is kept in the
# example database and replayed).
hypothesis_settings.register_profile("default", deadline=None)
hypothesis_settings.register_profile("ci", deadline=None, derandomize=True)
hypothesis_settings.load_profile("ci" if os.environ.get("CI") else "default")

_PG_CTL = shutil.which("pg_ctl")

# PostgreSQL refuses to run as root (CI and dev machines here run as root). This wrapper runs
# pg_ctl as an unprivileged user and lets it reach its cluster in pytest's private temporary
# directory: the user owns the cluster's parent and may traverse (not list) its ancestors. The
# ancestors are opened up on every call because another pytest session resets them to 0700.
_AS_USER = """#!/bin/sh
previous=
for arg in "$@"; do
    if [ "$previous" = -D ] || [ "$previous" = --pgdata ]; then
        parent=$(dirname "$arg")
        [ "$1" = initdb ] && chown {user} "$parent"
        dir=$parent
        while [ "$dir" != / ]; do chmod o+x "$dir" 2>/dev/null; dir=$(dirname "$dir"); done
    fi
    previous=$arg
done
exec runuser -u {user} -- {pg_ctl} "$@"
"""


def _pg_ctl_runnable(pg_ctl: str) -> str:
    """``pg_ctl`` itself, or as root a wrapper that runs it as ``postgres`` (or ``nobody``)."""
    if os.geteuid() != 0:
        return pg_ctl
    user = "postgres"
    try:
        pwd.getpwnam(user)
    except KeyError:
        user = "nobody"
    wrapper = Path(tempfile.gettempdir()) / f"bastion-tests-pg_ctl-as-{user}"
    staging = wrapper.with_name(f"{wrapper.name}.{os.getpid()}")
    staging.write_text(_AS_USER.format(user=user, pg_ctl=pg_ctl))
    staging.chmod(0o755)
    staging.replace(wrapper)
    return str(wrapper)


_BACKENDS = [pytest.param("sqlite", id="sqlite")]
if _PG_CTL is not None:
    postgresql_proc = factories.postgresql_proc(
        executable=_pg_ctl_runnable(_PG_CTL),
        # A throwaway cluster: durability only slows the tests down.
        postgres_options="-c fsync=off -c synchronous_commit=off -c full_page_writes=off",
        # pg_ctl start waits (at most 60 s) on its own. Leaving "-w" out also skips the plugin's
        # unbounded wait loop, which spins forever if the cluster directory vanishes (another
        # pytest session on the machine pruning old temporary directories).
        startparams="-t 60",
    )
    postgresql = factories.postgresql("postgresql_proc")
    _BACKENDS.append(pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres))


@pytest.fixture(params=_BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL for an empty database: a SQLite file under tmp_path, or a fresh PostgreSQL one."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'data' / 'bastion.db'}"
    return str(request.getfixturevalue("postgresql_url"))


@pytest.fixture
def postgresql_url(request: pytest.FixtureRequest) -> str:
    """A URL for a fresh PostgreSQL database, for what only PostgreSQL has (its commit modes,
    its deadlocks); ``make test`` installs the server, so this is never skipped."""
    connection: Connection = request.getfixturevalue("postgresql")
    info = connection.info
    url = URL.create(
        "postgresql+psycopg",
        username=info.user,
        password=info.password or None,
        host=info.host,
        port=info.port,
        database=info.dbname,
    )
    return url.render_as_string(hide_password=False)
