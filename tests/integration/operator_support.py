"""The operator agent wired as a console serves it: the real app, store, halt and approvals."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bastion.api.app import create_app
from bastion.clock import SimClock
from bastion.guard.approvals import Approvals
from bastion.guard.halt import Halt
from bastion.guard.health import HealthChecker
from bastion.ops.operator.actions import Effects
from bastion.ops.operator.analyst import LLMAnalyst
from bastion.ops.operator.prometheus import PrometheusContext
from bastion.ops.operator.service import Operator, OperatorConfig
from bastion.ops.operator.silences import Silencer
from bastion.resilience import Resilience
from bastion.store import Store
from bastion.telemetry.metrics import Metrics

TOKEN = "console-token-0123456789abcdef"
ALICE = "alice-approves-0123456789abcdef"
SECRET = "webhook-secret-0123456789abcdef"
FINGERPRINT = "3f2c9a8b7d6e5f41"


@dataclass
class Wired:
    """What a test drives and inspects."""

    client: httpx.AsyncClient
    operator: Operator
    store: Store
    halt: Halt
    clock: SimClock
    health: list[str]
    """The status the one health check answers next (OK until a test changes it)."""

    async def post_alerts(self, body: Any, *, token: str | None = SECRET) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}" if token else ""}
        return await self.client.post("/api/alerts/alertmanager", json=body, headers=headers)

    async def decide(self, approval_id: str, decision: str, token: str = ALICE) -> None:
        answer = await self.client.post(
            f"/api/approvals/{approval_id}",
            json={"decision": decision},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert answer.status_code == 200, answer.text

    async def alerts(self, status: str = "all") -> list[dict[str, Any]]:
        answer = await self.client.get("/api/alerts", params={"status": status})
        assert answer.status_code == 200, answer.text
        listed: list[dict[str, Any]] = answer.json()["alerts"]
        return listed


def alert(
    alertname: str = "BastionStepErrorRateHigh",
    *,
    status: str = "firing",
    severity: str = "page",
    fingerprint: str = FINGERPRINT,
    ends_at: str = "0001-01-01T00:00:00Z",
    **labels: str,
) -> dict[str, Any]:
    """One alert of Alertmanager's webhook, as 0.25 sends it."""
    return {
        "status": status,
        "labels": {"alertname": alertname, "severity": severity, "job": "bastion", **labels},
        "annotations": {"summary": f"{alertname} summary"},
        "startsAt": "2026-12-03T09:00:00.123Z",
        "endsAt": ends_at,
        "generatorURL": "http://127.0.0.1:9090/graph?g0.expr=up&g0.tab=1",
        "fingerprint": fingerprint,
    }


def webhook(*alerts: dict[str, Any], status: str = "firing") -> dict[str, Any]:
    """Alertmanager's version-4 payload around ``alerts``."""
    first = alerts[0]["labels"]
    name = first.get("alertname", "")
    return {
        "version": "4",
        "groupKey": '{}/{severity="page"}:{alertname="' + name + '"}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "bastion-console",
        "groupLabels": {"alertname": name},
        "commonLabels": first,
        "commonAnnotations": {},
        "externalURL": "http://127.0.0.1:9093",
        "alerts": list(alerts),
    }


@asynccontextmanager
async def wired(
    tmp_path: Path,
    *,
    safety_mode: bool = True,
    analyst: Callable[[Store, SimClock], LLMAnalyst] | None = None,
    validation_minutes: float = 10.0,
    prometheus_url: str | None = None,
    alertmanager_url: str | None = None,
    start: float = 1_796_288_400,  # 2026-12-03 09:00 UTC
) -> AsyncIterator[Wired]:
    """An operator behind the real console app on a SQLite store, started, polled by hand.

    ``start`` is the simulated clock's start; a test that talks to a real Alertmanager starts it
    at the wall clock's time, which Alertmanager checks a silence's end against."""
    clock = SimClock(start=start)
    store = Store.open(f"sqlite:///{tmp_path / 'bastion.db'}")
    metrics = Metrics()
    halt = Halt(flag_path=tmp_path / "kill_switch.flag", clock=clock, halts=store.halts)
    approvals = Approvals(store, clock=clock, agent="test-agent")
    health = ["OK"]
    checker = HealthChecker(clock=clock, environment="test", store=store)

    async def probe() -> tuple[str, str]:
        return health[0], f"the probe says {health[0]}"

    checker.register("probe", probe)
    resilience = Resilience(clock=clock)
    operator = Operator(
        store=store,
        clock=clock,
        approvals=approvals,
        effects=Effects(
            halt=halt,
            approvals=approvals,
            silencer=Silencer(alertmanager_url, resilience=resilience, clock=clock),
            healthcheck=checker.run_and_cache_healthcheck,
        ),
        config=OperatorConfig(
            safety_mode=safety_mode, poll_seconds=0, validation_minutes=validation_minutes
        ),
        analyst=analyst(store, clock) if analyst is not None else None,
        prometheus=PrometheusContext(prometheus_url, resilience=resilience)
        if prometheus_url
        else None,
    )
    app = create_app(
        status=dict,
        halt=halt,
        metrics=metrics,
        token=TOKEN,
        approvals=approvals,
        named_tokens={"alice": ALICE},
        operator=operator,
        operator_webhook_secret=SECRET,
    )
    operator.start()
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://127.0.0.1",
            headers={"Authorization": f"Bearer {TOKEN}"},
        ) as client:
            yield Wired(client, operator, store, halt, clock, health)
    finally:
        await operator.aclose()
        store.close()
