"""`bastion smoke`: PASS on a healthy exchange, SKIPPED with the reason when it is offline."""

from __future__ import annotations

import socket
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from bastion.cli import app


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CliRunner:
    monkeypatch.setenv("BASTION_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("BASTION_LOOP_INTERVAL_SECONDS", "0.1")
    return CliRunner()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port  # nothing listens here once the socket is closed


def test_smoke_passes_on_the_paper_exchange_and_sends_nothing(cli: CliRunner) -> None:
    """All checks pass, the agent runs dry, exit 0, and no order reaches the exchange."""
    result = cli.invoke(app, ["smoke", "--for", "20s", "--steps", "2", "--json"])
    assert result.exit_code == 0, result.output
    report = orjson.loads(result.stdout)
    assert report["outcome"] == "PASS"
    assert [c["name"] for c in report["checks"]] == [
        "public API",
        "market data",
        "private API",
        "agent loop (dry run)",
    ]
    assert all(c["ok"] for c in report["checks"])
    assert report["steps"] == 2
    assert "no order was sent" in report["checks"][-1]["detail"]


def test_smoke_against_a_stopped_exchange_is_skipped_with_the_reason(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing listening: an OFFLINE line with the classified reason, SKIPPED, exit 3."""
    monkeypatch.setenv("BASTION_EXCHANGE_URL", f"http://127.0.0.1:{_closed_port()}")
    result = cli.invoke(app, ["smoke", "--for", "2s"])
    assert result.exit_code == 3, result.output
    assert "OFFLINE mode: deribit public/get_time: NETWORK" in result.output
    assert "SKIPPED" in result.output
    assert "Traceback" not in result.output


def test_smoke_reports_a_forbidden_exchange_as_offline(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 403 from the exchange (IP or key refused) is SKIPPED with FORBIDDEN, not a crash."""
    fault = {"kind": "status", "status": 403, "method": "*", "times": None}
    monkeypatch.setenv("BASTION_PAPER_FAULTS", orjson.dumps([fault]).decode())
    result = cli.invoke(app, ["smoke", "--for", "2s"])
    assert result.exit_code == 3, result.output
    assert "OFFLINE mode:" in result.output
    assert "FORBIDDEN" in result.output


def test_smoke_against_a_hanging_exchange_ends_at_its_deadline(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every call hangs: the smoke still ends, SKIPPED, saying which deadline it hit."""
    fault = {"kind": "hang", "method": "*", "times": None}
    monkeypatch.setenv("BASTION_PAPER_FAULTS", orjson.dumps([fault]).decode())
    result = cli.invoke(app, ["smoke", "--for", "1s", "--json"])
    assert result.exit_code == 3, result.output
    report = orjson.loads(result.stdout)
    assert report["outcome"] == "SKIPPED"
    assert "TIMEOUT" in report["offline_reason"]


def test_a_bad_fault_spec_is_a_config_error(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A typo in BASTION_PAPER_FAULTS stops start-up naming the setting."""
    monkeypatch.setenv("BASTION_PAPER_FAULTS", '[{"kind": "explode"}]')
    result = cli.invoke(app, ["smoke", "--for", "1s"])
    assert result.exit_code == 2, result.output
    assert "paper_faults (BASTION_PAPER_FAULTS)" in result.output
