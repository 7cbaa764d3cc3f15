"""``bastion operator actions``: effectiveness per alert type and action, untrusted names safe."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from bastion.cli import app
from bastion.store import Store

T0 = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
HOSTILE = "Evil\x1b[2J[bold red]Alert"


@pytest.fixture
def store_url(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """A data directory whose store holds executed actions: two effective, one not, one pending,
    one that failed, and one action never run."""
    for key in list(os.environ):
        if key.startswith("BASTION_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BASTION_DATA_DIR", str(tmp_path / "data"))
    url = f"sqlite:///{tmp_path / 'data' / 'bastion.db'}"
    outcomes = [
        ("BastionBreakerOpen", "healthcheck", "executed", True),
        ("BastionBreakerOpen", "healthcheck", "executed", True),
        ("BastionBreakerOpen", "healthcheck", "executed", False),
        ("BastionBreakerOpen", "halt", "executed", None),
        ("BastionBreakerOpen", "halt", "failed", None),
        (HOSTILE, "silence", "executed", True),
        ("BastionBreakerOpen", "healthcheck", "proposed", None),
    ]
    with Store.open(url) as store:
        for n, (name, action, status, effective) in enumerate(outcomes):
            alert = store.alerts.receive(
                fingerprint=f"{n:016x}",
                starts_at=T0,
                alertname=name,
                status="firing",
                severity="page",
                summary=None,
                labels={"alertname": name},
                annotations={},
                generator_url=None,
                ends_at=None,
                at=T0,
            ).alert
            if status == "proposed":
                store.alerts.add_action(alert.id, action=action, params={}, status=status, at=T0)
                continue
            record = store.alerts.add_action(
                alert.id, action=action, params={}, status="approved", at=T0, decided_by="alice"
            )
            store.alerts.move_action(
                record.id,
                from_status="approved",
                to_status=status,
                executed_at=T0 + timedelta(seconds=n),
                outcome={"validated": effective is not None, "effective": effective, "detail": ""},
            )
    return url


def test_the_table_counts_effective_and_ineffective_per_alert_and_action(store_url: str) -> None:
    result = CliRunner().invoke(app, ["operator", "actions"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if "BastionBreakerOpen" in line]
    assert len(lines) == 2
    halt = next(line for line in lines if " halt " in line)
    check = next(line for line in lines if "healthcheck" in line)
    assert _cells(check)[2:] == ["3", "0", "2", "1", "0", "67%"]
    assert _cells(halt)[2:] == ["1", "1", "0", "0", "1", "—"]


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip("│ ").split("│")]


def test_json_gives_the_counts_and_rates(store_url: str) -> None:
    result = CliRunner().invoke(app, ["operator", "actions", "--json"])
    assert result.exit_code == 0, result.output
    rows = orjson.loads(result.output)
    by_action = {(r["alertname"], r["action"]): r for r in rows}
    assert by_action["BastionBreakerOpen", "healthcheck"]["effective_rate"] == pytest.approx(2 / 3)
    assert by_action["BastionBreakerOpen", "halt"]["failed"] == 1
    assert by_action[HOSTILE, "silence"]["executed"] == 1


def test_an_alert_name_cannot_drive_the_terminal(store_url: str) -> None:
    """Escapes show as escapes and Rich markup prints literally."""
    result = CliRunner().invoke(app, ["operator", "actions"], env={"COLUMNS": "200"})
    assert "\x1b" not in result.output
    assert "Evil\\x1b[2J[bold red]Alert" in result.output


def test_no_action_yet_says_so(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BASTION_DATA_DIR", str(tmp_path / "empty"))
    result = CliRunner().invoke(app, ["operator", "actions"])
    assert (result.exit_code, result.output.strip()) == (0, "No operator action has run yet.")
