"""The console's Approvals tab in headless Chromium against the real app on loopback: the pending
count on the Overview, the list, Approve with a note, a decision someone else made first (409),
and a new escalation picked up by polling."""

from __future__ import annotations

import getpass
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Dialog, Locator, Page, expect

from bastion.api.app import create_app
from bastion.clock import SimClock
from bastion.guard.approvals import ApprovalRecord, ApprovalStatus
from bastion.guard.approvals import Approvals as ApprovalsService
from bastion.guard.halt import Halt
from bastion.status import RuntimeStatus
from bastion.store import Store
from bastion.telemetry.metrics import Metrics
from loopback_server import serve_on_loopback

pytestmark = pytest.mark.browser

TOKEN = "e2e-console-token"
ARTIFACT = Path(__file__).resolve().parents[2] / "artifacts" / "console-approvals.png"
# Liveness bound for the page to catch up, not a performance assertion.
PATIENCE_MS = 15_000
REFRESH_MS = 1_000
# The page's timers run on Playwright's paused clock, so a poll happens only when a test says so.
PAGE_TIME = datetime(2026, 11, 21, 10, 40, tzinfo=UTC)


def _escalate(
    store: Store, clock: SimClock, input_class: str, ttl: timedelta | None = None
) -> ApprovalRecord:
    """Queue what the fallback chain queues when no model can answer, a minute after the last."""
    clock.advance(60)
    return store.approvals.add(
        kind="llm_escalation",
        agent="llm_seller 1.0.0",
        subject={
            "input_class": input_class,
            "phase": "decide",
            "models": ["openai:gpt-4o", "anthropic:claude-sonnet"],
            "errors": [
                {"kind": "network", "message": "connect timeout"},
                {"kind": "rate_limit", "message": "429, retry after 20 s"},
            ],
        },
        reason=f"no model answered {input_class} and no cached answer is fresh; last error: "
        "429, retry after 20 s",
        at=clock.now(),
        run_id="r1",
        expires_at=None if ttl is None else clock.now() + ttl,
    )


def _row(page: Page, record: ApprovalRecord) -> Locator:
    return page.locator(f'#approvals-pending tr[data-approval-id="{record.id}"]')


def _stored(store: Store, record: ApprovalRecord) -> ApprovalRecord:
    found = store.approvals.get(record.id)
    assert found is not None
    return found


def _poll(page: Page) -> None:
    page.clock.run_for(REFRESH_MS)


