"""A real Prometheus scrapes a real console, evaluates deploy/prometheus's rules and answers the
dashboard's queries."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from bastion.agent import Decision
from bastion.agents.scripted import ScriptedAgent
from bastion.api.app import create_app
from bastion.clock import SimClock
from bastion.guard.halt import Halt
from bastion.runner import Runner
from bastion.telemetry.metrics import Metrics
from loopback_server import serve_on_loopback
from prometheus_tools import DEPLOY, prometheus_argv, run, serving


def test_the_example_config_is_valid_with_its_rule_files() -> None:
    """deploy/prometheus.yml parses and finds the three rule files beside it."""
    done = run("promtool", "check", "config", DEPLOY / "prometheus.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 3 rule files found" in done.stdout


@contextmanager
def _prometheus(target: str, workdir: Path) -> Iterator[httpx.Client]:
    """Debian's Prometheus scraping ``target`` every second, the deploy rules every second."""
    argv, url = prometheus_argv(workdir, target)
    with serving(argv, url) as client:
        yield client


def _query_until(client: httpx.Client, query: str) -> list[dict[str, Any]]:
    """Poll an instant query until it returns something (Prometheus needs a few scrapes)."""
    for _ in range(300):
        answer = client.get("/api/v1/query", params={"query": query})
        assert answer.status_code == 200, answer.text
        result: list[dict[str, Any]] = answer.json()["data"]["result"]
        if result:
            return result
        threading.Event().wait(0.1)
    raise AssertionError(f"{query} returned nothing")


async def test_a_halted_console_scrapes_up_and_its_kill_switch_alert_goes_pending(
    tmp_path: Path,
) -> None:
    """The scrape passes the Host guard, and BastionKillSwitchActive sees the real gauge."""
    metrics = Metrics()
    halt = Halt(flag_path=tmp_path / "kill_switch.flag", clock=SimClock(), metrics=metrics)
    await halt.trip("operator", who="test")
    app = create_app(status=dict, halt=halt, metrics=metrics, token="t")
    with (
        serve_on_loopback(app) as console,
        _prometheus(console.removeprefix("http://"), tmp_path) as prom,
    ):
        (up,) = _query_until(prom, 'up{job="bastion"} == 1')
        (alert,) = _query_until(prom, 'ALERTS{alertname="BastionKillSwitchActive"}')
        halts = _query_until(prom, 'bastion_halts_total{reason="operator"} == 1')
    assert up["metric"]["instance"] == console.removeprefix("http://")
    assert (alert["metric"]["alertstate"], alert["metric"]["severity"]) == ("pending", "page")
    assert len(halts) == 1


async def _answer(client: httpx.Client, query: str) -> list[dict[str, Any]]:
    """An instant query asked off the event loop, which serves the console being scraped."""
    answer = await asyncio.to_thread(client.get, "/api/v1/query", params={"query": query})
    assert answer.status_code == 200, (query, answer.text)
    result: list[dict[str, Any]] = answer.json()["data"]["result"]
    return result


async def _answered(client: httpx.Client, query: str) -> None:
    """Poll until ``query`` returns something, the console serving its scrapes meanwhile."""
    for _ in range(300):
        if await _answer(client, query):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{query} returned nothing")


QUIET_RUN_EMPTY = {
    ("Orders by outcome", "A"),  # no orders
    ("Gate pass rate", "A"),  # no research workflow yet
    ("LLM tokens", "A"),  # no LLM
    ("LLM cost", "A"),
    ("LLM request P95", "A"),
    ("Budget remaining", "A"),  # unlimited budgets export nothing
    ("Tool calls", "A"),  # no tools
    ("Tool calls", "B"),
    ("Dependency errors", "A"),  # nothing failed
    ("Dependency errors", "B"),
}
"""The dashboard's queries that a quiet run (no orders, LLM, tools or failures) leaves empty."""


async def test_the_dashboards_queries_read_a_real_runs_series_in_a_real_prometheus(
    runner_factory: Callable[..., Runner], tmp_path: Path
) -> None:
    """Every query of deploy/grafana/bastion.json, variables filled in, against a Prometheus
    scraping a finished paper run's console: all answer but those a quiet run cannot feed."""
    runner = runner_factory(ScriptedAgent(lambda o, c: Decision()), console=True)
    await runner.__aenter__()
    await runner.run(max_steps=3)
    assert runner.console_url is not None
    target = runner.console_url.split("/?token=")[0].removeprefix("http://")
    dashboard = json.loads((DEPLOY / "grafana" / "bastion.json").read_text())
    with _prometheus(target, tmp_path) as prom:
        await _answered(prom, 'sum_over_time(up{job="bastion"}[1m]) >= 2')
        exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
        for rule in sorted({n for e in exprs for n in re.findall(r"job:[\w:]+", e)}):
            await _answered(prom, rule)  # each rule group is evaluated on its own timer
        empty = set()
        for panel in dashboard["panels"]:
            for query in panel.get("targets", []):
                expr = query["expr"].replace("$__rate_interval", "1m").replace("$job", "bastion")
                if not await _answer(prom, expr):
                    empty.add((panel["title"], query["refId"]))
    assert empty == QUIET_RUN_EMPTY
