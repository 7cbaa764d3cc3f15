"""The approvals routes through the real console app: list, decide once, refuse clearly, redact."""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI, HTTPException, Request
from fastapi.routing import APIRoute

from bastion.api.app import create_app
from bastion.api.approvals import approvals_router
from bastion.api.token import console_user
from bastion.clock import SimClock
from bastion.guard.approvals import ApprovalRecord, Approvals, ApprovalStatus
from bastion.guard.halt import Halt
from bastion.status import RuntimeStatus
from bastion.store import Store
from bastion.telemetry.metrics import Metrics
from bastion.trace.redact import REDACTED, Redactor

TOKEN = "test-console-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
NAMED = {"alice": "alice-token-0123456789", "bob": "bob-token-0123456789ab"}
SECRET = "openai-key-sk-live-123"
ROUTES = [("GET", "/api/approvals"), ("POST", "/api/approvals/{approval_id}")]


@pytest.fixture
def clock() -> SimClock:
    return SimClock()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A migrated SQLite store under tmp_path."""
    with Store.open(f"sqlite:///{tmp_path / 'data' / 'bastion.db'}") as opened:
        yield opened


@pytest.fixture
def approvals(store: Store, clock: SimClock) -> Approvals:
    return Approvals(store, clock=clock, agent="seller 1.0.0")


def _app(tmp_path: Path, approvals: Approvals | None) -> FastAPI:
    status = RuntimeStatus(run_id="r1", agent="seller 1.0.0", currency="BTC", dry_run=False)
    halt = Halt(flag_path=tmp_path / "kill_switch.flag", clock=SimClock(), metrics=Metrics())
    return create_app(
        status=status.to_dict,
        halt=halt,
        metrics=Metrics(),
        token=TOKEN,
        redactor=Redactor((SECRET, TOKEN)),
        approvals=approvals,
        named_tokens=NAMED,
    )


def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://console")


@pytest.fixture
async def client(tmp_path: Path, approvals: Approvals) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(_app(tmp_path, approvals)) as c:
        yield c


async def _ask(
    approvals: Approvals, clock: SimClock, count: int, **kwargs: Any
) -> list[ApprovalRecord]:
    """Queue ``count`` escalations a minute apart, oldest first."""
    records = []
    for n in range(count):
        records.append(
            await approvals.request(
                "llm_escalation",
                {"input_class": f"quote-{n}", "models": ["gpt-4o", "claude"]},
                f"no model answered quote-{n}",
                run_id="r1",
                **kwargs,
            )
        )
        clock.advance(60)
    return records


async def _decide(
    client: httpx.AsyncClient, approval_id: str, body: Any, who: str | None = None
) -> httpx.Response:
    """POST a decision with the shared token, or with ``who``'s named token."""
    headers = AUTH if who is None else {"Authorization": f"Bearer {NAMED[who]}"}
    return await client.post(f"/api/approvals/{approval_id}", json=body, headers=headers)


def test_the_router_has_exactly_the_routes_under_test() -> None:
    """The route table here covers every approvals route, so none escapes the token test."""
    routes = [r for r in approvals_router(None).routes if isinstance(r, APIRoute)]
    assert sorted((m, r.path) for r in routes for m in r.methods or ()) == sorted(ROUTES)


@pytest.mark.parametrize("route", ROUTES, ids=" ".join)
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}])
async def test_every_approvals_route_answers_401_without_the_token(
    client: httpx.AsyncClient,
    approvals: Approvals,
    clock: SimClock,
    route: tuple[str, str],
    headers: dict[str, str],
) -> None:
    """No approvals route lists or decides anything without the console token."""
    method, path = route
    [record] = await _ask(approvals, clock, 1)
    response = await client.request(
        method,
        path.format(approval_id=record.id),
        json={"decision": "approve"} if method == "POST" else None,
        headers=headers,
    )
    assert response.status_code == 401
    assert "console token" in response.json()["detail"]
    assert "quote-0" not in response.text
    assert await approvals.pending() == [record], "an unauthorised decision must not land"


