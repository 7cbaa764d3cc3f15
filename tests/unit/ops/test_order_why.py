"""The per-order "why" over a trace: labels read back, the approval and flatten paths.

The trace is written by the real TraceWriter with the payload shapes the loop emits; the run
of a real agent is covered in tests/integration/test_console_why_api.py.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from bastion.clock import SimClock
from bastion.errors import BastionError, ErrorCode
from bastion.ops.order_why import OrderLabel, explain, explain_order, parse_label
from bastion.trace.record import TraceWriter
from bastion.trace.replay import read_run

RUN = "20270115T080000-0a1b2c3d"
BIG = {"instrument": "BTC-PERPETUAL", "direction": "buy", "amount": 50_000.0}
SMALL = {"instrument": "BTC-PERPETUAL", "direction": "sell", "amount": 10.0}


def _intent(base: dict[str, Any], reason: str) -> dict[str, Any]:
    return {**base, "order_type": "market", "price": None, "reduce_only": False, "reason": reason}


def _verdict(step: int, base: dict[str, Any], status: str, **extra: Any) -> dict[str, Any]:
    return {"step": step, **_intent(base, ""), "status": status, "cap": None, **extra}


def _write(tmp_path: Path, lines: list[tuple[str, dict[str, Any]]]) -> Path:
    writer = TraceWriter(tmp_path / "traces", RUN, SimClock(start=1_800_000_000), secrets=())
    with writer:
        writer.write("run_started", {"agent": "seller", "agent_version": "2"})
        for kind, payload in lines:
            writer.write(kind, payload)
    return writer.path


@pytest.fixture
def traces(tmp_path: Path) -> Path:
    """Step 1 asks a person about a big buy and sends a small sell; step 2 is a flatten; step 3
    sends the big buy alice approved."""
    _write(
        tmp_path,
        [
            ("observation", {"step": 1, "equity": 10.0}),
            ("llm_call", {"model": "m", "tier": "primary", "text": "buy big, sell small"}),
            ("decision", {"step": 1, "rationale": "r1",
                          "intents": [_intent(BIG, "big"), _intent(SMALL, "small")]}),
            ("risk_verdict", _verdict(1, BIG, "needs_approval", cap="approval_notional_usd")),
            ("risk_verdict", _verdict(1, SMALL, "approved")),
            ("approval_requested", {"approval_id": "ap-1", "kind": "order", "reason": "big"}),
            ("order_sent", {"step": 1, "stage": "send", "label": f"{RUN}-1-0", "order_id": "o1"}),
            ("step_completed", {"step": 1, "status": "ok"}),
            ("observation", {"step": 2, "equity": 10.0}),
            ("decision", {"step": 2, "rationale": "flatten (daily_loss)", "source": "flatten",
                          "intents": [_intent(SMALL, "flatten")]}),
            ("risk_verdict", _verdict(2, SMALL, "approved", reducing=True)),
            ("order_sent", {"step": 2, "stage": "send", "label": f"{RUN}-2-0", "order_id": "o2"}),
            ("order_filled", {"step": 3, "stage": "reconcile", "label": f"{RUN}-1-0",
                              "order_id": "o1"}),
            ("approval_resolved", {"step": 3, "approval_id": "ap-1", "status": "approved",
                                   "decided_by": "alice", **BIG}),
            ("observation", {"step": 3, "equity": 10.0}),
            ("decision", {"step": 3, "rationale": "hold", "intents": []}),
            ("risk_verdict", _verdict(3, BIG, "approved", approval_id="ap-1")),
            ("order_sent", {"step": 3, "stage": "send", "label": f"{RUN}-3-0", "order_id": "o3"}),
            ("approval_resolved", {"step": None, "approval_id": "ap-9", "status": "withdrawn"}),
        ],
    )  # fmt: skip
    return tmp_path / "traces"


def test_an_agents_order_is_its_intent_the_steps_answers_and_its_lines(traces: Path) -> None:
    why = explain_order(traces, f"{RUN}-1-0").to_dict()
    assert why["decision"]["source"] == "agent"
    assert (why["decision"]["intent"]["reason"], why["decision"]["intent_index"]) == ("small", 1)
    assert [a["text"] for a in why["answers"]] == ["buy big, sell small"]
    assert (why["verdict"]["status"], why["verdict"]["direction"]) == ("approved", "sell")
    assert [(o["kind"], o["step"]) for o in why["orders"]] == [
        ("order_sent", 1),
        ("order_filled", 3),
    ]
    assert why["approval"] is None


def test_a_flatten_says_so_and_asked_no_model(traces: Path) -> None:
    why = explain_order(traces, f"{RUN}-2-0")
    assert why.decision is not None
    assert why.decision["source"] == "flatten"
    assert why.answers == []
    assert why.verdict["reducing"] is True


def test_an_approved_order_goes_back_to_the_step_that_asked_and_who_approved(traces: Path) -> None:
    why = explain_order(traces, f"{RUN}-3-0").to_dict()
    assert why["approval"] == {
        "approval_id": "ap-1",
        "status": "approved",
        "asked_at_step": 1,
        "decided_by": "alice",
    }
    assert why["decision"]["step"] == 1
    assert why["decision"]["intent"]["reason"] == "big"
    assert [a["text"] for a in why["answers"]] == ["buy big, sell small"]


@pytest.mark.parametrize(
    ("label", "parsed"),
    [
        (f"{RUN}-12-0", OrderLabel(RUN, 12, 0)),
        ("r-1-2-3", OrderLabel("r-1", 2, 3)),
        ("flatten-20270115T080000-4242-1", OrderLabel("flatten-20270115T080000", 4242, 1)),
    ],
)
def test_labels_read_back(label: str, parsed: OrderLabel) -> None:
    assert parse_label(label) == parsed
    assert parsed.label == label


@pytest.mark.parametrize("label", ["", "r1", "r1-1", "r1-x-0", "-1-0", "../r1-1-0", "r 1-1-0"])
def test_a_malformed_label_is_a_bad_request_naming_the_shape(label: str) -> None:
    with pytest.raises(BastionError, match=r"expected <run_id>-<step>-<k>") as caught:
        parse_label(label)
    assert caught.value.code is ErrorCode.BAD_REQUEST


def test_a_missing_step_or_order_is_not_found(traces: Path) -> None:
    run = read_run(next(traces.rglob("*.ndjson")))
    for label, reason in [
        (OrderLabel(RUN, 7, 0), "has no step 7"),
        (OrderLabel(RUN, 1, 1), "approved 1 order(s) at step 1, not #1"),
    ]:
        with pytest.raises(BastionError, match=re.escape(reason)) as caught:
            explain(run, label)
        assert caught.value.code is ErrorCode.NOT_FOUND
