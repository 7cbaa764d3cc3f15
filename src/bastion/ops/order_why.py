"""Why an order was sent: from its label back through the run's trace to the decision behind it.

Every order the loop sends carries the label ``<run_id>-<step>-<k>``: the ``k``-th approved
intent of step ``step`` of run ``run_id`` (:meth:`bastion.runtime.loop.Loop._label`). The run
id names the trace file (``traces/<day>/<run_id>.ndjson``), and the trace holds, by step
(:func:`bastion.trace.replay.stream_run`), everything that led to the send:

* the risk verdicts of the step, in review order: first the intents a person approved since
  the last step (each with its ``approval_id``), then the decision's own intents. The ``k``-th
  approved verdict is the order;
* for one of the decision's own intents, the step's ``decision`` line (``source``: the agent,
  or ``flatten`` when the loop closed positions itself while reducing) and the ``llm_call``
  lines the agent's model answered while deciding;
* for an intent a person approved, the step that asked (its ``approval_requested`` line) and
  that step's decision and answers, plus who approved it (``approval_resolved``);
* the order's own lines: the send, fills, refusals, skips, in any later step too.

:func:`explain` is the pure part, over a recorded run; :func:`explain_order` finds the trace.
The console (``GET /api/orders/{label}/why``) and ``bastion why`` both answer with
:meth:`OrderWhy.to_dict`. Text comes from the trace as it was stored, already redacted.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bastion.errors import BastionError, ErrorCode
from bastion.trace.replay import RecordedRun, RecordedStep, find_traces, stream_run

__all__ = ["OrderLabel", "OrderWhy", "explain", "explain_order", "parse_label"]

_LABEL = re.compile(
    r"(?P<run_id>[A-Za-z0-9][A-Za-z0-9._-]{0,127})-(?P<step>\d{1,9})-(?P<k>\d{1,4})"
)
_ANSWER_KEYS = (
    "kind", "ts", "provider", "model", "tier", "phase", "input_class", "text", "tool_calls",
    "tokens_in", "tokens_out", "usd", "latency_s", "finish_reason", "cache_age_s", "reason",
)  # fmt: skip
_ORDER_KEYS = (
    "kind", "ts", "step", "stage", "order_id", "order_state", "direction", "amount",
    "filled_amount", "price", "average_price", "reason", "detail", "error",
)  # fmt: skip
_INTENT_MATCH = ("instrument", "direction", "amount", "order_type", "reduce_only")


@dataclass(frozen=True, slots=True)
class OrderLabel:
    """A loop order's label read back: its run, its step and its place among the step's sends."""

    run_id: str
    step: int
    index: int

    @property
    def label(self) -> str:
        return f"{self.run_id}-{self.step}-{self.index}"


@dataclass(frozen=True, slots=True)
class OrderWhy:
    """One order's story, decision first. Any part the trace lacks is None (or empty)."""

    label: str
    run_id: str
    step: int
    agent: str
    verdict: Mapping[str, Any]
    decision: Mapping[str, Any] | None = None
    answers: list[Mapping[str, Any]] = field(default_factory=list)
    approval: Mapping[str, Any] | None = None
    orders: list[Mapping[str, Any]] = field(default_factory=list)
    trace: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of ``GET /api/orders/{label}/why`` and ``bastion why --json``."""
        return {
            "label": self.label,
            "run_id": self.run_id,
            "step": self.step,
            "agent": self.agent,
            "decision": dict(self.decision) if self.decision is not None else None,
            "answers": [dict(a) for a in self.answers],
            "verdict": dict(self.verdict),
            "approval": dict(self.approval) if self.approval is not None else None,
            "orders": [dict(o) for o in self.orders],
            "trace": self.trace,
        }


def parse_label(label: str) -> OrderLabel:
    """``<run_id>-<step>-<k>`` read back; anything else raises ``bad_request`` saying the shape."""
    match = _LABEL.fullmatch(label)
    if match is None:
        raise BastionError(
            f"{label[:80]!r} is not an order label of a run: expected <run_id>-<step>-<k> "
            "(such as 20261203T084500-1a2b3c4d-12-0). Fix: copy the label from the console's "
            "open orders or the order's trace line.",
            code=ErrorCode.BAD_REQUEST,
        )
    return OrderLabel(match["run_id"], int(match["step"]), int(match["k"]))


def explain_order(traces_dir: Path, label: str) -> OrderWhy:
    """The story of the order labelled ``label``, read from its run's trace under ``traces_dir``.

    Raises ``bad_request`` for a malformed label and ``not_found`` when the run has no trace or
    the trace has no such order (:func:`explain`).
    """
    parsed = parse_label(label)
    paths = find_traces(traces_dir, day=None, run_ids=[parsed.run_id])
    return explain(stream_run(paths[-1]), parsed)


def explain(run: RecordedRun, label: OrderLabel) -> OrderWhy:
    """The story of ``label`` in ``run``: one pass over its steps, holding only what it needs."""
    target: RecordedStep | None = None
    asked_in: dict[str, RecordedStep] = {}
    lines: list[Mapping[str, Any]] = []
    for step in run.steps:
        for line in step.approvals:
            if line.get("kind") == "approval_requested":
                asked_in[str(line.get("approval_id"))] = step
        if target is None and step.step == label.step:
            target = step
        if target is not None:
            lines.extend(o for o in step.orders if o.get("label") == label.label)
    if target is None:
        raise _missing(run, f"has no step {label.step}")
    approved = [v for v in target.verdicts if v.get("status") == "approved"]
    if label.index >= len(approved):
        raise _missing(
            run, f"approved {len(approved)} order(s) at step {label.step}, not #{label.index}"
        )
    verdict = approved[label.index]
    why = OrderWhy(
        label=label.label,
        run_id=run.run_id,
        step=label.step,
        agent=run.agent,
        verdict=_without_envelope(verdict),
        orders=[_pick(o, _ORDER_KEYS) for o in lines],
        trace=run.path.name,
    )
    approval_id = verdict.get("approval_id")
    if approval_id is None:
        own = [v for v in target.verdicts if v.get("approval_id") is None]
        return _with_decision(why, target, own.index(verdict), verdict)
    asked = asked_in.get(str(approval_id))
    resolved = next(
        (
            o
            for o in target.approvals
            if o.get("kind") == "approval_resolved" and o.get("approval_id") == approval_id
        ),
        None,
    )
    approval = {
        "approval_id": approval_id,
        "status": resolved.get("status") if resolved is not None else None,
        "asked_at_step": asked.step if asked is not None else None,
        "decided_by": resolved.get("decided_by") if resolved is not None else None,
    }
    why = _replace(why, approval=approval)
    if asked is None:
        return why
    index = _matching_intent(asked, verdict)
    return _with_decision(why, asked, index, verdict) if index is not None else why


def _with_decision(
    why: OrderWhy, step: RecordedStep, index: int, verdict: Mapping[str, Any]
) -> OrderWhy:
    """``why`` with the decision of ``step`` (its ``index``-th intent) and the step's answers."""
    decision = step.decision
    if decision is None:
        return why
    intents = decision.get("intents") or []
    intent = intents[index] if 0 <= index < len(intents) else None
    told = {
        "step": step.step,
        "ts": decision.get("ts"),
        "source": str(decision.get("source") or "agent"),
        "rationale": decision.get("rationale"),
        "intent": intent,
        "intent_index": index,
        "intents": len(intents),
    }
    return _replace(why, decision=told, answers=[_pick(a, _ANSWER_KEYS) for a in step.answers])


def _matching_intent(step: RecordedStep, verdict: Mapping[str, Any]) -> int | None:
    """Which of ``step``'s own intents asked for a person and is the order ``verdict`` approved."""
    own = [v for v in step.verdicts if v.get("approval_id") is None]
    for index, candidate in enumerate(own):
        if candidate.get("status") == "needs_approval" and all(
            candidate.get(k) == verdict.get(k) for k in _INTENT_MATCH
        ):
            return index
    return None


def _replace(why: OrderWhy, **changes: Any) -> OrderWhy:
    data = {name: getattr(why, name) for name in OrderWhy.__slots__}
    data.update(changes)
    return OrderWhy(**data)


def _without_envelope(line: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in line.items() if k not in {"seq", "run_id", "kind"}}


def _pick(line: Mapping[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: line[k] for k in keys if k in line}


def _missing(run: RecordedRun, what: str) -> BastionError:
    return BastionError(
        f"run {run.run_id} {what}, so no order has that label in {run.path.name}. Fix: copy "
        "the label from the console's open orders or an order line of the trace.",
        code=ErrorCode.NOT_FOUND,
    )
