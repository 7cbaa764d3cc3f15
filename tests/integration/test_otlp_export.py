"""Spans of a real run reach an OTLP/HTTP receiver, and one trace id ties spans, trace and logs.

The LLM options seller runs two steps on the embedded paper exchange (SimClock) against the
fake OpenAI server, with ``OTEL_EXPORTER_OTLP_ENDPOINT`` pointing at a loopback receiver that
decodes the protobuf (:mod:`otlp_receiver`). The frontier model's first request fails (500) and
is retried, so the run has a failed and an answered LLM request.
"""

from __future__ import annotations

import io
import json
import logging
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from bastion.agent import Context, Decision, Observation
from bastion.agents.llm_seller import LLMOptionsSeller, market_summary
from bastion.agents.scripted import ScriptedAgent
from bastion.cli import app
from bastion.runner import Runner
from bastion.simulators.llm import FakeLLMServer
from bastion.telemetry.logs import configure_logging
from bastion.telemetry.tracing import SCHEMA_URL
from bastion.trace.replay import read_run
from loopback_server import serve_on_loopback
from otlp_receiver import OTLPReceiver, otlp_receiver

FRONTIER = "gpt-4o-2024-08-06"
OTLP_TOKEN = "otlp-collector-token-7c1d"
RunnerFactory = Callable[..., Runner]


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[OTLPReceiver]:
    with otlp_receiver() as received:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", received.url)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"authorization=Bearer%20{OTLP_TOKEN}")
        monkeypatch.setenv("OTEL_SERVICE_NAME", "bastion-acceptance")
        monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=test")
        yield received


@pytest.fixture
def fake() -> Iterator[tuple[FakeLLMServer, str]]:
    server = FakeLLMServer(default_reply="not json")
    with serve_on_loopback(server.app) as url:
        try:
            yield server, f"{url}/v1"
        finally:
            server.close()


