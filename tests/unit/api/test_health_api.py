"""The System Health routes through the real console app: token, shapes, history, concurrency."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute

from bastion.api.app import create_app
from bastion.api.health import HealthProvider, health_router
from bastion.clock import SimClock
from bastion.guard.halt import Halt
from bastion.guard.health import CachedHealthStatus, CheckResult, HealthReport, HealthStatus
from bastion.status import RuntimeStatus
from bastion.telemetry.metrics import Metrics
from bastion.trace.redact import REDACTED, Redactor

TOKEN = "test-console-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SECRET = "deribit-client-secret-123"
T0 = datetime(2026, 11, 21, 10, 31, 5, tzinfo=UTC)


@dataclass
class FakeHealth:
    """A scripted health checker: each run returns the next status in ``script``."""

    script: list[str] = field(default_factory=lambda: ["OK", "WARN", "FAIL"])
    delay: float = 0.0
    runs: list[HealthReport] = field(default_factory=list)
    running: int = 0
    most_running: int = 0
    history_limits: list[int] = field(default_factory=list)

    async def run_and_cache_healthcheck(self, *, lightweight_only: bool = False) -> HealthReport:
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            await asyncio.sleep(self.delay)
            status = self.script[len(self.runs) % len(self.script)]
            detail = "ok" if status == "OK" else f"NETWORK: timeout after 5 s ({SECRET})"
            report = HealthReport(
                run_at=T0 + timedelta(minutes=len(self.runs)),
                overall_status=HealthStatus(status),
                summary=f"Deribit public {status}",
                checks=(
                    CheckResult("config", HealthStatus.OK, "secrets present", latency_ms=1.5),
                    CheckResult("exchange_public", HealthStatus(status), detail, "network", 1.5),
                ),
            )
            self.runs.append(report)
            return report
        finally:
            self.running -= 1

    def get_cached_health_status(self) -> CachedHealthStatus:
        if not self.runs:
            return CachedHealthStatus()
        return CachedHealthStatus.from_report(self.runs[-1])

    def history(self, limit: int = 50) -> list[HealthReport]:
        self.history_limits.append(limit)
        return list(reversed(self.runs))[:limit]


def _halt(tmp_path: Path) -> Halt:
    return Halt(flag_path=tmp_path / "kill_switch.flag", clock=SimClock(), metrics=Metrics())


def _app(tmp_path: Path, health: HealthProvider | None, paused: bool = False) -> FastAPI:
    status = RuntimeStatus(run_id="r1", agent="a", currency="BTC", dry_run=False)
    return create_app(
        status=status.to_dict,
        halt=_halt(tmp_path),
        metrics=Metrics(),
        token=TOKEN,
        redactor=Redactor((SECRET, TOKEN)),
        health=health,
        health_paused=lambda: paused,
    )


def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://console")


@pytest.fixture
def fake() -> FakeHealth:
    return FakeHealth()


@pytest.fixture
async def client(tmp_path: Path, fake: FakeHealth) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(_app(tmp_path, fake)) as c:
        yield c


ROUTES = [
    ("POST", "/api/agent_healthcheck"),
    ("GET", "/api/agent_healthcheck"),
    ("GET", "/api/system_health/last"),
    ("GET", "/api/system_health/history"),
]


def test_the_router_has_exactly_the_routes_under_test(fake: FakeHealth) -> None:
    """The route table below covers every System Health route, so none escapes the token test."""
    routes = [r for r in health_router(fake).routes if isinstance(r, APIRoute)]
    assert sorted((m, r.path) for r in routes for m in r.methods or ()) == sorted(ROUTES)


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}])
async def test_every_health_route_answers_401_without_the_token(
    client: httpx.AsyncClient, fake: FakeHealth, method: str, path: str, headers: dict[str, str]
) -> None:
    """No System Health route answers, or runs a check, without the console token."""
    response = await client.request(method, path, headers=headers)
    assert response.status_code == 401
    assert "console token" in response.json()["detail"]
    assert fake.runs == []


@pytest.mark.parametrize("path", ["/api/agent_healthcheck", "/api/system_health/last"])
async def test_before_any_run_the_status_is_empty_not_an_error(
    client: httpx.AsyncClient, path: str
) -> None:
    """Before the first run the reads answer 200 with nulls and no checks."""
    response = await client.get(path, headers=AUTH)
    assert response.status_code == 200
    assert response.json() == {
        "last_run_at": None,
        "overall_status": None,
        "summary": None,
        "checks": [],
        "agent_paused_due_to_health": False,
    }


async def test_post_runs_the_checks_and_answers_the_full_shape(
    client: httpx.AsyncClient, fake: FakeHealth
) -> None:
    """POST runs one full healthcheck and answers its result with the paused flag."""
    response = await client.post("/api/agent_healthcheck", headers=AUTH)
    assert response.status_code == 200
    assert len(fake.runs) == 1
    assert response.json() == {
        "last_run_at": "2026-11-21T10:31:05+00:00",
        "overall_status": "OK",
        "summary": "Deribit public OK",
        "checks": [
            {
                "name": "config",
                "status": "OK",
                "detail": "secrets present",
                "code": None,
                "latency_ms": 1.5,
            },
            {
                "name": "exchange_public",
                "status": "OK",
                "detail": "ok",
                "code": "network",
                "latency_ms": 1.5,
            },
        ],
        "agent_paused_due_to_health": False,
    }


async def test_reads_change_after_each_new_run(client: httpx.AsyncClient, fake: FakeHealth) -> None:
    """Both reads follow the latest run: OK, then WARN, then FAIL, with its time and summary."""
    for expected, minute in (("OK", 31), ("WARN", 32), ("FAIL", 33)):
        posted = (await client.post("/api/agent_healthcheck", headers=AUTH)).json()
        for path in ("/api/agent_healthcheck", "/api/system_health/last"):
            read = (await client.get(path, headers=AUTH)).json()
            assert read == posted, path
            assert (read["overall_status"], read["last_run_at"]) == (
                expected,
                f"2026-11-21T10:{minute}:05+00:00",
            )
            assert read["summary"] == f"Deribit public {expected}"


async def test_reads_never_run_a_check(client: httpx.AsyncClient, fake: FakeHealth) -> None:
    """GET routes only read the cache and history: the runtime decides when checks run."""
    for _, path in ROUTES[1:]:
        assert (await client.get(path, headers=AUTH)).status_code == 200
    assert fake.runs == []


async def test_history_lists_runs_newest_first_up_to_the_limit(
    client: httpx.AsyncClient, fake: FakeHealth
) -> None:
    """History answers {"runs": [...]} newest first, without the present-tense paused flag."""
    for _ in range(3):
        await client.post("/api/agent_healthcheck", headers=AUTH)
    everything = (await client.get("/api/system_health/history", headers=AUTH)).json()
    assert [r["overall_status"] for r in everything["runs"]] == ["FAIL", "WARN", "OK"]
    assert set(everything["runs"][0]) == {"last_run_at", "overall_status", "summary", "checks"}
    two = (await client.get("/api/system_health/history?limit=2", headers=AUTH)).json()
    assert [r["overall_status"] for r in two["runs"]] == ["FAIL", "WARN"]
    assert fake.history_limits == [50, 2]


@pytest.mark.parametrize("limit", ["0", "-1", "501", "ten", "2.5", ""])
async def test_a_bad_history_limit_is_a_422_with_a_reason(
    client: httpx.AsyncClient, fake: FakeHealth, limit: str
) -> None:
    """limit must be an integer in 1..500; anything else is refused with why, never a 500."""
    response = await client.get(f"/api/system_health/history?limit={limit}", headers=AUTH)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert detail.startswith("invalid request:")
    assert "limit" in detail
    assert fake.history_limits == []


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_without_a_health_provider_every_route_is_a_503_with_a_reason(
    tmp_path: Path, method: str, path: str
) -> None:
    """A console built without health checks says so (503 and why) instead of failing."""
    async with _client(_app(tmp_path, None)) as client:
        response = await client.request(method, path, headers=AUTH)
    assert response.status_code == 503
    assert "not configured" in response.json()["detail"]


async def test_the_paused_flag_comes_from_the_guard(tmp_path: Path, fake: FakeHealth) -> None:
    """agent_paused_due_to_health reports the health guard's pause on every status answer."""
    async with _client(_app(tmp_path, fake, paused=True)) as client:
        posted = await client.post("/api/agent_healthcheck", headers=AUTH)
        read = await client.get("/api/system_health/last", headers=AUTH)
    assert posted.json()["agent_paused_due_to_health"] is True
    assert read.json()["agent_paused_due_to_health"] is True


