"""The SLO and Alerts tabs in headless Chromium, against the real routes on loopback.

SLOs: a run's history is written into a real store the way ``bastion run`` writes it (its
journal, the task sink, then the alert monitor of :func:`bastion.build.build_alert_monitor`
evaluating at every step on a SimClock), over a day-old history of another run; the last six
steps fail, so the completion SLO pages. A person then halts through ``POST /api/kill`` with a
hostile reason: the kill-switch alert carries it into the firing list, where it must stay text.
The console serves the monitor's ``report`` as ``GET /api/slo``, and the page shows exactly the
figures those records make (worked out in the comments above :data:`TABLE`).

Alerts: a real operator (:func:`bastion.build.build_operator`: rules analysis, safety mode on)
behind the real app takes Alertmanager's version-4 webhook at ``POST /api/alerts/alertmanager``
with a hostile summary and label; the page shows the card, the rules' analysis and the proposed
actions, and Alice approves the halt in the page through ``POST /api/approvals/{id}``, after
which the operator's poll runs it in her name.

Without an SLO provider or an operator the real routes answer 503 with a reason: each tab shows
the reason as served and asks once. Nothing of our API is mocked in the browser; the page's own
clock is Playwright's, paused at the store's ``NOW``, and a poll is one ``clock.run_for``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from e2e_support import until
from playwright.sync_api import Browser, Page, expect

from bastion.api.app import create_app
from bastion.build import (
    build_alert_monitor,
    build_approvals,
    build_halt,
    build_operator,
    build_resilience,
)
from bastion.clock import SimClock
from bastion.config import Settings
from bastion.events import EventKind, Journal
from bastion.guard.approvals import ApprovalStatus
from bastion.guard.halt import Halt
from bastion.guard.health import HealthChecker
from bastion.status import RuntimeStatus
from bastion.store import Store
from bastion.store.task_sink import TaskSink
from bastion.store.tasks import tasks as tasks_table
from bastion.telemetry.metrics import Metrics
from loopback_server import serve_on_loopback

pytestmark = pytest.mark.browser

TOKEN = "e2e-slo-token-0123456789"
ALICE = "alice-slo-token-0123456789"
SECRET = "e2e-webhook-secret-0123456789"
REFRESH_S = 0.2
PATIENCE_MS = 15_000  # liveness bound for the page, not a performance figure
NOW = datetime(2027, 1, 15, 9, 0, tzinfo=UTC)
HOSTILE = '<img src=x onerror="window.pwned=1">exchange gone'
HOSTILE_LABEL = "<b>deribit</b>"

# The live run: one step a minute for the hour up to NOW (step j at NOW - 60 * (60 - j)), the
# monitor evaluating at each (its 60 s interval). The old run: 1440 good steps a minute apart
# ending 25 h ago, inside the 3-day window and the 30-day period, outside the others.
STEPS = 60
FAILED_FROM = 55  # steps 55..60 fail: the last 5 minutes all, the last 30 minutes 6 of 30
SLOW_STEP = 50  # 6.5 s, over the latency SLO's 5 s: inside the last 30 minutes
COSTLY_STEP = 20  # $0.20 of LLM calls, over the cost SLO's $0.15: inside the hour only
OLD_STEPS = 1440
# Over the period 1500 steps: completion 1494 good, budget 1 - (6/1500)/0.005 = 20 % left; the
# burn rates 5m 5/5, 30m 6/30, 1h..1d 6/60, 3d 6/1500 over 0.005. Both pages and the 1d/2h
# ticket fire; the 3d/6h ticket (0.8x) does not. The ticket first fired at step 55 (1d and 2h
# at 1/55 over 0.005, 3.6x, and 20 % of the last 5 minutes failing at once: the error-rate page),
# the page at step 56 (6h at 2/56, 7.1x, and 30m at 2/30). The cost SLO's ticket fired at steps
# 20..33 and resolved: it is not listed.
TABLE = {
    "task_completion": (
        "99.5%",
        "–",
        "99.60% (1494/1500)",
        "20.0% left",
        "5m 200.00× · 30m 40.00× · 1h 20.00× · 2h 20.00× · 6h 20.00× · 1d 20.00× · 3d 0.80×",
        ["page 1h/5m ×14.4 FIRING", "page 6h/30m ×6 FIRING", "ticket 1d/2h ×3 FIRING"],
    ),
    "latency": (
        "99.0%",
        "5 s",
        "99.93% (1499/1500)",
        "93.3% left",
        "5m 0.00× · 30m 3.33× · 1h 1.67× · 2h 1.67× · 6h 1.67× · 1d 1.67× · 3d 0.07×",
        [],
    ),
    "cost": (
        "99.0%",
        "$0.15",
        "99.93% (1499/1500)",
        "93.3% left",
        "5m 0.00× · 30m 0.00× · 1h 1.67× · 2h 1.67× · 6h 1.67× · 1d 1.67× · 3d 0.07×",
        [],
    ),
}
PAIRS = ["page 1h/5m ×14.4", "page 6h/30m ×6", "ticket 1d/2h ×3", "ticket 3d/6h ×1"]
FIRING = [
    [
        "ticket",
        "BastionStepErrorBudgetBurn",
        "The task_completion SLO (99.5%) burns its error budget 3.6x over 1d and 2h (alert at 3x)",
        "2027-01-15 08:55:00 UTC",
    ],
    [
        "page",
        "BastionStepErrorRateHigh",
        "20.0% of the steps of the last 5 minutes failed or timed out (over 1%)",
        "2027-01-15 08:55:00 UTC",
    ],
    [
        "page",
        "BastionStepErrorBudgetBurn",
        "The task_completion SLO (99.5%) burns its error budget 7.1x over 6h and 30m (alert at 6x)",
        "2027-01-15 08:56:00 UTC",
    ],
    [
        "page",
        "BastionKillSwitchActive",
        f"Bastion is halted ({HOSTILE}): the kill switch is active",
        "2027-01-15 09:00:00 UTC",
    ],
]


@pytest.fixture(autouse=True)
def _defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """The settings' defaults, whatever BASTION_* the shell has: the figures depend on them."""
    for name in [n for n in os.environ if n.startswith("BASTION_")]:
        monkeypatch.delenv(name)


