"""The commands a person types when something is wrong import only what they use.

Each command runs for real in a fresh interpreter under ``python -X importtime``, whose report on
stderr names every module the process imported; the store is created first, as it is on any
deployment that has run once (a brand-new database needs Alembic to build its schema).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bastion.store import Store
from bastion.store.migrate import alembic_config, head_revisions

HEAVY = frozenset({"fastapi", "uvicorn", "alembic", "openai", "anthropic", "ccxt"})
"""Server, migration and SDK packages: seconds of imports that kill, resume and status never use."""

VIA_BUILD = frozenset({"starlette", "websockets"})
"""What ``bastion.build`` would pull in if its factories imported their parts at its top (the
paper exchange and the WebSocket client)."""

DATABASE_LAYER = frozenset({"sqlalchemy", "psycopg"})
"""Longer to import than all of ``bastion kill`` may take: kill and resume record a halt on a
SQLite store at head through ``bastion.store.emergency`` instead."""

COMMANDS = [
    pytest.param(["kill", "--reason", "t"], "Kill switch active", id="kill"),
    pytest.param(["resume", "--reason", "t"], "nothing to resume", id="resume"),
    pytest.param(["status"], "Not halted", id="status"),
]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A data directory whose store is already at head."""
    data = tmp_path / "data"
    Store.open(f"sqlite:///{data / 'bastion.db'}").close()
    return data


def _run(args: list[str], data_dir: Path) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """``bastion <args>`` in a fresh interpreter, and the top-level packages it imported."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
    env |= {"BASTION_DATA_DIR": str(data_dir), "BASTION_CONSOLE_PORT": "0"}
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "bastion", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=data_dir.parent,  # no stray bastion.toml
        timeout=60,
        check=False,
    )
    imported = {
        line.rsplit("|", 1)[1].strip().split(".")[0]
        for line in result.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    return result, imported


@pytest.mark.parametrize(("args", "said"), COMMANDS)
def test_command_imports_no_server_migration_or_sdk(
    args: list[str], said: str, data_dir: Path
) -> None:
    """kill, resume and status do their job without fastapi, uvicorn, alembic or an SDK."""
    result, imported = _run(args, data_dir)
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
    assert said in result.stdout
    assert "bastion" in imported  # the report was parsed
    assert imported & HEAVY == set()


@pytest.mark.parametrize(("args", "said"), COMMANDS)
def test_command_imports_no_asgi_or_websocket_stack(
    args: list[str], said: str, data_dir: Path
) -> None:
    """Nor starlette or websockets: ``bastion.build`` imports the simulators and the WebSocket
    client only where it builds them."""
    result, imported = _run(args, data_dir)
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
    assert said in result.stdout
    assert imported & VIA_BUILD == set()


@pytest.mark.parametrize(("args", "said"), COMMANDS[:2])
def test_kill_and_resume_import_no_database_layer(
    args: list[str], said: str, data_dir: Path
) -> None:
    """kill and resume on a SQLite store at head import neither SQLAlchemy nor a driver."""
    result, imported = _run(args, data_dir)
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
    assert said in result.stdout
    assert imported & DATABASE_LAYER == set()


def test_kill_and_resume_record_the_halt_and_the_events_without_the_database_layer(
    data_dir: Path,
) -> None:
    """The cheap path still records everything: the flag, the halt row and both events, read
    back through the full store."""
    result, imported = _run(["kill", "--reason", "drill"], data_dir)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "sqlalchemy" not in imported
    assert (data_dir / "kill_switch.flag").exists()
    result, _ = _run(["resume", "--reason", "drill over"], data_dir)
    assert result.returncode == 0, result.stderr[-2000:]
    assert not (data_dir / "kill_switch.flag").exists()
    with Store.open(f"sqlite:///{data_dir / 'bastion.db'}") as store:
        [halt] = store.halts.history()
        kinds = [e.kind for e in store.events.list()]
    assert (halt.reason, halt.resume_reason, halt.active) == ("drill", "drill over", False)
    assert kinds == ["halt_resumed", "halt_tripped"]


def test_a_new_store_is_still_migrated(tmp_path: Path) -> None:
    """On a data directory with no database yet, kill builds the schema through Alembic."""
    data = tmp_path / "data"
    result, imported = _run(["kill", "--reason", "first"], data)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "alembic" in imported
    with Store.open(f"sqlite:///{data / 'bastion.db'}") as store:
        assert [h.reason for h in store.halts.history()] == ["first"]


def test_the_text_reading_of_the_heads_is_alembics() -> None:
    """``head_revisions`` (no Alembic import) names the heads Alembic's ScriptDirectory does."""
    from alembic.script import ScriptDirectory  # noqa: PLC0415  only this test needs it

    assert head_revisions() == frozenset(ScriptDirectory.from_config(alembic_config()).get_heads())
