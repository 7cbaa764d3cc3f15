"""The SLO and Alerts tabs in headless Chromium, coded against the issue-12 contracts.

This branch serves neither ``GET /api/slo`` nor ``GET /api/alerts`` (other pieces build them),
so the tests answer those two requests in the browser (Playwright's ``route``) with the
contracts' shapes, and leave everything else to the real app on loopback: approving a proposed
action goes through the real ``POST /api/approvals/{id}`` to a real store. Without the routes
the real app answers 404, and the tabs say so.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Route, expect

from bastion.api.app import create_app
from bastion.clock import SimClock
from bastion.guard.approvals import Approvals, ApprovalStatus
from bastion.guard.halt import Halt
from bastion.status import RuntimeStatus
from bastion.store import Store
from bastion.telemetry.metrics import Metrics
from loopback_server import serve_on_loopback

pytestmark = pytest.mark.browser

TOKEN = "e2e-slo-token"
ALICE = "alice-slo-token-0123456789"
PATIENCE_MS = 15_000  # liveness bound for the page, not a performance figure
NOW = datetime(2027, 1, 15, 9, 0, tzinfo=UTC)
HOSTILE = '<img src=x onerror="window.pwned=1">latency'


def _slo(name: str, **fields: Any) -> dict[str, Any]:
    return {
        "name": name,
        "description": f"{name} of agent tasks",
        "objective": 0.995,
        "threshold": None,
        "unit": None,
        "total": 1000,
        "good": 990,
        "sli": 0.99,
        "error_budget_remaining": -1.0,
        "burn_rates": {
            "5m": 20.0,
            "30m": None,
            "1h": 15.5,
            "2h": None,
            "6h": 3.0,
            "1d": None,
            "3d": None,
        },
        "alerts": [
            {"severity": "page", "long": "1h", "short": "5m", "factor": 14.4, "firing": True},
            {"severity": "ticket", "long": "3d", "short": "6h", "factor": 1.0, "firing": False},
        ],
        **fields,
    }


FIRING = {
    "key": "slo:latency:page",
    "alertname": "BastionLatencyBudgetBurn",
    "severity": "page",
    "summary": HOSTILE,
    "since": NOW.isoformat(),
    "labels": {"slo": "latency"},
    "value": 15.5,
    "threshold": 14.4,
}
SLO_REPORT = {
    "period_days": 30,
    "evaluated_at": NOW.isoformat(),
    "slos": [
        _slo("task_completion"),
        _slo("latency", threshold=5.0, unit="s", error_budget_remaining=0.4),
        _slo(
            "cost",
            threshold=0.15,
            unit="usd",
            total=0,
            good=0,
            sli=None,
            error_budget_remaining=1.0,
        ),
    ],
    "firing": [FIRING],
}


def _alerts(approval_id: str) -> dict[str, Any]:
    return {
        "alerts": [
            {
                "id": "al-1",
                "fingerprint": "0123456789abcdef",
                "alertname": "BastionExchangeDown",
                "status": "firing",
                "severity": "critical",
                "summary": HOSTILE,
                "labels": {"alertname": "BastionExchangeDown", "dependency": "deribit"},
                "annotations": {},
                "starts_at": NOW.isoformat(),
                "ends_at": None,
                "received_at": NOW.isoformat(),
                "analysis": {
                    "source": "rules",
                    "issue_detected": True,
                    "severity": "critical",
                    "issue_type": "dependency_down",
                    "description": "The exchange stopped answering <b>at all</b>.",
                    "recommended_actions": ["halt the agent", "run a healthcheck"],
                    "confidence": 0.9,
                    "requires_immediate_action": True,
                },
                "actions": [
                    {
                        "id": "ac-1",
                        "action": "healthcheck",
                        "params": {},
                        "status": "executed",
                        "approval_id": None,
                        "decided_by": None,
                        "outcome": {"validated": True, "effective": False, "detail": "still FAIL"},
                    },
                    {
                        "id": "ac-2",
                        "action": "halt",
                        "params": {"reason": "exchange down"},
                        "status": "proposed",
                        "approval_id": approval_id,
                        "decided_by": None,
                        "outcome": None,
                    },
                ],
            }
        ]
    }


@dataclass
class Console:
    base: str
    store: Store
    approval_id: str


@pytest.fixture
def console(tmp_path: Path) -> Iterator[Console]:
    clock = SimClock(start=NOW.timestamp())
    status = RuntimeStatus(run_id="r1", agent="seller 1", currency="BTC", dry_run=False)
    with Store.open(f"sqlite:///{tmp_path / 'bastion.db'}") as store:
        record = store.approvals.add(
            kind="operator_action",
            agent="operator",
            subject={"action": "halt", "alert": "BastionExchangeDown"},
            reason="the operator proposes halting: exchange down",
            at=NOW,
            run_id="r1",
            expires_at=NOW + timedelta(hours=1),
        )
        app = create_app(
            status=status.to_dict,
            halt=Halt(flag_path=tmp_path / "kill.flag", clock=clock, metrics=Metrics()),
            metrics=Metrics(),
            token=TOKEN,
            refresh_seconds=0.2,
            approvals=Approvals(store, clock=clock, agent="operator"),
            named_tokens={"alice": ALICE},
        )
        with serve_on_loopback(app) as base:
            yield Console(base, store, record.id)


def _answer(body: dict[str, Any]) -> Any:
    def fulfil(route: Route) -> None:
        route.fulfill(status=200, content_type="application/json", body=json.dumps(body))

    return fulfil


def _page(chromium: Browser, console: Console, tab: str, token: str = TOKEN) -> Page:
    page = chromium.new_page(viewport={"width": 1200, "height": 900})
    page.clock.install(time=NOW - timedelta(minutes=1))
    page.clock.pause_at(NOW)
    page.goto(f"{console.base}/?token={token}#{tab}")
    return page


def test_the_slo_panel_shows_budgets_burn_rates_and_what_fires(
    console: Console, chromium: Browser
) -> None:
    page = chromium.new_page(viewport={"width": 1200, "height": 900})
    page.route("**/api/slo", _answer(SLO_REPORT))
    page.goto(f"{console.base}/?token={TOKEN}#slo")
    rows = page.locator("#slo-table tbody tr")
    expect(rows).to_have_count(3, timeout=PATIENCE_MS)
    latency = page.locator('#slo-table tr[data-slo="latency"] td')
    expect(latency.nth(1)).to_have_text("99.5%")
    expect(latency.nth(2)).to_have_text("5 s")
    expect(latency.nth(3)).to_have_text("99.00% (990/1000)")
    expect(latency.nth(4)).to_contain_text("40.0% left")
    expect(latency.nth(5)).to_have_text("5m 20.00× · 1h 15.50× · 6h 3.00×")
    expect(latency.nth(6).locator("li.firing")).to_have_text("page 1h/5m ×14.4 FIRING")
    cost = page.locator('#slo-table tr[data-slo="cost"] td')
    expect(cost.nth(2)).to_have_text("$0.15")
    expect(cost.nth(3)).to_have_text("no tasks")
    overspent = page.locator('#slo-table tr[data-slo="task_completion"] .meter span')
    expect(overspent).to_have_class("full")
    expect(page.locator('#slo-table tr[data-slo="task_completion"] td.budget small')).to_have_text(
        "overspent (-100.0%)"
    )
    firing = page.locator("#slo-firing tbody td")
    expect(firing.nth(2)).to_have_text(HOSTILE)
    assert page.locator("#panel-slo img").count() == 0
    assert page.evaluate("window.pwned") is None


def test_a_proposed_action_is_approved_through_the_approvals_route_as_the_token_names(
    console: Console, chromium: Browser
) -> None:
    page = _page(chromium, console, "alerts", token=ALICE)
    page.route("**/api/alerts?*", _answer(_alerts(console.approval_id)))
    page.on("dialog", lambda dialog: dialog.accept("exchange confirmed down"))
    page.reload()
    card = page.locator('article.alert-card[data-alert-id="al-1"]')
    expect(card).to_be_visible(timeout=PATIENCE_MS)
    expect(card.locator("p.summary")).to_have_text(HOSTILE)
    expect(card.locator(".analysis-head")).to_have_text(
        "rules · dependency_down · critical · confidence 0.90 · IMMEDIATE"
    )
    expect(card.locator(".analysis li")).to_have_text(["halt the agent", "run a healthcheck"])
    executed = card.locator('tr[data-action-id="ac-1"]')
    expect(executed.locator("td").nth(4)).to_have_text("validated, not effective: still FAIL")
    expect(executed.locator("button")).to_have_count(0)  # nothing to decide
    assert card.locator("img, b").count() == 0
    card.get_by_role("button", name="Approve halt for BastionExchangeDown").click()
    expect(page.locator("#alerts-message")).to_have_text(
        "halt approved by alice.", timeout=PATIENCE_MS
    )
    decided = console.store.approvals.get(console.approval_id)
    assert decided is not None
    assert (decided.status, decided.decided_by, decided.note) == (
        ApprovalStatus.APPROVED,
        "alice",
        "exchange confirmed down",
    )


def test_without_the_routes_both_tabs_say_so_and_stop_asking(
    console: Console, chromium: Browser
) -> None:
    page = chromium.new_page()
    asked: list[str] = []
    page.on(
        "request",
        lambda r: asked.append(r.url) if "/api/slo" in r.url or "/api/alerts" in r.url else None,
    )
    page.goto(f"{console.base}/?token={TOKEN}#slo")
    expect(page.locator("#slo-error")).to_have_text(
        "No SLOs on this console: it does not serve /api/slo.", timeout=PATIENCE_MS
    )
    page.click("#tab-alerts")
    expect(page.locator("#alerts-error")).to_have_text(
        "No operator alerts on this console: it does not serve /api/alerts.",
        timeout=PATIENCE_MS,
    )
    page.wait_for_timeout(600)  # three refresh periods: neither is asked again
    assert len(asked) == 2, asked
