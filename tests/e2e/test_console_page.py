"""The console page in headless Chromium against the real app on loopback: what the operator
relies on beyond the tabs' own tests. The token leaves the address bar, only the control that
applies is offered, times read UTC, prices read to the tick, an open breaker says so, the page
fits a phone, and it loads under its CSP with nothing failing (favicon included)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from playwright.sync_api import Browser, Page, ViewportSize, expect

from bastion.api.app import create_app
from bastion.clock import SimClock
from bastion.guard.approvals import Approvals
from bastion.guard.halt import Halt
from bastion.guard.health import CachedHealthStatus, CheckResult, HealthReport, HealthStatus
from bastion.market import Order, Position
from bastion.ops.status import StatusService
from bastion.resilience.breaker import BreakerRegistry
from bastion.runtime.equity_sink import EquitySink
from bastion.status import RuntimeStatus, TradingState
from bastion.store import Store
from bastion.telemetry.metrics import Metrics
from loopback_server import serve_on_loopback

pytestmark = pytest.mark.browser
T = TypeVar("T")

TOKEN = "e2e-console-token"
# Liveness bound for the page to catch up, not a performance assertion.
PATIENCE_MS = 15_000
NOW = datetime(2026, 12, 2, 4, 21, 28, tzinfo=UTC)
PHONE: ViewportSize = {"width": 375, "height": 812}
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
OPTION = "BTC-27DEC26-100000-C"
LABEL = "bastion-0193f2c4-8a1e-7c3b-9d2e-5f6a7b8c9d0e-1"
LONG_REASON = (
    "daily_loss_limit_breached_after_the_short_put_was_assigned_at_expiry_"
    "and_the_hedge_did_not_fill_before_the_index_moved"
)


def _health_report(at: datetime) -> HealthReport:
    return HealthReport(
        run_at=at,
        overall_status=HealthStatus.WARN,
        summary="Config OK; Deribit public WARN (rate_limit); LLM OK; Store OK",
        checks=(
            CheckResult("config", HealthStatus.OK, "secrets present", None, 0.4),
            CheckResult(
                "exchange_public",
                HealthStatus.WARN,
                "RATE_LIMIT (10028), retry after 2 s; https://test.deribit.com/api/v2/public/"
                "get_index_price?index_name=btc_usd",
                "rate_limit",
                182.0,
            ),
        ),
    )


@dataclass
class FakeHealth:
    """A health checker that has already run fifty times, a minute apart."""

    runs: list[HealthReport] = field(
        default_factory=lambda: [_health_report(NOW - timedelta(minutes=m)) for m in range(50)]
    )

    async def run_and_cache_healthcheck(self, *, lightweight_only: bool = False) -> HealthReport:
        return self.runs[0]

    def get_cached_health_status(self) -> CachedHealthStatus:
        return CachedHealthStatus.from_report(self.runs[0])

    def history(self, limit: int = 50) -> list[HealthReport]:
        return self.runs[:limit]


@dataclass
class Console:
    """One console on loopback, its halt path and breakers, and the status the loop publishes."""

    halt: Halt
    clock: SimClock
    breakers: BreakerRegistry
    runtime: RuntimeStatus
    base: str = ""

    def url(self, suffix: str = "") -> str:
        return f"{self.base}/?token={TOKEN}{suffix}"


def _status_wiring(console: Console) -> dict[str, Any]:
    """create_app's status arguments as the runner passes them: the report over the loop's
    status, with the halt flag and the breakers."""
    service = StatusService(
        data_dir=console.halt.flag_path.parent,
        clock=console.clock,
        halt_state=console.halt.state,
        breakers=console.breakers.snapshot,
    )
    return {"status": lambda: service.report(console.runtime.to_dict())}


@pytest.fixture
def console(tmp_path: Path) -> Iterator[Console]:
    clock = SimClock(start=(NOW - timedelta(minutes=6)).timestamp())
    runtime = RuntimeStatus(
        run_id="r1",
        agent="options_seller 1.0.0",
        currency="BTC",
        dry_run=False,
        state="running",
        last_step=7,
        last_step_at="2026-12-02T04:21:20.123456+00:00",
        last_outcome="hold",
        equity=10.5,
    )
    halt = Halt(flag_path=tmp_path / "kill_switch.flag", clock=clock, metrics=Metrics())
    console = Console(halt, clock, BreakerRegistry(clock=clock), runtime)
    with Store.open(f"sqlite:///{tmp_path / 'bastion.db'}") as store:
        store.approvals.add(
            kind="llm_escalation",
            agent="llm_seller 1.0.0",
            subject={"input_class": "quote_put_spread", "models": ["openai:gpt-4o"]},
            reason=LONG_REASON,
            at=NOW - timedelta(minutes=3),
            run_id="r1",
            expires_at=NOW + timedelta(hours=1),
        )
        health = FakeHealth()
        app = create_app(
            **_status_wiring(console),
            halt=halt,
            metrics=Metrics(),
            token=TOKEN,
            refresh_seconds=0.2,
            health=health,
            health_paused=lambda: False,
            approvals=Approvals(store, clock=clock, agent="llm_seller 1.0.0"),
            equity=EquitySink().series,  # as a runner serves it: empty before the first step
            traces_dir=tmp_path / "traces",
        )
        with serve_on_loopback(app) as console.base:
            yield console


def _api(console: Console, path: str, reason: str) -> None:
    response = httpx.post(
        f"{console.base}{path}",
        json={"reason": reason},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    response.raise_for_status()


def test_the_token_leaves_the_address_bar_and_survives_a_reload(
    console: Console, chromium: Browser
) -> None:
    """After load the URL has no token (the tab is kept), and a reload still reaches the API."""
    page = chromium.new_page()
    page.goto(console.url("#system-health"))
    expect(page.locator("#state-badge")).to_have_text("running", timeout=PATIENCE_MS)
    assert "token" not in page.url
    assert TOKEN not in page.evaluate("location.href")
    assert page.url == f"{console.base}/#system-health"
    page.reload()
    expect(page.locator("#system-health-last-run")).to_have_text(
        "Last run: 2026-12-02 04:21 UTC", timeout=PATIENCE_MS
    )
    expect(page.locator("#auth-error")).to_be_hidden()
    assert TOKEN not in page.url


def test_kill_and_resume_are_offered_only_when_they_apply(
    console: Console, chromium: Browser
) -> None:
    """Kill is enabled only while trading, Resume only while halted, however the halt came."""
    page = chromium.new_page()
    page.on("dialog", lambda dialog: dialog.accept("console drill"))
    page.goto(console.url())
    kill, resume = page.locator("#kill"), page.locator("#resume")
    expect(page.locator("#state-badge")).to_have_text("running", timeout=PATIENCE_MS)
    expect(kill).to_be_enabled()
    expect(resume).to_be_disabled()

    kill.click()
    # No exchange behind this console cancels anything, so it cannot confirm: halting.
    expect(page.locator("#state-badge")).to_have_text("halting", timeout=PATIENCE_MS)
    expect(page.locator("#halt-title")).to_have_text("HALTING (cancelling resting orders)")
    expect(kill).to_be_disabled()
    expect(resume).to_be_enabled()
    state = console.halt.state()
    assert state is not None
    assert state.reason == "console drill"

    resume.click()
    expect(page.locator("#state-badge")).to_have_text("running", timeout=PATIENCE_MS)
    expect(kill).to_be_enabled()
    expect(resume).to_be_disabled()
    assert console.halt.state() is None

    _api(console, "/api/kill", "halted from the CLI")  # another process halts: the page follows
    expect(kill).to_be_disabled(timeout=PATIENCE_MS)
    expect(resume).to_be_enabled()


def test_times_are_shown_in_utc(console: Console, chromium: Browser) -> None:
    """Whatever the browser's zone and however the API writes an instant, the page says UTC."""
    console.runtime = replace(console.runtime, last_step_at="2026-12-02T05:51:20.5+01:30")
    _api(console, "/api/kill", "drill")
    context = chromium.new_context(timezone_id="Asia/Kolkata", locale="en-IN")
    page = context.new_page()
    page.clock.set_fixed_time(NOW)
    page.goto(console.url())
    expect(page.locator("#last-step-at")).to_have_text(
        "2026-12-02 04:21:20 UTC", timeout=PATIENCE_MS
    )
    expect(page.locator("#halt-who")).to_have_text(
        re.compile(r"\(by .+, 2026-12-02 04:15:28 UTC\)")
    )
    expect(page.locator("#updated")).to_have_text("updated 2026-12-02 04:21:28 UTC")
    page.click("#tab-system-health")
    expect(page.locator("#system-health-updated")).to_have_text(
        "updated 2026-12-02 04:21:28 UTC", timeout=PATIENCE_MS
    )
    page.click("#tab-approvals")
    expect(page.locator("#approvals-updated")).to_have_text(
        "updated 2026-12-02 04:21:28 UTC", timeout=PATIENCE_MS
    )
    expect(page.locator("#approvals-pending td.asked")).to_have_text(
        "2026-12-02 04:18:28 UTCexpires 2026-12-02 05:21:28 UTC"
    )
    context.close()


