"""Alerts out, end to end: the journal's alerts reach a real loopback webhook receiver.

The receiver (tests/webhook_receiver.py) records each body and can fail or hang; the notifier
runs on a SimClock, so group windows and repeat intervals are crossed by advancing it, and
"delivered" is waited for as the notifier going idle (nothing grouped, queued or in flight).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from bastion.agent import Decision
from bastion.agents.scripted import ScriptedAgent
from bastion.build import build_notifier
from bastion.clock import SimClock
from bastion.config import Settings
from bastion.events import Event, EventKind, Journal
from bastion.guard.halt import Halt
from bastion.notify import Notifier
from bastion.resilience import Resilience
from bastion.runner import Runner
from bastion.telemetry.alert import Alert, Severity
from bastion.telemetry.metrics import Metrics
from loopback_server import serve_on_loopback
from webhook_receiver import Receiver

TOKEN = "XoxbSlackToken8f3c2a"
PATIENCE = 2000
"""Looks (5 ms apart) before a test gives up waiting for the notifier: a safety net, not a
measurement."""


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    """A receiver on loopback and its base URL; a hang is lifted before the server stops."""
    far = Receiver()
    with serve_on_loopback(far.app) as base:
        try:
            yield far, base
        finally:
            far.hang = False


@pytest.fixture
def second() -> Iterator[tuple[Receiver, str]]:
    far = Receiver()
    with serve_on_loopback(far.app) as base:
        yield far, base


class Harness:
    """A journal, a SimClock and a notifier built from settings, as a run wires them."""

    def __init__(self, settings: Settings) -> None:
        self.clock = SimClock(start=1_800_000_000)
        self.metrics = Metrics()
        self.journal = Journal(run_id="run-1")
        self.events: list[Event] = []
        self.journal.subscribe(self.events.append)
        self.resilience = Resilience(clock=self.clock, metrics=self.metrics, journal=self.journal)
        notifier = build_notifier(
            settings,
            self.clock,
            resilience=self.resilience,
            metrics=self.metrics,
            run_id="run-1",
            agent="seller",
        )
        assert notifier is not None
        self.notifier: Notifier = notifier
        self.journal.subscribe(notifier)

    def fire(self, key: str, summary: str = "it broke", **extra: Any) -> None:
        self.journal.emit(EventKind.ALERT_FIRING, alert(key, summary, **extra).to_payload())

    def resolve(self, key: str) -> None:
        self.journal.emit(EventKind.ALERT_RESOLVED, alert(key, "it broke").to_payload())

    def later(self, seconds: float) -> None:
        """Time passes; the next journal event (any kind) looks at what is due."""
        self.clock.advance(seconds)
        self.journal.emit(EventKind.STEP_COMPLETED, {"step": 0, "status": "ok"})

    def sample(self, name: str, **labels: str) -> float:
        value = self.metrics.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value


def alert(key: str, summary: str, **extra: Any) -> Alert:
    return Alert(
        key=key,
        name=f"Alert_{key}",
        severity=extra.pop("severity", Severity.PAGE),
        summary=summary,
        since=SimClock(start=1_800_000_000).now(),
        **extra,
    )


async def settled(notifier: Notifier) -> None:
    for _ in range(PATIENCE):
        if notifier.idle:
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"the notifier never went idle: {notifier.status()}")


@pytest.fixture
async def harness(
    settings_factory: Callable[..., Settings],
) -> AsyncIterator[Callable[..., Harness]]:
    made: list[Harness] = []

    def make(**overrides: Any) -> Harness:
        h = Harness(settings_factory(**overrides))
        made.append(h)
        return h

    yield make
    for h in made:
        await h.notifier.aclose(0.0)


async def test_alerts_are_grouped_deduplicated_resolved_and_repeated(
    receiver: tuple[Receiver, str], harness: Callable[..., Harness]
) -> None:
    """Two alerts 4 s apart in a 10 s window are one message; firing again sends nothing; the
    resolve is its own message; a halt still on after the repeat interval is sent again."""
    far, base = receiver
    h = harness(
        alert_webhook_urls=[f"{base}/hook"],
        alert_group_wait_seconds=10,
        alert_repeat_interval_seconds=3600,
    )
    h.notifier.start()
    h.fire("latency")
    h.later(4)
    h.journal.emit(
        EventKind.HALT_TRIPPED,
        {"reason": "daily_loss", "who": "limits", "when": h.clock.now().isoformat()},
    )
    h.fire("latency")  # already firing: not news
    assert h.notifier.status()[0]["queued"] == 0  # the window is still open: nothing left
    h.later(6)
    await settled(h.notifier)
    assert len(far.bodies) == 1
    first = far.bodies[0]
    assert (first["status"], first["run_id"], first["agent"]) == ("firing", "run-1", "seller")
    assert [(a["key"], a["status"]) for a in first["alerts"]] == [
        ("latency", "firing"),
        ("halt", "firing"),
    ]
    assert first["alerts"][1]["severity"] == "page"

    h.resolve("latency")
    h.later(10)
    await settled(h.notifier)
    assert [(a["key"], a["status"]) for a in far.bodies[1]["alerts"]] == [("latency", "resolved")]
    assert far.bodies[1]["status"] == "resolved"

    h.later(3600)  # the halt still fires: sent once more, as a repeat
    h.later(10)
    await settled(h.notifier)
    assert len(far.bodies) == 3
    assert [(a["key"], a["repeat"]) for a in far.bodies[2]["alerts"]] == [("halt", True)]
    assert h.sample("bastion_alert_notifications_total", target="webhook:0", outcome="sent") == 4
    await h.notifier.aclose(1.0)


async def test_slack_targets_get_escaped_text_and_blocks(
    receiver: tuple[Receiver, str], harness: Callable[..., Harness]
) -> None:
    """A summary carrying Slack's control syntax arrives escaped in text and blocks."""
    far, base = receiver
    h = harness(alert_slack_webhook_urls=[f"{base}/services/T0/B0/{TOKEN}"])
    h.notifier.start()
    h.fire("model", "model answered <!channel> & <https://evil.example|here>")
    await h.notifier.flush()
    (body,) = far.bodies
    assert set(body) == {"text", "blocks"}
    assert "<!channel>" not in orjson.dumps(body).decode()
    assert "&lt;!channel&gt; &amp; &lt;https://evil.example|here&gt;" in body["text"]
    assert body["blocks"][0]["type"] == "header"
    assert "*Alert_model*" in body["blocks"][1]["text"]["text"]
    assert far.paths == [f"/services/T0/B0/{TOKEN}"]
    await h.notifier.aclose(1.0)


