"""A real run records its steps as tasks and raises SLO and page-on alerts onto its journal."""

from __future__ import annotations

from collections.abc import Callable

from bastion.agent import Context, Decision, Observation
from bastion.agents.scripted import ScriptedAgent
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
