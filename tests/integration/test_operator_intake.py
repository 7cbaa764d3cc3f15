"""The alert intake and the operator's safety mode, through the real console app."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from operator_support import ALICE, SECRET, TOKEN, alert, webhook, wired


async def test_a_page_is_stored_analysed_and_its_halt_waits_for_a_person(tmp_path: Path) -> None:
    """The webhook secret opens the intake; the rules propose; only the healthcheck runs."""
    async with wired(tmp_path) as w:
        answer = await w.post_alerts(webhook(alert()))
        assert answer.status_code == 200, answer.text
        assert answer.json()["received"] == 1
        await w.operator.idle()
        (entry,) = await w.alerts("firing")
        assert (entry["alertname"], entry["severity"], entry["fingerprint"]) == (
            "BastionStepErrorRateHigh",
            "page",
            "3f2c9a8b7d6e5f41",
        )
        assert entry["ends_at"] is None
        assert entry["analysis"]["source"] == "rules"
        assert entry["analysis"]["issue_type"] == "error_spike"
        assert entry["analysis"]["requires_immediate_action"] is True
        by_action = {a["action"]: a for a in entry["actions"]}
        assert set(by_action) == {"healthcheck", "halt"}
        assert by_action["healthcheck"]["status"] == "executed"
        assert by_action["healthcheck"]["approval_id"] is None
        assert by_action["halt"]["status"] == "proposed"
        await w.operator.tick()
        assert not w.halt.active(), "a proposed halt does not run before approval"
        approvals = (await w.client.get("/api/approvals")).json()["approvals"]
        (queued,) = [a for a in approvals if a["kind"] == "operator_action"]
        assert queued["id"] == by_action["halt"]["approval_id"]
        assert queued["subject"]["action"] == "halt"


async def test_an_approved_action_runs_once_and_names_who_approved_it(tmp_path: Path) -> None:
    async with wired(tmp_path) as w:
        await w.post_alerts(webhook(alert()))
        await w.operator.idle()
        (entry,) = await w.alerts()
        halt = next(a for a in entry["actions"] if a["action"] == "halt")
        w.clock.advance(30)
        await w.decide(halt["approval_id"], "approve")
        assert not w.halt.active(), "nothing runs until the operator reads the decision"
        await w.operator.tick()
        await w.operator.tick()
        state = w.halt.state()
        assert state is not None
        assert (state.reason, state.who) == ("operator", "operator agent, approved by alice")
        ran = next(a for a in (await w.alerts())[0]["actions"] if a["id"] == halt["id"])
        assert (ran["status"], ran["decided_by"]) == ("executed", "alice")
        assert ran["decided_at"] <= ran["executed_at"]
        assert ran["result"].startswith("halted (operator")
        assert len(w.store.halts.history()) == 1


async def test_a_rejected_action_never_runs(tmp_path: Path) -> None:
    async with wired(tmp_path) as w:
        await w.post_alerts(webhook(alert("BastionPositionDriftHalt")))
        await w.operator.idle()
        (entry,) = await w.alerts()
        flatten = next(a for a in entry["actions"] if a["action"] == "flatten")
        await w.decide(flatten["approval_id"], "reject")
        for _ in range(3):
            await w.operator.tick()
        rejected = next(a for a in (await w.alerts())[0]["actions"] if a["id"] == flatten["id"])
        assert (rejected["status"], rejected["decided_by"]) == ("rejected", "alice")
        assert rejected["executed_at"] is None
        assert not w.halt.active()


async def test_without_safety_mode_every_action_runs_at_once(tmp_path: Path) -> None:
    async with wired(tmp_path, safety_mode=False) as w:
        await w.post_alerts(webhook(alert()))
        await w.operator.idle()
        (entry,) = await w.alerts()
        assert {a["status"] for a in entry["actions"]} == {"executed"}
        assert {a["approval_id"] for a in entry["actions"]} == {None}
        assert w.halt.active()


async def test_a_repeat_and_the_resolve_update_the_alert_and_validate_the_action(
    tmp_path: Path,
) -> None:
    """The same fingerprint and startsAt: one row; the resolve makes the healthcheck effective."""
    async with wired(tmp_path) as w:
        await w.post_alerts(webhook(alert()))
        await w.post_alerts(webhook(alert()))  # Alertmanager's repeat
        await w.operator.idle()
        w.clock.advance(60)
        resolved = alert(status="resolved", ends_at="2026-12-03T09:01:00Z")
        answer = await w.post_alerts(webhook(resolved, status="resolved"))
        assert answer.status_code == 200, answer.text
        assert await w.alerts("firing") == []
        (entry,) = await w.alerts("resolved")
        assert entry["ends_at"] == "2026-12-03T09:01:00+00:00"
        assert len([a for a in entry["actions"] if a["action"] == "healthcheck"]) == 1
        await w.operator.tick()
        check = next(
            a for a in (await w.alerts("resolved"))[0]["actions"] if a["action"] == "healthcheck"
        )
        assert check["outcome"] == {
            "validated": True,
            "effective": True,
            "detail": "the alert resolved and health returned OK",
        }


async def test_an_action_whose_alert_keeps_firing_is_ineffective_after_the_window(
    tmp_path: Path,
) -> None:
    async with wired(tmp_path, validation_minutes=5) as w:
        w.health[0] = "FAIL"
        await w.post_alerts(webhook(alert()))
        await w.operator.idle()
        await w.operator.tick()
        check = next(a for a in (await w.alerts())[0]["actions"] if a["action"] == "healthcheck")
        assert check["outcome"]["validated"] is False
        w.clock.advance(5 * 60)
        await w.operator.tick()
        check = next(a for a in (await w.alerts())[0]["actions"] if a["action"] == "healthcheck")
        assert check["outcome"]["validated"] is True
        assert check["outcome"]["effective"] is False
        assert "did not resolve" in check["outcome"]["detail"]


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({**webhook(alert()), "version": "3"}, "body.version"),
        (webhook({**alert(), "fingerprint": "not-hex"}), "body.alerts.0.fingerprint"),
        (webhook({**alert(), "labels": {"severity": "page"}}), "body.alerts.0.labels"),
        ({**webhook(alert()), "alerts": []}, "body.alerts"),
        (webhook({**alert(), "startsAt": "yesterday"}), "body.alerts.0.startsAt"),
        ({"version": "4"}, "body.status"),
    ],
)
async def test_a_malformed_payload_is_a_422_naming_the_field(
    tmp_path: Path, body: dict[str, Any], where: str
) -> None:
    async with wired(tmp_path) as w:
        answer = await w.post_alerts(body)
        assert answer.status_code == 422, answer.text
        assert where in answer.json()["detail"]
        assert await w.alerts() == []


async def test_a_body_that_is_not_json_is_a_422(tmp_path: Path) -> None:
    async with wired(tmp_path) as w:
        answer = await w.client.post(
            "/api/alerts/alertmanager",
            content=b"{not json",
            headers={"Content-Type": "application/json"},
        )
        assert answer.status_code == 422


async def test_unknown_keys_of_newer_alertmanagers_are_ignored(tmp_path: Path) -> None:
    async with wired(tmp_path) as w:
        body = {**webhook(alert()), "notification_reason": "first notification", "routeLabels": {}}
        body["alerts"][0]["somethingNew"] = 1
        assert (await w.post_alerts(body)).status_code == 200


@pytest.mark.parametrize("token", [None, "wrong-secret-0123456789abcdef"])
async def test_the_intake_refuses_a_request_without_the_token_or_secret(
    tmp_path: Path, token: str | None
) -> None:
    """401 before the body is looked at: even a malformed one is refused as unauthorised."""
    async with wired(tmp_path) as w:
        assert (await w.post_alerts(webhook(alert()), token=token)).status_code == 401
        assert (await w.post_alerts({"nope": 1}, token=token)).status_code == 401
        assert await w.alerts() == []


@pytest.mark.parametrize("token", [TOKEN, ALICE])
async def test_the_console_tokens_open_the_intake_too(tmp_path: Path, token: str) -> None:
    async with wired(tmp_path) as w:
        assert (await w.post_alerts(webhook(alert()), token=token)).status_code == 200


async def test_the_webhook_secret_opens_only_the_intake(tmp_path: Path) -> None:
    async with wired(tmp_path) as w:
        headers = {"Authorization": f"Bearer {SECRET}"}
        for path in ("/api/alerts", "/api/operator/status", "/api/approvals"):
            assert (await w.client.get(path, headers=headers)).status_code == 401, path


async def test_a_stopped_operator_stores_but_does_not_analyse_until_started(
    tmp_path: Path,
) -> None:
    async with wired(tmp_path) as w:
        stopped = (await w.client.post("/api/operator/stop")).json()
        assert stopped["running"] is False
        await w.post_alerts(webhook(alert()))
        (entry,) = await w.alerts()
        assert (entry["analysis"], entry["actions"]) == (None, [])
        started = (await w.client.post("/api/operator/start")).json()
        assert started["running"] is True
        await w.operator.idle()
        (entry,) = await w.alerts()
        assert entry["analysis"]["issue_type"] == "error_spike"
        status = (await w.client.get("/api/operator/status")).json()
        assert status["alerts"] == {"firing": 1, "resolved": 0}
        assert status["actions"]["proposed"] == 1
        assert status["safety_mode"] is True


async def test_trigger_analyses_a_given_alert_now_and_a_stored_one_again(tmp_path: Path) -> None:
    async with wired(tmp_path) as w:
        given = alert("BastionBreakerOpen", dependency="deribit")
        answer = await w.client.post("/api/operator/trigger", json={"alert": given})
        assert answer.status_code == 200, answer.text
        entry = answer.json()["alert"]
        assert entry["analysis"]["issue_type"] == "dependency_down"
        again = await w.client.post("/api/operator/trigger", json={"alert_id": entry["id"]})
        assert again.status_code == 200
        assert len(again.json()["alert"]["actions"]) == len(entry["actions"]), "proposed once"
        missing = await w.client.post("/api/operator/trigger", json={"alert_id": "nope"})
        assert missing.status_code == 404
        neither = await w.client.post("/api/operator/trigger", json={})
        assert neither.status_code == 422