async def test_a_failing_target_is_retried_with_jitter_until_it_answers(
    receiver: tuple[Receiver, str], harness: Callable[..., Harness]
) -> None:
    """Two 503s, then 200: one message arrives, after two journaled retries of webhook:0."""
    far, base = receiver
    far.fail = 2
    h = harness(alert_webhook_urls=[f"{base}/hook"], alert_group_wait_seconds=0)
    h.notifier.start()
    h.fire("errors")
    await settled(h.notifier)
    assert far.requests == 3
    assert [a["key"] for a in far.alerts] == ["errors"]
    retries = [e.payload for e in h.events if e.kind is EventKind.CALL_RETRIED]
    assert [(r["dependency"], r["layer"], r["code"]) for r in retries] == [
        ("webhook:0", "webhook", "server"),
        ("webhook:0", "webhook", "server"),
    ]
    (row,) = h.notifier.status()
    assert (row["sent"], row["failed"], row["last_error"]) == (1, 0, None)
    assert row["last_success_at"] is not None
    await h.notifier.aclose(1.0)


async def test_a_refusal_is_not_retried_and_the_next_alert_still_goes(
    receiver: tuple[Receiver, str], harness: Callable[..., Harness]
) -> None:
    """A 400 is the target's final word: counted rejected, not retried; later alerts go."""
    far, base = receiver
    far.fail, far.fail_status = 1, 400
    h = harness(alert_webhook_urls=[f"{base}/hook"], alert_group_wait_seconds=0)
    h.notifier.start()
    h.fire("first")
    await settled(h.notifier)
    assert far.requests == 1
    h.fire("second")
    await settled(h.notifier)
    assert [a["key"] for a in far.alerts] == ["second"]
    (row,) = h.notifier.status()
    assert (row["rejected"], row["sent"]) == (1, 1)
    assert "webhook:0: BAD_REQUEST (HTTP 400)" in row["last_error"]
    assert h.sample("bastion_alert_notifications_total", target="webhook:0", outcome="rejected")
    await h.notifier.aclose(1.0)


