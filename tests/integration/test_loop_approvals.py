"""Order approvals end to end: the real loop, the real paper exchange, the real store queue."""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import Callable
from dataclasses import replace

import httpx
from typer.testing import CliRunner

from bastion.agent import Context, Decision, Observation, OrderIntent
from bastion.agents.scripted import ScriptedAgent
from bastion.api.app import create_app
from bastion.cli import app
from bastion.clock import SimClock
from bastion.events import Event, EventKind
from bastion.guard.approvals import ApprovalStatus
from bastion.runner import Runner
from bastion.runtime.loop import MAX_WAITING_APPROVALS

RunnerFactory = Callable[..., Runner]
PERP = "BTC-PERPETUAL"


def _buy_perp(amount: float = 10.0) -> Callable[[Observation, Context], Decision]:
    """A limit buy of the perpetual a little under its mark, every step."""

    def decide(obs: Observation, ctx: Context) -> Decision:
        mark = obs.tickers[PERP].mark_price
        return Decision((OrderIntent(PERP, "buy", amount, price=round(mark * 0.99 * 2) / 2),))

    return decide


def _events(runner: Runner) -> list[Event]:
    seen: list[Event] = []
    runner.journal.subscribe(seen.append)
    return seen


def _of(events: list[Event], kind: EventKind) -> list[dict[str, object]]:
    return [dict(e.payload) for e in events if e.kind is kind]


async def _asked(runner: Runner) -> str:
    [record] = await runner.approvals.pending()
    assert record.kind == "order"
    assert record.run_id == runner.run_id
    return record.id


async def test_a_large_order_waits_for_a_person_then_is_sent_once(
    runner_factory: RunnerFactory,
) -> None:
    """needs_approval: queued once however often it repeats, sent once after approval."""
    runner = runner_factory(ScriptedAgent(_buy_perp()), risk_approval_notional_usd=5.0)
    events = _events(runner)
    for _ in range(3):
        assert (await runner.loop.step()).orders_sent == 0
    assert await runner.exchange.get_open_orders("BTC") == []
    approval_id = await _asked(runner)  # one entry for three identical intents
    record = await runner.approvals.get(approval_id)
    assert record is not None
    assert record.subject["instrument"] == PERP
    assert (record.subject["cap"], record.subject["limit"]) == ("approval_notional_usd", 5.0)

    await runner.approvals.decide(approval_id, True, "ops")
    outcome = await runner.loop.step()
    assert outcome.orders_sent == 1
    [resolved] = _of(events, EventKind.APPROVAL_RESOLVED)
    assert (resolved["status"], resolved["decided_by"]) == ("approved", "ops")
    reviewed = [v for v in _of(events, EventKind.RISK_VERDICT) if v.get("approval_id")]
    assert [(v["approval_id"], v["status"]) for v in reviewed] == [(approval_id, "approved")]
    assert len(await runner.exchange.get_open_orders("BTC")) == 1
    await runner.loop.step()  # the agent's new ask is queued; the approved one is not resent
    assert len(await runner.exchange.get_open_orders("BTC")) == 1


async def test_a_rejected_order_is_never_sent(runner_factory: RunnerFactory) -> None:
    """A person says no: the entry is dropped and nothing reaches the exchange."""
    runner = runner_factory(ScriptedAgent(_buy_perp()), risk_approval_notional_usd=5.0)
    events = _events(runner)
    await runner.loop.step()
    await runner.approvals.decide(await _asked(runner), False, "ops")
    await runner.loop.step()
    assert [r["status"] for r in _of(events, EventKind.APPROVAL_RESOLVED)] == ["rejected"]
    assert _of(events, EventKind.ORDER_SENT) == []
    assert await runner.exchange.get_open_orders("BTC") == []


async def test_an_expired_request_is_never_sent(runner_factory: RunnerFactory) -> None:
    """Nobody answered within the TTL: expired, dropped, never approved by default."""
    runner = runner_factory(
        ScriptedAgent(_buy_perp()),
        risk_approval_notional_usd=5.0,
        risk_approval_ttl_seconds=60.0,
    )
    events = _events(runner)
    await runner.loop.step()
    approval_id = await _asked(runner)
    clock = runner.clock
    assert isinstance(clock, SimClock)
    clock.advance(61.0)
    await runner.loop.step()
    record = await runner.approvals.get(approval_id)
    assert record is not None
    assert record.status is ApprovalStatus.EXPIRED
    assert "expired" in [r["status"] for r in _of(events, EventKind.APPROVAL_RESOLVED)]
    assert _of(events, EventKind.ORDER_SENT) == []


async def test_an_approved_order_is_reviewed_again_against_the_caps_of_now(
    runner_factory: RunnerFactory,
) -> None:
    """Approved, but the caps tightened meanwhile: refused at the re-review, not sent."""
    runner = runner_factory(ScriptedAgent(_buy_perp()), risk_approval_notional_usd=5.0)
    events = _events(runner)
    await runner.loop.step()
    approval_id = await _asked(runner)
    await runner.approvals.decide(approval_id, True, "ops")
    runner.loop.limits = replace(runner.loop.limits, max_order_notional_usd=1.0)
    outcome = await runner.loop.step()
    assert outcome.orders_sent == 0
    [again] = [v for v in _of(events, EventKind.RISK_VERDICT) if v.get("approval_id")]
    assert (again["status"], again["cap"]) == ("rejected", "max_order_notional_usd")
    assert await runner.exchange.get_open_orders("BTC") == []


