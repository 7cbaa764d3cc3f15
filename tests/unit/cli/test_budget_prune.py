"""``bastion budget prune``: says how many ledger rows go (or would), and keeps the totals."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from bastion.cli import app
from bastion.store import Store
from bastion.store.budget import LedgerEntry, Settlement, budget_ledger, budget_model_usage

AGES = (timedelta(days=40), timedelta(days=31), timedelta(days=29), timedelta(hours=1))
"""How old the ledger's rows are when the test starts: two are past 30 days."""


@pytest.fixture
def store_url(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """A data directory whose store holds a priced call at each of ``AGES`` (real time)."""
    for key in list(os.environ):
        if key.startswith("BASTION_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BASTION_DATA_DIR", str(tmp_path / "data"))
    url = f"sqlite:///{tmp_path / 'data' / 'bastion.db'}"
    now = datetime.now(UTC)
    with Store.open(url) as store:
        for age in AGES:
            entry = LedgerEntry(
                at=now - age, agent="a", model="m", tokens_in=1, tokens_out=2, tokens=3, usd=4
            )
            store.budget.settle(
                [Settlement("none", tuple([("agent:a", "day")]), 0, 0, entry)], expires_at=entry.at
            )
    return url


def _counts(url: str) -> tuple[int, int]:
    """Ledger rows, and the invocations the per-model running totals hold."""
    with Store.open(url) as store, store.engine.connect() as conn:
        ledger = conn.scalar(sa.select(sa.func.count()).select_from(budget_ledger))
        totals = conn.scalar(sa.select(sa.func.sum(budget_model_usage.c.invocations)))
    return int(ledger or 0), int(totals or 0)


ROWS = r"budget ledger row\(s\) older than \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(retention 30 days\)"


def test_dry_run_counts_and_deletes_nothing(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BASTION_BUDGET_LEDGER_RETENTION_DAYS", "30")
    result = CliRunner().invoke(app, ["budget", "prune", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert re.fullmatch(f"Would delete 2 {ROWS}; nothing deleted.\n", result.stdout)
    assert _counts(store_url) == (4, 4)


def test_prune_deletes_the_old_rows_and_keeps_the_totals(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BASTION_BUDGET_LEDGER_RETENTION_DAYS", "30")
    cli = CliRunner()
    first = cli.invoke(app, ["budget", "prune"])
    assert first.exit_code == 0, first.output
    assert re.fullmatch(f"Deleted 2 {ROWS}; running totals unchanged.\n", first.stdout)
    assert _counts(store_url) == (2, 4)
    again = cli.invoke(app, ["budget", "prune"])
    assert re.fullmatch(f"Deleted 0 {ROWS}; running totals unchanged.\n", again.stdout)


def test_days_overrides_the_setting_and_json_says_what_was_done(store_url: str) -> None:
    result = CliRunner().invoke(app, ["budget", "prune", "--days", "1", "--json"])
    assert result.exit_code == 0, result.output
    data = orjson.loads(result.stdout)
    assert (data["dry_run"], data["rows"], data["retention_days"]) == (False, 3, 1)
    cutoff = datetime.fromisoformat(data["cutoff"])
    assert timedelta(days=1) <= datetime.now(UTC) - cutoff < timedelta(days=1, minutes=5)
    assert _counts(store_url) == (1, 4)


def test_without_a_retention_nothing_is_pruned_and_the_fix_is_named(store_url: str) -> None:
    result = CliRunner().invoke(app, ["budget", "prune"])
    assert result.exit_code == 2
    assert "Nothing to prune" in result.stderr
    assert "BASTION_BUDGET_LEDGER_RETENTION_DAYS" in result.stderr
    assert "Fix: set it, or pass --days N." in result.stderr
    assert _counts(store_url) == (4, 4)


def test_a_retention_below_one_day_is_refused_with_the_field_and_the_fix(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BASTION_BUDGET_LEDGER_RETENTION_DAYS", "0")
    result = CliRunner().invoke(app, ["budget", "prune"])
    assert result.exit_code == 2
    assert (
        "budget_ledger_retention_days (BASTION_BUDGET_LEDGER_RETENTION_DAYS): Input should be "
        "greater than or equal to 1; got '0'." in result.stderr
    )
    assert "Fix: Days (at least 1)" in result.stderr
    assert CliRunner().invoke(app, ["budget", "prune", "--days", "0"]).exit_code == 2
    assert _counts(store_url) == (4, 4)


def test_bastion_budget_alone_still_shows_the_spend(store_url: str) -> None:
    """Making ``budget`` a group kept its own report, with and without --json."""
    text = CliRunner().invoke(app, ["budget"])
    assert text.exit_code == 0, text.output
    assert text.stdout.startswith("Agent options_seller (budgets are per agent")
    assert "Used today: " in text.stdout
    data = orjson.loads(CliRunner().invoke(app, ["budget", "--json"]).stdout)
    assert data["agent"] == "options_seller"
    assert "tokens_used_today" in data