async def test_a_down_target_keeps_its_alerts_and_shows_why_without_its_url(
    receiver: tuple[Receiver, str],
    harness: Callable[..., Harness],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every attempt 500s: the alert stays queued, the failure is counted, journaled, logged and
    in the status row, none of them quoting the URL's token; once the target is back (and its
    breaker half-open), the queued alert goes out with the next one, in one message."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.INFO, logger="httpx")  # configure_logging quiets it in-process
    far, base = receiver
    far.fail, far.fail_status = 10**6, 500
    url = f"{base}/services/T0/B0/{TOKEN}"
    h = harness(alert_webhook_urls=[url], alert_group_wait_seconds=0)
    h.notifier.start()
    h.fire("drift")
    for _ in range(PATIENCE):
        if h.notifier.status()[0]["failed"]:
            break
        await asyncio.sleep(0.005)
    (row,) = h.notifier.status()
    assert (row["failed"], row["queued"], row["sent"]) == (1, 1, 0)
    assert row["url"] == f"{base}/***"
    assert row["last_failure_at"] is not None
    assert row["last_error"].startswith("webhook:0: SERVER (HTTP 500)")
    assert far.requests == 3  # two retries; the third failure opened the target's breaker
    assert h.sample("bastion_alert_notifications_total", target="webhook:0", outcome="failed") == 1
    assert h.sample("bastion_alert_queue_depth", target="webhook:0") == 1
    failed = [e.payload for e in h.events if e.kind is EventKind.CALL_FAILED]
    assert failed
    assert failed[0]["dependency"] == "webhook:0"
    assert "webhook:0 failed; 1 alert(s) stay queued" in caplog.text
    assert f'POST {base}/*** "HTTP/1.1 500' in caplog.text  # httpx's own line, masked

    far.fail = 0
    h.clock.advance(60)  # past the breaker's recovery: the next delivery is its probe
    h.fire("latency")
    await settled(h.notifier)
    assert [[a["key"] for a in b["alerts"]] for b in far.bodies] == [["drift", "latency"]]

    shown = " ".join(
        [
            caplog.text,
            orjson.dumps([e.payload for e in h.events], default=str).decode(),
            orjson.dumps(h.notifier.status()).decode(),
            h.metrics.render().decode(),
            repr(h.notifier.targets),
        ]
    )
    assert TOKEN not in shown
    await h.notifier.aclose(1.0)


async def test_a_hanging_webhook_never_holds_up_the_guarded_run(
    receiver: tuple[Receiver, str],
    second: tuple[Receiver, str],
    runner_factory: Callable[..., Runner],
) -> None:
    """One receiver hangs; the run on the embedded paper exchange steps 25 more times while its
    request is held open, the other receiver gets the alert, and the status report lists both
    targets with masked URLs; what the hung target never got is counted at shutdown."""
    hung, hung_base = receiver
    good, good_base = second
    hung.hang = True
    runner = runner_factory(
        ScriptedAgent(lambda o, c: Decision()),
        alert_webhook_urls=[f"{hung_base}/hook/{TOKEN}", f"{good_base}/hook"],
        alert_group_wait_seconds=0,
        alert_webhook_timeout_seconds=600,
        alert_webhook_deadline_seconds=600,
        alert_flush_seconds=0.2,
        health_check_on_startup=False,
    )
    runner.journal.emit(EventKind.ALERT_FIRING, alert("kill", "kill switch on").to_payload())
    stop = asyncio.Event()
    after_hang: list[int] = []

    def count(event: Event) -> None:
        if event.kind is EventKind.STEP_COMPLETED and hung.hanging:
            after_hang.append(int(event.payload["step"]))
            if len(after_hang) >= 25:
                stop.set()

    runner.journal.subscribe(count)
    summary = await runner.run(max_steps=20_000, stop=stop)
    assert len(after_hang) >= 25
    assert hung.hanging == 1  # still held open while those steps ran
    assert [a["key"] for a in good.alerts] == ["kill"]
    report = runner.status.report(runner.loop.status.to_dict())
    rows = {row["target"]: row for row in report["notifications"]}
    assert set(rows) == {"webhook:0", "webhook:1"}
    assert rows["webhook:0"]["url"] == f"{hung_base}/***"
    assert (rows["webhook:1"]["sent"], rows["webhook:0"]["sent"]) == (1, 0)
    assert TOKEN not in orjson.dumps(report).decode()
    assert summary.status == "interrupted"
    await runner.aclose()
    assert (
        runner.metrics.registry.get_sample_value(
            "bastion_alert_notifications_total", {"target": "webhook:0", "outcome": "dropped"}
        )
        == 1
    )
    assert TOKEN not in await asyncio.to_thread(Path(runner.trace.path).read_text)