def test_prices_are_shown_to_the_instruments_tick(console: Console, chromium: Browser) -> None:
    """Option prices to 0.0001 BTC, perpetual prices to 0.5 USD, with no float noise."""
    console.runtime = replace(
        console.runtime,
        positions=(
            Position(OPTION, "option", -0.30000000000000004, 0.015000000000000001, 0.01534567),
            Position("BTC-PERPETUAL", "future", 1000.0, 97312.5, 97312.37),
        ),
        open_orders=(
            Order("ETH-1", OPTION, "sell", "limit", "open", 0.1, 0.0, 0.0155, 0.0, "sell-1", 0, 0),
            Order(
                "ETH-2", "BTC-PERPETUAL", "buy", "limit", "open", 10, 0, 97300.0, 0, "hedge", 0, 0
            ),
        ),
    )
    page = chromium.new_page()
    page.goto(console.url())
    option = page.locator("#positions tbody tr", has_text=OPTION)
    expect(option.locator("td")).to_have_text(
        [OPTION, "-0.3", "0.015", "0.0153", "0.000000"], timeout=PATIENCE_MS
    )
    perpetual = page.locator("#positions tbody tr", has_text="BTC-PERPETUAL")
    expect(perpetual.locator("td")).to_have_text(
        ["BTC-PERPETUAL", "1,000", "97,312.5", "97,312.4", "0.000000"]
    )
    orders = page.locator("#open-orders tbody tr")
    expect(orders.nth(0).locator("td").nth(4)).to_have_text("0.0155")
    expect(orders.nth(1).locator("td").nth(4)).to_have_text("97,300")