def _settings(tmp_path: Path) -> Settings:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    return Settings(data_dir=data, operator_poll_seconds=0.1)


def _app(settings: Settings, store: Store, halt: Halt, **providers: Any) -> Any:
    status = RuntimeStatus(run_id="run-live", agent="seller", currency="BTC", dry_run=False)
    return create_app(
        status=status.to_dict,
        halt=halt,
        metrics=Metrics(),
        token=TOKEN,
        refresh_seconds=REFRESH_S,
        named_tokens={"alice": ALICE},
        **providers,
    )


def _history(store: Store, clock: SimClock, journal: Journal) -> None:
    """The old run's rows, then the live run's steps through its journal, as a run emits them."""
    old = [
        {
            "kind": "step",
            "run_id": "run-old",
            "agent": "seller",
            "step": OLD_STEPS - k,
            "finished_at": NOW - timedelta(hours=25, minutes=k),
            "outcome": "ok",
            "duration_s": 1.0,
            "cost_usd": 0.0,
            "tool_calls": 0,
        }
        for k in range(OLD_STEPS)
    ]
    with store.engine.begin() as conn:
        conn.execute(sa.insert(tasks_table), old)
    for step in range(1, STEPS + 1):
        clock.advance(60)
        if step == COSTLY_STEP:
            journal.emit(EventKind.LLM_CALL, {"usd": 0.20, "model": "m"})
        journal.emit(
            EventKind.STEP_COMPLETED,
            {
                "step": step,
                "status": "failed" if step >= FAILED_FROM else "ok",
                "orders_sent": 0,
                "detail": "",
                "elapsed_s": 6.5 if step == SLOW_STEP else 1.0,
                "at": clock.now().isoformat(),
                "halt": None,
            },
        )


@dataclass
class Console:
    base: str
    store: Store
    halt: Halt
    api: httpx.Client