async def test_secrets_in_check_details_are_redacted(
    client: httpx.AsyncClient, fake: FakeHealth
) -> None:
    """A secret echoed into a check's detail never leaves through the API."""
    fake.script = ["FAIL"]
    await client.post("/api/agent_healthcheck", headers=AUTH)
    for _, path in ROUTES:
        text = (await client.request("GET", path, headers=AUTH)).text
        assert SECRET not in text, path
        assert REDACTED in text, path


async def test_concurrent_posts_share_one_run(client: httpx.AsyncClient, fake: FakeHealth) -> None:
    """Two simultaneous POSTs never run two healthchecks at once; the second gets the fresh one."""
    fake.delay = 0.05
    first, second = await asyncio.gather(
        client.post("/api/agent_healthcheck", headers=AUTH),
        client.post("/api/agent_healthcheck", headers=AUTH),
    )
    assert first.status_code == second.status_code == 200
    assert fake.most_running == 1
    assert len(fake.runs) == 1
    assert first.json() == second.json()
    again = await client.post("/api/agent_healthcheck", headers=AUTH)
    assert again.json()["overall_status"] == "WARN", "a later POST runs the checks again"


async def test_a_healthcheck_that_raises_is_a_503_with_a_reason(
    client: httpx.AsyncClient, fake: FakeHealth
) -> None:
    """A checker that breaks answers 503 with the (redacted) error, never a bare 500."""

    async def broken(*, lightweight_only: bool = False) -> HealthReport:
        raise RuntimeError(f"store unreachable with {SECRET}")

    fake.run_and_cache_healthcheck = broken  # type: ignore[method-assign]
    response = await client.post("/api/agent_healthcheck", headers=AUTH)
    assert response.status_code == 503
    detail = response.json()["detail"]
    assert "store unreachable" in detail
    assert SECRET not in detail
