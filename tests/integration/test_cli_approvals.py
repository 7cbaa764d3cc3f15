"""`bastion approvals`: list what waits for a person, approve or reject it, once."""

from __future__ import annotations

import asyncio
import getpass
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from bastion.cli import app
from bastion.clock import WallClock
from bastion.config import load_settings
from bastion.guard.approvals import Approvals
from bastion.store import Store


@pytest.fixture
def queued(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    """Two LLM escalations in the data dir's store; their ids, oldest first."""
    monkeypatch.setenv("BASTION_DATA_DIR", str(tmp_path / "data"))
    settings = load_settings()
    (tmp_path / "data").mkdir()
    with Store.open(settings.resolved_store_url) as store:
        approvals = Approvals(store, clock=WallClock(), agent="llm_options_seller")

        async def ask() -> list[str]:
            ids = []
            for question in ("decide", "repair"):
                record = await approvals.request(
                    "llm_escalation",
                    {"input_class": f"llm_options_seller.{question}"},
                    f"no model answered {question}",
                    run_id="run-1",
                )
                ids.append(record.id)
            return ids

        return asyncio.run(ask())


def test_lists_pending_entries(queued: list[str]) -> None:
    result = CliRunner().invoke(app, ["approvals", "--json"])
    assert result.exit_code == 0, result.output
    rows = orjson.loads(result.stdout)
    assert {row["id"] for row in rows} == set(queued)
    assert {row["status"] for row in rows} == {"pending"}
    table = CliRunner().invoke(app, ["approvals"])
    assert "no model answered decide" in table.output


def test_approve_once_then_a_second_decision_is_refused(queued: list[str]) -> None:
    cli = CliRunner()
    first = cli.invoke(app, ["approvals", "approve", queued[0], "--note", "looked at it"])
    assert first.exit_code == 0, first.output
    assert f"Approval {queued[0]} approved by {getpass.getuser()}." in first.output
    again = cli.invoke(app, ["approvals", "reject", queued[0]])
    assert again.exit_code == 1
    assert "already approved" in again.output
    assert "nothing to do" in again.output
    pending = orjson.loads(cli.invoke(app, ["approvals", "--json"]).stdout)
    assert [row["id"] for row in pending] == [queued[1]]
    history = orjson.loads(cli.invoke(app, ["approvals", "--all", "--json"]).stdout)
    decided = next(row for row in history if row["id"] == queued[0])
    assert (decided["status"], decided["note"]) == ("approved", "looked at it")


def test_an_unknown_id_is_a_clear_error(queued: list[str]) -> None:
    result = CliRunner().invoke(app, ["approvals", "reject", "nope"])
    assert result.exit_code == 1
    assert "no approval with id 'nope'" in result.output


def test_an_empty_queue_says_so(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BASTION_DATA_DIR", str(tmp_path / "data"))
    result = CliRunner().invoke(app, ["approvals"])
    assert result.exit_code == 0
    assert "No approvals pending." in result.output


def test_status_counts_what_waits_for_a_person(queued: list[str]) -> None:
    result = CliRunner().invoke(app, ["status"])
    assert "Approvals pending: 2 (bastion approvals to review)" in result.output
    data = orjson.loads(CliRunner().invoke(app, ["status", "--json"]).stdout)
    assert data["approvals_pending"] == 2