@pytest.fixture
def json_logs(secret: str) -> Iterator[io.StringIO]:
    """The process's logs as JSON lines in a buffer, at DEBUG (the loop's per-step line)."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    handler = configure_logging("DEBUG", [secret], fmt="json")
    buffer = io.StringIO()
    handler.setStream(buffer)  # type: ignore[attr-defined]
    yield buffer
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def _sell(instrument: str, price: float) -> str:
    return json.dumps(
        {
            "action": "sell",
            "instrument": instrument,
            "amount": 0.1,
            "limit_price": price,
            "rationale": "premium is rich",
        }
    )


async def test_a_runs_spans_trace_lines_and_log_lines_share_one_trace_id(
    runner_factory: RunnerFactory,
    fake: tuple[FakeLLMServer, str],
    receiver: OTLPReceiver,
    json_logs: io.StringIO,
    secret: str,
) -> None:
    server, base_url = fake
    runner = runner_factory(
        None,
        agent="llm_options_seller",
        llm_provider="openai",
        llm_base_url=base_url,
        llm_model=FRONTIER,
        llm_timeout_seconds=30,
        llm_deadline_seconds=60,
        step_timeout_seconds=200,
    )
    assert runner.tracing.exporting
    agent = runner.agent
    assert isinstance(agent, LLMOptionsSeller)
    obs = await runner.observer.observe()
    candidate = sorted(market_summary(obs, agent.params).instruments)[0]
    tick = obs.instruments[candidate].tick_size
    price = round(math.ceil(obs.tickers[candidate].mark_price / tick) * tick, 10)
    server.set_replies(replies_by_model={FRONTIER: [_sell(candidate, price)]})
    server.set_faults([{"kind": "status", "status": 500, "model": FRONTIER, "times": 1}])

    summary = await runner.run(max_steps=2)
    await runner.aclose()  # shuts the provider down: every span is flushed to the receiver

    assert summary.status == "completed"
    # -- the span tree of step 1 ------------------------------------------------------------
    (run,) = receiver.named("bastion.run")
    assert run.parent_span_id == ""
    (invoke,) = receiver.named("invoke_agent llm_options_seller")
    assert invoke.parent_span_id == run.span_id
    assert invoke.attributes["gen_ai.operation.name"] == "invoke_agent"
    steps = {s.attributes["bastion.step"]: s for s in receiver.named("bastion.step")}
    assert set(steps) == {1, 2}
    step = steps[1]
    assert step.parent_span_id == invoke.span_id
    assert step.attributes["bastion.step.status"] == "ok"
    assert step.attributes["bastion.step.orders_sent"] == 1
    assert step.attributes["bastion.trading_state"] == "active"
    assert (
        "bastion.risk_verdict",
        {"bastion.verdict.status": "approved", "bastion.instrument": candidate},
    ) in step.events
    phases = {s.name: s for s in receiver.children(step)}
    assert set(phases) == {"bastion.observe", "bastion.decide", "bastion.review", "bastion.send"}
    observed = receiver.children(phases["bastion.observe"])
    assert observed
    assert all(s.attributes["bastion.layer"] == "exchange" for s in observed)
    assert all(s.kind == "SPAN_KIND_CLIENT" for s in observed)
    (llm_call,) = receiver.children(phases["bastion.decide"])
    assert llm_call.name == f"llm openai/{FRONTIER}"
    assert llm_call.attributes["bastion.layer"] == "llm"
    assert llm_call.attributes["bastion.outcome"] == "ok"
    assert llm_call.attributes["bastion.retries"] == 1
    (sent,) = receiver.children(phases["bastion.send"])
    assert sent.attributes["bastion.layer"] == "exchange"
    assert sent.attributes["bastion.outcome"] == "ok"
    # -- the LLM requests: GenAI semantic conventions ---------------------------------------
    failed, answered = receiver.children(llm_call)
    for request in (failed, answered):
        assert request.name == f"chat {FRONTIER}"
        assert request.kind == "SPAN_KIND_CLIENT"
        assert request.attributes["gen_ai.operation.name"] == "chat"
        assert request.attributes["gen_ai.provider.name"] == "openai"
        assert request.attributes["gen_ai.request.model"] == FRONTIER
        assert request.schema_url == SCHEMA_URL
    assert failed.attributes["error.type"] == "server"
    assert failed.status_code == "STATUS_CODE_ERROR"
    assert any(name == "exception" for name, _ in failed.events)
    assert "error.type" not in answered.attributes
    lines = _trace(runner)
    (llm_line,) = [
        line
        for line in lines
        if line["kind"] == "llm_call"
        and line.get("step") is None
        and line["seq"] < _first_seq(lines, "step_completed")
    ]
    assert answered.attributes["gen_ai.response.model"] == llm_line["model"]
    assert answered.attributes["gen_ai.usage.input_tokens"] == llm_line["tokens_in"] > 0
    assert answered.attributes["gen_ai.usage.output_tokens"] == llm_line["tokens_out"] > 0
    # -- one trace id everywhere -------------------------------------------------------------
    in_run = receiver.descendants(run)
    assert {s.trace_id for s in in_run} == {run.trace_id}
    assert len(run.trace_id) == 32
    # What the test observed before the run is outside it: roots of traces of their own.
    outside = [s for s in receiver.spans if s.trace_id != run.trace_id]
    assert outside
    assert all(s.parent_span_id == "" for s in outside)
    ids = {s.span_id for s in in_run}
    step_lines = _step_lines(lines, 1)
    assert {line["kind"] for line in step_lines} >= {
        "observation",
        "decision",
        "llm_call",
        "risk_verdict",
        "order_sent",
        "step_completed",
    }
    assert {line["trace_id"] for line in step_lines} == {run.trace_id}
    assert {line["span_id"] for line in step_lines} <= ids
    (completed,) = [line for line in step_lines if line["kind"] == "step_completed"]
    assert completed["span_id"] == step.span_id
    assert llm_line["span_id"] == phases["bastion.decide"].span_id
    logged = [json.loads(line) for line in json_logs.getvalue().splitlines()]
    (step_log,) = [
        e for e in logged if e["logger"] == "bastion.runtime.loop" and e.get("step") == 1
    ]
    assert step_log["event"].startswith("step 1 ok")
    assert step_log["level"] == "debug"
    assert step_log["run_id"] == runner.run_id
    assert (step_log["trace_id"], step_log["span_id"]) == (run.trace_id, step.span_id)
    assert int(step_log["trace_flags"], 16) & 0x01  # sampled (0x02 is W3C level 2's "random")
    assert step_log["timestamp"].endswith("Z")
    # -- the resource, and no secret in any span or log ---------------------------------------
    assert run.resource["service.name"] == "bastion-acceptance"
    assert run.resource["deployment.environment.name"] == "test"
    assert {h.get("authorization") for h in receiver.headers} == {f"Bearer {OTLP_TOKEN}"}
    for body in receiver.bodies:
        assert secret.encode() not in body
        assert OTLP_TOKEN.encode() not in body
    assert OTLP_TOKEN not in json_logs.getvalue()
    assert secret not in json_logs.getvalue()


def _trace(runner: Runner) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in runner.trace.path.read_bytes().splitlines()]


def _first_seq(lines: list[dict[str, Any]], kind: str) -> int:
    return next(line["seq"] for line in lines if line["kind"] == kind)


def _step_lines(lines: list[dict[str, Any]], step: int) -> list[dict[str, Any]]:
    """Step ``step``'s lines: those that say so, and the chain's in between (no ``step``)."""
    start = next(i for i, line in enumerate(lines) if line.get("step") == step)
    end = next(
        i
        for i, line in enumerate(lines)
        if line["kind"] == "step_completed" and line["step"] == step
    )
    return lines[start : end + 1]


async def test_without_an_endpoint_nothing_is_exported_and_steps_still_carry_trace_ids(
    runner_factory: RunnerFactory,
) -> None:
    """No OTEL_* at all: no exporter, no error; each step's lines share the run's trace id,
    and the replay still reads the trace."""
    runner = runner_factory()
    assert not runner.tracing.exporting
    summary = await runner.run(max_steps=2)
    await runner.aclose()
    assert summary.status == "completed"
    lines = _trace(runner)
    (trace_id,) = {line["trace_id"] for line in lines}
    assert len(trace_id) == 32
    step_spans = {line["span_id"] for line in lines if line["kind"] == "step_completed"}
    assert len(step_spans) == 2  # a span per step
    recorded = read_run(runner.trace.path)
    assert [step.step for step in recorded.steps] == [1, 2]


def test_a_bad_otel_variable_stops_bastion_run_before_it_starts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("BASTION_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("BASTION_CONSOLE_PORT", "0")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "sometimes")
    result = CliRunner().invoke(app, ["run", "--steps", "1"])
    assert result.exit_code == 2, result.output
    assert "OTEL_TRACES_SAMPLER" in result.output
    assert not list((tmp_path / "data").rglob("*.ndjson"))  # no run was started


async def test_an_agent_failure_and_a_halt_are_on_their_step_spans(
    runner_factory: RunnerFactory, receiver: OTLPReceiver, secret: str
) -> None:
    """Step 1's agent raises (recorded on the decide span, the step span in error); step 2
    uses the budget up, so the halt trips: an event on its step span, the halt as attributes."""
    holder: dict[str, Runner] = {}

    def decide(obs: Observation, ctx: Context) -> Decision:
        if ctx.step == 1:
            raise RuntimeError(f"agent bug near {secret}")
        holder["r"].loop.ledger.record_budget_exhausted("Daily budget exhausted (1 of 1)")
        return Decision()

    runner = holder["r"] = runner_factory(ScriptedAgent(decide))
    await runner.run(max_steps=2)
    await runner.aclose()

    steps = {s.attributes["bastion.step"]: s for s in receiver.named("bastion.step")}
    failed, halted = steps[1], steps[2]
    assert failed.status_code == "STATUS_CODE_ERROR"
    assert (failed.attributes["bastion.step.status"], failed.attributes["error.type"]) == (
        "failed",
        "failed",
    )
    (decide_span,) = [s for s in receiver.children(failed) if s.name == "bastion.decide"]
    ((name, exception),) = decide_span.events
    assert name == "exception"
    assert exception["exception.type"] == "RuntimeError"
    assert exception["exception.message"] == "agent bug near [REDACTED]"
    assert halted.attributes["bastion.step.status"] == "halted"
    assert halted.attributes["bastion.trading_state"] == "halted"
    assert (halted.attributes["bastion.halt.reason"], halted.attributes["bastion.halt.who"]) == (
        "cost_cap",
        "budget",
    )
    trips = [attrs for name, attrs in halted.events if name == "bastion.halt_tripped"]
    assert trips == [{"bastion.halt.reason": "cost_cap", "bastion.halt.who": "budget"}]
    for body in receiver.bodies:
        assert secret.encode() not in body
