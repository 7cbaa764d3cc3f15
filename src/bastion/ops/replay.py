"""The replay audit: does the agent still decide what it decided when the run was recorded?

Each recorded step is run again: the agent's ``decide()`` gets the observation the step's
``observation`` line records (rebuilt by :func:`~bastion.runtime.payloads.
observation_from_payload`), a :class:`~bastion.clock.SimClock` set to the line's time, and as
``ctx.llm`` either the recorded answers (:class:`RecordedLLM`, the default) or a live model
chain (to catch a model that drifted). The intents it proposes are reviewed again and compared
with the recorded decision and verdicts.

What is compared, per intent and in order: instrument, direction, amount, price, order type and
reduce-only; and each verdict's status and cap. Numbers are compared exactly: a replay on the
same code, settings and answers is deterministic, so any difference is a real one. Rationales
and reasons are text for people and are shown beside a drift, never counted as one.

Decisions made here (see ``docs/architecture.md``):

* The agent and the risk limits are the *current* ones (code and settings), not the recorded
  ones: the audit asks "would what we run now have done the same?", which is the question
  both the daily check and a deploy gate ask. Settings that differ from the recorded run's are
  listed in the report, so a verdict drift from a changed cap is explained there.
* With recorded answers, a call the trace has no answer for, a question asked in a different
  order (``input_class``), a prompt whose digest differs from the recorded one, and recorded
  answers left unused are each a drift of that step: a recorded answer to another question
  proves nothing.
* A step that failed with a coded error while the agent was asking (a budget used up) fails
  the same way in replay: after its recorded answers the replay LLM raises that error.
* Steps that did not decide (halted, the observation failed, timed out, torn off the end of
  the trace) are skipped and counted, never guessed.

The report and the exit codes are :mod:`bastion.ops.replay_report`'s (re-exported here).
"""

from __future__ import annotations

import difflib
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from bastion.agent import Agent, Context, Decision, Observation
from bastion.clock import SimClock
from bastion.errors import BastionError, ConfigError, ErrorCode
from bastion.guard.flatten import FLATTEN_SOURCE, flatten_decision
from bastion.guard.risk import RiskLimits, Verdict, review
from bastion.market import Instrument
from bastion.messages import (
    Completion,
    Escalated,
    GuardedLLM,
    JsonSchema,
    Message,
    Tier,
    Tool,
    ToolCall,
    Usage,
    prompt_digest,
)
from bastion.ops.replay_report import (
    EXIT_DRIFT,
    EXIT_ERROR,
    EXIT_OK,
    LLMMode,
    ReplayReport,
    RunReplay,
    StepDrift,
    markdown_escape,
)
from bastion.runtime.payloads import instruments_from_payload, observation_from_payload
from bastion.trace.replay import RecordedRun, RecordedStep, stream_run

__all__ = [
    "EXIT_DRIFT",
    "EXIT_ERROR",
    "EXIT_OK",
    "LLMMode",
    "Outcome",
    "RecordedLLM",
    "ReplayReport",
    "Replayer",
    "RunReplay",
    "StepDrift",
    "UnrecordedCall",
    "compare",
    "markdown_escape",
    "recorded_outcome",
    "replayed_outcome",
]

AgentFactory = Callable[[], Agent]
_INTENT_FIELDS = ("instrument", "direction", "amount", "price", "order_type", "reduce_only")
_REDACTED = "[REDACTED]"
_NOT_DECISIONS = frozenset({"data_dir", "console_port", "console_host", "store_url"})
_CODES = frozenset(code.value for code in ErrorCode)
_TIERS: frozenset[Tier] = frozenset(("primary", "fallback", "cache"))


class UnrecordedCall(BastionError):
    """The agent asked the replay LLM something the trace has no answer for."""

    default_code = ErrorCode.NOT_FOUND


