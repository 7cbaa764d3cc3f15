"""``bastion status``'s picture of a live run: trading state, phase, progress, breakers, alerts.

The report is the real StatusService's over a runtime status; the alerts are the shape the
in-process evaluators publish (``Alert.to_payload()``), with hostile text in them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bastion.cli import status as cli_status
from bastion.clock import SimClock
from bastion.ops.status import StatusService, firing_alerts, run_progress
from bastion.status import RuntimeStatus
from bastion.telemetry.alert import Alert, Severity

BREAKER = {"dependency": "exchange", "layer": "exchange", "state": "open", "failures": 0,
           "opened_because": "5 timeouts in 60 s"}  # fmt: skip


def _report(tmp_path: Path, **runtime: Any) -> dict[str, Any]:
    live = RuntimeStatus(
        run_id="r1", agent="seller 1", currency="BTC", dry_run=False, state="running",
        last_step=25, last_outcome="ok", equity=10.0, **runtime,
    )  # fmt: skip
    service = StatusService(
        data_dir=tmp_path, clock=SimClock(), halt_state=lambda: None, breakers=lambda: [BREAKER]
    )
    return service.report(live.to_dict())


def _shown(data: dict[str, Any]) -> str:
    with cli_status.out.capture() as captured:
        cli_status._render(data)
    return captured.get()


def test_a_bounded_run_shows_state_phase_progress_and_breakers(tmp_path: Path) -> None:
    data = _report(tmp_path, phase="deciding", max_steps=100)
    text = _shown(data)
    assert "Trading state: active; phase deciding" in text
    assert "Progress: 25/100 steps (25%)" in text  # not a terminal: plain text
    assert "exchange" in text
    assert "5 timeouts in 60 s" in text
    assert "Firing alerts: none" in text


def test_in_a_terminal_the_progress_is_a_bar(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli_status.out, "_force_terminal", True)
    text = _shown(_report(tmp_path, phase="waiting", max_steps=100))
    assert "25/100 steps (25%)" in text
    assert "━" in text  # Rich's bar
    assert "Progress: 25/100" not in text


def test_an_unbounded_run_has_no_progress(tmp_path: Path) -> None:
    data = _report(tmp_path, phase="waiting")
    assert run_progress(data) is None
    assert "steps (" not in _shown(data)


def test_firing_alerts_are_listed_with_their_text_made_safe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli_status.out, "width", 160)  # one row per alert, to read it back
    alert = Alert(
        key="cost_per_run",
        name="BastionCostPerRunHigh",
        severity=Severity.PAGE,
        summary="cost \x1b[31m[bold]2.4x[/bold] baseline",
        since=datetime(2027, 1, 15, 8, 0, tzinfo=UTC),
    )
    data = _report(tmp_path)
    data["alerts"] = [alert.to_payload(), {**alert.to_payload(), "status": "resolved"}]
    assert len(firing_alerts(data)) == 1
    text = _shown(data)
    assert "Firing alerts (1)" in text
    assert "BastionCostPerRunHigh" in text
    assert "\\x1b[31m[bold]2.4x[/bold]" in text  # escaped, printed literally
    assert "\x1b[31m" not in text


@pytest.mark.parametrize("alerts", [None, "oops", {"firing": "no"}, [1, "x"], {"firing": []}])
def test_alerts_in_any_other_shape_read_as_none(alerts: Any) -> None:
    assert firing_alerts({"alerts": alerts}) == []