def test_console_approvals(tmp_path: Path, chromium: Browser) -> None:
    """Two escalations show on Overview and the tab; Approve records it as the console user."""
    clock = SimClock(start=datetime(2026, 11, 21, 10, 30, tzinfo=UTC).timestamp())
    status = RuntimeStatus(run_id="r1", agent="llm_seller 1.0.0", currency="BTC", dry_run=True)
    halt = Halt(flag_path=tmp_path / "kill_switch.flag", clock=SimClock(), metrics=Metrics())
    with Store.open(f"sqlite:///{tmp_path / 'data' / 'bastion.db'}") as store:
        older = _escalate(store, clock, "quote_put_spread", ttl=timedelta(hours=1))
        newer = _escalate(store, clock, "roll_short_call")
        app = create_app(
            status=status.to_dict,
            halt=halt,
            metrics=Metrics(),
            token=TOKEN,
            refresh_seconds=REFRESH_MS / 1000,
            approvals=ApprovalsService(store, clock=clock, agent="llm_seller 1.0.0"),
        )
        with serve_on_loopback(app) as base:
            page = chromium.new_page(viewport={"width": 1200, "height": 820})
            notes: list[str] = []

            def answer(dialog: Dialog) -> None:
                notes.append(dialog.message)
                dialog.accept("hedged by hand")

            page.on("dialog", answer)
            # Installed a minute early: the fake clock runs until paused, and pausing at a time
            # it has already passed is an error ("cannot fast-forward to the past").
            page.clock.install(time=PAGE_TIME - timedelta(minutes=1))
            page.clock.pause_at(PAGE_TIME)
            page.goto(f"{base}/?token={TOKEN}")

            # Overview: the count is visible without opening the tab.
            expect(page.locator("#panel-overview")).to_be_visible()
            badge = page.locator("#approvals-tab-count")
            expect(badge).to_have_text("2", timeout=PATIENCE_MS)
            expect(badge).to_be_visible()
            expect(page.locator("#approvals-pending-count")).to_have_text("2 pending")
            expect(page.locator("#approvals-card")).to_have_class("card attention")
            expect(page.locator("#approvals-card-detail")).to_have_text(
                "oldest 2026-11-21 10:31 UTC ·"
            )

            # The card's link opens the tab: both entries, newest first.
            page.click("#approvals-card a")
            expect(page.locator("#tab-approvals")).to_have_attribute("aria-selected", "true")
            assert page.evaluate("location.hash") == "#approvals"
            rows = page.locator("#approvals-pending tbody tr")
            expect(rows).to_have_count(2, timeout=PATIENCE_MS)
            assert rows.first.get_attribute("data-approval-id") == newer.id
            cells = rows.first.locator("td")
            expect(cells.nth(0)).to_have_text("2026-11-21 10:32:00 UTC")
            expect(cells.nth(1)).to_have_text("llm_escalation")
            expect(cells.nth(2)).to_have_text("llm_seller 1.0.0")
            expect(cells.nth(3)).to_contain_text("no model answered roll_short_call")
            expect(cells.nth(4).locator("summary")).to_have_text(
                "input_class: roll_short_call · phase: decide · models: openai:gpt-4o, "
                "anthropic:claude-sonnet · errors: network, rate_limit"
            )
            expect(cells.nth(4).locator("pre")).to_be_hidden()
            cells.nth(4).locator("summary").click()
            expect(cells.nth(4).locator("pre")).to_contain_text('"message": "connect timeout"')
            expect(rows.nth(1).locator("td").first).to_have_text(
                "2026-11-21 10:31:00 UTCexpires 2026-11-21 11:31:00 UTC"
            )
            expect(page.locator("#approvals-decided tbody td.empty")).to_have_text("none yet")

            # Approve the newer one through its button, with a note.
            rows.first.get_by_role("button", name="Approve").click()
            expect(_row(page, newer)).to_have_count(0, timeout=PATIENCE_MS)
            expect(rows).to_have_count(1)
            assert notes == ["Approve this llm_escalation from llm_seller 1.0.0?\nNote (optional):"]
            who = f"{getpass.getuser()} (console)"
            message = page.locator("#approvals-message")
            expect(message).to_have_text(f"llm_escalation {newer.id[:8]} approved by {who}.")
            expect(message).to_have_class("done")
            decided = _stored(store, newer)
            assert (decided.status, decided.decided_by, decided.note) == (
                ApprovalStatus.APPROVED,
                who,
                "hedged by hand",
            )
            assert _stored(store, older).status is ApprovalStatus.PENDING
            expect(badge).to_have_text("1")
            history = page.locator("#approvals-decided tbody tr")
            expect(history).to_have_count(1)
            expect(history.first.locator("td").nth(3)).to_have_text("approved")
            expect(history.first.locator("td").nth(4)).to_have_text(who)
            ARTIFACT.parent.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACT), full_page=True)
            shutil.copy(ARTIFACT, tmp_path / ARTIFACT.name)

            # Someone decides the other one elsewhere (the CLI) before this page polls: 409.
            store.approvals.decide(
                older.id, approve=False, who="bob (cli)", note=None, at=clock.now()
            )
            _row(page, older).get_by_role("button", name="Reject").click()
            expect(message).to_contain_text(
                f"Not recorded: approval {older.id} was already rejected by bob (cli) at",
                timeout=PATIENCE_MS,
            )
            expect(message).to_have_class("error")
            empty = page.locator("#approvals-pending tbody td.empty")
            expect(empty).to_have_text("No approvals pending")
            expect(badge).to_be_hidden()
            assert _stored(store, older).decided_by == "bob (cli)"

            # A new escalation while the operator watches the Overview: the next poll shows it.
            page.click("#tab-overview")
            expect(page.locator("#approvals-pending-count")).to_have_text("none pending")
            _escalate(store, clock, "close_position")
            _poll(page)
            expect(badge).to_have_text("1", timeout=PATIENCE_MS)
            expect(page.locator("#approvals-pending-count")).to_have_text("1 pending")