async def test_pending_lists_newest_first_with_the_count(
    client: httpx.AsyncClient, approvals: Approvals, clock: SimClock
) -> None:
    """GET lists pending entries newest first, each in the store's shape, with the count."""
    records = await _ask(approvals, clock, 3)
    response = await client.get("/api/approvals", headers=AUTH)
    assert response.status_code == 200
    body = response.json()
    assert body["pending"] == 3
    assert [a["id"] for a in body["approvals"]] == [r.id for r in reversed(records)]
    newest = body["approvals"][0]
    assert newest == {
        "id": records[2].id,
        "created_at": "2026-01-01T00:02:00+00:00",
        "kind": "llm_escalation",
        "agent": "seller 1.0.0",
        "run_id": "r1",
        "subject": {"input_class": "quote-2", "models": ["gpt-4o", "claude"]},
        "reason": "no model answered quote-2",
        "status": "pending",
        "decided_at": None,
        "decided_by": None,
        "note": None,
        "expires_at": None,
    }


async def test_an_empty_queue_is_an_empty_list(client: httpx.AsyncClient) -> None:
    """Nothing queued answers 200 with no entries and a zero count, not an error."""
    response = await client.get("/api/approvals", headers=AUTH)
    assert response.status_code == 200
    assert response.json() == {"approvals": [], "pending": 0}


async def test_status_all_includes_decided_entries(
    client: httpx.AsyncClient, approvals: Approvals, clock: SimClock
) -> None:
    """status=all lists decided entries too; pending lists and counts only the undecided."""
    first, second = await _ask(approvals, clock, 2)
    await approvals.decide(first.id, False, "alice")
    pending = (await client.get("/api/approvals?status=pending", headers=AUTH)).json()
    assert ([a["id"] for a in pending["approvals"]], pending["pending"]) == ([second.id], 1)
    everything = (await client.get("/api/approvals?status=all", headers=AUTH)).json()
    assert [(a["id"], a["status"]) for a in everything["approvals"]] == [
        (second.id, "pending"),
        (first.id, "rejected"),
    ]
    assert everything["pending"] == 1


async def test_the_limit_caps_the_list_not_the_count(
    client: httpx.AsyncClient, approvals: Approvals, clock: SimClock
) -> None:
    """limit keeps the newest entries; the count still says how many are waiting in all."""
    records = await _ask(approvals, clock, 3)
    body = (await client.get("/api/approvals?limit=2", headers=AUTH)).json()
    assert [a["id"] for a in body["approvals"]] == [records[2].id, records[1].id]
    assert body["pending"] == 3


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ("limit=0", "limit"),
        ("limit=-1", "limit"),
        ("limit=501", "limit"),
        ("limit=ten", "limit"),
        ("limit=2.5", "limit"),
        ("limit=", "limit"),
        ("status=decided", "status"),
        ("status=", "status"),
    ],
)
async def test_a_bad_listing_query_is_a_422_with_a_reason(
    client: httpx.AsyncClient, query: str, names: str
) -> None:
    """limit must be an integer in 1..500 and status pending or all; else 422 saying why."""
    response = await client.get(f"/api/approvals?{query}", headers=AUTH)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert detail.startswith("invalid request:")
    assert names in detail


@pytest.mark.parametrize(("decision", "status"), [("approve", "approved"), ("reject", "rejected")])
async def test_a_decision_answers_the_decided_record(
    client: httpx.AsyncClient,
    approvals: Approvals,
    clock: SimClock,
    decision: str,
    status: str,
) -> None:
    """POST decides as the named token's person, with the note, at the clock's time."""
    [record] = await _ask(approvals, clock, 1)
    response = await _decide(
        client, record.id, {"decision": decision, "note": "checked the book"}, who="alice"
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["status"], body["decided_by"], body["note"]) == (
        record.id,
        status,
        "alice",
        "checked the book",
    )
    assert body["decided_at"] == "2026-01-01T00:01:00+00:00"
    stored = await approvals.get(record.id)
    assert stored is not None
    assert (stored.status, stored.decided_by) == (ApprovalStatus(status), "alice")
    assert (await client.get("/api/approvals", headers=AUTH)).json()["pending"] == 0


