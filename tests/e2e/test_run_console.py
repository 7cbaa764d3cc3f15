"""`bastion run` as a user runs it: a real process, its console in headless Chromium, the kill
switch from a second process, resume, and Ctrl-C."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e_support import PATIENCE_S, bastion, clean_env
from playwright.sync_api import Browser

from bastion.store import Store
from bastion.trace.record import read_trace


def _env(data_dir: Path, port: int) -> dict[str, str]:
    return clean_env(
        data_dir,
        BASTION_CONSOLE_PORT=str(port),
        BASTION_LOOP_INTERVAL_SECONDS="0.5",
        BASTION_CONSOLE_ALLOWED_HOSTS='["console.example"]',
    )


@pytest.fixture
def running(
    tmp_path: Path, free_port: int
) -> Iterator[tuple[subprocess.Popen[str], str, dict[str, str]]]:
    env = _env(tmp_path / "data", free_port)
    proc = subprocess.Popen(
        [sys.executable, "-m", "bastion", "run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    url = ""
    for line in proc.stdout:
        found = re.search(r"Console:\s+(http://\S+)", line)
        if found:
            url = found.group(1)
            break
    assert url, "bastion run printed no console URL"
    try:
        yield proc, url, env
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _status(url: str) -> dict[str, Any]:
    base, token = url.split("/?token=")
    response = httpx.get(f"{base}/api/status", headers={"Authorization": f"Bearer {token}"})
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


def _until(url: str, predicate: Any, what: str) -> dict[str, Any]:
    deadline = time.monotonic() + PATIENCE_S
    while time.monotonic() < deadline:
        status = _status(url)
        if predicate(status):
            return status
        time.sleep(0.1)
    raise AssertionError(f"gave up waiting for {what}; last status: {_status(url)}")


def _assert_served_only_by_its_names(url: str) -> None:
    """The live console answers loopback and configured names, refuses others, and hardens."""
    base = url.split("/?token=", maxsplit=1)[0]
    for host, expected in (("console.example:8787", 200), ("evil.example", 400)):
        response = httpx.get(f"{base}/metrics", headers={"Host": host})
        assert response.status_code == expected, (host, response.text)
    page = httpx.get(f"{base}/")
    assert page.status_code == 200
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]


def test_run_trade_kill_resume_and_stop(
    running: tuple[subprocess.Popen[str], str, dict[str, str]], tmp_path: Path, chromium: Browser
) -> None:
    """The agent trades, the console shows it, kill halts and cancels, resume trades, ^C stops."""
    proc, url, env = running
    traded = _until(url, lambda s: s["orders_sent"] >= 1 and s["open_orders"], "a first order")
    order = traded["open_orders"][0]
    _assert_served_only_by_its_names(url)

    page = chromium.new_page()
    page.goto(url)
    page.wait_for_selector("#state-badge.running")
    page.wait_for_selector(f"#open-orders td:text-is('{order['order_id']}')")
    assert page.locator("#halt-banner").is_hidden()
    page.wait_for_selector("#breakers td.circuit.closed:text-is('closed')")
    page.wait_for_selector("#budget-used:text-is('0 / 500,000')")
    page.screenshot(path=str(tmp_path / "console-running.png"))

    killed = bastion("kill", "--reason", "e2e drill", env=env)
    assert killed.returncode == 0, killed.stderr
    halted = _until(
        url,
        lambda s: s["state"] == "halted" and not s["open_orders"],
        "the halt to cancel resting orders",
    )
    assert halted["halt_reason"] == "e2e drill"
    page.wait_for_selector("#state-badge.halted")
    assert "e2e drill" in page.locator("#halt-reason").inner_text()
    page.screenshot(path=str(tmp_path / "console-halted.png"))

    cli_status = bastion("status", env=env)
    assert "HALTED: e2e drill" in cli_status.stdout
    assert f"Run {traded['run_id']}" in cli_status.stdout, "status reached the live console"
    sent_at_halt = halted["orders_sent"]
    later = _until(url, lambda s: s["last_step"] >= halted["last_step"] + 3, "halted steps")
    assert later["orders_sent"] == sent_at_halt, "an order was sent while halted"

    resumed = bastion("resume", "--reason", "drill over", env=env)
    assert resumed.returncode == 0, resumed.stderr
    _until(url, lambda s: s["orders_sent"] > sent_at_halt, "trading to resume")

    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=PATIENCE_S)
    assert proc.returncode == 130, output
    assert "order sent sell" in output, "the terminal narrates the orders it sends"
    assert "HALT enforced e2e drill" in output
    assert "Stopped by Ctrl-C" in output
    assert "Left resting:" in output
    assert "Traceback" not in output


def test_sigterm_stops_after_the_step_and_records_the_run(
    running: tuple[subprocess.Popen[str], str, dict[str, str]], tmp_path: Path
) -> None:
    """A service manager's SIGTERM ends the run cleanly: recorded as interrupted, trace closed."""
    proc, url, _ = running
    run_id = _until(url, lambda s: s["last_step"] >= 1, "a first step")["run_id"]
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=PATIENCE_S)
    assert proc.returncode == 128 + signal.SIGTERM, output
    assert "Stopped by SIGTERM" in output
    with Store.open(f"sqlite:///{tmp_path / 'data' / 'bastion.db'}") as store:
        run = store.runs.get(run_id)
    assert run is not None
    assert run.status == "interrupted"
    [trace] = (tmp_path / "data" / "traces").rglob(f"{run_id}.ndjson")
    assert read_trace(trace)[-1]["kind"] == "run_finished"
