"""A real run records its steps as tasks and raises SLO and page-on alerts onto its journal."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from bastion.agent import Context, Decision, Observation
from bastion.agents.scripted import ScriptedAgent
from bastion.cli import app
from bastion.events import Event, EventKind
from bastion.runner import Runner
from bastion.trace.record import read_trace

RunnerFactory = Callable[..., Runner]


def _broken(obs: Observation, ctx: Context) -> Decision:
    raise RuntimeError("the agent's bug")


async def test_failing_steps_page_through_the_journal_trace_and_store(
    runner_factory: RunnerFactory,
) -> None:
    """Every step fails: the first evaluation pages (completion page and ticket, and over 1 % of
    the 5 minutes failing), each alert once, in the trace and the store's events."""
    runner = runner_factory(ScriptedAgent(_broken))
    events: list[Event] = []
    runner.journal.subscribe(events.append)

    summary = await runner.run(max_steps=6)

    assert summary.steps_failed == 6
    assert runner.store.tasks.count(kind="step") == 6
    fired = [e.payload["key"] for e in events if e.kind is EventKind.ALERT_FIRING]
    assert sorted(fired) == [
        "page_on:error_rate",
        "slo:task_completion:page",
        "slo:task_completion:ticket",
    ]
    assert not [e for e in events if e.kind is EventKind.ALERT_RESOLVED]
    traced = [line for line in read_trace(runner.trace.path) if line.get("kind") == "alert_firing"]
    assert sorted(line["key"] for line in traced) == sorted(fired)
    stored = runner.store.events.list(kind="alert_firing")
    assert len(stored) == 3
    # The report is the last evaluation's: the first step's, the next being due a minute of
    # the run's clock later, after these six steps.
    report = runner.slo.report()
    assert report["slos"][0]["total"] == 1
    assert sorted(a["key"] for a in report["firing"]) == sorted(fired)


async def test_bastion_slo_asks_the_running_console(
    runner_factory: RunnerFactory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """While a run holds the lock, `bastion slo --json` is its console's report, the page-on
    alerts it keeps firing included (the store alone could not know the run's halt)."""
    runner = runner_factory(ScriptedAgent(_broken), console=True)
    await runner.__aenter__()
    await runner.run(max_steps=2)
    runner.journal.emit(EventKind.HALT_TRIPPED, {"reason": "operator", "who": "test"})
    monkeypatch.setenv("BASTION_DATA_DIR", str(tmp_path / "data"))
    result = await asyncio.to_thread(CliRunner().invoke, app, ["slo", "--json"])
    assert result.exit_code == 0, result.output
    keys = {a["key"] for a in orjson.loads(result.stdout)["firing"]}
    assert "page_on:kill_switch" in keys
    assert "slo:task_completion:page" in keys