class RecordedLLM:
    """``ctx.llm`` for a replay: each call gets the step's next recorded answer, or fails loudly.

    It checks what it is asked against what was recorded (the question's ``input_class`` and,
    when the trace has it, the prompt's digest) and keeps what does not match as drift notes;
    a call past the recorded answers raises :class:`UnrecordedCall` (or, for a step that failed
    with a coded error while asking, that error).
    """

    def __init__(self) -> None:
        self._answers: deque[Mapping[str, Any]] = deque()
        self._failure: Mapping[str, Any] | None = None
        self._step = 0
        self._asked = 0
        self.notes: list[str] = []

    def load(self, step: RecordedStep) -> None:
        """Serve ``step``'s answers from now on."""
        self._answers = deque(step.answers)
        self._failure = step.failure
        self._step = step.step
        self._asked = 0
        self.notes = []

    @property
    def unused(self) -> int:
        """Recorded answers of the step that no call asked for."""
        return len(self._answers)

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        input_class: str,
        tools: Sequence[Tool] | None = None,
        response_format: JsonSchema | None = None,
        max_tokens: int | None = None,
        phase: str | None = None,
    ) -> Completion | Escalated:
        """The next recorded answer of the step, as the chain returned it."""
        self._asked += 1
        if not self._answers:
            self._no_answer(input_class)
        line = self._answers.popleft()
        recorded_class = line.get("input_class")
        if recorded_class != input_class:
            raise UnrecordedCall(
                f"step {self._step}: call {self._asked} asks {input_class!r}, but the run "
                f"recorded an answer to {recorded_class!r} there",
                dependency="replay",
            )
        digest = line.get("prompt_sha256")
        if digest is not None and digest != prompt_digest(messages):
            self.notes.append(
                f"call {self._asked} ({input_class}, phase {phase}): the prompt differs from the "
                "recorded one, so its recorded answer was given to another question"
            )
        if line.get("kind") == "llm_escalated":
            return Escalated(
                approval_id=str(line.get("approval_id", "")),
                reason=str(line.get("reason", "")),
                code=str(line.get("code", "")),
            )
        return _completion(line)

    def _no_answer(self, input_class: str) -> None:
        failure = self._failure
        if failure is not None and failure.get("kind") in _CODES:
            raise BastionError(
                str(failure.get("message", "recorded failure")),
                code=ErrorCode(failure["kind"]),
                dependency=failure.get("dependency"),
            )
        raise UnrecordedCall(
            f"step {self._step}: the agent asked {input_class!r} (call {self._asked}), and the "
            f"run recorded only {self._asked - 1} answer(s) in this step",
            dependency="replay",
        )


def _completion(line: Mapping[str, Any]) -> Completion:
    calls = tuple(
        ToolCall(str(c.get("id", "")), str(c.get("name", "")), str(c.get("arguments", "")))
        for c in line.get("tool_calls") or ()
        if isinstance(c, Mapping)
    )
    recorded_tier = line.get("tier")
    tier: Tier = recorded_tier if recorded_tier in _TIERS else "primary"
    return Completion(
        text=str(line.get("text", "")),
        usage=Usage(int(line.get("tokens_in", 0)), int(line.get("tokens_out", 0))),
        model=str(line.get("model", "")),
        latency=0.0,
        provider=str(line.get("provider", "")),
        tool_calls=calls,
        finish_reason=line.get("finish_reason"),
        tier=tier,
        usd=float(line.get("usd", 0.0)),
    )


# -- comparing ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a step came to, in the terms compared: intents and verdicts, or a failure."""

    intents: tuple[Mapping[str, Any], ...] = ()
    verdicts: tuple[Mapping[str, Any], ...] | None = None
    """None when the step was not reviewed (a halt came between deciding and reviewing)."""
    failure: str | None = None
    rationale: str = ""

    def lines(self, *, with_verdicts: bool) -> list[str]:
        """One line per intent and its verdict: the text the diff is made of."""
        if self.failure is not None:
            return [f"failed: {self.failure}"]
        if not self.intents:
            return ["no intents"]
        rows = []
        for k, intent in enumerate(self.intents, start=1):
            row = f"intent {k}: " + " ".join(
                f"{name}={_show(intent.get(name))}" for name in _INTENT_FIELDS
            )
            if with_verdicts and self.verdicts is not None:
                verdict = self.verdicts[k - 1] if k - 1 < len(self.verdicts) else {}
                cap = verdict.get("cap")
                row += f" -> {verdict.get('status', 'missing')}" + (f" ({cap})" if cap else "")
            rows.append(row)
        return rows


