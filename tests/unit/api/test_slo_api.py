"""``GET /api/slo`` through the real console app, over a run's real alert monitor and store."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import httpx

from bastion.api.app import create_app
from bastion.api.slo import SloProvider
from bastion.clock import SimClock
from bastion.guard.halt import Halt
from bastion.status import RuntimeStatus
from bastion.store import Store
from bastion.telemetry.metrics import Metrics
from slo_sim import make_run

TOKEN = "test-console-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
WINDOWS = ["5m", "30m", "1h", "2h", "6h", "1d", "3d"]


def _client(tmp_path: Path, slo: SloProvider | None) -> httpx.AsyncClient:
    status = RuntimeStatus(run_id="r1", agent="a", currency="BTC", dry_run=False)
    app = create_app(
        status=status.to_dict,
        halt=Halt(flag_path=tmp_path / "kill_switch.flag", clock=SimClock(), metrics=Metrics()),
        metrics=Metrics(),
        token=TOKEN,
        slo=slo,
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://console")


async def test_the_slo_report_has_the_contract_shape(tmp_path: Path) -> None:
    """Three SLOs with every field the console draws; a burst's page listed as firing."""
    with Store.open(f"sqlite:///{tmp_path / 'bastion.db'}") as store:
        run = make_run(store)
        run.history(200)
        for _ in range(10):
            run.step("failed")
        async with _client(tmp_path, run.monitor.report) as client:
            response = await client.get("/api/slo", headers=AUTH)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"period_days", "evaluated_at", "slos", "firing"}
    assert body["period_days"] == 30
    assert datetime.fromisoformat(body["evaluated_at"]).utcoffset() is not None
    assert [s["name"] for s in body["slos"]] == ["task_completion", "latency", "cost"]
    for item in body["slos"]:
        assert set(item) == {
            "name",
            "description",
            "objective",
            "threshold",
            "unit",
            "total",
            "good",
            "sli",
            "error_budget_remaining",
            "burn_rates",
            "alerts",
        }
        assert list(item["burn_rates"]) == WINDOWS
        assert [set(a) for a in item["alerts"]] == [
            {"severity", "long", "short", "factor", "firing"}
        ] * 4
    completion = body["slos"][0]
    assert (completion["total"], completion["good"]) == (210, 200)
    assert completion["error_budget_remaining"] < 0  # 4.8 % failed against a 0.5 % budget
    assert [a["firing"] for a in completion["alerts"]] == [True, True, True, True]
    assert {a["key"] for a in body["firing"]} == {
        "slo:task_completion:page",
        "slo:task_completion:ticket",
    }
    page = next(a for a in body["firing"] if a["severity"] == "page")
    assert set(page) == {
        "key", "alertname", "severity", "summary", "since", "labels", "value", "threshold"
    }  # fmt: skip


async def test_an_idle_store_reports_null_rates_and_a_whole_budget(tmp_path: Path) -> None:
    with Store.open(f"sqlite:///{tmp_path / 'bastion.db'}") as store:
        run = make_run(store)
        async with _client(tmp_path, run.monitor.report) as client:
            body = (await client.get("/api/slo", headers=AUTH)).json()
    for item in body["slos"]:
        assert (item["total"], item["sli"], item["error_budget_remaining"]) == (0, None, 1.0)
        assert set(item["burn_rates"].values()) == {None}
    assert body["firing"] == []


async def test_the_route_needs_the_console_token(tmp_path: Path) -> None:
    async with _client(tmp_path, lambda: {"slos": []}) as client:
        assert (await client.get("/api/slo")).status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert (await client.get("/api/slo", headers=wrong)).status_code == 401


async def test_without_a_monitor_the_route_says_why(tmp_path: Path) -> None:
    async with _client(tmp_path, None) as client:
        response = await client.get("/api/slo", headers=AUTH)
    assert response.status_code == 503
    assert "bastion slo" in response.json()["detail"]