async def test_a_kill_and_resume_from_another_process_reach_the_webhook(
    receiver: tuple[Receiver, str], runner_factory: Callable[..., Runner]
) -> None:
    """`bastion kill` writes only the flag: the run's enforcement of it pages, and the step
    that trades again after `bastion resume` sends the resolve."""
    far, base = receiver
    runner = runner_factory(
        ScriptedAgent(lambda o, c: Decision()),
        alert_webhook_urls=[f"{base}/hook"],
        alert_group_wait_seconds=0,
        health_check_on_startup=False,
    )
    assert runner.notifier is not None
    runner.notifier.start()
    elsewhere = Halt(flag_path=runner.settings.kill_switch_path, clock=runner.clock)
    await elsewhere.trip("drill", who="ops")
    assert (await runner.loop.step()).status == "halted"
    await runner.notifier.flush()
    elsewhere.resume(who="ops", why="drill over")
    assert (await runner.loop.step()).status == "ok"
    await runner.notifier.flush()
    assert [(a["key"], a["status"]) for a in far.alerts] == [
        ("halt", "firing"),
        ("halt", "resolved"),
    ]
    assert far.alerts[0]["labels"]["reason"] == "drill"


async def test_a_full_queue_drops_the_oldest_info_and_counts_it(
    receiver: tuple[Receiver, str], harness: Callable[..., Harness]
) -> None:
    """While the target hangs on one message, two queue slots fill with approvals; a third
    approval and a page push the oldest approvals out, counted; the page goes out."""
    far, base = receiver
    far.hang = True
    h = harness(
        alert_webhook_urls=[f"{base}/hook"],
        alert_group_wait_seconds=0,
        alert_queue_size=3,
        alert_webhook_timeout_seconds=600,
        alert_webhook_deadline_seconds=600,
    )
    h.notifier.start()

    def approval(n: int) -> None:
        payload = {"approval_id": f"ap{n}", "kind": "order", "reason": "big"}
        h.journal.emit(EventKind.APPROVAL_REQUESTED, payload)

    approval(1)
    for _ in range(PATIENCE):
        if far.hanging:
            break
        await asyncio.sleep(0.005)
    assert far.hanging == 1  # ap1 is in flight; it keeps its slot
    approval(2)
    approval(3)
    approval(4)  # full: ap2, the oldest waiting info, goes
    h.fire("kill")  # full: ap3 goes, never the page
    assert h.sample("bastion_alert_notifications_total", target="webhook:0", outcome="dropped") == 2
    assert h.sample("bastion_alert_queue_depth", target="webhook:0") == 3
    far.hang = False
    await settled(h.notifier)
    assert [a["key"] for a in far.alerts] == ["approval:ap1", "approval:ap4", "kill"]
    assert h.notifier.status()[0]["dropped"] == 2


async def test_an_event_from_a_worker_thread_is_handed_to_the_loop(
    receiver: tuple[Receiver, str], harness: Callable[..., Harness]
) -> None:
    """Settlements and pruning emit from worker threads: their alerts arrive all the same."""
    far, base = receiver
    h = harness(alert_webhook_urls=[f"{base}/hook"], alert_group_wait_seconds=0)
    h.notifier.start()
    payload = {
        "scope": "daily",
        "period": "2027-01-15",
        "label": "seller",
        "unit": "usd",
        "used": 7.6,
        "limit": 10.0,
        "ratio": 0.75,
    }
    await asyncio.to_thread(h.journal.emit, EventKind.BUDGET_ALERT, payload)
    for _ in range(PATIENCE):
        if far.bodies:
            break
        await asyncio.sleep(0.005)
    (only,) = far.alerts
    assert (only["name"], only["severity"], only["value"]) == ("BastionBudgetAlert", "ticket", 0.76)