def test_an_open_breaker_says_open_and_what_opened_it(console: Console, chromium: Browser) -> None:
    """An open circuit shows open and the failures that tripped it, not the 0 left after."""
    deribit = console.breakers.get("deribit", "exchange")
    for _ in range(5):
        deribit.on_failure("network")
    llm = console.breakers.get("openai:gpt-4o", "llm")
    llm.on_failure("timeout")
    llm.on_failure("timeout")
    assert deribit.snapshot()["failures"] == 0, "the snapshot forgets the count when it opens"

    page = chromium.new_page()
    page.goto(console.url())
    row = page.locator("#breakers tbody tr", has_text="deribit").locator("td")
    expect(row).to_have_text(
        ["deribit", "exchange", "open", "tripped: 5 failures within 30 s; last: network", "15 s"],
        timeout=PATIENCE_MS,
    )
    expect(row.nth(2)).to_have_class("circuit open")
    closed = page.locator("#breakers tbody tr", has_text="openai").locator("td")
    expect(closed).to_have_text(["openai:gpt-4o", "llm", "closed", "2 of 5 in a row", ""])

    console.clock.advance(15)  # the recovery timeout: the next call is a probe
    expect(row).to_have_text(
        [
            "deribit",
            "exchange",
            "half-open",
            "tripped: 5 failures within 30 s; last: network · probing",
            "",
        ],
        timeout=PATIENCE_MS,
    )
    expect(row.nth(2)).to_have_class("circuit half-open")
    deribit.on_failure("server")  # the probe fails: open again, and the page says why
    expect(row).to_have_text(
        ["deribit", "exchange", "open", "tripped: probe failed: server", "15 s"],
        timeout=PATIENCE_MS,
    )


