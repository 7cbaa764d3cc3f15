"""The console app through its real ASGI stack: token on every /api route, status and kill."""

from __future__ import annotations

import stat
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute

from bastion.api.app import api_router, create_app
from bastion.api.token import ensure_console_token
from bastion.clock import SimClock
from bastion.errors import ErrorCode, ExchangeError
from bastion.guard.halt import Halt
from bastion.ops.status import StatusService
from bastion.status import RuntimeStatus
from bastion.telemetry.metrics import Metrics

TOKEN = "test-console-token"


def report(
    status: RuntimeStatus, halt: Halt, breakers: list[dict[str, Any]] | None = None
) -> Callable[[], dict[str, Any]]:
    """The status report the runner serves: the live status with the halt flag over it."""
    service = StatusService(
        data_dir=halt.flag_path.parent,
        clock=SimClock(),
        halt_state=halt.state,
        breakers=(lambda: breakers) if breakers is not None else None,
    )
    return lambda: service.report(status.to_dict())


@pytest.fixture
def halt(tmp_path: Path) -> Halt:
    return Halt(flag_path=tmp_path / "kill_switch.flag", clock=SimClock(), metrics=Metrics())


@pytest.fixture
async def client(halt: Halt) -> AsyncIterator[httpx.AsyncClient]:
    status = RuntimeStatus(
        run_id="r1",
        agent="options_seller 1.0.0",
        currency="BTC",
        dry_run=False,
        state="running",
        last_step=4,
        equity=10.5,
    )
    app = create_app(status=report(status, halt), halt=halt, metrics=Metrics(), token=TOKEN)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://console"
    ) as c:
        yield c


AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def test_every_api_route_answers_401_without_the_token(
    client: httpx.AsyncClient, halt: Halt
) -> None:
    """No /api route is reachable without the console token, whatever its method."""
    router = api_router(report(RuntimeStatus("r", "a", "BTC", False), halt), halt)
    routes = [r for r in router.routes if isinstance(r, APIRoute)]
    assert len(routes) >= 3
    for route in routes:
        for method in route.methods:
            for headers in ({}, {"Authorization": "Bearer wrong"}):
                response = await client.request(method, route.path, headers=headers)
                assert response.status_code == 401, (method, route.path)
                assert "console token" in response.json()["detail"]
    assert not halt.active(), "an unauthorised kill must not trip anything"


async def test_status_with_the_token_in_header_or_query(client: httpx.AsyncClient) -> None:
    """Bearer header and ?token= both work; the shape says running, step and equity."""
    by_header = await client.get("/api/status", headers=AUTH)
    by_query = await client.get(f"/api/status?token={TOKEN}")
    assert by_header.status_code == by_query.status_code == 200
    body = by_header.json()
    assert (body["state"], body["halted"], body["last_step"], body["equity"]) == (
        "running",
        False,
        4,
        10.5,
    )
    assert body["positions"] == []
    assert body["open_orders"] == []


async def test_kill_then_resume_through_the_api(client: httpx.AsyncClient, halt: Halt) -> None:
    """POST /api/kill halts with the reason; /api/status shows it; resume clears it."""
    killed = await client.post("/api/kill", json={"reason": "fat finger"}, headers=AUTH)
    assert killed.status_code == 200
    assert halt.active()
    status = (await client.get("/api/status", headers=AUTH)).json()
    # No exchange to cancel on here, so nothing confirmed the book empty: halting, not halted.
    assert (status["state"], status["halted"], status["halt_reason"]) == (
        "halting",
        True,
        "fat finger",
    )
    resumed = await client.post("/api/resume", json={"reason": "checked"}, headers=AUTH)
    assert resumed.json()["cleared"]["reason"] == "fat finger"
    assert not halt.active()