@pytest.fixture
def slo_console(tmp_path: Path) -> Iterator[Console]:
    """A console serving a run's real SLO report (the monitor over the store's task records)."""
    settings = _settings(tmp_path)
    clock = SimClock(start=(NOW - timedelta(hours=1)).timestamp())
    journal = Journal(run_id="run-live")
    with Store.open(f"sqlite:///{tmp_path / 'bastion.db'}") as store:
        journal.subscribe(TaskSink(store.tasks, run_id="run-live", agent="seller", clock=clock))
        monitor = build_alert_monitor(settings, store, journal, clock, "run-live")
        journal.subscribe(monitor)
        halt = build_halt(settings, clock, store=store, journal=journal)
        _history(store, clock, journal)
        assert clock.now() == NOW
        app = _app(settings, store, halt, slo=monitor.report)
        with (
            serve_on_loopback(app) as base,
            httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}) as api,
        ):
            yield Console(base, store, halt, api)


@pytest.fixture
def operator_console(tmp_path: Path) -> Iterator[Console]:
    """A console with a real operator (rules, safety mode on) started on the server's loop."""
    settings = _settings(tmp_path)
    assert settings.operator_safety_mode
    clock = SimClock(start=NOW.timestamp())
    metrics = Metrics()
    with Store.open(f"sqlite:///{tmp_path / 'bastion.db'}") as store:
        halt = build_halt(settings, clock, store=store)
        approvals = build_approvals(settings, store, clock, agent="operator")
        checker = HealthChecker(clock=clock, environment="test", store=store)

        async def exchange() -> tuple[str, str]:
            return "FAIL", "the exchange does not answer"

        checker.register("exchange", exchange)
        operator = build_operator(
            settings,
            store=store,
            clock=clock,
            halt=halt,
            approvals=approvals,
            resilience=build_resilience(settings, clock, metrics),
            healthcheck=checker.run_and_cache_healthcheck,
            metrics=metrics,
        )
        app = _app(
            settings,
            store,
            halt,
            approvals=approvals,
            operator=operator,
            operator_webhook_secret=SECRET,
        )
        with (
            serve_on_loopback(app) as base,
            httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}) as api,
        ):
            assert api.post("/api/operator/start").json()["running"] is True
            try:
                yield Console(base, store, halt, api)
            finally:
                api.post("/api/operator/stop").raise_for_status()


@pytest.fixture
def bare_console(tmp_path: Path) -> Iterator[Console]:
    """A console built for a runtime without SLOs and without an operator."""
    settings = _settings(tmp_path)
    clock = SimClock(start=NOW.timestamp())
    with Store.open(f"sqlite:///{tmp_path / 'bastion.db'}") as store:
        halt = build_halt(settings, clock, store=store)
        with (
            serve_on_loopback(_app(settings, store, halt)) as base,
            httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}) as api,
        ):
            yield Console(base, store, halt, api)


def _page(chromium: Browser, console: Console, tab: str, token: str = TOKEN) -> Page:
    page = chromium.new_page(viewport={"width": 1280, "height": 1000})
    page.clock.install(time=NOW - timedelta(minutes=1))
    page.clock.pause_at(NOW)
    page.goto(f"{console.base}/?token={token}#{tab}")
    return page


def _poll(page: Page) -> None:
    """One refresh period of the page's clock: its pollers run once."""
    page.clock.run_for(int(REFRESH_S * 1000))


