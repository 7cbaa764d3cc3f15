"""deploy/alertmanager/alertmanager.yml: amtool accepts it and routes every alert to the intake."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from prometheus_tools import DEPLOY, run

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
