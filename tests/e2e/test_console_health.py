"""The console's System Health tab in headless Chromium against the real app on loopback: badge,
summary, paused notice, the Run button, auto-refresh, and keyboard-reachable tabs."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from bastion.api.app import create_app
from bastion.clock import SimClock
from bastion.guard.halt import Halt
from bastion.guard.health import CachedHealthStatus, CheckResult, HealthReport, HealthStatus
from bastion.status import RuntimeStatus
from bastion.telemetry.metrics import Metrics
from loopback_server import serve_on_loopback

pytestmark = pytest.mark.browser

TOKEN = "e2e-console-token"
ARTIFACT = Path(__file__).resolve().parents[2] / "artifacts" / "system-health-tab.png"
T0 = datetime(2026, 11, 21, 10, 31, 5, tzinfo=UTC)
# Liveness bound for the page to catch up, not a performance assertion.
PATIENCE_MS = 15_000
BADGE_COLOURS = {"OK": "rgb(26, 127, 55)", "WARN": "rgb(212, 167, 44)", "FAIL": "rgb(207, 34, 46)"}
SUMMARIES = {
    "OK": "All 4 checks OK",
    "WARN": "Config OK; Deribit public WARN (rate_limit); LLM OK; Store OK",
    "FAIL": "Config OK; Deribit public FAIL (forbidden); LLM keys missing; Store OK",
}


def _check(name: str, status: str, detail: str, latency_ms: float) -> CheckResult:
    code = None if status == "OK" else status.lower()
    return CheckResult(name, HealthStatus(status), detail, code, latency_ms)


def _report(status: str, at: datetime) -> HealthReport:
    public = {
        "OK": "index 97,312.50 USD",
        "WARN": "RATE_LIMIT (10028), retry after 2 s",
        "FAIL": "Deribit public API FORBIDDEN (HTTP 403)",
    }[status]
    llm = "FAIL" if status == "FAIL" else "OK"
    return HealthReport(
        run_at=at,
        overall_status=HealthStatus(status),
        summary=SUMMARIES[status],
        checks=(
            _check("config", "OK", "secrets present, limits sane, models pinned", 0.4),
            _check("exchange_public", status, public, 182.0),
            _check("llm", llm, "LLM keys missing" if llm == "FAIL" else "keys set", 0.2),
            _check("store", "OK", "wrote and read back", 3.1),
        ),
    )


@dataclass
class FakeHealth:
    """A health checker whose next run reports ``next_status``; runs are a minute apart."""

    next_status: str = "OK"
    paused: bool = False
    runs: list[HealthReport] = field(default_factory=list)

    async def run_and_cache_healthcheck(self, *, lightweight_only: bool = False) -> HealthReport:
        report = _report(self.next_status, T0 + timedelta(minutes=len(self.runs)))
        self.runs.append(report)
        return report

    def get_cached_health_status(self) -> CachedHealthStatus:
        return CachedHealthStatus.from_report(self.runs[-1])

    def history(self, limit: int = 50) -> list[HealthReport]:
        return list(reversed(self.runs))[:limit]


def _expect_status(page: Page, status: str, minute: int) -> None:
    badge = page.locator("#system-health-status-badge")
    expect(badge).to_have_text(status, timeout=PATIENCE_MS)
    expect(badge).to_have_class(f"health-badge {status.lower()}")
    colour = badge.evaluate("e => getComputedStyle(e).backgroundColor")
    assert colour == BADGE_COLOURS[status]
    expect(page.locator("#system-health-last-run")).to_have_text(
        f"Last run: 2026-11-21 10:{minute:02d} UTC"
    )
    summary = page.locator("#system-health-status-summary")
    if status == "OK":
        expect(summary).to_be_hidden()
    else:
        expect(summary).to_be_visible()
        expect(summary).to_have_text(SUMMARIES[status])
    public = page.locator("#system-health-checks tbody tr", has_text="exchange_public")
    expect(public.locator("td").nth(1)).to_have_text(status)
    expect(public.locator("td").nth(3)).to_have_text("182 ms")


def test_system_health_tab(tmp_path: Path, chromium: Browser) -> None:
    """Last run, coloured badge, summary and paused notice; Run and polling update them."""
    health = FakeHealth()
    for scripted in ("OK", "WARN", "OK", "FAIL", "OK"):
        health.runs.append(_report(scripted, T0 + timedelta(minutes=len(health.runs))))
    status = RuntimeStatus(run_id="r1", agent="demo 1.0.0", currency="BTC", dry_run=True)
    halt = Halt(flag_path=tmp_path / "kill_switch.flag", clock=SimClock(), metrics=Metrics())
    app = create_app(
        status=status.to_dict,
        halt=halt,
        metrics=Metrics(),
        token=TOKEN,
        refresh_seconds=0.3,
        health=health,
        health_paused=lambda: health.paused,
    )
    with serve_on_loopback(app) as base:
        page = chromium.new_page(viewport={"width": 1100, "height": 760})
        page.goto(f"{base}/?token={TOKEN}#system-health")
        page.evaluate("window.sameDocument = true")

        expect(page.locator("#tab-system-health")).to_have_attribute("aria-selected", "true")
        expect(page.locator("#panel-overview")).to_be_hidden()
        _expect_status(page, "OK", 35)
        expect(page.locator("#system-health-paused")).to_be_hidden()
        strip = page.locator("#system-health-history .run")
        expect(strip).to_have_count(5)
        assert strip.first.get_attribute("class") == "run ok"
        assert strip.nth(1).get_attribute("title") == (
            f"2026-11-21 10:32:05 UTC — WARN — {SUMMARIES['WARN']}"
        )

        health.next_status = "WARN"
        page.click("#system-health-run")
        _expect_status(page, "WARN", 36)
        expect(strip).to_have_count(6)
        expect(strip.last).to_have_class("run warn")

        health.next_status, health.paused = "FAIL", True
        page.click("#system-health-run")
        _expect_status(page, "FAIL", 37)
        paused = page.locator("#system-health-paused")
        expect(paused).to_have_text(
            "Agent status: PAUSED by health guard (auto_kill_on_health_fail)"
        )
        expect(paused).to_be_visible()
        expect(strip.last).to_have_class("run fail")
        assert len(health.runs) == 7, "each click ran the checks exactly once"
        ARTIFACT.parent.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACT), full_page=True)
        shutil.copy(ARTIFACT, tmp_path / ARTIFACT.name)

        # The runtime's own recheck, with no click: the open tab catches up by polling.
        health.next_status, health.paused = "OK", False
        health.runs.append(_report("OK", T0 + timedelta(minutes=len(health.runs))))
        _expect_status(page, "OK", 38)
        expect(paused).to_be_hidden()

        # Tabs without reload, by mouse and keyboard.
        page.click("#tab-overview")
        expect(page.locator("#panel-overview")).to_be_visible()
        expect(page.locator("#panel-system-health")).to_be_hidden()
        assert page.evaluate("location.hash") == "#overview"
        page.keyboard.press("ArrowRight")
        expect(page.locator("#tab-system-health")).to_be_focused()
        expect(page.locator("#tab-system-health")).to_have_attribute("aria-selected", "true")
        expect(page.locator("#panel-system-health")).to_be_visible()
        assert page.evaluate("window.sameDocument") is True, "switching tabs reloaded the page"