def _show(value: Any) -> str:
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    return str(value)


def recorded_outcome(step: RecordedStep) -> Outcome:
    """The recorded step as an :class:`Outcome`."""
    if step.failure is not None:
        return Outcome(failure=str(step.failure.get("kind", "unknown")))
    decision = step.decision or {}
    intents = tuple(i for i in decision.get("intents") or () if isinstance(i, Mapping))
    reviewed = bool(step.verdicts) or not intents
    return Outcome(
        intents=intents,
        verdicts=tuple(step.verdicts) if reviewed else None,
        rationale=str(decision.get("rationale", "")),
    )


def recorded_reducing(step: RecordedStep) -> bool:
    """Whether the step was reviewed under REDUCING (only orders that shrink a position).

    The loop marks each verdict it gave under REDUCING; a step without verdicts falls back on
    the trading state its ``step_completed`` line recorded.
    """
    if step.verdicts:
        return any(v.get("reducing") is True for v in step.verdicts)
    halt = (step.completed or {}).get("halt")
    return isinstance(halt, Mapping) and halt.get("state") == "reducing"


def replayed_outcome(decision: Decision, verdicts: Sequence[Verdict]) -> Outcome:
    """A replayed decision and its verdicts as an :class:`Outcome`."""
    return Outcome(
        intents=tuple(
            {
                "instrument": i.instrument_name,
                "direction": i.direction,
                "amount": i.amount,
                "price": i.price,
                "order_type": i.order_type,
                "reduce_only": i.reduce_only,
                "reason": i.reason,
            }
            for i in decision.intents
        ),
        verdicts=tuple(v.to_dict() for v in verdicts),
        rationale=decision.rationale,
    )


def compare(recorded: Outcome, replayed: Outcome) -> list[str]:
    """What differs between two outcomes, one sentence each; empty when they match."""
    if recorded.failure is not None or replayed.failure is not None:
        if recorded.failure == replayed.failure:
            return []
        return [
            f"outcome: recorded {recorded.failure or 'a decision'}, "
            f"replayed {replayed.failure or 'a decision'}"
        ]
    drifts: list[str] = []
    if len(recorded.intents) != len(replayed.intents):
        drifts.append(
            f"intents: recorded {len(recorded.intents)}, replayed {len(replayed.intents)}"
        )
    for k, (was, now) in enumerate(zip(recorded.intents, replayed.intents, strict=False), 1):
        for name in _INTENT_FIELDS:
            if was.get(name) != now.get(name):
                drifts.append(
                    f"intent {k} {name}: recorded {_show(was.get(name))}, "
                    f"replayed {_show(now.get(name))}"
                )
    if recorded.verdicts is None or replayed.verdicts is None:
        return drifts
    for k, (was, now) in enumerate(zip(recorded.verdicts, replayed.verdicts, strict=False), 1):
        if (was.get("status"), was.get("cap")) != (now.get("status"), now.get("cap")):
            drifts.append(
                f"verdict {k}: recorded {was.get('status')} ({was.get('cap') or 'no cap'}), "
                f"replayed {now.get('status')} ({now.get('cap') or 'no cap'})"
            )
    return drifts


# -- replaying ---------------------------------------------------------------------------