def _widths(page: Page) -> tuple[int, int, int]:
    widths: list[int] = page.evaluate(
        "[document.documentElement.scrollWidth, document.body.scrollWidth, window.innerWidth]"
    )
    return widths[0], widths[1], widths[2]


def test_the_page_fits_a_phone(console: Console, chromium: Browser, tmp_path: Path) -> None:
    """At 375 px no tab scrolls sideways, long ids and reasons included; tables scroll alone."""
    console.runtime = replace(
        console.runtime,
        agent="options_seller_with_a_long_name 1.0.0",
        run_id="0193f2c4-8a1e-7c3b-9d2e-5f6a7b8c9d0e",
        positions=(Position(OPTION, "option", -0.3, 0.015, 0.0153, 0.1, -0.000123),),
        open_orders=(
            Order("ETH-349152637", OPTION, "sell", "limit", "open", 0.1, 0, 0.0155, 0, LABEL, 0, 0),
        ),
    )
    for _ in range(5):
        console.breakers.get("deribit", "exchange").on_failure("network")
    _api(console, "/api/kill", LONG_REASON)
    context = chromium.new_context(
        viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True
    )
    page = context.new_page()
    page.goto(console.url())
    expect(page.locator("#open-orders tbody td").first).to_have_text(
        "ETH-349152637", timeout=PATIENCE_MS
    )
    expect(page.locator("#halt-reason")).to_have_text(LONG_REASON)
    checks = {
        "overview": "#breakers td.circuit.open",
        "system-health": "#system-health-history .run >> nth=49",
        "why": "#why-label",
        "approvals": "#approvals-pending td.reason",  # last: the phone checks below use it
    }
    for tab, ready in checks.items():
        page.click(f"#tab-{tab}")
        expect(page.locator(ready)).to_be_visible(timeout=PATIENCE_MS)
        ARTIFACTS.mkdir(exist_ok=True)
        for folder in (ARTIFACTS, tmp_path):
            page.screenshot(path=str(folder / f"console-375-{tab}.png"), full_page=True)
        assert _widths(page) == (375, 375, 375), f"{tab} is wider than the phone"
    # On the open Approvals tab the decision is within thumb's reach, not beyond the edge.
    for name in ("Approve", "Reject"):
        box = page.get_by_role("button", name=re.compile(f"^{name} ")).bounding_box()
        assert box is not None
        assert box["x"] >= 0
        assert box["x"] + box["width"] <= PHONE["width"], f"{name} is off screen"
    page.click("#tab-overview")
    scroller = page.locator("#open-orders").locator("xpath=..")
    assert scroller.evaluate("e => getComputedStyle(e).overflowX") == "auto"
    assert scroller.evaluate("e => e.scrollWidth > e.clientWidth"), "the wide table scrolls alone"
    context.close()


def test_the_page_loads_under_its_csp_with_nothing_failing(
    console: Console, chromium: Browser
) -> None:
    """No CSP violation, script error or failed request (the favicon included) on any tab."""
    page = chromium.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on(
        "response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None
    )
    page.goto(console.url())
    expect(page.locator("#state-badge")).to_have_text("running", timeout=PATIENCE_MS)
    for tab in ("system-health", "approvals", "why", "overview"):
        page.click(f"#tab-{tab}")
        page.wait_for_timeout(300)
    assert problems == []
    icon = page.locator('link[rel="icon"]').get_attribute("href")
    assert icon is not None
    for path in (icon, "/favicon.ico"):
        response = page.request.get(f"{console.base}{path}")
        assert response.status == 200, path
        assert response.headers["content-type"].startswith("image/svg+xml")
    violations = page.evaluate(
        """() => new Promise((done) => {
            const seen = [];
            document.addEventListener(
                "securitypolicyviolation", (e) => seen.push(e.violatedDirective)
            );
            const s = document.createElement("script");
            s.textContent = "window.inlineRan = true";
            document.body.appendChild(s);
            setTimeout(() => done([seen, window.inlineRan === true]), 100);
        })"""
    )
    assert violations == [["script-src-elem"], False], "inline script must be refused"


