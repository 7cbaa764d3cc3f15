"""The replay audit on real recorded runs: the embedded paper exchange, the real loop and trace.

Each test records a short run with ``Runner`` (rule-based seller, or the LLM seller on a
scripted model behind the real fallback chain and budget), then replays its trace with the
replayer ``bastion replay`` builds.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from bastion.agent import Context, Decision, Observation, OrderIntent
from bastion.agents.llm_seller import LLMSellerParams, market_summary
from bastion.agents.scripted import ScriptedAgent
from bastion.build import build_replay_llm, build_replayer, risk_limits
from bastion.cli import app
from bastion.clock import SimClock, WallClock
from bastion.config import Settings
from bastion.errors import ErrorCode, LLMError
from bastion.guard.halt import Halt
from bastion.llm.chain import Route
from bastion.llm.scripted import ScriptedLLM
from bastion.ops.replay import EXIT_DRIFT, EXIT_ERROR, EXIT_OK, Replayer, ReplayReport
from bastion.runner import Runner
from bastion.runtime.payloads import observation_from_payload
from bastion.simulators.llm import FakeLLMServer
from bastion.status import TradingState
from bastion.store import Store
from loopback_server import serve_on_loopback

MODEL = "gpt-4o-2024-08-06"
LLM_SETTINGS: dict[str, Any] = {
    "agent": "llm_options_seller",
    "llm_provider": "openai",
    "llm_api_key": "sk-test-replay",
    "llm_model": MODEL,
    "llm_timeout_seconds": 5,
    "llm_deadline_seconds": 10,
    "step_timeout_seconds": 60,
}
SettingsFactory = Callable[..., Settings]
RunnerFactory = Callable[..., Runner]


async def _record_seller(runner_factory: RunnerFactory, steps: int = 30) -> Path:
    runner = runner_factory(None, loop_interval_seconds=600.0)
    await runner.run(max_steps=steps)
    runner.trace.flush()
    return runner.trace.path


async def _replay(settings: Settings, path: Path) -> ReplayReport:
    return await build_replayer(settings).replay([path])


def _kinds(path: Path) -> list[str]:
    return [orjson.loads(line)["kind"] for line in path.read_bytes().splitlines()]


async def test_a_recorded_seller_run_replays_with_zero_drift(
    runner_factory: RunnerFactory, settings_factory: SettingsFactory
) -> None:
    """Every step of a rule-based run (sales, holds) decides and is judged as recorded: exit 0."""
    path = await _record_seller(runner_factory)
    assert _kinds(path).count("order_sent") >= 1  # the run traded, so intents are compared

    report = await _replay(settings_factory(loop_interval_seconds=600.0), path)

    [run] = report.runs
    assert (run.steps, run.replayed, run.matches, run.drifts) == (30, 30, 30, [])
    assert run.error is None
    assert report.exit_code == EXIT_OK
    assert "no drift" in report.to_markdown()


async def test_a_changed_target_delta_shows_the_drift_with_a_diff(
    runner_factory: RunnerFactory, settings_factory: SettingsFactory
) -> None:
    """Changing seller_target_delta makes the sales differ: drift listed, diffed, exit 3."""
    path = await _record_seller(runner_factory)

    report = await _replay(settings_factory(seller_target_delta=0.3), path)

    [run] = report.runs
    assert report.exit_code == EXIT_DRIFT
    first = run.drifts[0]
    assert first.step == 1
    assert any(d.startswith("intent 1 instrument: recorded ") for d in first.drifts)
    assert [line[:10] for line in first.diff if line[:1] in "+-" and line[1:2] == "i"] == [
        "-intent 1:",
        "+intent 1:",
    ]
    markdown = report.to_markdown()
    assert "```diff" in markdown
    assert "seller\\_target\\_delta: 0.15 -\\> 0.3" in markdown
    assert "**DRIFT** (exit 3)" in markdown


def _buy_then_both(obs: Observation, ctx: Context) -> Decision:
    """Step 1 buys the perpetual; later steps ask to add to it and to reduce it."""
    if ctx.step == 1:
        return Decision((OrderIntent("BTC-PERPETUAL", "buy", 20.0, order_type="market"),))
    return Decision(
        (
            OrderIntent("BTC-PERPETUAL", "buy", 10.0, order_type="market"),
            OrderIntent("BTC-PERPETUAL", "sell", 10.0, order_type="market", reduce_only=True),
        )
    )


async def test_steps_reviewed_under_reducing_replay_under_reducing(
    runner_factory: RunnerFactory, settings_factory: SettingsFactory
) -> None:
    """A run that went REDUCING after its first step: its flatten replays as the same orders,
    and the add and the short it was refused once flat stay refused."""
    runner = runner_factory(ScriptedAgent(_buy_then_both), loop_interval_seconds=600.0)
    await runner.loop.step()
    await Halt(flag_path=runner.settings.kill_switch_path, clock=runner.clock).trip(
        "daily_loss", who="limits", state=TradingState.REDUCING
    )
    await runner.loop.step()
    await runner.loop.step()
    runner.trace.flush()
    path = runner.trace.path
    lines = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    verdicts = [line for line in lines if line["kind"] == "risk_verdict"]
    assert [(v["status"], v.get("cap"), v.get("reducing")) for v in verdicts] == [
        ("approved", None, None),
        ("approved", None, True),  # step 2: the flatten, the agent not asked
        *[("rejected", "reduce_only", True)] * 2,
    ]

    settings = settings_factory(loop_interval_seconds=600.0)
    replayer = Replayer(
        agent_factory=lambda: ScriptedAgent(_buy_then_both), limits=risk_limits(settings)
    )
    report = await replayer.replay([path])

    [run] = report.runs
    assert (run.replayed, run.matches, run.drifts) == (3, 3, [])


async def test_tighter_risk_caps_show_as_verdict_drift(
    runner_factory: RunnerFactory, settings_factory: SettingsFactory
) -> None:
    """The current caps judge the replayed intents: a cap below the sale rejects it, a drift."""
    path = await _record_seller(runner_factory)

    report = await _replay(settings_factory(risk_max_order_amount=0.05), path)

    drift = report.runs[0].drifts[0]
    assert drift.drifts == (
        "verdict 1: recorded approved (no cap), replayed rejected (max_order_amount)",
    )


def _llm_runner(settings_factory: SettingsFactory, model: ScriptedLLM, **overrides: Any) -> Runner:
    settings = settings_factory(
        **LLM_SETTINGS, llm_cache_ttl_seconds=0, loop_interval_seconds=600.0, **overrides
    )
    return Runner(
        settings,
        clock=SimClock(start=1_800_000_000),
        console=False,
        llm_routes=[Route(model, MODEL)],
    )


def _reply(action: str, instrument: str | None = None, price: float | None = None) -> str:
    trade = action != "hold"
    return json.dumps(
        {
            "action": action,
            "instrument": instrument,
            "amount": 0.1 if trade else None,
            "limit_price": price,
            "rationale": f"{action} as scripted",
        }
    )


async def _record_llm_run(settings_factory: SettingsFactory, steps: int = 6) -> Path:
    """A run whose model answers: invalid then a sale (a repair turn), hold, a refusal that
    escalates (no cache), then holds."""
    probe = _llm_runner(settings_factory, ScriptedLLM())
    try:
        obs = await probe.observer.observe()
    finally:
        await probe.aclose()
    candidate = sorted(market_summary(obs, LLMSellerParams()).instruments)[0]
    mark = obs.tickers[candidate].mark_price
    refusal = LLMError("scripted refusal", code=ErrorCode.AUTH, dependency=f"llm x/{MODEL}")
    model = ScriptedLLM(
        ["not json", _reply("sell", candidate, mark), _reply("hold"), refusal],
        default=_reply("hold"),
    )
    runner = _llm_runner(settings_factory, model)
    try:
        await runner.run(max_steps=steps)
        runner.trace.flush()
    finally:
        await runner.aclose()
    return runner.trace.path


async def test_an_llm_run_replays_from_its_recorded_answers_with_zero_drift(
    settings_factory: SettingsFactory,
) -> None:
    """Repair turns, a sale, holds and an escalation replay from the trace alone: exit 0."""
    path = await _record_llm_run(settings_factory)
    kinds = _kinds(path)
    assert "llm_escalated" in kinds
    assert "order_sent" in kinds

    settings = settings_factory(**LLM_SETTINGS)
    report = await _replay(settings, path)

    [run] = report.runs
    assert run.error is None
    assert (run.replayed, run.matches) == (6, 6), run.drifts
    assert report.exit_code == EXIT_OK


async def test_an_llm_agent_with_changed_parameters_is_asked_another_question(
    settings_factory: SettingsFactory,
) -> None:
    """A changed target delta changes the prompt: each recorded answer is flagged, exit 3."""
    path = await _record_llm_run(settings_factory)
    settings = settings_factory(**LLM_SETTINGS, seller_target_delta=0.3)

    report = await _replay(settings, path)

    assert report.exit_code == EXIT_DRIFT
    notes = [d for drift in report.runs[0].drifts for d in drift.drifts]
    assert any("the prompt differs from the recorded one" in n for n in notes)


async def test_a_call_the_trace_has_no_answer_for_fails_loudly(
    settings_factory: SettingsFactory, tmp_path: Path
) -> None:
    """With step 1's repair answer cut out, the agent's second call is an unrecorded call."""
    path = await _record_llm_run(settings_factory)
    lines = path.read_bytes().splitlines(keepends=True)
    repair = [i for i, line in enumerate(lines) if b'"kind":"llm_call"' in line][1]
    assert b'"phase":"repair"' in lines[repair]
    cut = tmp_path / path.name
    cut.write_bytes(b"".join(lines[:repair] + lines[repair + 1 :]))
    settings = settings_factory(**LLM_SETTINGS)

    report = await _replay(settings, cut)

    drift = report.runs[0].drifts[0]
    assert drift.step == 1
    assert any("unrecorded LLM call" in d for d in drift.drifts), drift.drifts


async def test_a_corrupt_line_is_a_clear_error_and_a_torn_last_step_is_skipped(
    runner_factory: RunnerFactory, settings_factory: SettingsFactory, tmp_path: Path
) -> None:
    """A bad line mid-file names the file and line (exit 1); a torn tail only skips its step."""
    path = await _record_seller(runner_factory, steps=5)
    lines = path.read_bytes().splitlines(keepends=True)
    settings = settings_factory()

    corrupt = tmp_path / "corrupt" / path.name
    corrupt.parent.mkdir()
    corrupt.write_bytes(b"".join([*lines[:4], b'{"kind": "observ\n', *lines[5:]]))
    report = await _replay(settings, corrupt)
    assert report.exit_code == EXIT_ERROR
    assert report.runs[0].error == (
        f"{corrupt}:5 is not a trace line. Fix: restore the file from a backup."
    )

    last_step = max(i for i, line in enumerate(lines) if b'"kind":"observation"' in line)
    torn = tmp_path / "torn" / path.name
    torn.parent.mkdir()
    torn.write_bytes(b"".join(lines[: last_step + 1]) + lines[last_step + 1][:20])
    report = await _replay(settings, torn)
    [run] = report.runs
    assert (run.replayed, run.matches, report.exit_code) == (4, 4, EXIT_OK)
    assert run.skipped == {"incomplete (the trace ends inside the step)": 1}


async def test_an_observation_without_the_replay_fields_names_the_line(
    runner_factory: RunnerFactory, settings_factory: SettingsFactory, tmp_path: Path
) -> None:
    """A trace from before observations carried every field is refused with the line and fix."""
    path = await _record_seller(runner_factory, steps=2)
    old = tmp_path / path.name
    rows = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    for row in rows:
        row.pop("initial_margin", None)
    old.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))

    report = await _replay(settings_factory(), old)

    error = report.runs[0].error or ""
    assert error.startswith(f"{old}:2: the observation of step 1 lacks 'initial_margin'")
    assert "Fix:" in error
    assert report.exit_code == EXIT_ERROR


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CliRunner:
    monkeypatch.setenv("BASTION_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("BASTION_CONSOLE_PORT", "0")
    monkeypatch.setenv("BASTION_LOOP_INTERVAL_SECONDS", "0.01")
    return CliRunner()


def test_the_command_replays_today_writes_the_report_and_exits_by_outcome(
    cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`bastion replay`: 0 on no drift, 3 on drift (report written), 1 on a missing run, 2 on
    a candidate version that is not the configured agent."""
    assert cli.invoke(app, ["run", "--steps", "4"]).exit_code == 0
    report = tmp_path / "out" / "replay-report.md"

    same = cli.invoke(app, ["replay", "--date", "today", "--report", str(report)])
    assert same.exit_code == 0, same.output
    assert "4 of 4 steps replayed, 4 match, 0 drift" in same.output
    assert report.read_text().startswith("# Replay report\n")

    gate = cli.invoke(app, ["replay", "--date", "today", "--agent-version", "1.0.0"])
    assert gate.exit_code == 0, gate.output
    refused = cli.invoke(app, ["replay", "--date", "today", "--agent-version", "2.0.0"])
    assert refused.exit_code == 2
    assert "the configured agent is options_seller 1.0.0" in refused.output

    monkeypatch.setenv("BASTION_SELLER_TARGET_DELTA", "0.3")
    drift = cli.invoke(app, ["replay", "--date", "today", "--report", str(report), "--json"])
    assert drift.exit_code == 3, drift.output
    data = orjson.loads(drift.stdout)
    assert (data["exit_code"], data["drifted_steps"] >= 1) == (3, True)
    assert "```diff" in report.read_text()

    missing = cli.invoke(app, ["replay", "no-such-run"])
    assert missing.exit_code == 1
    assert "no trace for run no-such-run" in missing.output
    assert "Traceback" not in missing.output