async def test_an_order_approved_with_bastion_approvals_is_sent_by_the_run(
    runner_factory: RunnerFactory,
) -> None:
    """The CLI lists the order, approves it as the OS user, and the run sends it next step."""
    runner = runner_factory(ScriptedAgent(_buy_perp()), risk_approval_notional_usd=5.0)
    await runner.loop.step()
    approval_id = await _asked(runner)
    env = {"BASTION_DATA_DIR": str(runner.settings.data_dir)}
    cli = CliRunner()
    listed = await asyncio.to_thread(cli.invoke, app, ["approvals"], env=env)
    assert listed.exit_code == 0, listed.output
    assert f"{approval_id}  order  pending" in listed.output
    assert f"buy 10.0 {PERP} limit @" in listed.output
    decided = await asyncio.to_thread(
        cli.invoke, app, ["approvals", "approve", approval_id, "--note", "ok"], env=env
    )
    assert decided.exit_code == 0, decided.output
    assert f"approved by {getpass.getuser()}" in decided.output
    assert "reviews the order again" in decided.output
    assert (await runner.loop.step()).orders_sent == 1
    record = await runner.approvals.get(approval_id)
    assert record is not None
    assert record.decided_by == getpass.getuser()


async def test_an_order_approved_on_the_console_is_recorded_as_the_named_token(
    runner_factory: RunnerFactory,
) -> None:
    """The API decides as the authenticated named token's person; the run then sends it."""
    runner = runner_factory(ScriptedAgent(_buy_perp()), risk_approval_notional_usd=5.0)
    await runner.loop.step()
    approval_id = await _asked(runner)
    console = create_app(
        status=lambda: {},
        halt=runner.halt,
        metrics=runner.metrics,
        token="shared-console-token",
        approvals=runner.approvals,
        named_tokens={"alice": "alice-token-0123456789"},
    )
    transport = httpx.ASGITransport(app=console)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        listed = await client.get(
            "/api/approvals", headers={"Authorization": "Bearer alice-token-0123456789"}
        )
        assert [a["id"] for a in listed.json()["approvals"]] == [approval_id]
        response = await client.post(
            f"/api/approvals/{approval_id}",
            json={"decision": "approve"},
            headers={"Authorization": "Bearer alice-token-0123456789"},
        )
    assert response.status_code == 200, response.text
    assert response.json()["decided_by"] == "alice"
    assert (await runner.loop.step()).orders_sent == 1


async def test_a_halt_withdraws_what_waits_so_an_old_approval_never_fires_after_it(
    runner_factory: RunnerFactory,
) -> None:
    """Approved during a halt, then resumed: withdrawn, not sent; the store says why."""
    runner = runner_factory(ScriptedAgent(_buy_perp()), risk_approval_notional_usd=5.0)
    events = _events(runner)
    await runner.loop.step()
    approval_id = await _asked(runner)
    await runner.halt.trip("drill", who="ops")
    assert (await runner.loop.step()).status == "halted"
    await runner.approvals.decide(approval_id, True, "ops")  # approved while halted
    runner.halt.resume(who="ops", why="drill over")
    outcome = await runner.loop.step()
    assert outcome.orders_sent == 0
    [withdrawn] = _of(events, EventKind.APPROVAL_RESOLVED)
    assert (withdrawn["approval_id"], withdrawn["status"]) == (approval_id, "withdrawn")
    assert _of(events, EventKind.ORDER_SENT) == []


async def test_the_end_of_a_run_rejects_what_still_waits(runner_factory: RunnerFactory) -> None:
    """Nobody is left to send it: a pending order approval is rejected as bastion, with why."""
    runner = runner_factory(ScriptedAgent(_buy_perp()), risk_approval_notional_usd=5.0)
    await runner.run(max_steps=2)
    [record] = await runner.approvals.recent()
    assert record.kind == "order"
    assert (record.status, record.decided_by) == (ApprovalStatus.REJECTED, "bastion")
    assert record.note is not None
    assert f"run {runner.run_id} ended" in record.note
    assert await runner.approvals.pending() == []


async def test_an_agent_cannot_flood_the_people_who_answer(runner_factory: RunnerFactory) -> None:
    """Twenty-five different large orders at once: twenty wait, the rest are skipped, none sent."""

    def many(obs: Observation, ctx: Context) -> Decision:
        price = round(obs.tickers[PERP].mark_price * 0.99 * 2) / 2
        return Decision(
            tuple(OrderIntent(PERP, "buy", 10.0 * (k + 1), price=price) for k in range(25))
        )

    runner = runner_factory(
        ScriptedAgent(many), risk_approval_notional_usd=5.0, risk_max_orders_per_minute=100
    )
    events = _events(runner)
    await runner.loop.step()
    assert len(await runner.approvals.pending(limit=100)) == MAX_WAITING_APPROVALS
    skipped = [s for s in _of(events, EventKind.ORDER_SKIPPED) if s["reason"] == "approvals_full"]
    assert len(skipped) == 25 - MAX_WAITING_APPROVALS
    assert _of(events, EventKind.ORDER_SENT) == []


async def test_a_dry_run_asks_nobody(runner_factory: RunnerFactory) -> None:
    """bastion smoke's dry run beside a live run must not put questions in the shared queue."""
    runner = runner_factory(
        ScriptedAgent(_buy_perp()), risk_approval_notional_usd=5.0, dry_run=True
    )
    events = _events(runner)
    await runner.loop.step()
    assert await runner.approvals.recent() == []
    [skipped] = _of(events, EventKind.ORDER_SKIPPED)
    assert (skipped["stage"], skipped["reason"]) == ("review", "dry_run")