async def _cancel_nothing() -> int:
    return 0


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Await ``coroutine`` off the thread where Playwright's own event loop runs."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def test_a_reducing_halt_shows_its_state_and_when_it_lapses(
    console: Console, chromium: Browser
) -> None:
    """A daily-loss halt that lets positions shrink reads REDUCING, amber, with its expiry and
    who lifts it then; the host halt the flag file holds says so too."""
    console.halt.set_canceller(_cancel_nothing)  # resting orders "cancelled": enforced
    next_day = datetime(2026, 12, 3, tzinfo=UTC)
    _run(console.halt.trip("daily_loss", who="limits", state=TradingState.REDUCING, until=next_day))
    page = chromium.new_page()
    page.goto(console.url())
    expect(page.locator("#state-badge")).to_have_text("reducing", timeout=PATIENCE_MS)
    expect(page.locator("#state-badge")).to_have_class("badge reducing")
    expect(page.locator("#halt-title")).to_have_text(
        "REDUCING (only orders that shrink a position)"
    )
    expect(page.locator("#halt-banner")).to_have_class("halt reducing")
    expect(page.locator("#halt-until")).to_have_text(
        "until 2026-12-03 00:00:00 UTC, then a person resumes"
    )
    expect(page.locator("#fleet-banner")).to_be_hidden()
    expect(page.locator("#resume")).to_be_enabled()

    _run(console.halt.trip("operator", who="ops"))  # HALTED replaces REDUCING
    expect(page.locator("#state-badge")).to_have_text("halted", timeout=PATIENCE_MS)
    expect(page.locator("#halt-title")).to_have_text("HALTED")
    expect(page.locator("#halt-until")).to_have_text("until a person resumes")


def test_a_fleet_halt_and_an_expiry_that_resumes_by_itself_are_shown(
    tmp_path: Path, chromium: Browser
) -> None:
    """With BASTION_HALT_AUTO_RESUME the expiry says trading resumes by itself; a fleet halt
    on the shared store gets its own banner, naming who raised it."""
    clock = SimClock(start=NOW.timestamp())
    runtime = RuntimeStatus("r2", "options_seller 1.0.0", "BTC", False, state="running")
    with Store.open(f"sqlite:///{tmp_path / 'bastion.db'}") as store:
        halt = Halt(flag_path=tmp_path / "kill_switch.flag", clock=clock, halts=store.halts)
        halt.set_canceller(_cancel_nothing)
        _run(
            halt.trip(
                "drawdown",
                who="limits",
                state=TradingState.REDUCING,
                until=datetime(2026, 12, 3, tzinfo=UTC),
            )
        )
        _run(halt.trip_fleet("desk <b>drill</b>", who="alice"))
        service = StatusService(
            data_dir=tmp_path, clock=clock, halt_state=halt.state, store=store, auto_resume=True
        )
        app = create_app(
            status=lambda: service.report(runtime.to_dict()),
            halt=halt,
            metrics=Metrics(),
            token=TOKEN,
            refresh_seconds=0.2,
        )
        with serve_on_loopback(app) as base:
            page = chromium.new_page()
            page.goto(f"{base}/?token={TOKEN}")
            expect(page.locator("#fleet-banner")).to_be_visible(timeout=PATIENCE_MS)
            expect(page.locator("#fleet-detail")).to_have_text(
                "desk <b>drill</b> (by alice, 2026-12-02 04:21:28 UTC)"
            )
            expect(page.locator("#halt-until")).to_contain_text("then trading resumes by itself")
