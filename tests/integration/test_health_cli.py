"""`bastion health`: a table or the API's JSON, and an exit code cron and CI can use."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from bastion.cli import app


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CliRunner:
    monkeypatch.setenv("BASTION_DATA_DIR", str(tmp_path / "data"))
    return CliRunner()


def _fault(monkeypatch: pytest.MonkeyPatch, **fault: object) -> None:
    monkeypatch.setenv("BASTION_PAPER_FAULTS", orjson.dumps([{**fault, "times": None}]).decode())


def test_healthy_paper_setup_exits_0_with_every_check(cli: CliRunner) -> None:
    """OK is exit 0, and --json has the API's shape."""
    result = cli.invoke(app, ["health", "--json"])
    assert result.exit_code == 0, result.output
    body = orjson.loads(result.stdout)
    assert set(body) >= {
        "last_run_at",
        "overall_status",
        "summary",
        "checks",
        "agent_paused_due_to_health",
    }
    assert body["overall_status"] == "OK"
    assert {c["status"] for c in body["checks"]} == {"OK"}


def test_a_forbidden_exchange_is_warn_in_paper_with_the_classified_detail(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 403 from the exchange: WARN (exit 1) in paper, the detail names FORBIDDEN (HTTP 403)."""
    _fault(monkeypatch, kind="status", status=403, method="public/get_time")
    result = cli.invoke(app, ["health"])
    assert result.exit_code == 1, result.output
    assert "FORBIDDEN (HTTP 403)" in result.output
    assert "WARN" in result.output


def test_a_severity_override_makes_it_fail(cli: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    """Per-check severity: forbidden on exchange_public configured FAIL gives exit 2."""
    _fault(monkeypatch, kind="status", status=403, method="public/get_time")
    overrides = {"exchange_public": {"forbidden": "FAIL"}}
    monkeypatch.setenv("BASTION_HEALTH_SEVERITY_OVERRIDES", orjson.dumps(overrides).decode())
    result = cli.invoke(app, ["health", "--json"])
    assert result.exit_code == 2, result.output
    body = orjson.loads(result.stdout)
    public = next(c for c in body["checks"] if c["name"] == "exchange_public")
    assert (public["status"], public["code"]) == ("FAIL", "forbidden")


def test_every_dependency_hanging_still_answers_within_the_check_timeout(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """All exchange calls hang: each check reports a timeout near its 0.5 s bound."""
    _fault(monkeypatch, kind="hang", method="*")
    monkeypatch.setenv("BASTION_HEALTH_CHECK_TIMEOUT_SECONDS", "0.5")
    result = cli.invoke(app, ["health", "--json"])
    assert result.exit_code == 1, result.output  # timeouts are WARN in paper
    body = orjson.loads(result.stdout)
    hung = [c for c in body["checks"] if c["code"] == "timeout"]
    assert {c["name"] for c in hung} >= {"exchange_public", "exchange_private", "clock_skew"}
    # The acceptance bound: each answered within the per-check timeout plus one second.
    assert all(c["latency_ms"] <= 1_500 for c in hung)
