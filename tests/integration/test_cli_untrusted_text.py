"""Untrusted text (halt reasons, a hand-edited flag file) reaches the terminal inert and visible."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from bastion.cli import app
from bastion.store import Store

HOSTILE = "\x1b[2J\u202e[bold]x"
VISIBLE = "\\x1b[2J\\u202e[bold]x"  # what the operator sees instead
RAW = ("\x1b", "\u202e", "\x07")


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CliRunner:
    """The CLI on a scratch data directory, the console off."""
    monkeypatch.setenv("BASTION_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("BASTION_CONSOLE_PORT", "0")
    monkeypatch.setenv("BASTION_LOOP_INTERVAL_SECONDS", "0.01")
    return CliRunner()


def _assert_inert(output: str) -> None:
    for char in RAW:
        assert char not in output, f"{char!r} reached the terminal: {output!r}"
    assert VISIBLE in output


def test_status_shows_a_hand_edited_flag_reason_in_its_visible_form(
    cli: CliRunner, tmp_path: Path
) -> None:
    """A kill-switch file written by hand with escapes and a bidi override prints inert."""
    flag = tmp_path / "data" / "kill_switch.flag"
    flag.parent.mkdir(parents=True)
    flag.write_bytes(
        orjson.dumps({"reason": HOSTILE, "who": "ops\x1b]8;;http://evil\x07", "when": "now"})
    )
    result = cli.invoke(app, ["status"])
    assert result.exit_code == 0, result.output
    _assert_inert(result.output)
    assert (
        f"HALTING (resting orders not yet cancelled): {VISIBLE} "
        "(by ops\\x1b]8;;http://evil\\x07 at now)"
    ) in result.output


def test_status_survives_a_flag_file_whose_fields_are_not_text(
    cli: CliRunner, tmp_path: Path
) -> None:
    """A hand-edited flag with a number for "when" is shown, not a traceback."""
    flag = tmp_path / "data" / "kill_switch.flag"
    flag.parent.mkdir(parents=True)
    flag.write_bytes(orjson.dumps({"reason": HOSTILE, "who": "ops", "when": 5}))
    result = cli.invoke(app, ["status"])
    assert result.exit_code == 0, result.output
    assert f"HALTING (resting orders not yet cancelled): {VISIBLE} (by ops at 5)" in result.output


def test_kill_resume_and_run_echo_a_hostile_reason_inert_and_store_it_raw(
    cli: CliRunner, tmp_path: Path
) -> None:
    """kill, the run banner and resume print the visible form; the store keeps the evidence."""
    killed = cli.invoke(app, ["kill", "--reason", HOSTILE])
    assert killed.exit_code == 0, killed.output
    _assert_inert(killed.output)
    ran = cli.invoke(app, ["run", "--steps", "1"])
    assert ran.exit_code == 0, ran.output
    _assert_inert(ran.output)
    resumed = cli.invoke(app, ["resume", "--reason", HOSTILE])
    assert resumed.exit_code == 0, resumed.output
    _assert_inert(resumed.output)
    with Store.open(f"sqlite:///{tmp_path / 'data' / 'bastion.db'}") as store:
        [halt] = store.halts.history()
    assert (halt.reason, halt.resume_reason) == (HOSTILE, HOSTILE)
