"""deploy/alertmanager/alertmanager.yml: amtool accepts it and routes every alert to the intake."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from loopback_server import serve_on_loopback
from prometheus_tools import DEPLOY, free_port, run, serving, tool

CONFIG = DEPLOY / "alertmanager" / "alertmanager.yml"


def test_amtool_check_config_passes() -> None:
    """Alertmanager 0.25 loads it: one receiver, the route and both inhibit rules."""
    done = run("amtool", "check-config", CONFIG)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout
    assert " - 1 receivers" in done.stdout
    assert " - 2 inhibit rules" in done.stdout


@pytest.mark.parametrize(
    "labels",
    [
        ["alertname=BastionKillSwitchActive", "severity=page"],
        ["alertname=BastionStepErrorBudgetBurn", "severity=ticket", "slo=step-completion"],
        ["alertname=SomethingElse"],
    ],
)
def test_every_alert_reaches_the_console(labels: list[str]) -> None:
    """Pages, tickets and anything unlabelled all route to the console's webhook receiver."""
    done = run("amtool", "config", "routes", "test", f"--config.file={CONFIG}", *labels)
    assert (done.returncode, done.stdout.strip()) == (0, "bastion-console")


def test_the_webhook_posts_to_the_intake_with_a_token_from_a_file() -> None:
    """The URL is the console's intake; the bearer token is read from a file, never inline."""
    text = CONFIG.read_text()
    assert "url: http://127.0.0.1:8787/api/alerts/alertmanager\n" in text
    assert "send_resolved: true\n" in text
    assert re.search(r"^\s+type: Bearer\n\s+credentials_file: console-token$", text, re.M)
    assert not re.search(r"^\s*credentials\s*:", text, re.M)


def test_a_broken_config_makes_amtool_fail(tmp_path: Path) -> None:
    """The check can fail: a route to a receiver that does not exist is refused."""
    broken = tmp_path / "alertmanager.yml"
    broken.write_text(
        CONFIG.read_text().replace("  receiver: bastion-console\n", "  receiver: x\n", 1)
    )
    done = run("amtool", "check-config", broken)
    assert done.returncode != 0
    assert 'undefined receiver "x"' in done.stdout + done.stderr


class Intake:
    """A stand-in for the console's intake: records each webhook's auth header and body."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.arrived = threading.Event()

    async def receive(self, request: Request) -> Response:
        self.received.append((request.headers.get("authorization", ""), await request.json()))
        self.arrived.set()
        return Response(status_code=200)


@contextmanager
def _alertmanager(config: Path) -> Iterator[str]:
    """Debian's Alertmanager on ``config``, on a free loopback port, clustering off."""
    tool("amtool")  # the same package; fails with the install command when it is missing
    binary = os.environ.get("SYSTEM_PACKAGES_ALERTMANAGER", "/usr/bin/prometheus-alertmanager")
    url = f"http://127.0.0.1:{free_port()}"
    argv = [
        binary,
        f"--config.file={config}",
        f"--storage.path={config.parent / 'data'}",
        f"--web.listen-address={url.removeprefix('http://')}",
        "--cluster.listen-address=",
        "--log.level=warn",
    ]
    with serving(argv, url, quiet=False):
        yield url


def test_alertmanager_posts_a_page_to_the_intake_with_the_token_from_the_file(
    tmp_path: Path,
) -> None:
    """The shipped auth works: the token file beside the config (not the cwd) is the bearer."""
    intake = Intake()
    app = Starlette(routes=[Route("/api/alerts/alertmanager", intake.receive, methods=["POST"])])
    with serve_on_loopback(app) as intake_url:
        config = tmp_path / "etc" / "alertmanager.yml"  # the cwd is tmp_path: not beside it
        config.parent.mkdir()
        config.write_text(
            CONFIG.read_text()
            .replace("http://127.0.0.1:8787", intake_url)
            .replace("group_wait: 10s", "group_wait: 0s")
        )
        (config.parent / "console-token").write_text("token-from-the-file\n")
        with _alertmanager(config) as url:
            alert = {
                "labels": {"alertname": "BastionKillSwitchActive", "severity": "page"},
                "annotations": {"summary": "Bastion is halted"},
            }
            posted = httpx.post(f"{url}/api/v2/alerts", json=[alert], timeout=5)
            assert posted.status_code == 200, posted.text
            assert intake.arrived.wait(timeout=15), "Alertmanager never called the intake"
    auth, body = intake.received[0]
    assert auth == "Bearer token-from-the-file"
    assert (body["version"], body["status"], body["receiver"]) == ("4", "firing", "bastion-console")
    assert body["groupLabels"] == {"alertname": "BastionKillSwitchActive", "severity": "page"}
    assert body["alerts"][0]["annotations"] == {"summary": "Bastion is halted"}
