"""The equity and per-order "why" routes and ``bastion why`` on a real recorded run.

One short run of the LLM seller on the fake OpenAI server and the embedded paper exchange
(:mod:`recorded_runs`): its first step sells through the model's answer. The console app is the
real one through ``httpx.ASGITransport``; the CLI is the real Typer app.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest
from typer.testing import CliRunner

from bastion.api.app import create_app
from bastion.cli import app as cli_app
from bastion.clock import SimClock
from bastion.guard.halt import Halt
from bastion.runner import Runner
from bastion.telemetry.metrics import Metrics
from recorded_runs import HOSTILE, RecordedRun, record_llm_sale, run_settings

TOKEN = "console-why-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> RecordedRun:
    """One run for the module: each test only reads it."""
    return asyncio.run(record_llm_sale(tmp_path_factory.mktemp("why") / "data"))


@pytest.fixture
async def client(recorded: RecordedRun, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    halt = Halt(flag_path=tmp_path / "kill.flag", clock=SimClock(), metrics=Metrics())
    app = create_app(
        status=dict,
        halt=halt,
        metrics=Metrics(),
        token=TOKEN,
        equity=recorded.equity.series,
        traces_dir=recorded.settings.traces_dir,
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
        yield c


def _lines(path: Path) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


async def test_the_routes_need_the_token(client: httpx.AsyncClient, recorded: RecordedRun) -> None:
    for path in ("/api/equity", f"/api/orders/{recorded.label}/why"):
        assert (await client.get(path)).status_code == 401, path


async def test_the_equity_series_is_the_runs_observations(
    client: httpx.AsyncClient, recorded: RecordedRun
) -> None:
    """One point per observation, P&L from the first, in the account's currency."""
    observed = [line for line in _lines(recorded.trace) if line["kind"] == "observation"]
    body = (await client.get("/api/equity", headers=AUTH)).json()
    assert body["currency"] == "BTC"
    assert [p["step"] for p in body["points"]] == list(range(1, recorded.steps + 1))
    assert [p["equity"] for p in body["points"]] == [line["equity"] for line in observed]
    assert [p["time_ms"] for p in body["points"]] == [line["time_ms"] for line in observed]
    first, last = body["points"][0], body["points"][-1]
    assert first["pnl"] == 0.0
    assert last["pnl"] == pytest.approx(last["equity"] - first["equity"])
    assert last["pnl"] != 0.0  # the sale filled and its mark moved: a real P&L


async def test_why_follows_the_order_to_its_decision_answer_and_verdict(
    client: httpx.AsyncClient, recorded: RecordedRun
) -> None:
    response = await client.get(f"/api/orders/{recorded.label}/why", headers=AUTH)
    assert response.status_code == 200, response.text
    why = response.json()
    assert (why["run_id"], why["step"], why["label"]) == (recorded.run_id, 1, recorded.label)
    decision = why["decision"]
    assert decision["source"] == "agent"
    assert decision["intent"]["direction"] == "sell"
    [answer] = why["answers"]
    assert answer["phase"] == "decide"
    assert HOSTILE in orjson.loads(answer["text"])["rationale"]  # the model's text, as stored
    verdict = why["verdict"]
    assert verdict["status"] == "approved"
    assert verdict["instrument"] == decision["intent"]["instrument"]
    assert [o["kind"] for o in why["orders"]][:1] == ["order_sent"]
    assert "order_filled" in [o["kind"] for o in why["orders"]]


@pytest.mark.parametrize(
    ("suffix", "reason"),
    [
        ("-99-0", "has no step 99"),
        ("-1-3", "approved 1 order(s) at step 1, not #3"),
        ("-2-0", "approved 0 order(s) at step 2"),
    ],
)
async def test_an_order_the_trace_lacks_is_a_404_that_says_why(
    client: httpx.AsyncClient, recorded: RecordedRun, suffix: str, reason: str
) -> None:
    response = await client.get(f"/api/orders/{recorded.run_id}{suffix}/why", headers=AUTH)
    assert response.status_code == 404
    assert reason in response.json()["detail"]