class Replayer:
    """Replays recorded runs with the current agent and limits (see the module docstring).

    ``agent_factory`` builds a fresh agent per run (an agent may keep state from step to step,
    as it did when the run was recorded). ``llm`` is the live chain for ``llm="live"``; with
    ``"recorded"`` each run gets a :class:`RecordedLLM`. ``settings`` are the current public
    settings, compared with each run's recorded ones for the report.
    """

    def __init__(
        self,
        *,
        agent_factory: AgentFactory,
        limits: RiskLimits,
        llm: LLMMode = "recorded",
        live_llm: GuardedLLM | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        if llm == "live" and live_llm is None:
            raise ConfigError(
                "replay --llm live needs a configured model. Fix: set BASTION_LLM_PROVIDER "
                "and the llm_* settings, or replay with --llm recorded."
            )
        self._agent_factory = agent_factory
        self._limits = limits
        self._mode: LLMMode = llm
        self._live = live_llm
        self._settings = settings or {}

    async def replay(self, paths: Iterable[Path], *, candidate: str | None = None) -> ReplayReport:
        """Replay every trace in ``paths``; a trace that cannot be read is an error in its run."""
        report = ReplayReport(llm=self._mode, candidate=candidate)
        t0 = time.perf_counter()
        for path in paths:
            report.runs.append(await self.replay_path(path))
        report.elapsed_s = time.perf_counter() - t0
        return report

    async def replay_path(self, path: Path) -> RunReplay:
        """One trace file, read as it is replayed; reading errors are kept in the result."""
        try:
            recorded = stream_run(path)
        except (BastionError, OSError) as exc:
            return RunReplay(run_id=Path(path).stem, path=Path(path), error=_message(exc))
        return await self.replay_run(recorded)

    async def replay_run(self, run: RecordedRun) -> RunReplay:
        """Every step of ``run`` again, in order, with one fresh agent.

        A line that cannot be read, or an observation that lacks a field, ends the run's
        replay with an error naming the line; the steps before it keep their results.
        """
        agent = self._agent_factory()
        result = RunReplay(
            run_id=run.run_id,
            path=run.path,
            recorded_agent=run.agent,
            replayed_agent=f"{agent.name} {agent.version}",
            settings_changed=_settings_changed(run.settings, self._settings),
        )
        dry_run = bool(run.started.get("dry_run", False)) if run.started is not None else False
        # A run recorded without a model lent its agent no ctx.llm; its replay lends none either.
        had_llm = run.settings.get("llm_provider", "") != "none"
        state = _RunState(
            run.run_id,
            agent,
            dry_run,
            self._mode == "recorded" and had_llm,
            self._live if had_llm else None,
        )
        try:
            for step in run.steps:
                result.steps += 1
                await self._replay_step(step, state, result)
        except (BastionError, OSError) as exc:
            result.error = _message(exc)
        except _Unreadable as exc:
            result.error = (
                f"{run.path}:{exc.line}: the observation of step {exc.step} lacks {exc.missing} "
                "(a trace recorded before replay could read it). Fix: replay runs recorded by "
                "this version of Bastion or later."
            )
        return result

    async def _replay_step(self, step: RecordedStep, state: _RunState, result: RunReplay) -> None:
        if step.observation is not None:
            try:
                new = instruments_from_payload(step.observation)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise _Unreadable(step, exc) from None
            if new:
                state.instruments = {**state.instruments, **new}
        why = _not_replayable(step)
        if why is not None:
            result.skipped[why] += 1
            return
        assert step.observation is not None  # _not_replayable checked it
        try:
            obs = observation_from_payload(step.observation, state.instruments)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise _Unreadable(step, exc) from None
        recorded_llm = state.recorded_llm
        if recorded_llm is not None:
            recorded_llm.load(step)
        ctx = Context(
            run_id=state.run_id,
            step=step.step,
            clock=SimClock(start=_step_time(step.observation, obs)),
            dry_run=state.dry_run,
            llm=recorded_llm or state.live_llm,
        )
        reducing = recorded_reducing(step)
        if (step.decision or {}).get("source") == FLATTEN_SOURCE:  # the loop's, not the agent's
            flatten = flatten_decision(obs)  # the reason it gives is not compared
            replayed = replayed_outcome(flatten, review(flatten, obs, self._limits, reducing=True))
        else:
            replayed = await self._decide(state.agent, obs, ctx, reducing=reducing)
        recorded = recorded_outcome(step)
        drifts = compare(recorded, replayed)
        if recorded_llm is not None:
            drifts += recorded_llm.notes
            if recorded_llm.unused and replayed.failure is None:
                drifts.append(f"llm: {recorded_llm.unused} recorded answer(s) were not asked for")
        result.replayed += 1
        if drifts:
            result.drifts.append(_drift(step, drifts, recorded, replayed))
        else:
            result.matches += 1

    async def _decide(
        self, agent: Agent, obs: Observation, ctx: Context, *, reducing: bool
    ) -> Outcome:
        try:
            decision = await agent.decide(obs, ctx)
        except UnrecordedCall as exc:
            return Outcome(failure=f"unrecorded LLM call: {exc}")
        except BastionError as exc:
            return Outcome(failure=exc.kind)
        except Exception:  # an agent bug is an outcome, recorded as kind "agent" by the loop
            return Outcome(failure="agent")
        return replayed_outcome(decision, review(decision, obs, self._limits, reducing=reducing))


class _RunState:
    """What one run's replay carries from step to step."""

    def __init__(
        self,
        run_id: str,
        agent: Agent,
        dry_run: bool,
        recorded: bool,
        live_llm: GuardedLLM | None,
    ) -> None:
        self.run_id = run_id
        self.agent = agent
        self.dry_run = dry_run
        self.recorded_llm = RecordedLLM() if recorded else None
        self.live_llm = live_llm
        self.instruments: dict[str, Instrument] = {}  # each is recorded once per trace


class _Unreadable(Exception):
    """An observation line lacks a field replay needs (a trace from an older Bastion)."""

    def __init__(self, step: RecordedStep, exc: Exception) -> None:
        super().__init__(str(exc))
        self.line = step.first_line
        self.step = step.step
        self.missing = str(exc)


def _not_replayable(step: RecordedStep) -> str | None:
    """Why a step cannot be replayed, or None when it can."""
    if step.timed_out:
        return "timed out when recorded"
    if step.completed is None:
        return "incomplete (the trace ends inside the step)"
    if step.observation is None:
        return "no observation (halted, or observing failed)"
    if step.decision is None and step.failure is None:
        return "did not decide (halted before deciding)"
    return None


def _step_time(line: Mapping[str, Any], obs: Observation) -> float:
    """The runtime clock at the step, from the line's ``ts``; the exchange time as a fallback."""
    ts = line.get("ts")
    if isinstance(ts, str):
        try:
            return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    return obs.time_ms / 1000


def _drift(
    step: RecordedStep, drifts: list[str], recorded: Outcome, replayed: Outcome
) -> StepDrift:
    with_verdicts = recorded.verdicts is not None
    diff = difflib.unified_diff(
        recorded.lines(with_verdicts=with_verdicts),
        replayed.lines(with_verdicts=with_verdicts),
        fromfile="recorded",
        tofile="replayed",
        lineterm="",
    )
    return StepDrift(
        step=step.step,
        line=step.first_line,
        drifts=tuple(drifts),
        diff=tuple(diff),
        recorded_rationale=recorded.rationale,
        replayed_rationale=replayed.rationale,
    )


def _settings_changed(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """``name: recorded -> current`` for every setting both know that differs.

    Paths and ports differ between the machine that recorded and the one that replays and say
    nothing about decisions; they are left out, and so are secrets (masked, so not comparable).
    """
    if not recorded or not current:
        return []
    return [
        f"{name}: {recorded[name]!r} -> {current[name]!r}"
        for name in sorted(recorded.keys() & current.keys())
        if name not in _NOT_DECISIONS
        and recorded[name] != current[name]
        and _REDACTED not in (recorded[name], current[name])
    ]


def _message(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return f"{exc.filename}: {exc.strerror}. Fix: check the path and its permissions."
    return str(exc)