async def test_live_mode_asks_the_configured_model_again_and_shows_model_drift(
    settings_factory: SettingsFactory,
) -> None:
    """--llm live: a model answering as recorded is no drift; one that now holds or sells is."""
    path = await _record_llm_run(settings_factory, steps=3)
    first = next(
        orjson.loads(line)
        for line in path.read_bytes().splitlines()
        if b'"kind":"observation"' in line
    )
    obs = observation_from_payload(first)
    candidate = sorted(market_summary(obs, LLMSellerParams()).instruments)[0]
    server = FakeLLMServer(
        replies=["not json", _reply("sell", candidate, obs.tickers[candidate].mark_price)],
        default_reply=_reply("hold"),
    )
    try:
        with serve_on_loopback(server.app) as url:
            settings = settings_factory(**{**LLM_SETTINGS, "llm_base_url": f"{url}/v1"})
            with Store.open(settings.resolved_store_url) as store:
                chain = build_replay_llm(settings, store, WallClock())
                try:
                    replayer = build_replayer(settings, llm="live", live_llm=chain)
                    same = await replayer.replay([path])
                    server.set_replies([_reply("hold"), _reply("sell", candidate, 0.5)])
                    drifted = await replayer.replay([path])
                finally:
                    assert chain is not None
                    await chain.aclose()
    finally:
        server.close()
    assert (same.exit_code, same.steps_replayed) == (EXIT_OK, 3), same.to_dict()
    assert drifted.exit_code == EXIT_DRIFT
    stopped, started = drifted.runs[0].drifts
    assert (stopped.step, stopped.drifts[0]) == (1, "intents: recorded 1, replayed 0")
    assert (started.step, started.drifts[0]) == (2, "intents: recorded 0, replayed 1")


async def test_an_agent_recorded_without_a_model_replays_without_one(
    runner_factory: RunnerFactory, settings_factory: SettingsFactory
) -> None:
    """ctx.llm is None in replay when it was None in the run (no llm_provider then)."""

    def decide(obs: Observation, ctx: Context) -> Decision:
        if ctx.llm is not None:
            return Decision(rationale="a model is there")
        return Decision((OrderIntent("BTC-PERPETUAL", "buy", 10.0, price=1.0),), "no model")

    runner = runner_factory(ScriptedAgent(decide))
    await runner.run(max_steps=2)
    runner.trace.flush()
    settings = settings_factory()
    replayer = Replayer(
        agent_factory=lambda: ScriptedAgent(decide),
        limits=risk_limits(settings),
        settings=settings.public_dict(),
    )

    report = await replayer.replay([runner.trace.path])

    assert (report.exit_code, report.runs[0].matches) == (EXIT_OK, 2), report.to_dict()
