"""``bastion slo`` on a real data directory: a real run's task records, read back from the store."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from bastion.cli import app
from bastion.clock import WallClock
from bastion.store import Store
from bastion.store.tasks import Task


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CliRunner:
    monkeypatch.setenv("BASTION_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("BASTION_CONSOLE_PORT", "0")
    monkeypatch.setenv("BASTION_LOOP_INTERVAL_SECONDS", "0.01")
    return CliRunner()


def test_a_runs_steps_are_task_records_the_slos_count(cli: CliRunner, tmp_path: Path) -> None:
    """`bastion run --steps 3` records three tasks; `bastion slo --json` counts them, all good."""
    ran = cli.invoke(app, ["run", "--steps", "3"])
    assert ran.exit_code == 0, ran.output
    with Store.open(f"sqlite:///{tmp_path / 'data' / 'bastion.db'}") as store:
        assert store.tasks.count(kind="step") == 3
    result = cli.invoke(app, ["slo", "--json"])
    assert result.exit_code == 0, result.output
    body = orjson.loads(result.stdout)
    completion, latency, cost = body["slos"]
    assert (completion["total"], completion["good"], completion["sli"]) == (3, 3, 1.0)
    assert (latency["total"], cost["total"]) == (3, 3)
    assert completion["burn_rates"]["5m"] == 0.0
    assert body["firing"] == []


def test_failing_steps_show_as_a_firing_page_in_the_table(cli: CliRunner, tmp_path: Path) -> None:
    """Failures of the last minutes burn every window: the table marks the page and lists it."""
    data = tmp_path / "data"
    data.mkdir()
    now = WallClock().now()
    with Store.open(f"sqlite:///{data / 'bastion.db'}") as store:
        for n in range(20):
            store.tasks.record(
                Task(
                    "r1",
                    "seller",
                    now - timedelta(seconds=10 * n),
                    "failed" if n < 5 else "ok",
                    duration_s=1.0,
                )
            )
    result = cli.invoke(app, ["slo"])
    assert result.exit_code == 0, result.output
    assert "page ticket" in result.output
    assert "15/20" in result.output
    assert "Firing (3):" in result.output  # the completion page and ticket, the 5-minute errors
    assert "BastionStepErrorBudgetBurn" in result.output
    assert "BastionStepErrorRateHigh" in result.output
    as_json = orjson.loads(cli.invoke(app, ["slo", "--json"]).stdout)
    assert {a["key"] for a in as_json["firing"]} == {
        "slo:task_completion:page",
        "slo:task_completion:ticket",
        "page_on:error_rate",
    }
