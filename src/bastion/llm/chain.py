"""The fallback chain an agent calls as ``ctx.llm``: budget first, then models, cache, a person.

One question runs down the chain until something answers::

    frontier model → smaller model(s) → last good answer (TTL) → human escalation

Each model is asked through :meth:`Resilience.call <bastion.resilience.call.Resilience.call>`
(layer ``llm``, one breaker per provider/model, so a frontier model that keeps failing stops
being asked while the smaller one still is), and *every attempt*, retries included, is

1. **priced and admitted**: input tokens are estimated from the messages, schema and tools,
   output tokens are the ``max_tokens`` asked for, both priced with the
   :class:`~bastion.llm.pricing.PriceBook`; :meth:`Budget.reserve
   <bastion.guard.budget.Budget.reserve>` (the :class:`Admission`) holds that estimate or raises
   :class:`~bastion.errors.BudgetExhausted`, and then the request is not sent. A budget
   refusal ends the question (it is not a model failure to fall back from), except a
   per-request limit, which a cheaper model further down the chain may fit;
2. **settled** for what it may have cost: an answer's own token counts, priced at the model
   that answered; a refusal or server error nothing (released); a request cut off by a timeout
   or a cancellation its estimated prompt; a 200 we could not read (or any failure we cannot
   classify) the whole estimate, since the provider billed it.

Every answer is recorded (``llm_call`` trace line with the text, metrics by model) and the
model that answered is compared with the pinned one: a silent swap is logged and flagged in
the trace. When every model fails, the last good answer to the same ``input_class`` stands in
if it is younger than the cache TTL; otherwise an approvals-queue entry asks a person, and the
agent gets :class:`~bastion.llm.base.Escalated` rather than an exception.

Each request sent (each attempt) is a ``chat <model>`` span (kind CLIENT) on the runtime's
tracer (the one :class:`~bastion.resilience.call.Resilience` holds), a child of the model's
call span, with the GenAI attributes :mod:`bastion.telemetry.tracing` lists (semantic
conventions v1.37.0): operation, provider, request and response model, ``max_tokens``, input and
output tokens, the finish reason, and ``error.type`` on a failure. No prompt or answer text goes
on a span; the ``llm_call`` trace line keeps them.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from bastion.clock import Clock
from bastion.errors import BastionError, BudgetExhausted, ErrorCode
from bastion.events import EventKind, Journal
from bastion.llm.base import LLM
from bastion.llm.pricing import Cost, PriceBook, snapshot_base
from bastion.llm.sdk import invalid_response
from bastion.messages import (
    Completion,
    Escalated,
    JsonSchema,
    Message,
    Tier,
    Tool,
    Usage,
    estimate_input_tokens,
    prompt_digest,
)
from bastion.resilience.call import Resilience
from bastion.telemetry.metrics import Metrics
from bastion.telemetry.tracing import provider_name

__all__ = ["FallbackChain", "Route"]

_log = logging.getLogger(__name__)
_TRACE_TEXT_CHARS = 16_000


@dataclass(frozen=True, slots=True)
class Route:
    """One link of the chain: a provider adapter and the exact model id to ask it for."""

    llm: LLM
    model: str

    @property
    def dependency(self) -> str:
        """The name its calls, breaker and metrics carry: ``llm openai/gpt-4o-2024-08-06``."""
        return f"llm {self.llm.provider}/{self.model}"


class Hold(Protocol):
    """A reservation of budget for one request: commit what it cost, or release it."""

    @property
    def estimate(self) -> Cost: ...

    async def commit(
        self, actual: Cost, *, tokens_in: int = 0, tokens_out: int = 0, model: str | None = None
    ) -> None: ...

    async def release(self) -> None: ...


class Admission(Protocol):
    """What admits a request before it is sent: the budget (:class:`bastion.guard.budget.Budget`).

    ``reserve`` holds ``estimate`` or raises :class:`~bastion.errors.BudgetExhausted`.
    """

    async def reserve(
        self,
        estimate: Cost,
        *,
        run_id: str | None = None,
        workflow: str | None = None,
        model: str = "",
        operation: str | None = None,
        phase: str | None = None,
    ) -> Hold: ...


class EscalationQueue(Protocol):
    """Where a question no model could answer goes: the approvals queue."""

    async def request(
        self,
        kind: str,
        subject: Mapping[str, Any],
        reason: str,
        *,
        run_id: str | None = None,
        ttl_seconds: float | None = None,
    ) -> Any: ...

    async def get(self, approval_id: str) -> Any: ...


@dataclass(slots=True)
class _Question:
    messages: Sequence[Message]
    input_class: str
    tools: Sequence[Tool] | None
    response_format: JsonSchema | None
    max_tokens: int
    phase: str | None


class FallbackChain:
    """Budget-admitted, breaker-guarded completions with fallbacks (the ``GuardedLLM``)."""

    def __init__(
        self,
        routes: Sequence[Route],
        *,
        resilience: Resilience,
        prices: PriceBook,
        clock: Clock,
        budget: Admission | None = None,
        escalations: EscalationQueue | None = None,
        timeout: float = 120.0,
        deadline: float | None = None,
        max_tokens: int = 1024,
        cache_ttl: float = 900.0,
        escalation_ttl: float | None = None,
        metrics: Metrics | None = None,
        journal: Journal | None = None,
        run_id: str | None = None,
        workflow: str | None = None,
    ) -> None:
        """``deadline`` bounds one model's call with its retries (default: ``timeout``)."""
        self.routes = tuple(routes)
        self.resilience = resilience
        self.prices = prices
        self.clock = clock
        self.budget = budget
        self.escalations = escalations
        self.timeout = timeout
        self.deadline = deadline or timeout
        self.max_tokens = max_tokens
        self.cache_ttl = cache_ttl
        self.escalation_ttl = escalation_ttl
        self.metrics = metrics
        self.journal = journal
        self.run_id = run_id
        self.workflow = workflow
        self._cache: dict[str, tuple[float, Completion]] = {}
        self._escalations: dict[str, str] = {}

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
        """The first answer down the chain; raises only :class:`BudgetExhausted`."""
        question = _Question(
            messages, input_class, tools, response_format, max_tokens or self.max_tokens, phase
        )
        failures: list[BastionError] = []
        refusals: list[BudgetExhausted] = []
        for index, route in enumerate(self.routes):
            try:
                completion = await self._ask(route, question)
            except BudgetExhausted as refused:
                if refused.scope != "request":
                    raise  # the budget is gone: no model may be asked
                refusals.append(refused)  # too dear for one call: a cheaper model may fit
                self._fell_back(route, refused, index)
                continue
            except BastionError as error:
                failures.append(error)
                self._fell_back(route, error, index)
                continue
            tier: Tier = "primary" if index == 0 else "fallback"
            answer = replace(completion, tier=tier)
            self._answered(route, question, answer)
            if self.cache_ttl > 0:
                self._cache[input_class] = (self.clock.monotonic(), answer)
            return answer
        if refusals and not failures:
            raise refusals[-1]  # no model is cheap enough: nothing failed, nothing to escalate
        cached = self._cached(question)
        if cached is not None:
            return cached
        return await self._escalate(question, failures)

    async def aclose(self) -> None:
        """Close every adapter once."""
        for llm in {id(route.llm): route.llm for route in self.routes}.values():
            await llm.aclose()

    # -- one model -------------------------------------------------------------------------
    async def _ask(self, route: Route, question: _Question) -> Completion:
        """One model through the choke point; every attempt, retries included, is admitted."""
        estimate_in = estimate_input_tokens(question.messages, extra=_extra(question))
        return await self.resilience.call(
            route.dependency,
            lambda: self._attempt(route, question, estimate_in),
            layer="llm",
            timeout=self.timeout,
            deadline=self.deadline,
        )

    async def _attempt(self, route: Route, question: _Question, estimate_in: int) -> Completion:
        """Reserve, ask, settle: one request, billed whatever becomes of it."""
        estimate = Cost(
            estimate_in + question.max_tokens,
            self.prices.cost_usd(route.model, estimate_in, question.max_tokens),
        )
        reservation = await self._reserve(route, question, estimate)
        try:
            completion = await self._request(route, question)
            model = completion.model or route.model
            usage = completion.usage
            actual = Cost(
                usage.total, self.prices.cost_usd(model, *_tokens(usage, route.dependency))
            )
        except asyncio.CancelledError:  # our timeout, the step's, or shutdown
            if reservation is not None:
                await asyncio.shield(self._bill_input(reservation, route, estimate_in))
            raise
        except Exception as exc:
            if reservation is not None:
                await self._settle_failure(reservation, exc, route, estimate_in)
            raise
        if reservation is not None:
            await reservation.commit(
                actual, tokens_in=usage.input_tokens, tokens_out=usage.output_tokens, model=model
            )
        return replace(completion, model=model, usd=actual.usd)

    async def _request(self, route: Route, question: _Question) -> Completion:
        """The adapter's one request, as a ``chat <model>`` span."""
        with self.resilience.tracer.start_as_current_span(
            f"chat {route.model}",
            kind=SpanKind.CLIENT,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": provider_name(route.llm.provider),
                "gen_ai.request.model": route.model,
                "gen_ai.request.max_tokens": question.max_tokens,
            },
            record_exception=False,  # recorded below, with error.type, once
            set_status_on_exception=False,
        ) as span:
            try:
                completion = await route.llm.complete(
                    question.messages,
                    model=route.model,
                    tools=question.tools,
                    response_format=question.response_format,
                    max_tokens=question.max_tokens,
                    timeout=self.timeout,
                )
            except BaseException as exc:
                if span.is_recording():
                    _request_failed(span, exc)
                raise
            if span.is_recording():
                _request_answered(span, completion, route.model)
            return completion

    async def _reserve(self, route: Route, question: _Question, estimate: Cost) -> Hold | None:
        if self.budget is None:
            return None
        return await self.budget.reserve(
            estimate,
            run_id=self.run_id,
            workflow=self.workflow,
            model=route.model,
            operation=question.input_class,
            phase=question.phase,
        )

    async def _settle_failure(
        self, reservation: Hold, exc: Exception, route: Route, estimate_in: int
    ) -> None:
        """What a failed request may have cost: nothing, its prompt, or all of it.

        Refusals (429, 4xx, auth) and server errors are not billed; a request whose answer was
        lost in time may have had its prompt processed; a 200 that we could not read (or any
        failure we cannot classify) was billed in full, so the whole estimate is kept.
        """
        code = exc.code if isinstance(exc, BastionError) else ErrorCode.UNKNOWN
        if code is ErrorCode.TIMEOUT:
            await self._bill_input(reservation, route, estimate_in)
        elif code in (ErrorCode.INVALID_RESPONSE, ErrorCode.UNKNOWN):
            estimate = reservation.estimate
            await reservation.commit(estimate, tokens_in=estimate_in, model=route.model)
        else:
            await reservation.release()

    async def _bill_input(self, reservation: Hold, route: Route, estimate_in: int) -> None:
        usd = self.prices.cost_usd(route.model, estimate_in, 0)
        await reservation.commit(Cost(estimate_in, usd), tokens_in=estimate_in, model=route.model)

    # -- what happened ---------------------------------------------------------------------
    def _answered(self, route: Route, question: _Question, answer: Completion) -> None:
        swapped = answer.model != route.model and snapshot_base(answer.model) != route.model
        if swapped:
            _log.warning(
                "%s answered as model %r, not the pinned %r",
                route.dependency,
                answer.model,
                route.model,
            )
        metrics = self.metrics
        if metrics is not None:
            usage = answer.usage
            metrics.llm_tokens.labels(model=answer.model, type="input").inc(usage.input_tokens)
            metrics.llm_tokens.labels(model=answer.model, type="output").inc(usage.output_tokens)
            metrics.llm_cost.labels(model=answer.model).inc(answer.usd)
            metrics.llm_latency.labels(model=answer.model).observe(answer.latency)
            metrics.llm_answers.labels(tier=answer.tier).inc()
        self._emit(
            EventKind.LLM_CALL,
            {
                **_call_record(answer, question),
                "requested_model": route.model,
                "model_swapped": swapped,
            },
        )

    def _fell_back(self, route: Route, error: BastionError, index: int) -> None:
        following = self.routes[index + 1].dependency if index + 1 < len(self.routes) else None
        self._emit(
            EventKind.LLM_FALLBACK,
            {
                "from": route.dependency,
                "to": following or "cache or a person",
                "error": error.to_dict(),
            },
        )

    def _cached(self, question: _Question) -> Completion | None:
        entry = self._cache.get(question.input_class)
        if entry is None:
            return None
        at, answer = entry
        age = self.clock.monotonic() - at
        if age > self.cache_ttl:
            return None
        cached = replace(answer, tier="cache", usage=Usage(0, 0), usd=0.0, latency=0.0)
        if self.metrics is not None:
            self.metrics.llm_answers.labels(tier="cache").inc()
        self._emit(
            EventKind.LLM_CALL,
            {**_call_record(cached, question), "cache_age_s": round(age, 3)},
        )
        return cached

    async def _escalate(self, question: _Question, failures: list[BastionError]) -> Escalated:
        last = failures[-1] if failures else None
        reason = (
            f"no model answered {question.input_class} and no cached answer is fresh; last "
            f"error: {last.message}"
            if last is not None
            else f"no model is configured for {question.input_class}"
        )
        code = last.code.value if last is not None else ErrorCode.CONFIG.value
        approval_id = await self._open_escalation(question.input_class)
        reused = bool(approval_id)
        if self.escalations is not None and not reused:
            record = await self.escalations.request(
                "llm_escalation",
                {
                    "input_class": question.input_class,
                    "phase": question.phase,
                    "models": [route.dependency for route in self.routes],
                    "errors": [error.to_dict() for error in failures],
                },
                reason,
                run_id=self.run_id,
                ttl_seconds=self.escalation_ttl,
            )
            approval_id = str(record.id)
            self._escalations[question.input_class] = approval_id
        if self.metrics is not None:
            self.metrics.llm_answers.labels(tier="escalated").inc()
        self._emit(
            EventKind.LLM_ESCALATED,
            {
                "input_class": question.input_class,
                "phase": question.phase,
                "prompt_sha256": prompt_digest(question.messages),
                "approval_id": approval_id,
                "reason": reason,
                "code": code,
                "reused": reused,
            },
        )
        return Escalated(approval_id=approval_id, reason=reason, code=code)

    async def _open_escalation(self, input_class: str) -> str:
        """The id of this question's escalation if a person has not answered it yet.

        While the models stay down the same question comes back every step; one entry per
        question, not one per step, is what a person can work through.
        """
        approval_id = self._escalations.get(input_class)
        if approval_id is None or self.escalations is None:
            return ""
        record = await self.escalations.get(approval_id)
        expires_at = getattr(record, "expires_at", None)
        still_open = getattr(record, "pending", False) and (
            expires_at is None or expires_at > self.clock.now()
        )
        if still_open:
            return approval_id
        del self._escalations[input_class]
        return ""

    def _emit(self, kind: EventKind, payload: dict[str, Any]) -> None:
        if self.journal is not None:
            self.journal.emit(kind, payload)