async def test_the_shared_token_decides_as_the_console_user_and_a_blank_note_is_none(
    client: httpx.AsyncClient, approvals: Approvals, clock: SimClock
) -> None:
    """With the shared token the decision is the console's OS user, as the kill switch says."""
    [record] = await _ask(approvals, clock, 1)
    response = await _decide(client, record.id, {"decision": "approve", "note": "   "})
    assert response.status_code == 200
    body = response.json()
    assert body["decided_by"] == f"{getpass.getuser()} (console)"
    assert body["note"] is None


async def test_a_second_decision_is_a_409_naming_who_decided(
    client: httpx.AsyncClient, approvals: Approvals, clock: SimClock
) -> None:
    """Once decided, another answer is refused with who decided and when; the first stands."""
    [record] = await _ask(approvals, clock, 1)
    assert (await _decide(client, record.id, {"decision": "approve"}, who="alice")).is_success
    again = await _decide(client, record.id, {"decision": "reject"}, who="bob")
    assert again.status_code == 409
    detail = again.json()["detail"]
    assert "already approved by alice at 2026-01-01T00:01:00+00:00" in detail
    stored = await approvals.get(record.id)
    assert stored is not None
    assert (stored.status, stored.decided_by) == (ApprovalStatus.APPROVED, "alice")


async def test_concurrent_decisions_have_exactly_one_winner(
    client: httpx.AsyncClient, approvals: Approvals, clock: SimClock
) -> None:
    """Two people answering at once: one 200, one 409 naming the winner."""
    [record] = await _ask(approvals, clock, 1)
    responses = await asyncio.gather(
        _decide(client, record.id, {"decision": "approve"}, who="alice"),
        _decide(client, record.id, {"decision": "reject"}, who="bob"),
    )
    assert sorted(r.status_code for r in responses) == [200, 409]
    winner = next(r for r in responses if r.status_code == 200).json()
    loser = next(r for r in responses if r.status_code == 409).json()
    assert f"by {winner['decided_by']} at" in loser["detail"]


async def test_an_expired_entry_is_a_409_and_never_approved(
    client: httpx.AsyncClient, approvals: Approvals, clock: SimClock
) -> None:
    """An entry whose time ran out is not offered and cannot be approved late."""
    [record] = await _ask(approvals, clock, 1, ttl_seconds=30)
    assert (await client.get("/api/approvals", headers=AUTH)).json() == {
        "approvals": [],
        "pending": 0,
    }
    late = await _decide(client, record.id, {"decision": "approve"}, who="alice")
    assert late.status_code == 409
    assert "expired at 2026-01-01T00:00:30+00:00" in late.json()["detail"]
    stored = await approvals.get(record.id)
    assert stored is not None
    assert stored.status is ApprovalStatus.EXPIRED


async def test_an_unknown_id_is_a_404(client: httpx.AsyncClient) -> None:
    """Deciding an id that was never queued says so, and queues nothing."""
    response = await _decide(client, "0" * 32, {"decision": "approve"}, who="alice")
    assert response.status_code == 404
    assert "no approval with id '00000000" in response.json()["detail"]


