"""An order approval on the console's Approvals tab, in headless Chromium against the real app
on loopback: it reads as the order it would send, and Approve is recorded as the person whose
named console token opened the page, not the console's OS user."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Dialog, expect

from bastion.api.app import create_app
from bastion.clock import SimClock
from bastion.guard.approvals import Approvals, ApprovalStatus
from bastion.guard.halt import Halt
from bastion.status import RuntimeStatus
from bastion.store import Store
from bastion.telemetry.metrics import Metrics
from loopback_server import serve_on_loopback

pytestmark = pytest.mark.browser

TOKEN = "e2e-console-token"
ALICE = "alice-e2e-token-0123456789"
# Liveness bound for the page to catch up, not a performance assertion.
PATIENCE_MS = 15_000
PAGE_TIME = datetime(2026, 11, 21, 10, 40, tzinfo=UTC)


def test_an_order_approval_reads_as_the_order_and_records_the_named_token(
    tmp_path: Path, chromium: Browser
) -> None:
    """The row says what would be sent; approving on alice's token records alice."""
    clock = SimClock(start=datetime(2026, 11, 21, 10, 30, tzinfo=UTC).timestamp())
    status = RuntimeStatus(run_id="r1", agent="seller 1.0.0", currency="BTC", dry_run=False)
    halt = Halt(flag_path=tmp_path / "kill_switch.flag", clock=SimClock(), metrics=Metrics())
    with Store.open(f"sqlite:///{tmp_path / 'data' / 'bastion.db'}") as store:
        record = store.approvals.add(
            kind="order",
            agent="seller 1.0.0",
            subject={
                "instrument": "BTC-PERPETUAL",
                "direction": "buy",
                "amount": 50_000.0,
                "order_type": "limit",
                "price": 89_500.0,
                "reduce_only": False,
                "cap": "approval_notional_usd",
                "limit": 25_000.0,
                "observed": 50_000.0,
            },
            reason="notional $50,000 is above approval_notional_usd $25,000: a person must "
            "approve it",
            at=clock.now(),
            run_id="r1",
        )
        app = create_app(
            status=status.to_dict,
            halt=halt,
            metrics=Metrics(),
            token=TOKEN,
            approvals=Approvals(store, clock=clock, agent="seller 1.0.0"),
            named_tokens={"alice": ALICE},
        )
        with serve_on_loopback(app) as base:
            page = chromium.new_page(viewport={"width": 1200, "height": 820})

            def answer(dialog: Dialog) -> None:
                dialog.accept("")

            page.on("dialog", answer)
            # Installed a minute early: the fake clock runs until paused, and pausing at a time
            # it has already passed is an error ("cannot fast-forward to the past").
            page.clock.install(time=PAGE_TIME - timedelta(minutes=1))
            page.clock.pause_at(PAGE_TIME)
            page.goto(f"{base}/?token={ALICE}#approvals")
            row = page.locator(f'#approvals-pending tr[data-approval-id="{record.id}"]')
            expect(row).to_have_count(1, timeout=PATIENCE_MS)
            expect(row.locator("td").nth(4).locator("summary")).to_have_text(
                "buy 50000 BTC-PERPETUAL limit @ 89500"
            )
            row.get_by_role("button", name="Approve").click()
            message = page.locator("#approvals-message")
            expect(message).to_have_text(
                f"order {record.id[:8]} approved by alice.", timeout=PATIENCE_MS
            )
            decided = store.approvals.get(record.id)
            assert decided is not None
            assert (decided.status, decided.decided_by) == (ApprovalStatus.APPROVED, "alice")