def _request_answered(span: Span, completion: Completion, requested: str) -> None:
    usage = completion.usage
    span.set_attributes(
        {
            "gen_ai.response.model": completion.model or requested,
            "gen_ai.usage.input_tokens": usage.input_tokens,
            "gen_ai.usage.output_tokens": usage.output_tokens,
        }
    )
    if completion.finish_reason:
        span.set_attribute("gen_ai.response.finish_reasons", [completion.finish_reason])


def _request_failed(span: Span, exc: BaseException) -> None:
    """``error.type``: the error's code (``rate_limit``, ``timeout``...), else its class."""
    if isinstance(exc, BastionError):
        kind = exc.code.value
    elif isinstance(exc, asyncio.CancelledError):
        kind = "cancelled"
    else:
        kind = type(exc).__qualname__
    span.set_attribute("error.type", kind)
    if isinstance(exc, Exception):
        span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, kind))


def _tokens(usage: Usage, dependency: str) -> tuple[int, int]:
    """Input and output tokens, refused unless the provider sent two counts we can bill."""
    counts = (usage.input_tokens, usage.output_tokens)
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in counts):
        raise invalid_response(dependency, f"token usage {counts!r} cannot be billed")
    return counts


def _extra(question: _Question) -> str:
    """The schema and tool definitions also cost input tokens."""
    parts: list[Any] = []
    if question.response_format is not None:
        parts.append(dict(question.response_format.schema))
    parts.extend(
        {"name": t.name, "description": t.description, "parameters": dict(t.parameters)}
        for t in question.tools or ()
    )
    return json.dumps(parts) if parts else ""


def _call_record(answer: Completion, question: _Question) -> dict[str, Any]:
    """One ``llm_call`` trace line: enough to audit the call and to replay its answer."""
    return {
        "provider": answer.provider,
        "model": answer.model,
        "tier": answer.tier,
        "input_class": question.input_class,
        "phase": question.phase,
        "prompt_sha256": prompt_digest(question.messages),
        "tokens_in": answer.usage.input_tokens,
        "tokens_out": answer.usage.output_tokens,
        "usd": answer.usd,
        "latency_s": round(answer.latency, 6),
        "finish_reason": answer.finish_reason,
        "text": answer.text[:_TRACE_TEXT_CHARS],
        "tool_calls": [
            {"id": c.id, "name": c.name, "arguments": c.arguments} for c in answer.tool_calls
        ],
    }