def test_the_slo_panel_shows_the_runs_budgets_burn_rates_and_what_fires(
    slo_console: Console, chromium: Browser
) -> None:
    halted = slo_console.api.post("/api/kill", json={"reason": HOSTILE})
    assert halted.status_code == 200, halted.text
    report = slo_console.api.get("/api/slo").json()
    assert [s["name"] for s in report["slos"]] == list(TABLE)
    assert [a["summary"] for a in report["firing"]] == [row[2] for row in FIRING]

    page = _page(chromium, slo_console, "slo")
    rows = page.locator("#slo-table tbody tr")
    expect(rows).to_have_count(3, timeout=PATIENCE_MS)
    expect(page.locator("#slo-period")).to_have_text(
        "30-day window, evaluated 2027-01-15 09:00:00 UTC"
    )
    expect(page.locator("#slo-updated")).to_have_text("updated 2027-01-15 09:00:00 UTC")
    for name, (objective, threshold, sli, budget, burn, firing) in TABLE.items():
        cells = page.locator(f'#slo-table tr[data-slo="{name}"] td')
        expect(cells.nth(0)).to_have_text(name)
        expect(cells.nth(1)).to_have_text(objective)
        expect(cells.nth(2)).to_have_text(threshold)
        expect(cells.nth(3)).to_have_text(sli)
        expect(cells.nth(4).locator("small")).to_have_text(budget)
        expect(cells.nth(5)).to_have_text(burn)
        pairs = [p + " FIRING" if p + " FIRING" in firing else p for p in PAIRS]
        expect(cells.nth(6).locator("li")).to_have_text(pairs)
        expect(cells.nth(6).locator("li.firing")).to_have_count(len(firing))
    # 20 % left is under a quarter: the meter shows it high; 93.3 % is unremarkable.
    completion = page.locator('#slo-table tr[data-slo="task_completion"] .meter')
    expect(completion.locator("span")).to_have_class("high")
    expect(completion).to_have_attribute("aria-valuenow", "20.0")
    expect(page.locator('#slo-table tr[data-slo="cost"] .meter span')).to_have_class("")

    firing = page.locator("#slo-firing tbody tr")
    expect(firing).to_have_count(len(FIRING))
    for n, row in enumerate(FIRING):
        expect(firing.nth(n).locator("td")).to_have_text(row)
    assert page.locator("#panel-slo img").count() == 0
    assert page.evaluate("window.pwned") is None


def _webhook() -> dict[str, Any]:
    """Alertmanager's version-4 notification of one page, as 0.25 sends it."""
    labels = {
        "alertname": "BastionExchangeDown",
        "severity": "critical",
        "dependency": HOSTILE_LABEL,
    }
    return {
        "version": "4",
        "groupKey": '{}:{alertname="BastionExchangeDown"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "bastion-console",
        "groupLabels": {"alertname": "BastionExchangeDown"},
        "commonLabels": labels,
        "commonAnnotations": {"summary": HOSTILE},
        "externalURL": "http://127.0.0.1:9093",
        "alerts": [
            {
                "status": "firing",
                "labels": labels,
                "annotations": {"summary": HOSTILE},
                "startsAt": "2027-01-15T08:58:00.123Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://127.0.0.1:9090/graph?g0.expr=up",
                "fingerprint": "0123456789abcdef",
            }
        ],
    }


def _listed(console: Console) -> list[dict[str, Any]]:
    answer = console.api.get("/api/alerts", params={"status": "all"})
    assert answer.status_code == 200, answer.text
    alerts: list[dict[str, Any]] = answer.json()["alerts"]
    return alerts


WAITING = (
    "not validated: waiting until 2027-01-15T09:10:00+00:00: the alert did not resolve, "
    "health was not OK"
)