async def test_an_unknown_run_is_a_404_and_a_malformed_label_a_422(
    client: httpx.AsyncClient,
) -> None:
    unknown = await client.get("/api/orders/20270115T080000-deadbeef-1-0/why", headers=AUTH)
    assert unknown.status_code == 404
    assert "no trace for run 20270115T080000-deadbeef" in unknown.json()["detail"]
    for label in ("not-a-label", "..-1-0", "run-1-x", "x" * 200 + "-1-0"):
        malformed = await client.get(f"/api/orders/{label}/why", headers=AUTH)
        assert malformed.status_code == 422, label
        assert "expected <run_id>-<step>-<k>" in malformed.json()["detail"]


async def test_without_a_series_or_traces_the_routes_say_so(tmp_path: Path) -> None:
    halt = Halt(flag_path=tmp_path / "kill.flag", clock=SimClock(), metrics=Metrics())
    app = create_app(status=dict, halt=halt, metrics=Metrics(), token=TOKEN)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
        equity = await c.get("/api/equity", headers=AUTH)
        why = await c.get("/api/orders/r-1-0/why", headers=AUTH)
    assert (equity.status_code, why.status_code) == (503, 503)
    assert "equity=" in equity.json()["detail"]
    assert "traces_dir=" in why.json()["detail"]


def test_bastion_why_prints_the_story_and_exits_by_what_it_found(recorded: RecordedRun) -> None:
    env = {"BASTION_DATA_DIR": str(recorded.settings.data_dir)}
    cli = CliRunner()
    shown = cli.invoke(cli_app, ["why", recorded.label], env=env)
    assert shown.exit_code == 0, shown.output
    text = shown.output
    assert text.index("Decision") < text.index("LLM answer") < text.index("Risk verdict")
    assert "source agent" in text
    assert "Risk verdict: approved" in text
    assert "order_filled" in text
    as_json = cli.invoke(cli_app, ["why", recorded.label, "--json"], env=env)
    assert orjson.loads(as_json.output)["verdict"]["status"] == "approved"
    missing = cli.invoke(cli_app, ["why", f"{recorded.run_id}-99-0"], env=env)
    assert missing.exit_code == 1
    assert "has no step 99" in missing.output
    malformed = cli.invoke(cli_app, ["why", "nonsense"], env=env)
    assert malformed.exit_code == 2
    assert "expected <run_id>-<step>-<k>" in malformed.output


async def test_the_runs_status_ends_finished_with_its_step_bound(recorded: RecordedRun) -> None:
    """The loop's phase and the run's max_steps reach the status (`bastion status`'s bar)."""
    status = recorded.status
    assert (status["phase"], status["max_steps"], status["last_step"]) == ("finished", 6, 6)


async def test_a_runs_own_console_serves_its_equity_why_and_phase(tmp_path: Path) -> None:
    """The runner wires the series and the traces into the console it starts."""
    settings = run_settings(tmp_path / "data", agent="options_seller", llm_provider="none")
    async with Runner(settings, clock=SimClock(start=1_800_000_000)) as runner:
        await runner.run(max_steps=3)
        assert runner.console_url is not None
        base, token = runner.console_url.split("/?token=")
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=base, headers=headers) as c:
            equity = (await c.get("/api/equity")).json()
            status = (await c.get("/api/status")).json()
            sent = [line for line in _lines(runner.trace.path) if line["kind"] == "order_sent"]
            why = (await c.get(f"/api/orders/{sent[0]['label']}/why")).json()
    assert [p["step"] for p in equity["points"]] == [1, 2, 3]
    assert (status["phase"], status["max_steps"], status["last_step"]) == ("finished", 3, 3)
    assert why["decision"]["source"] == "agent"
    assert why["answers"] == []  # the rule-based seller asks no model
    assert why["verdict"]["status"] == "approved"
