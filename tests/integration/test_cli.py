"""The CLI in-process: bounded runs, kill / status / resume, and clear errors for bad input."""

from __future__ import annotations

import socket
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from bastion.cli import app, parse_duration
from bastion.store import Store


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CliRunner:
    monkeypatch.setenv("BASTION_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("BASTION_CONSOLE_PORT", "0")
    monkeypatch.setenv("BASTION_LOOP_INTERVAL_SECONDS", "0.01")
    return CliRunner()


def test_run_with_steps_prints_console_trace_and_summary(cli: CliRunner, tmp_path: Path) -> None:
    """`bastion run --steps 2` says where the console and trace are, and how it ended."""
    result = cli.invoke(app, ["run", "--steps", "2"])
    assert result.exit_code == 0, result.output
    assert "Console:     http://127.0.0.1:" in result.output
    assert "/?token=" in result.output
    assert "completed after 2 steps" in result.output
    trace = next((tmp_path / "data" / "traces").rglob("*.ndjson"))
    assert f"Trace: {trace.relative_to(tmp_path)}" in result.output or str(trace) in result.output


def test_kill_status_resume_round_trip(cli: CliRunner, tmp_path: Path) -> None:
    """kill writes the flag and a halts row; status shows it; resume records who and why."""
    killed = cli.invoke(app, ["kill", "--reason", "drill"])
    assert killed.exit_code == 0, killed.output
    assert (tmp_path / "data" / "kill_switch.flag").exists()
    status = orjson.loads(cli.invoke(app, ["status", "--json"]).stdout)
    assert (status["halted"], status["halt_reason"]) == (True, "drill")
    assert "HALTED: drill" in cli.invoke(app, ["status"]).output

    resumed = cli.invoke(app, ["resume", "--reason", "drill over"])
    assert resumed.exit_code == 0
    assert "Resumed" in resumed.output
    assert not (tmp_path / "data" / "kill_switch.flag").exists()
    with Store.open(f"sqlite:///{tmp_path / 'data' / 'bastion.db'}") as store:
        [halt] = store.halts.history()
    assert (halt.reason, halt.resume_reason) == ("drill", "drill over")
    assert halt.resumed_at is not None


def test_a_run_while_halted_sends_nothing(cli: CliRunner) -> None:
    """Starting with the kill switch on says so, and the run places no order."""
    cli.invoke(app, ["kill", "--reason", "weekend"])
    result = cli.invoke(app, ["run", "--steps", "2"])
    assert result.exit_code == 0, result.output
    assert "Kill switch is active" in result.output
    assert "Left resting: no orders." in result.output
    assert "halted after 2 steps" in result.output


def test_bad_configuration_exits_2_with_the_field_and_no_traceback(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bad value stops every command at start with the field name and the fix."""
    monkeypatch.setenv("BASTION_STEP_TIMEOUT_SECONDS", "soon")
    result = cli.invoke(app, ["status"])
    assert result.exit_code == 2
    assert "step_timeout_seconds (BASTION_STEP_TIMEOUT_SECONDS)" in result.output
    assert "Traceback" not in result.output


def test_a_busy_console_port_is_a_clear_error(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process on the console port: exit 2 naming the setting to change."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen(1)
        monkeypatch.setenv("BASTION_CONSOLE_PORT", str(other.getsockname()[1]))
        result = cli.invoke(app, ["run", "--steps", "1"])
    assert result.exit_code == 2
    assert "BASTION_CONSOLE_PORT" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90.0), ("60s", 60.0), ("5m", 300.0), ("1.5h", 5400.0)]
)
def test_durations(text: str, seconds: float) -> None:
    """--for accepts plain seconds and s / m / h suffixes."""
    assert parse_duration(text) == seconds


def test_a_bad_duration_is_a_usage_error(cli: CliRunner) -> None:
    """--for soon is refused with an example of what works."""
    result = cli.invoke(app, ["run", "--for", "soon"])
    assert result.exit_code == 2
    assert "60s" in result.output
