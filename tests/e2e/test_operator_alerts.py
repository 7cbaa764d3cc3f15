"""Acceptance: Prometheus -> Alertmanager -> the operator in `bastion run`, and a person approves.

Real processes on loopback: ``bastion exchange serve`` (the paper exchange, so a fault can be
armed on it while the run trades), ``bastion run`` against it with its console, Debian's
Prometheus scraping the console's ``/metrics`` with the shipped rules (``deploy/prometheus/``)
every second, and Debian's Alertmanager with the shipped config (``deploy/alertmanager/``), its
group wait shortened and its credentials file holding the operator's webhook secret.

Once the run has traded, every account summary answers 503: steps fail, and the shipped
``BastionStepErrorRateHigh`` page fires (it has no ``for:``). Alertmanager delivers it to the
intake; the operator stores it, analyses it (the rules: an error spike on a page) and proposes
a halt that waits in the approvals queue, while the healthcheck it also proposes runs at once.
Nothing halts until Alice approves through ``POST /api/approvals/{id}``; then the halt runs and
the audit trail (the action's ``decided_by``, the halt's ``who``) names her.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from e2e_support import PATIENCE_S, clean_env, exchange_served, until, wait_for

from prometheus_tools import DEPLOY, free_port, prometheus_argv, serving, tool

SECRET = "webhook-secret-0123456789abcdef"
ALICE = "alice-approves-0123456789abcdef"
FAULT = {"method": "private/get_account_summary", "kind": "status", "status": 503, "times": None}


@pytest.fixture
def exchange(tmp_path: Path) -> Iterator[str]:
    with exchange_served(free_port(), tmp_path / "exchange-data") as base:
        yield base


@pytest.fixture
def console(exchange: str, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """``bastion run`` against the exchange, its console on a port Prometheus is told."""
    data_dir = tmp_path / "data"
    port = free_port()
    env = clean_env(
        data_dir,
        BASTION_EXCHANGE_URL=exchange,
        BASTION_CONSOLE_PORT=str(port),
        BASTION_CONSOLE_TOKEN="console-token-0123456789abcdef",
        BASTION_CONSOLE_NAMED_TOKENS=orjson.dumps({"alice": ALICE}).decode(),
        BASTION_LOOP_INTERVAL_SECONDS="0.2",
        BASTION_AUTO_KILL_ON_HEALTH_FAIL="false",
        BASTION_RETRY_BASE_SECONDS="0.01",
        BASTION_RETRY_CAP_SECONDS="0.02",
        BASTION_CALL_DEADLINE_SECONDS="0.5",
        BASTION_OPERATOR_WEBHOOK_SECRET=SECRET,
        BASTION_OPERATOR_POLL_SECONDS="0.1",
    )
    log = (tmp_path / "run.log").open("w")
    run = subprocess.Popen(
        [sys.executable, "-m", "bastion", "run"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{base}/healthz", run)
        yield base, data_dir
    finally:
        run.send_signal(signal.SIGINT)
        try:
            run.wait(timeout=PATIENCE_S)
        finally:
            if run.poll() is None:
                run.kill()
            log.close()


def _alertmanager_argv(workdir: Path, intake: str) -> tuple[list[str], str]:
    tool("amtool")
    config = workdir / "alertmanager" / "alertmanager.yml"
    config.parent.mkdir(parents=True)
    shipped = (DEPLOY / "alertmanager" / "alertmanager.yml").read_text()
    assert "http://127.0.0.1:8787" in shipped
    config.write_text(
        shipped.replace("http://127.0.0.1:8787", intake)
        .replace("group_wait: 30s", "group_wait: 0s")
        .replace("group_wait: 10s", "group_wait: 0s")
    )
    (config.parent / "console-token").write_text(SECRET + "\n")
    url = f"http://127.0.0.1:{free_port()}"
    binary = os.environ.get("SYSTEM_PACKAGES_ALERTMANAGER", "/usr/bin/prometheus-alertmanager")
    argv = [
        binary,
        f"--config.file={config}",
        f"--storage.path={config.parent / 'data'}",
        f"--web.listen-address={url.removeprefix('http://')}",
        "--cluster.listen-address=",
        "--log.level=warn",
    ]
    return argv, url


def test_a_fired_page_is_analysed_and_its_halt_waits_for_alices_approval(
    exchange: str, console: tuple[str, Path], tmp_path: Path
) -> None:
    base, data_dir = console
    api = httpx.Client(
        base_url=base, headers={"Authorization": "Bearer console-token-0123456789abcdef"}
    )
    am_argv, am_url = _alertmanager_argv(tmp_path, base)
    prom_argv, prom_url = prometheus_argv(
        tmp_path, base.removeprefix("http://"), alertmanager=am_url.removeprefix("http://")
    )
    with (
        api,
        serving(am_argv, am_url, quiet=False),
        serving(prom_argv, prom_url, quiet=False),
    ):
        until(lambda: _last_step(api) >= 1, "the run to complete a step")
        armed = httpx.post(f"{exchange}/_paper/faults", json=FAULT, timeout=10)
        assert armed.status_code < 300, armed.text

        def proposed_halt() -> dict[str, Any] | None:
            for alert in api.get("/api/alerts").json()["alerts"]:
                if alert["alertname"] != "BastionStepErrorRateHigh" or not alert["analysis"]:
                    continue
                halts = [a for a in alert["actions"] if a["action"] == "halt"]
                if halts:
                    return {"alert": alert, "halt": halts[0]}
            return None

        found = until(proposed_halt, "the page to reach the operator and a halt to be proposed")
        alert, halt = found["alert"], found["halt"]
        assert alert["status"] == "firing"
        assert alert["severity"] == "page"
        assert alert["analysis"]["source"] == "rules"
        assert alert["analysis"]["issue_type"] == "error_spike"
        assert halt["status"] == "proposed"
        assert halt["approval_id"]
        assert not (data_dir / "kill_switch.flag").exists(), "nothing halts before approval"
        healthcheck = next(a for a in alert["actions"] if a["action"] == "healthcheck")
        assert healthcheck["approval_id"] is None

        approvals = api.get("/api/approvals").json()["approvals"]
        queued = next(a for a in approvals if a["id"] == halt["approval_id"])
        assert queued["kind"] == "operator_action"
        assert queued["subject"]["action"] == "halt"
        assert not (data_dir / "kill_switch.flag").exists()

        decided = httpx.post(
            f"{base}/api/approvals/{halt['approval_id']}",
            json={"decision": "approve", "note": "stop it"},
            headers={"Authorization": f"Bearer {ALICE}"},
        )
        assert decided.status_code == 200, decided.text

        def executed() -> dict[str, Any] | None:
            entry = next(
                a
                for a in api.get("/api/alerts?status=all").json()["alerts"]
                if a["id"] == alert["id"]
            )
            action = next(a for a in entry["actions"] if a["id"] == halt["id"])
            return (
                action if action["status"] == "executed" and action["result"] != "running" else None
            )

        ran = until(executed, "the approved halt to run")
    assert ran["decided_by"] == "alice"
    assert ran["executed_at"] >= ran["decided_at"]
    flag = orjson.loads((data_dir / "kill_switch.flag").read_bytes())
    assert flag["reason"] == "operator"
    assert "approved by alice" in flag["who"]
    assert ran["outcome"]["validated"] is False  # the window is still open


def _last_step(api: httpx.Client) -> int:
    try:
        status = api.get("/api/status").json()
    except httpx.TransportError:
        return 0
    return int(status.get("last_step") or 0)


def test_operator_serve_alone_takes_alerts_and_halts_this_directory_once_approved(
    tmp_path: Path,
) -> None:
    """`bastion operator serve` without a run: the intake, the approvals, the flag it raises."""
    data_dir = tmp_path / "data"
    port = free_port()
    env = clean_env(
        data_dir,
        BASTION_CONSOLE_TOKEN="console-token-0123456789abcdef",
        BASTION_CONSOLE_NAMED_TOKENS=orjson.dumps({"alice": ALICE}).decode(),
        BASTION_OPERATOR_WEBHOOK_SECRET=SECRET,
        BASTION_OPERATOR_POLL_SECONDS="0.1",
    )
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "bastion", "operator", "serve", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    api = httpx.Client(
        base_url=base, headers={"Authorization": "Bearer console-token-0123456789abcdef"}
    )
    try:
        wait_for(f"{base}/healthz", proc)
        body = {
            "version": "4",
            "status": "firing",
            "receiver": "bastion-console",
            "alerts": [
                {
                    "status": "firing",
                    "labels": {"alertname": "BastionBreakerOpen", "severity": "page"},
                    "annotations": {"summary": "the deribit breaker is open"},
                    "startsAt": "2026-12-03T09:00:00Z",
                    "endsAt": "0001-01-01T00:00:00Z",
                    "fingerprint": "0123456789abcdef",
                }
            ],
        }
        posted = httpx.post(
            f"{base}/api/alerts/alertmanager",
            json=body,
            headers={"Authorization": f"Bearer {SECRET}"},
        )
        assert posted.status_code == 200, posted.text

        def proposed() -> dict[str, Any] | None:
            alerts = api.get("/api/alerts").json()["alerts"]
            actions = alerts[0]["actions"] if alerts else []
            return next((a for a in actions if a["action"] == "halt"), None)

        halt = until(proposed, "the operator to propose a halt")
        assert not (data_dir / "kill_switch.flag").exists()
        decided = httpx.post(
            f"{base}/api/approvals/{halt['approval_id']}",
            json={"decision": "approve"},
            headers={"Authorization": f"Bearer {ALICE}"},
        )
        assert decided.status_code == 200, decided.text
        until((data_dir / "kill_switch.flag").exists, "the approved halt to run")
        flag = orjson.loads((data_dir / "kill_switch.flag").read_bytes())
        assert (flag["reason"], flag["who"]) == ("operator", "operator agent, approved by alice")
    finally:
        api.close()
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=PATIENCE_S)
        finally:
            if proc.poll() is None:
                proc.kill()
            log.close()
    assert proc.returncode == 0, (tmp_path / "serve.log").read_text()