async def test_malformed_kill_body_is_a_422_with_a_reason(
    client: httpx.AsyncClient, halt: Halt
) -> None:
    """A bad body is refused with what is wrong, never a 500, and trips nothing."""
    for body in ('{"reason": ""}', "{not json", '{"reason": 5}'):
        response = await client.post(
            "/api/kill", content=body, headers={**AUTH, "Content-Type": "application/json"}
        )
        assert response.status_code == 422, body
        assert response.json()["detail"].startswith("invalid request:")
    assert not halt.active()


async def test_liveness_metrics_and_page_are_open(client: httpx.AsyncClient) -> None:
    """/healthz, /metrics and the console page need no token (they hold no account data)."""
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    metrics = await client.get("/metrics")
    assert "bastion_kill_switch_active" in metrics.text
    page = await client.get("/")
    assert page.status_code == 200
    assert "Bastion" in page.text
    assert (await client.get("/static/console.js")).status_code == 200


def test_console_token_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    """The token file is private to its owner and stable across restarts."""
    path = tmp_path / "data" / "console_token"
    first = ensure_console_token(path)
    assert len(first) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ensure_console_token(path) == first


async def test_kill_answers_halted_even_when_the_cancel_fails(tmp_path: Path) -> None:
    """An exchange outage during /api/kill is no 500: the flag is up and the answer says so."""

    async def broken_cancel_all() -> int:
        raise ExchangeError("deribit private/cancel_all: NETWORK", code=ErrorCode.NETWORK)

    halt = Halt(flag_path=tmp_path / "flag", clock=SimClock(), canceller=broken_cancel_all)
    status = RuntimeStatus(run_id="r1", agent="a", currency="BTC", dry_run=False)
    app = create_app(status=report(status, halt), halt=halt, metrics=Metrics(), token=TOKEN)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://console"
    ) as client:
        response = await client.post("/api/kill", json={"reason": "outage"}, headers=AUTH)
    assert response.status_code == 200
    assert response.json()["halted"] is True
    assert halt.active()


async def test_status_says_halting_until_the_cancels_are_confirmed(tmp_path: Path) -> None:
    """/api/status says ``halting`` while resting orders may remain, ``halted`` once cancelled.

    The flag is raised by another process (as ``bastion kill`` does) and seen here before this
    process has cancelled anything; its enforcement, and only a successful one, makes it halted.
    """
    cancels: list[str] = []
    failing = True

    async def cancel_all() -> int:
        if failing:
            raise ExchangeError("deribit private/cancel_all: NETWORK", code=ErrorCode.NETWORK)
        cancels.append("all")
        return 2

    halt = Halt(flag_path=tmp_path / "flag", clock=SimClock(), canceller=cancel_all)
    await Halt(flag_path=tmp_path / "flag", clock=SimClock()).trip("elsewhere", who="ops")
    status = RuntimeStatus(run_id="r1", agent="a", currency="BTC", dry_run=False, state="running")
    app = create_app(status=report(status, halt), halt=halt, metrics=Metrics(), token=TOKEN)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://console"
    ) as client:
        seen = [(await client.get("/api/status", headers=AUTH)).json()["state"]]
        await halt.enforce()  # the cancel fails: still halting
        seen.append((await client.get("/api/status", headers=AUTH)).json()["state"])
        failing = False
        await halt.enforce(always=True)  # the halted step's sweep succeeds
        body = (await client.get("/api/status", headers=AUTH)).json()
    assert [*seen, body["state"]] == ["halting", "halting", "halted"]
    assert body["halt"]["enforced"] is True
    assert cancels == ["all"]


async def test_status_lists_the_circuit_breakers(halt: Halt) -> None:
    """/api/status shows each dependency's breaker state for the console and operators."""
    status = RuntimeStatus(run_id="r1", agent="a", currency="BTC", dry_run=False)
    snapshot = [{"dependency": "deribit", "layer": "exchange", "state": "open", "retry_after": 9}]
    app = create_app(
        status=report(status, halt, breakers=snapshot), halt=halt, metrics=Metrics(), token=TOKEN
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://console"
    ) as client:
        body = (await client.get("/api/status", headers=AUTH)).json()
    assert body["breakers"] == snapshot