def test_a_delivered_alert_is_analysed_and_alice_approves_its_halt_in_the_page(
    operator_console: Console, chromium: Browser
) -> None:
    delivered = httpx.post(
        f"{operator_console.base}/api/alerts/alertmanager",
        json=_webhook(),
        headers={"Authorization": f"Bearer {SECRET}"},
    )
    assert delivered.status_code == 200, delivered.text
    [alert_id] = delivered.json()["alert_ids"]
    # The intake only stores; the analysis and its proposals follow on the server's loop.
    until(
        lambda: len((_listed(operator_console) or [{}])[0].get("actions", [])) == 2,
        "the analysis and its two proposed actions",
    )
    [stored] = _listed(operator_console)
    proposed = {a["action"]: a for a in stored["actions"]}
    check, halt_action = proposed["healthcheck"], proposed["halt"]

    page = _page(chromium, operator_console, "alerts", token=ALICE)
    card = page.locator(f'article.alert-card[data-alert-id="{alert_id}"]')
    expect(card).to_be_visible(timeout=PATIENCE_MS)
    expect(card.locator("h3")).to_have_text(
        "critical BastionExchangeDown · firing · since 2027-01-15 08:58:00 UTC"
    )
    expect(card.locator("p.summary")).to_have_text(HOSTILE)
    expect(card.locator("p.labels")).to_have_text(
        f"alertname=BastionExchangeDown severity=critical dependency={HOSTILE_LABEL}"
    )
    expect(card.locator(".analysis-head")).to_have_text(
        "rules · dependency_down · critical · confidence 0.70 · IMMEDIATE"
    )
    expect(card.locator(".analysis p").nth(1)).to_have_text(
        f"BastionExchangeDown: a dependency is failing or its circuit breaker is open ({HOSTILE})"
    )
    expect(card.locator(".analysis li")).to_have_text(["healthcheck", "halt"])
    # Both were proposed at the same SimClock instant: the rows' order is the ids', so each
    # row is found by its action's id.
    expect(card.locator("table.alert-actions tbody tr")).to_have_count(2)
    checked = card.locator(f'tr[data-action-id="{check["id"]}"] td')
    expect(checked).to_have_text(
        ["healthcheck", "{}", "executed", "operator (a healthcheck runs unasked)", WAITING, ""]
    )
    halt_row = card.locator(f'tr[data-action-id="{halt_action["id"]}"] td')
    expect(halt_row).to_have_text(
        [
            "halt",
            '{"reason":"operator","alertname":"BastionExchangeDown"}',
            "proposed",
            "–",
            "–",
            "ApproveReject",
        ]
    )
    assert page.locator("#panel-alerts img, #panel-alerts b").count() == 0
    assert page.evaluate("window.pwned") is None
    assert operator_console.halt.state() is None  # safety mode: nothing halts unasked

    page.on("dialog", lambda dialog: dialog.accept("exchange confirmed down"))
    card.get_by_role("button", name="Approve halt for BastionExchangeDown").click()
    expect(page.locator("#alerts-message")).to_have_text(
        "halt approved by alice.", timeout=PATIENCE_MS
    )
    decided = operator_console.store.approvals.get(halt_action["approval_id"])
    assert decided is not None
    assert (decided.status, decided.decided_by, decided.note) == (
        ApprovalStatus.APPROVED,
        "alice",
        "exchange confirmed down",
    )
    # The operator's poll runs the approved halt in Alice's name; the page's next poll shows it.
    until(lambda: operator_console.halt.state() is not None, "the approved halt to run")
    state = operator_console.halt.state()
    assert state is not None
    assert state.who == "operator agent, approved by alice"
    until(
        lambda: (
            {a["id"]: a["status"] for a in _listed(operator_console)[0]["actions"]}[
                halt_action["id"]
            ]
            == "executed"
        ),
        "the halt action recorded as executed",
    )
    _poll(page)
    expect(halt_row.nth(2)).to_have_text("executed", timeout=PATIENCE_MS)
    expect(halt_row.nth(3)).to_have_text("alice")
    expect(halt_row.nth(4)).to_have_text(WAITING)
    expect(card.locator("button")).to_have_count(0)
    assert page.evaluate("window.pwned") is None


def test_without_slos_or_an_operator_each_tab_shows_the_servers_reason_and_asks_once(
    bare_console: Console, chromium: Browser
) -> None:
    slo = bare_console.api.get("/api/slo")
    alerts = bare_console.api.get("/api/alerts", params={"status": "firing"})
    assert (slo.status_code, alerts.status_code) == (503, 503)
    slo_reason, alerts_reason = slo.json()["detail"], alerts.json()["detail"]
    assert "no SLOs are evaluated" in slo_reason
    assert "no operator agent runs" in alerts_reason

    page = _page(chromium, bare_console, "slo")
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if "/api/slo" in r.url else None)
    page.on("request", lambda r: asked.append(r.url) if "/api/alerts" in r.url else None)
    page.reload()
    expect(page.locator("#slo-error")).to_have_text(
        f"SLOs unavailable: {slo_reason}", timeout=PATIENCE_MS
    )
    expect(page.locator("#slo-updated")).to_have_text("not updated")
    for _ in range(3):  # three refresh periods on the tab: it does not ask again
        _poll(page)
    page.click("#tab-alerts")
    expect(page.locator("#alerts-error")).to_have_text(
        f"Alerts unavailable: {alerts_reason}", timeout=PATIENCE_MS
    )
    for _ in range(3):
        _poll(page)
    page.click("#tab-slo")  # coming back does not ask again either
    _poll(page)
    page.wait_for_timeout(300)  # real time for a request the polls would have sent
    assert [url.split("?")[0].removeprefix(bare_console.base) for url in asked] == [
        "/api/slo",
        "/api/alerts",
    ], asked
