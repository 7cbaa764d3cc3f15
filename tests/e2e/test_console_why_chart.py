"""The equity chart and the per-order "why" view in headless Chromium, on a real recorded run.

The run (:mod:`recorded_runs`): the LLM seller on the fake OpenAI server and the embedded paper
exchange; the model's first answer sells an option with markup in its rationale. The console is
the real app on loopback with that run's equity series and traces directory; its status shows
the run's order resting (the order as the trace recorded it), so its label is a link.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import orjson
import pytest
from playwright.sync_api import Browser, Page, expect

from bastion.api.app import create_app
from bastion.clock import SimClock
from bastion.guard.halt import Halt
from bastion.runtime.payloads import order_from_payload
from bastion.status import RuntimeStatus
from bastion.telemetry.metrics import Metrics
from loopback_server import serve_on_loopback
from recorded_runs import HOSTILE, RecordedRun, record_llm_sale

pytestmark = pytest.mark.browser

TOKEN = "e2e-why-token"
# Liveness bound for the page to catch up, not a performance assertion.
PATIENCE_MS = 15_000


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> RecordedRun:
    return asyncio.run(record_llm_sale(tmp_path_factory.mktemp("why-e2e") / "data"))


def _lines(path: Path) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


@pytest.fixture
def console(recorded: RecordedRun, tmp_path: Path) -> Iterator[str]:
    sent = next(line for line in _lines(recorded.trace) if line["kind"] == "order_sent")
    resting = replace(order_from_payload(sent), order_state="open")
    status = RuntimeStatus(
        run_id=recorded.run_id,
        agent="llm_options_seller",
        currency="BTC",
        dry_run=False,
        state="running",
        open_orders=(resting,),
    )
    app = create_app(
        status=status.to_dict,
        halt=Halt(flag_path=tmp_path / "kill.flag", clock=SimClock(), metrics=Metrics()),
        metrics=Metrics(),
        token=TOKEN,
        refresh_seconds=0.2,
        equity=recorded.equity.series,
        traces_dir=recorded.settings.traces_dir,
    )
    with serve_on_loopback(app) as base:
        yield base


def _page(chromium: Browser, base: str, problems: list[str]) -> Page:
    page = chromium.new_page(viewport={"width": 1200, "height": 1000})
    # A 4xx or 5xx answer is logged as a failed load (this console has no approvals queue, so
    # that tab's poll gets 503s); any other console error or a script exception is a problem.
    page.on(
        "console",
        lambda m: (
            problems.append(m.text)
            if m.type == "error" and not m.text.startswith("Failed to load resource")
            else None
        ),
    )
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(f"{base}/?token={TOKEN}")
    return page


def test_the_chart_draws_the_runs_equity_and_pnl(
    console: str, recorded: RecordedRun, chromium: Browser
) -> None:
    """One marked point per observation, the line through them, the run's P&L in the heading."""
    points = recorded.equity.series()["points"]
    problems: list[str] = []
    page = _page(chromium, console, problems)
    chart = page.locator("#equity-chart")
    expect(chart).to_have_attribute("data-points", str(len(points)), timeout=PATIENCE_MS)
    expect(chart.locator("circle.pt")).to_have_count(len(points))
    line = chart.locator("polyline.equity-line").get_attribute("points") or ""
    assert len(line.split()) == len(points)
    xs = [float(pair.split(",")[0]) for pair in line.split()]
    assert xs == sorted(xs)  # oldest left
    pnl = points[-1]["pnl"]
    assert pnl > 0
    expect(page.locator("#equity-pnl")).to_have_text(f"+{pnl:.6f} BTC")
    expect(page.locator("#equity-summary")).to_contain_text(f"{len(points)} observations")
    title = chart.locator("circle.pt").last.locator("title")
    expect(title).to_contain_text(f"step {len(points)}")
    assert problems == []


def test_a_label_opens_decision_answer_and_verdict_with_the_models_text_as_text(
    console: str, recorded: RecordedRun, chromium: Browser
) -> None:
    problems: list[str] = []
    page = _page(chromium, console, problems)
    link = page.locator(f'#open-orders button[data-why-label="{recorded.label}"]')
    expect(link).to_have_text(recorded.label, timeout=PATIENCE_MS)
    link.click()
    expect(page.locator("#panel-why")).to_be_visible()
    assert page.url.endswith("#why")
    expect(page.locator("#why-title")).to_contain_text(
        f"Order {recorded.label} · run {recorded.run_id} · step 1", timeout=PATIENCE_MS
    )
    chain = page.locator(".why-chain > li h3")
    expect(chain).to_have_text(
        ["Decision", "LLM answer", "Risk verdict", "What became of the order"]
    )
    decision = page.locator("#why-decision-body")
    expect(decision).to_contain_text("Source: agent · step 1")
    expect(decision).to_contain_text("sell 0.1 BTC-")
    answer = page.locator("#why-answers-body pre.answer-text")
    expect(answer).to_contain_text(HOSTILE.replace('"', '\\"'))  # the JSON the model sent
    expect(page.locator("#why-answers-body")).to_contain_text("gpt-4o-2024-08-06 · primary")
    expect(page.locator("#why-verdict-body .verdict")).to_have_text("approved")
    expect(page.locator("#why-orders tbody tr")).to_have_count(2)
    expect(page.locator("#why-orders tbody tr").first).to_contain_text("sent")
    # The markup stayed text: no element was made of it and its handler never ran.
    assert page.locator("#panel-why img, #panel-why b").count() == 0
    assert page.evaluate("window.pwned") is None
    assert problems == []


def test_an_unknown_or_malformed_label_says_why_not(
    console: str, recorded: RecordedRun, chromium: Browser
) -> None:
    problems: list[str] = []
    page = _page(chromium, console, problems)
    page.click("#tab-why")
    message = page.locator("#why-message")
    page.fill("#why-label", f"{recorded.run_id}-99-0")
    page.press("#why-label", "Enter")
    expect(message).to_contain_text("No explanation: run ", timeout=PATIENCE_MS)
    expect(message).to_contain_text("has no step 99")
    page.fill("#why-label", "<b>nonsense</b>")
    page.click("#why-run")
    expect(message).to_contain_text("expected <run_id>-<step>-<k>", timeout=PATIENCE_MS)
    assert page.locator("#why-message b").count() == 0
    expect(page.locator("#why-result")).to_be_hidden()
    assert problems == []


def test_a_console_without_a_series_says_so_and_stops_asking(
    tmp_path: Path, chromium: Browser
) -> None:
    status = RuntimeStatus(run_id="r1", agent="a 1", currency="BTC", dry_run=False)
    app = create_app(
        status=status.to_dict,
        halt=Halt(flag_path=tmp_path / "kill.flag", clock=SimClock(), metrics=Metrics()),
        metrics=Metrics(),
        token=TOKEN,
        refresh_seconds=0.1,
    )
    asked: list[str] = []
    with serve_on_loopback(app) as base:
        page = chromium.new_page()
        page.on("request", lambda r: asked.append(r.url) if "/api/equity" in r.url else None)
        page.goto(f"{base}/?token={TOKEN}")
        expect(page.locator("#equity-error")).to_have_text(
            "Equity chart unavailable: no equity series is kept for this console: create_app "
            "was given no equity=",
            timeout=PATIENCE_MS,
        )
        expect(page.locator("#equity-chart")).to_be_hidden()
        expect(page.locator("#updated")).to_contain_text("updated")
        page.wait_for_timeout(500)  # five refresh periods: the chart is not asked again
    assert len(asked) == 1
