"""The CLI in-process: bounded runs, kill / status / resume, and clear errors for bad input."""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from bastion.cli import app, parse_duration
from bastion.clock import WallClock
from bastion.guard.halt import Halt
from bastion.status import TradingState
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
    assert "HALTING (resting orders not yet cancelled): drill" in cli.invoke(app, ["status"]).output

    resumed = cli.invoke(app, ["resume", "--reason", "drill over"])
    assert resumed.exit_code == 0
    assert "Resumed" in resumed.output
    assert not (tmp_path / "data" / "kill_switch.flag").exists()
    with Store.open(f"sqlite:///{tmp_path / 'data' / 'bastion.db'}") as store:
        [halt] = store.halts.history()
    assert (halt.reason, halt.resume_reason) == ("drill", "drill over")
    assert halt.resumed_at is not None


@pytest.mark.parametrize(
    ("auto_resume", "then"),
    [("false", "then a person resumes"), ("true", "trading resumes by itself")],
)
def test_status_shows_a_reducing_halt_its_expiry_and_what_happens_then(
    cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, auto_resume: str, then: str
) -> None:
    monkeypatch.setenv("BASTION_HALT_AUTO_RESUME", auto_resume)
    halt = Halt(flag_path=tmp_path / "data" / "kill_switch.flag", clock=WallClock())
    until = datetime(2099, 1, 2, tzinfo=UTC)
    asyncio.run(halt.trip("daily_loss", who="limits", state=TradingState.REDUCING, until=until))
    output = cli.invoke(app, ["status"]).output
    assert "REDUCING (resting orders not yet cancelled): daily_loss (by limits at" in output
    assert f"; until 2099-01-02T00:00:00+00:00, {then})" in output
    status = orjson.loads(cli.invoke(app, ["status", "--json"]).stdout)
    assert (status["trading_state"], status["halt_auto_resume"]) == (
        "reducing",
        auto_resume == "true",
    )


def test_a_lapsed_halt_that_status_lifts_is_closed_in_the_store(
    cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With BASTION_HALT_AUTO_RESUME, the first look after the expiry lifts the halt: the
    flag goes, and the store's record is closed with it, not left open for nobody to see."""
    monkeypatch.setenv("BASTION_HALT_AUTO_RESUME", "true")
    assert cli.invoke(app, ["status"]).exit_code == 0  # creates and migrates the store
    with Store.open(f"sqlite:///{tmp_path / 'data' / 'bastion.db'}") as store:
        halt = Halt(
            flag_path=tmp_path / "data" / "kill_switch.flag",
            clock=WallClock(),
            halts=store.halts,
        )
        lapsed = datetime(2000, 1, 1, tzinfo=UTC)
        asyncio.run(halt.trip("daily_loss", who="limits", until=lapsed))
        assert store.halts.active() is not None
    status = orjson.loads(cli.invoke(app, ["status", "--json"]).stdout)
    assert status["halted"] is False
    with Store.open(f"sqlite:///{tmp_path / 'data' / 'bastion.db'}") as store:
        assert store.halts.active() is None
        [record] = store.halts.history()
    assert record.resumed_by == "bastion"


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


def test_kill_works_with_the_store_down(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """An unusable database never stops the kill switch: the flag is raised and it says why."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    monkeypatch.setenv("BASTION_STORE_URL", f"sqlite:///{blocker / 'bastion.db'}")
    result = cli.invoke(app, ["kill", "--reason", "db down"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "data" / "kill_switch.flag").exists()
    assert "Store unavailable" in result.output
    assert "Traceback" not in result.output
    status = cli.invoke(app, ["status"])
    assert "HALTING (resting orders not yet cancelled): db down" in status.output


def test_an_unwritable_data_dir_is_a_config_error(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A data dir that cannot be created stops run and kill with the setting to fix."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("BASTION_DATA_DIR", str(blocker / "data"))
    for command in (["run", "--steps", "1"], ["kill"]):
        result = cli.invoke(app, command)
        assert result.exit_code == 2, command
        assert "data_dir (BASTION_DATA_DIR)" in result.output
        assert "Traceback" not in result.output


def test_config_prints_effective_settings_without_secrets(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`bastion config` shows what is in force, with the secret masked."""
    monkeypatch.setenv("BASTION_EXCHANGE_CLIENT_SECRET", "very-secret-value")
    result = cli.invoke(app, ["config"])
    assert result.exit_code == 0
    assert "BASTION_LOOP_INTERVAL_SECONDS" in result.output
    assert "very-secret-value" not in result.output
    assert "[REDACTED]" in result.output


@pytest.mark.parametrize(
    ("command", "flag"),
    [
        (["run"], "--dry-run / --no-dry-run"),
        (["status"], "--json"),
        (["approvals"], "--all"),
        (["config"], "--markdown"),
    ],
)
def test_flags_read_like_flags(cli: CliRunner, command: list[str], flag: str) -> None:
    """Help shows flags as flags, never with a `<bool>` value to type."""
    result = cli.invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert flag in result.output
    assert "<bool>" not in result.output


def test_a_dry_run_from_the_flag_sends_nothing(cli: CliRunner) -> None:
    """`bastion run --dry-run` decides and records but places no order."""
    result = cli.invoke(app, ["run", "--steps", "2", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "order sent" not in result.output
    assert "Left resting: no orders." in result.output


def test_kill_and_resume_the_fleet(cli: CliRunner, tmp_path: Path) -> None:
    """`--fleet` raises and lowers the store's fleet halt, not this data directory's flag."""
    killed = cli.invoke(app, ["kill", "--fleet", "--reason", "incident"])
    assert killed.exit_code == 0, killed.output
    assert "Fleet halt active: incident" in killed.output
    assert not (tmp_path / "data" / "kill_switch.flag").exists()
    status = orjson.loads(cli.invoke(app, ["status", "--json"]).stdout)
    assert status["fleet_halt"]["reason"] == "incident"
    assert "Fleet halt active: incident" in cli.invoke(app, ["status"]).output

    resumed = cli.invoke(app, ["resume", "--fleet", "--reason", "over"])
    assert resumed.exit_code == 0, resumed.output
    assert "Fleet resumed" in resumed.output
    assert orjson.loads(cli.invoke(app, ["status", "--json"]).stdout)["fleet_halt"] is None
    with Store.open(f"sqlite:///{tmp_path / 'data' / 'bastion.db'}") as store:
        [halt] = store.halts.history()
    assert (halt.scope, halt.reason, halt.resume_reason) == ("fleet", "incident", "over")
    again = cli.invoke(app, ["resume", "--fleet"])
    assert "No fleet halt was active" in again.output