@pytest.mark.parametrize(
    ("body", "names"),
    [
        ({"decision": "maybe"}, "decision"),
        ({"decision": "APPROVE"}, "decision"),
        ({}, "decision"),
        ({"decision": "approve", "status": "approved"}, "status"),
        ({"decision": "approve", "who": "alice"}, "who"),
        ({"decision": "approve", "who": ""}, "who"),
        ({"decision": "approve", "decided_by": "mallory"}, "decided_by"),
        ({"decision": "approve", "note": "n" * 2001}, "note"),
        ({"decision": "approve", "note": 5}, "note"),
        (["approve"], "body"),
        ("{not json", "body"),
    ],
)
async def test_a_bad_decision_body_is_a_422_with_a_reason(
    client: httpx.AsyncClient, approvals: Approvals, clock: SimClock, body: Any, names: str
) -> None:
    """A malformed answer is refused with what is wrong, never a 500, and decides nothing."""
    [record] = await _ask(approvals, clock, 1)
    if isinstance(body, str):
        response = await client.post(
            f"/api/approvals/{record.id}",
            content=body,
            headers={**AUTH, "Content-Type": "application/json"},
        )
    else:
        response = await _decide(client, record.id, body)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert detail.startswith("invalid request:")
    assert names in detail
    assert await approvals.pending() == [record]


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_without_a_queue_every_route_is_a_503_with_a_reason(
    tmp_path: Path, method: str, path: str
) -> None:
    """A console built without an approvals queue says so (503 and why) instead of failing."""
    async with _client(_app(tmp_path, None)) as client:
        response = await client.request(
            method,
            path.format(approval_id="0" * 32),
            json={"decision": "approve"} if method == "POST" else None,
            headers=AUTH,
        )
    assert response.status_code == 503
    assert "no approvals queue is configured" in response.json()["detail"]


async def test_a_store_failure_is_a_503_with_a_reason(
    client: httpx.AsyncClient, approvals: Approvals, clock: SimClock, store: Store
) -> None:
    """A database that cannot answer is a 503 saying so, never a bare 500."""
    [record] = await _ask(approvals, clock, 1)
    with store.engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE approvals"))
    listing = await client.get("/api/approvals", headers=AUTH)
    decision = await _decide(client, record.id, {"decision": "approve"}, who="alice")
    for response in (listing, decision):
        assert response.status_code == 503
        assert "no such table: approvals" in response.json()["detail"]


async def test_the_subject_and_reason_are_redacted(
    client: httpx.AsyncClient, approvals: Approvals
) -> None:
    """A secret inside an entry never leaves through the API, listed or decided."""
    record = await approvals.request(
        "llm_escalation",
        {
            "errors": [{"kind": "auth", "message": f"HTTP 401 for key {SECRET}"}],
            "api_key": "sk-unlisted-but-named",
        },
        f"every model failed; last error: bad key {SECRET}",
    )
    answers = [
        await client.get("/api/approvals", headers=AUTH),
        await client.get("/api/approvals?status=all", headers=AUTH),
        await _decide(client, record.id, {"decision": "reject"}, who="alice"),
    ]
    for response in answers:
        assert response.status_code == 200
        assert SECRET not in response.text
        assert "sk-unlisted-but-named" not in response.text
        assert REDACTED in response.text
    decided = answers[2].json()
    assert decided["subject"]["api_key"] == REDACTED
    assert decided["subject"]["errors"][0]["message"] == f"HTTP 401 for key {REDACTED}"


async def test_the_decider_is_the_authenticated_token_never_the_body(
    client: httpx.AsyncClient, approvals: Approvals, clock: SimClock
) -> None:
    """bob's token deciding while the body claims alice: refused; without the claim, bob."""
    [record] = await _ask(approvals, clock, 1)
    claimed = await _decide(client, record.id, {"decision": "approve", "who": "alice"}, who="bob")
    assert claimed.status_code == 422
    assert await approvals.pending() == [record]
    decided = await _decide(client, record.id, {"decision": "approve"}, who="bob")
    assert decided.json()["decided_by"] == "bob"


async def test_an_unknown_token_decides_nothing(
    client: httpx.AsyncClient, approvals: Approvals, clock: SimClock
) -> None:
    """A token that is neither the shared one nor a named one is a 401, and nothing changes."""
    [record] = await _ask(approvals, clock, 1)
    response = await client.post(
        f"/api/approvals/{record.id}",
        json={"decision": "approve"},
        headers={"Authorization": "Bearer alice-token-012345678"},  # one character short
    )
    assert response.status_code == 401
    assert await approvals.pending() == [record]


def test_a_route_without_the_guard_cannot_name_a_decider() -> None:
    """console_user refuses a request the token guard did not pass: no made-up names."""
    request = Request({"type": "http", "headers": [], "state": {}})
    with pytest.raises(HTTPException) as raised:
        console_user(request)
    assert raised.value.status_code == 401
